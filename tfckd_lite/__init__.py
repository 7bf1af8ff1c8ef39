"""tfckd_lite: a teaching reference of I2S-TFCKD distillation on the DPDCRN speech enhancer.

The library sits behind the numbered notebooks in ``notebooks/``; every public function names
the notebook that teaches it in a ``Notebook:`` line of its docstring.
"""

__version__ = "0.1.0"

from .stft import STFT, SAMPLE_RATE  # noqa: E402,F401
