"""Speech-quality metrics and evaluation over a dataset.

Notebook: 01_signals_and_data.ipynb

Every metric has the torchmetrics/asteroid signature ``metric(estimate, reference, sample_rate)``
on numpy arrays or torch tensors shaped ``(..., time)``; a 1-D pair gives a ``float``, batched
input an array (numpy in, numpy out; torch in, torch out) of the leading shape.

=========  ==========================================  ================  ===================
metric     what it measures                            range             implementation
=========  ==========================================  ================  ===================
pesq_wb    wideband PESQ, ITU-T P.862.2 (MOS-LQO)      1.04 ... 4.64     ``pesq`` (16 kHz)
pesq_nb    narrowband PESQ, P.862 (MOS-LQO)            1.02 ... 4.55     ``pesq``
stoi       short-time objective intelligibility        0 ... 1           ``pystoi``
estoi      extended STOI (modulated noise)              0 ... 1           ``pystoi``
si_sdr     scale-invariant signal-to-distortion, dB    unbounded         here (zero-mean)
=========  ==========================================  ================  ===================

A clip that a metric cannot score raises :class:`UnscorableError` with the reason (silent
reference or estimate, too short for PESQ, too little speech for STOI, NaN/inf samples);
:func:`evaluate` records it, leaves it out of that metric's mean and counts it, and never stops.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import warnings
from collections import deque

import numpy as np
import torch

from .stft import SAMPLE_RATE  # one source of truth: the STFT front-end

METRICS = ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr")

__all__ = ["METRICS", "UnscorableError", "pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr",
           "score_pair", "evaluate", "format_summary", "summary_by", "format_breakdown",
           "bootstrap_mean_interval"]


class UnscorableError(ValueError):
    """A metric cannot score this clip; ``reason`` says why."""

    def __init__(self, metric: str, reason: str):
        self.metric = metric
        self.reason = reason
        super().__init__(f"{metric}: {reason}")


# --------------------------------------------------------------------------------------------
# shape handling


def _to_numpy(x) -> tuple[np.ndarray, bool]:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy(), True
    return np.asarray(x, dtype=np.float64), False


def _batched(name: str, scalar_fn, estimate, reference, sample_rate, on_error):
    est, est_torch = _to_numpy(estimate)
    ref, ref_torch = _to_numpy(reference)
    if est.shape != ref.shape:
        raise ValueError(f"{name}: estimate {est.shape} and reference {ref.shape} differ in "
                         f"shape; both must be (..., time)")
    if est.ndim == 0:
        raise ValueError(f"{name}: expected (..., time) arrays, got scalars")
    if on_error not in ("raise", "nan"):
        raise ValueError(f"on_error must be 'raise' or 'nan', got {on_error!r}")
    lead = est.shape[:-1]
    flat_est, flat_ref = est.reshape(-1, est.shape[-1]), ref.reshape(-1, ref.shape[-1])
    scores = np.empty(len(flat_est))
    for i, (e, r) in enumerate(zip(flat_est, flat_ref)):
        try:
            scores[i] = scalar_fn(e, r, int(sample_rate))
        except UnscorableError:
            if on_error == "raise":
                raise
            scores[i] = np.nan
    if not lead:
        return float(scores[0])
    scores = scores.reshape(lead)
    return torch.from_numpy(scores) if (est_torch or ref_torch) else scores


def _check_signals(metric: str, est: np.ndarray, ref: np.ndarray, silent_estimate: bool) -> None:
    for label, x in (("reference", ref), ("estimate", est)):
        bad = ~np.isfinite(x)
        if bad.any():
            raise UnscorableError(metric, f"{label} has {int(bad.sum())} NaN/inf samples")
    if not np.any(ref):
        raise UnscorableError(metric, "reference is silent (all zeros)")
    if silent_estimate and not np.any(est):
        raise UnscorableError(metric, "estimate is silent (all zeros)")


def _resampled(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    from .audio import resample

    return resample(x, rate, target).astype(np.float64) if rate != target else x


# --------------------------------------------------------------------------------------------
# PESQ


def _pesq(mode: str, est: np.ndarray, ref: np.ndarray, rate: int) -> float:
    from pesq import BufferTooShortError, NoUtterancesError, pesq

    metric = f"pesq_{mode}"
    _check_signals(metric, est, ref, silent_estimate=True)
    allowed = (16000,) if mode == "wb" else (8000, 16000)
    if rate not in allowed:
        est, ref = _resampled(est, rate, 16000), _resampled(ref, rate, 16000)
        rate = 16000
    if len(ref) < rate // 4:
        raise UnscorableError(metric, f"too short ({len(ref) / rate:.3f} s; PESQ needs at "
                                      f"least 0.25 s)")
    try:
        return float(pesq(rate, ref, est, mode))
    except NoUtterancesError as error:
        raise UnscorableError(metric, "no utterances detected (PESQ found no speech in the "
                                      "reference)") from error
    except BufferTooShortError as error:
        raise UnscorableError(metric, "too short (PESQ needs at least 0.25 s)") from error


def _pesq_wb(est, ref, rate):
    return _pesq("wb", est, ref, rate)


def _pesq_nb(est, ref, rate):
    return _pesq("nb", est, ref, rate)


def pesq_wb(estimate, reference, sample_rate: int = SAMPLE_RATE, on_error: str = "raise"):
    """Wideband PESQ (P.862.2) of ``estimate`` against ``reference``, shapes ``(..., time)``.

    Notebook: 01_signals_and_data.ipynb

    Other sample rates are resampled to 16 kHz. ``on_error="nan"`` gives NaN for unscorable
    clips instead of raising :class:`UnscorableError`. Identical signals score about 4.64.
    """
    return _batched("pesq_wb", _pesq_wb, estimate, reference, sample_rate, on_error)


def pesq_nb(estimate, reference, sample_rate: int = SAMPLE_RATE, on_error: str = "raise"):
    """Narrowband PESQ (P.862, MOS-LQO) at 8 or 16 kHz (others resampled to 16 kHz).

    Notebook: 01_signals_and_data.ipynb
    """
    return _batched("pesq_nb", _pesq_nb, estimate, reference, sample_rate, on_error)


# --------------------------------------------------------------------------------------------
# STOI / ESTOI


def _stoi(extended: bool, est: np.ndarray, ref: np.ndarray, rate: int) -> float:
    from pystoi import stoi as pystoi_stoi

    metric = "estoi" if extended else "stoi"
    _check_signals(metric, est, ref, silent_estimate=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(pystoi_stoi(ref, est, rate, extended=extended))
    for warning in caught:
        if "Not enough STFT frames" in str(warning.message):
            raise UnscorableError(metric, "too little speech (fewer than 30 STFT frames of "
                                          "~26 ms remain after removing silent frames)")
    if not np.isfinite(value):
        raise UnscorableError(metric, "the score is not finite")
    return value


def _stoi_plain(est, ref, rate):
    return _stoi(False, est, ref, rate)


def _stoi_extended(est, ref, rate):
    return _stoi(True, est, ref, rate)


def stoi(estimate, reference, sample_rate: int = SAMPLE_RATE, on_error: str = "raise"):
    """STOI (Taal et al. 2011) of ``estimate`` against ``reference``, shapes ``(..., time)``.

    Notebook: 01_signals_and_data.ipynb
    """
    return _batched("stoi", _stoi_plain, estimate, reference, sample_rate, on_error)


def estoi(estimate, reference, sample_rate: int = SAMPLE_RATE, on_error: str = "raise"):
    """Extended STOI (Jensen and Taal 2016), shapes ``(..., time)``.

    Notebook: 01_signals_and_data.ipynb
    """
    return _batched("estoi", _stoi_extended, estimate, reference, sample_rate, on_error)


# --------------------------------------------------------------------------------------------
# SI-SDR


def _float_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, np.float64))


def si_sdr(estimate, reference, sample_rate: int | None = None, eps: float = 1e-8):
    """Scale-invariant SDR in dB (Le Roux et al. 2019), zero-mean, shapes ``(..., time)``.

    Notebook: 01_signals_and_data.ipynb

    ``sample_rate`` is accepted for a uniform signature and not used. Torch input stays in
    torch (differentiable); a 1-D pair gives a float.
    """
    as_torch = isinstance(estimate, torch.Tensor) or isinstance(reference, torch.Tensor)
    # one formula for both: array input is computed as float64 tensors and returned as numpy
    est = _float_tensor(estimate)
    ref = _float_tensor(reference).to(est)
    if est.shape != ref.shape:
        raise ValueError(f"si_sdr: estimate {tuple(est.shape)} and reference "
                         f"{tuple(ref.shape)} differ in shape")
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ((ref ** 2).sum(-1, keepdim=True) + eps)
    target = scale * ref
    value = 10 * torch.log10(((target ** 2).sum(-1) + eps) / (((est - target) ** 2).sum(-1) + eps))
    if value.dim() == 0:
        return float(value)
    return value if as_torch else value.numpy()


def _si_sdr_checked(est, ref, rate):
    _check_signals("si_sdr", est, ref, silent_estimate=False)
    return si_sdr(est, ref)


_SCALAR = {"pesq_wb": _pesq_wb, "pesq_nb": _pesq_nb, "stoi": _stoi_plain,
           "estoi": _stoi_extended, "si_sdr": _si_sdr_checked}


def score_pair(estimate, reference, sample_rate: int = SAMPLE_RATE,
               metrics=METRICS) -> tuple[dict[str, float], dict[str, str]]:
    """All ``metrics`` of one 1-D pair: ``(scores, errors)``; unscorable ones are NaN + a reason.

    Notebook: 01_signals_and_data.ipynb
    """
    est, _ = _to_numpy(estimate)
    ref, _ = _to_numpy(reference)
    if est.ndim != 1 or est.shape != ref.shape:
        raise ValueError(f"score_pair expects two 1-D signals of equal length, got "
                         f"{est.shape} and {ref.shape}")
    scores, errors = {}, {}
    for name in metrics:
        if name not in _SCALAR:
            raise ValueError(f"unknown metric {name!r}; choose from {METRICS}")
        try:
            scores[name] = float(_SCALAR[name](est, ref, int(sample_rate)))
        except UnscorableError as error:
            scores[name] = float("nan")
            errors[name] = error.reason
    return scores, errors


# --------------------------------------------------------------------------------------------
# evaluation over a dataset


def _single_threaded():
    """Limit BLAS/OpenMP pools to one thread while scoring (if threadpoolctl is installed).

    pystoi's matrix products otherwise start threads that spin while waiting; on a 2-core
    machine that costs about 40 % more CPU time per clip and slows parallel scoring down.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:          # optional: it comes with scikit-learn (a librosa dependency)
        return contextlib.nullcontext()
    return threadpool_limits(1)


_WORKER_LIMITS: list = []


def _init_worker() -> None:
    _WORKER_LIMITS.append(_single_threaded())


def _score_task(task: tuple) -> dict:
    index, name, estimate, clean, mixture, metrics, rate = task
    record: dict = {"index": index, "name": name}
    errors: dict[str, str] = {}
    if estimate is not None:
        scores, failed = score_pair(estimate, clean, rate, metrics)
        record.update(scores)
        errors.update(failed)
    scores, failed = score_pair(mixture, clean, rate, metrics)
    record.update({f"input_{k}": v for k, v in scores.items()})
    errors.update({f"input_{k}": v for k, v in failed.items()})
    record["errors"] = errors
    return record


def _as_1d(name: str, output, length: int) -> np.ndarray:
    if not isinstance(output, torch.Tensor):
        output = torch.as_tensor(np.asarray(output))
    out = output.detach().float().cpu()
    while out.dim() > 1 and out.shape[0] == 1:
        out = out[0]
    if out.dim() != 1 or out.shape[0] != length:
        raise ValueError(f"enhance_fn returned shape {tuple(output.shape)} for {name}; expected "
                         f"[{length}] or [1, {length}] (the input length)")
    return out.numpy().astype(np.float64)


def evaluate(enhance_fn, dataset, metrics=METRICS, *, workers: int | None = None,
             max_clips: int | None = None, progress: bool = True,
             reference_channel: int = 0, sample_rate: int = SAMPLE_RATE) -> dict:
    """Score ``enhance_fn`` on whole utterances of ``dataset``, with the noisy input as baseline.

    Notebook: 01_signals_and_data.ipynb

    ``enhance_fn`` receives the noisy waveform as a batch of one, ``[1, N]`` (``[1, M, N]``
    for multi-microphone data), under ``torch.no_grad()``, and returns ``[1, N]`` or ``[N]``;
    ``model.enhance`` fits. ``None`` scores only the noisy input (``input_*``). The mixture's
    scores use channel ``reference_channel``.

    Returns ``{"records": [...], "summary": {...}}``. Each record has the clip's ``name``,
    its scores (``pesq_wb``, ..., ``input_pesq_wb``, ...; NaN when unscorable) and ``errors``
    (metric -> reason). The summary holds the mean of each metric over the clips it could score,
    the ``input_*`` means, ``delta_*`` (mean per-clip improvement over clips scored both
    ways), ``clips``, ``unscorable_clips`` (clips with at least one unscorable score) and
    ``unscorable`` (a list of ``{name, metric, reason}``). PESQ and STOI run in ``workers``
    processes (default 2, or fewer cores; 1 runs in this process).
    """
    from tqdm.auto import tqdm

    metrics = tuple(metrics)
    for name in metrics:
        if name not in _SCALAR:
            raise ValueError(f"unknown metric {name!r}; choose from {METRICS}")
    count = len(dataset) if max_clips is None else min(len(dataset), int(max_clips))
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    pool = (multiprocessing.get_context("fork").Pool(workers, initializer=_init_worker)
            if workers > 1 and can_fork and count > 1 else None)

    def tasks():
        for i in range(count):
            noisy, clean, name = dataset[i]
            mixture = noisy[reference_channel] if noisy.dim() == 2 else noisy
            estimate = None
            if enhance_fn is not None:
                with torch.no_grad():
                    estimate = _as_1d(name, enhance_fn(noisy.unsqueeze(0)), clean.shape[-1])
            yield (i, name, estimate, clean.double().numpy(), mixture.double().numpy(),
                   metrics, sample_rate)

    records: list[dict] = []
    bar = tqdm(total=count, desc="evaluate", disable=not progress, leave=False)
    try:
        if pool is None:
            for task in tasks():
                with _single_threaded():
                    records.append(_score_task(task))
                bar.update(1)
        else:
            pending: deque = deque()
            for task in tasks():                       # enhance here while workers score
                pending.append(pool.apply_async(_score_task, (task,)))
                while len(pending) > 2 * workers:
                    records.append(pending.popleft().get())
                    bar.update(1)
            while pending:
                records.append(pending.popleft().get())
                bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return {"records": records,
            "summary": _summarise(records, metrics, enhance_fn is not None)}


def _summarise(records: list[dict], metrics: tuple, enhanced: bool) -> dict:
    summary: dict = {"clips": len(records)}
    for name in metrics:
        keys = ([name] if enhanced else []) + [f"input_{name}"]
        for key in keys:
            values = np.array([r[key] for r in records], dtype=np.float64)
            finite = values[np.isfinite(values)]
            summary[key] = float(finite.mean()) if finite.size else float("nan")
            summary[f"scored_{key}"] = int(finite.size)
        if enhanced:
            diffs = np.array([r[name] - r[f"input_{name}"] for r in records], dtype=np.float64)
            diffs = diffs[np.isfinite(diffs)]
            summary[f"delta_{name}"] = float(diffs.mean()) if diffs.size else float("nan")
    summary["unscorable_clips"] = sum(1 for r in records if r["errors"])
    summary["unscorable"] = [{"name": r["name"], "metric": k, "reason": v}
                             for r in records for k, v in r["errors"].items()]
    return summary


def format_summary(summary: dict, metrics=METRICS) -> str:
    """A small text table of an :func:`evaluate` summary: input, enhanced, improvement (the last
    two only when something was enhanced, not for ``enhance_fn=None``).

    Notebook: 01_signals_and_data.ipynb
    """
    enhanced = any(name in summary for name in metrics)
    lines = [f"{'metric':<8} {'input':>8}" + (f" {'enhanced':>9} {'delta':>8}" if enhanced
                                                else "")]
    for name in metrics:
        if f"input_{name}" not in summary:
            continue
        row = f"{name:<8} {summary[f'input_{name}']:>8.3f}"
        if name in summary:
            row += f" {summary[name]:>9.3f} {summary[f'delta_{name}']:>+8.3f}"
        lines.append(row)
    lines.append(f"{summary['clips']} clips, {summary['unscorable_clips']} with an unscorable "
                 f"score")
    return "\n".join(lines)


def summary_by(report: dict, dataset, field: str) -> dict:
    """An :func:`evaluate` report summarised per group of clips: ``{label: summary}``.

    Notebook: 03_training.ipynb

    ``field`` is a key of ``dataset.info(i)``: ``"noise"``, ``"snr"`` and ``"speaker"`` for
    corpora that log them (the reduced set, VoiceBank+DEMAND). Shows *where* a model gains and
    where it does not, e.g. on the noise types that training never saw. Labels are sorted;
    a clip without the field is grouped under ``None``.
    """
    if not report["records"]:
        raise ValueError("the report has no records")
    labels = {}
    for i in range(len(dataset)):
        info = dataset.info(i)
        labels[info["name"]] = info.get(field)
    missing = [r["name"] for r in report["records"] if r["name"] not in labels]
    if missing:
        raise ValueError(f"{len(missing)} clips of the report (first {missing[0]!r}) are not in "
                         f"this dataset; pass the dataset that was evaluated")
    first = report["records"][0]
    metrics = tuple(m for m in METRICS if f"input_{m}" in first)
    enhanced = any(m in first for m in metrics)
    groups: dict = {}
    for record in report["records"]:
        groups.setdefault(labels[record["name"]], []).append(record)
    order = sorted(groups, key=lambda label: (label is None, str(type(label)),
                                              0 if label is None else label))
    return {label: _summarise(groups[label], metrics, enhanced) for label in order}


def format_breakdown(breakdown: dict, field: str, metrics=METRICS) -> str:
    """A text table of :func:`summary_by`: one row per group, input -> enhanced (delta).

    Notebook: 03_training.ipynb
    """
    any_summary = next(iter(breakdown.values()))
    shown = [m for m in metrics if f"input_{m}" in any_summary]
    enhanced = any(m in any_summary for m in shown)
    head = f"{field:<10} {'clips':>5}" + "".join(f" {m:>22}" for m in shown)
    lines = [head]
    for label, summary in breakdown.items():
        row = f"{str(label):<10} {summary['clips']:>5}"
        for m in shown:
            cell = f"{summary[f'input_{m}']:.2f}"
            if enhanced:
                cell += f" -> {summary[m]:.2f} ({summary[f'delta_{m}']:+.2f})"
            row += f" {cell:>22}"
        lines.append(row)
    return "\n".join(lines)


def bootstrap_mean_interval(values, confidence: float = 0.95, resamples: int = 10_000,
                            seed: int = 0) -> dict:
    """The mean of ``values`` and a percentile-bootstrap interval for it.

    Notebook: 05_distillation.ipynb

    ``values`` are independent observations, e.g. the per-clip difference between two systems
    on a test split. The observations are resampled with replacement ``resamples`` times; the
    interval holds the central ``confidence`` share of the resampled means. It says how far
    the mean could move with another draw of clips of the same kind, and nothing about other
    sources of variation (e.g. training seeds). Non-finite values (unscorable clips) are left
    out and counted. The generator is seeded, so the same values give the same interval.

    Returns ``{"mean", "low", "high", "n", "dropped"}``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError(f"no finite value among the {values.size} given")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):              # bounded memory for long value lists
        count = min(1000, resamples - start)
        picks = rng.integers(0, finite.size, size=(count, finite.size))
        means[start:start + count] = finite[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return {"mean": float(finite.mean()), "low": float(low), "high": float(high),
            "n": int(finite.size), "dropped": int(values.size - finite.size)}
