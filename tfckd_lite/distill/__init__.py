"""I2S-TFCKD knowledge distillation for DPDCRN, and the methods it is compared with.

Notebooks: 04_calibration_weights.ipynb (relations, calibration), 05_distillation.ipynb (losses,
fusion, inter-set stage, ``Distiller``, methods). Method: Cheng et al., arXiv:2506.13127, as
reconstructed from the authors' demonstration code (the equations are restated in each module).

Quick start::

    from tfckd_lite.distill import build_distiller, METHODS
    distiller = build_distiller("tfckd", teacher, student, batch_size=8, frames=63,
                                se_loss=my_se_loss)
    optimiser = torch.optim.Adam(distiller.trainable_parameters(), lr=1e-3)
    losses = distiller(noisy_spec, clean_spec)     # {"se", "kd_encoder", ..., "kd", "total"}
    losses["total"].backward(); optimiser.step()
    distiller.last_weights["encoder"]["time"]      # α^T [B, T, 3, 3] for plotting

Modules: ``relations`` (time / "frequency" relations and Grams), ``calibration`` (the
dual-stream calibration block), ``losses`` (Jeffreys divergence, calibrated set loss),
``fusion`` (residual fusion chains), ``distiller`` (``Distiller``, ``TFCKDDistiller``),
``methods`` (baselines and the ``METHODS`` registry), ``plots`` (relation matrices, weight
heatmaps and per-frame weight curves).
"""

from .calibration import (MAX_LOG_SPREAD, STREAMS, CalibrationWeights, StackedMLP, TFCalibration,
                          calibration_agreement, log_weight_spread, stage_spreads,
                          uniform_weights, weight_ceiling)
from .distiller import Distiller, TFCKDDistiller, tap_channels
from .fusion import FUSION_MID_CHANNELS, SET_NAMES, FusionBlock, FusionChain, processing_order
from .losses import (PROB_EPS, calibrated_set_loss, jeffreys, paired_divergence,
                     pairwise_divergence)
from .methods import (DEFAULT_KD_WEIGHTS, METHODS, FitNetsDistiller, FrameSimilarityDistiller,
                      Method, OutputDistiller, StudentOnly, build_distiller, pair_layers)
from .relations import (COSINE_EPS, Relations, frame_vectors, frequency_relation, gram_matrices,
                        layer_relations, time_relation)

__all__ = [
    "COSINE_EPS", "PROB_EPS", "STREAMS", "SET_NAMES", "FUSION_MID_CHANNELS",
    "Relations", "frame_vectors", "time_relation", "frequency_relation", "gram_matrices",
    "layer_relations",
    "CalibrationWeights", "StackedMLP", "TFCalibration", "uniform_weights", "weight_ceiling",
    "MAX_LOG_SPREAD", "log_weight_spread", "stage_spreads", "calibration_agreement",
    "jeffreys", "pairwise_divergence", "calibrated_set_loss", "paired_divergence",
    "FusionBlock", "FusionChain", "processing_order",
    "Distiller", "TFCKDDistiller", "tap_channels",
    "StudentOnly", "OutputDistiller", "FitNetsDistiller", "FrameSimilarityDistiller",
    "Method", "METHODS", "DEFAULT_KD_WEIGHTS", "build_distiller", "pair_layers",
]
