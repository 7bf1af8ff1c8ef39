"""Training: one loop for plain training and for every distillation method.

Notebook: 03_training.ipynb

The loop trains a *task*: a module whose ``forward(noisy_spec, clean_spec)`` returns a dict of
named scalar losses including ``"total"``, with ``trainable_parameters()`` and the network being
trained as ``task.model``. :class:`SupervisedTask` wraps a DPDCRN and the SE loss; the
distillers of :mod:`tfckd_lite.distill` follow the same protocol, so one loop, one checkpoint
format and one resume logic serve every method.

Choices (the paper leaves them open, TFCKD.md section 7), and why:

- AdamW, peak learning rate 1e-3, no weight decay by default: the usual setting for CRN-type
  enhancers of this size; linear warm-up (200 steps) then cosine decay to 5 % of the peak over
  the run, a schedule that depends on the global step only, so a resumed run follows exactly
  the same curve.
- Gradient-norm clipping at 5: recurrent layers occasionally spike early in training.
- 1 s segments (63 frames), batch 8: the calibration blocks of I2S-TFCKD are built for a fixed
  batch size and frame count, and 8 is the released demo's batch size.
- Data: the pairs as built. On-the-fly remixing (``remix_snr``, ``--remix-snr LOW HIGH``)
  draws a new noise and a new SNR for every crop of every epoch instead
  (:mod:`tfckd_lite.data.loader`). Measured on ``small`` with 0–20 dB (README, "How the recipe
  got here"): it helps the 6-epoch student (+0.27 dB test SI-SDR) but not the 20-epoch
  teacher (−0.12 dB), so the shipped models and the distillation experiment do without it.
- Validation after every epoch on PESQ-WB and SI-SDR of whole utterances; the best epoch by
  validation PESQ-WB (the paper's headline metric) is kept as ``best.safetensors``.
- Resumability: a training state is written atomically at the end of every epoch (and every
  ``checkpoint_every`` steps); batches are a pure function of (seed, epoch, position), so a run
  that is killed and resumed ends with the same weights as one that never stopped.

Scaling out (Notebook: 03_training.ipynb): the same loop runs on a GPU (``device``,
:mod:`tfckd_lite.devices`), in mixed precision (``precision``, :mod:`tfckd_lite.precision`),
with batches loaded in ``workers`` processes, and as one rank of a ``torchrun`` launch
(:mod:`tfckd_lite.distributed`). ``batch_size`` is always the **per-process micro-batch**:
what one forward pass sees, and what the calibration blocks of I2S-TFCKD are built for (its
"frequency" relations are taken across those ``batch_size`` utterances, never across ranks).
``grad_accum`` K sums the gradients of K micro-batches (each loss divided by K) before one
optimizer step; with W ranks a step sees ``batch_size * K * W`` utterances, the micro-batches
``s*W*K ... (s+1)*W*K - 1`` of the epoch's one global sequence, so W ranks give the weights of
one process with ``grad_accum = W*K`` (tested to float tolerance). ``steps_per_epoch`` counts
optimizer steps, and the learning-rate schedule depends on the optimizer step only.
``device`` and ``workers`` do not change the numbers and may differ on resume; ``precision``,
``grad_accum`` and the number of ranks do, and a resume must match them.

The package, one module per concern: :mod:`~tfckd_lite.train.config` (:class:`TrainConfig` and
the flags derived from it), :mod:`~tfckd_lite.train.engine` (the optimisation step, :func:`fit`,
:func:`train_steps`), :mod:`~tfckd_lite.train.runs` (:func:`run_training`,
:func:`training_argv`) and :mod:`~tfckd_lite.train.cli` (the ``train`` and ``evaluate``
commands).
"""

from .config import TrainConfig, add_config_arguments, config_argv, config_from_args, flag_text
from .engine import (SupervisedTask, TrainResult, fit, gradient_summary, learning_rate,
                     train_steps, validate)
from .runs import corpus_options, microphones, run_training, training_argv
from .cli import recorded_corpus_options, register

__all__ = ["TrainConfig", "add_config_arguments", "config_argv", "config_from_args", "flag_text",
           "SupervisedTask", "TrainResult", "fit", "gradient_summary", "learning_rate",
           "train_steps", "validate", "corpus_options", "microphones", "run_training",
           "training_argv", "recorded_corpus_options", "register"]
