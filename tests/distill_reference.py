"""Fixed distillation cases whose losses and gradients pin the distillers' numerics.

The fast TFCKD step (batched fusion blocks, fused projections; issue 27 §3) must give the losses
and gradients of the straightforward implementation it replaced, commit ``cc3352b``, so that the
runs trained with that code stay valid. This module defines the cases and what is recorded of
each; ``tests/test_distill_equivalence.py`` recomputes them with the current library and compares
with ``tests/data/distill_reference.safetensors``, which was written from ``cc3352b`` by::

    git worktree add --detach /tmp/tfckd-cc3352b cc3352b
    PYTHONPATH=/tmp/tfckd-cc3352b python tests/distill_reference.py \
        tests/data/distill_reference.safetensors

(the script only uses the public API, so it runs against either version of the library; the
file's metadata names the library folder it was written from).

A case is a method of ``tfckd_lite.distill.METHODS`` (every TFCKD variant and
``frame-similarity``), a teacher (``lite-teacher`` at a seeded random initialisation, or the
shipped trained one), a batch (8 x 1 s, the benchmark's, or 3 x 0.5 s) and a dtype (float64,
where only the order of float operations separates two implementations of the same maths, and
float32, what training uses). Per case it records every named loss and, per trainable parameter
(student and extras): the gradient's norm, its projections on four fixed random directions
(seeded by the parameter's name) and, in the float64 cases, for parameters of at most 128
entries, the gradient itself. Projections catch any change of a large gradient for 5 numbers
instead of its size (the full gradients of all cases would be about 100 MB; this file is about
2 MB). The names that go with each case's tensors, and ``init_sha256``, a fingerprint of the
distiller's initial state (so that a change of the parameters' construction order fails loudly
instead of comparing different initial weights), are JSON in the file's metadata.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import torch

from tfckd_lite.distill import build_distiller
from tfckd_lite.distill.distiller import weights_sha256
from tfckd_lite.losses import compressed_spectral_loss
from tfckd_lite.models import build_model
from tfckd_lite.stft import SAMPLE_RATE

METHODS = ("tfckd", "tfckd-intra", "tfckd-time-only", "tfckd-freq-only", "tfckd-uniform",
           "tfckd-released", "frame-similarity")
TEACHERS = ("init", "trained")
BATCHES = ((8, 1.0), (3, 0.5))
DTYPES = (torch.float64, torch.float32)
PROJECTIONS = 4
FULL_GRAD_MAX = 128
REFERENCE_FILE = Path(__file__).parent / "data" / "distill_reference.safetensors"


def case_key(method: str, teacher: str, batch: int, seconds: float, dtype) -> str:
    return f"{method}|{teacher}|{batch}x{seconds:g}s|{str(dtype).removeprefix('torch.')}"


def directions(name: str, numel: int) -> torch.Tensor:
    """``[PROJECTIONS, numel]`` float64 directions, fixed by the parameter's name."""
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return torch.randn(PROJECTIONS, numel, generator=generator, dtype=torch.float64)


def build_case(method: str, teacher: str, batch: int, seconds: float, dtype):
    """The distiller (train mode) and the ``(noisy, clean)`` spectra of one case."""
    torch.manual_seed(0)
    student = build_model("lite-student")
    if teacher == "init":
        teacher_model = build_model("lite-teacher")
    else:
        from tfckd_lite import pretrained
        teacher_model = pretrained.load("lite-teacher")
    samples = round(seconds * SAMPLE_RATE)
    frames = student.stft(torch.zeros(1, samples)).shape[2]
    torch.manual_seed(1)           # the extras' initialisation, after the models
    distiller = build_distiller(method, teacher_model, student, batch, frames,
                                se_loss=compressed_spectral_loss).train().to(dtype)
    generator = torch.Generator().manual_seed(2)
    clean = 0.1 * torch.randn(batch, samples, generator=generator)
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=generator)
    # a few silent frames: the ε paths of the cosines and of the InstanceNorm statistics
    clean[0, : samples // 8] = 0.0
    noisy[0, : samples // 8] = 0.0
    noisy_spec, clean_spec = student.stft(noisy), student.stft(clean)
    return distiller, noisy_spec.to(dtype), clean_spec.to(dtype)


def trainable_named_parameters(distiller) -> list[tuple[str, torch.nn.Parameter]]:
    wanted = {id(p) for p in distiller.trainable_parameters()}
    return [(n, p) for n, p in distiller.named_parameters() if id(p) in wanted]


def run_case(method: str, teacher: str, batch: int, seconds: float, dtype) -> tuple[dict, dict]:
    """The record of one case: ``({part: float64 tensor}, {part: names})`` (see the module doc).

    Parts: ``losses`` ``[n_losses]``; ``norms`` ``[n_params]`` and ``proj`` ``[n_params, 4]``
    in the order of ``names["params"]`` (their sizes: ``names["sizes"]``); ``grads``, the concatenated flat gradients of the
    parameters in ``names["full"]`` (float64 cases only); ``names["init_sha256"]`` fingerprints
    the initial state.
    """
    distiller, noisy, clean = build_case(method, teacher, batch, seconds, dtype)
    names = {"init_sha256": weights_sha256(distiller)}
    losses = distiller(noisy, clean)
    losses["total"].backward()
    names["losses"] = list(losses)
    record = {"losses": torch.stack([v.detach().to(torch.float64) for v in losses.values()])}
    names["params"], names["sizes"], names["full"] = [], [], []
    norms, projections, full = [], [], []
    for name, p in trainable_named_parameters(distiller):
        if p.grad is None:
            raise RuntimeError(f"{method}: trainable parameter {name} got no gradient")
        g = p.grad.detach().to(torch.float64).reshape(-1)
        names["params"].append(name)
        names["sizes"].append(g.numel())
        norms.append(torch.linalg.vector_norm(g))
        projections.append(directions(name, g.numel()) @ g)
        if dtype == torch.float64 and g.numel() <= FULL_GRAD_MAX:
            names["full"].append(name)
            full.append(g)
    record["norms"] = torch.stack(norms)
    record["proj"] = torch.stack(projections)
    if full:
        record["grads"] = torch.cat(full)
    return record, names


def all_cases():
    for method in METHODS:
        for teacher in TEACHERS:
            for batch, seconds in BATCHES:
                for dtype in DTYPES:
                    yield method, teacher, batch, seconds, dtype


def write_reference(out: Path) -> None:
    from safetensors.torch import save_file

    import tfckd_lite
    tensors, metadata = {}, {"library": str(Path(tfckd_lite.__file__).parent)}
    for case in all_cases():
        key = case_key(*case)
        record, names = run_case(*case)
        tensors.update({f"{key}/{k}": v.contiguous() for k, v in record.items()})
        metadata[key] = json.dumps(names)
        print(key, f"total={record['losses'][-1].item():.9g}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) from {metadata['library']}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: PYTHONPATH=<checkout of cc3352b> python tests/distill_reference.py OUT")
    torch.set_num_threads(1)
    write_reference(Path(sys.argv[1]))
