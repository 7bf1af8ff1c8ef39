"""The tiny teacher and student the distillation tests train (seconds on 2 cores), one
definition for every test module that needs them; the ``tiny_teacher`` fixture
(tests/conftest.py) builds the teacher."""

from tfckd_lite.models import DPDCRNConfig
from tfckd_lite.stft import segment_frames

STUDENT = DPDCRNConfig(channels=8, dual_path_layers=1)
TEACHER = DPDCRNConfig(channels=8, dual_path_layers=2)
BATCH, SEGMENT = 2, 0.5
FRAMES = segment_frames(SEGMENT)
#: the seed of the tiny teacher's random weights
TEACHER_SEED = 100
