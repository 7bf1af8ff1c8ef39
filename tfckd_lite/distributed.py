"""Data-parallel training over processes launched by ``torchrun`` (one rank per GPU or CPU
process).

Notebook: 03_training.ipynb

``torchrun --standalone --nproc_per_node N -m tfckd_lite train ...`` runs the same command in
N processes; torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (and the rendezvous
address), :func:`session` reads them and joins the process group: **gloo** on the CPU,
**NCCL** on CUDA, each process on the GPU of its ``LOCAL_RANK``. Without those variables (or
with ``WORLD_SIZE=1``) a run is one plain process and nothing here does anything.

What is shared and how (the training engine, :func:`tfckd_lite.train.fit`, calls these):

- **The batches.** An epoch is one sequence of micro-batches of ``--batch-size`` utterances,
  a function of (seed, epoch) only (:mod:`tfckd_lite.data.loader`). With W ranks and
  ``--grad-accum K``, optimizer step ``s`` consumes global micro-batches ``s·W·K`` to
  ``(s+1)·W·K - 1``; rank ``r`` takes the K consecutive ones from ``(s·W + r)·K``
  (:meth:`World.micro_batches`). So W ranks with K micro-batches each use exactly the
  micro-batches of one process with ``--grad-accum W·K``, and in the same order.
- **``--batch-size`` is the per-process micro-batch in every mode**: one forward pass sees that
  many utterances; a step sees ``batch_size · grad_accum · W``. This is what a method's
  batch means too: the calibration blocks of I²S-TFCKD are built for one fixed batch, and its
  "frequency" relations (utterance-by-utterance similarities) are taken across the
  ``batch_size`` utterances of one micro-batch of one rank; no relation spans two ranks or
  two micro-batches. ``--batch-size 8`` on 4 GPUs is therefore the method of one process
  accumulating 4 micro-batches of 8 (8 x 8 relations each), not of one batch of 32.
- **The gradients.** Each rank sums the gradients of its K micro-batches (each loss divided
  by K), then one all-reduce per optimizer step averages the flattened gradients over the
  ranks (:meth:`World.average`): the mean over all W·K micro-batches, exactly what one process
  accumulating W·K micro-batches computes (up to float summation order). The same all-reduce
  carries the step's losses, so the history records the mean over every rank's micro-batches.

  Why an explicit all-reduce rather than wrapping the task in ``DistributedDataParallel``: the
  task is a distiller whose trainable parameters (student, calibration, fusion, adaptors) vary
  with the method and whose frozen teacher must stay out; DDP needs
  ``find_unused_parameters`` for any parameter a method leaves without a gradient (a graph
  walk every step), ``no_sync()`` around accumulation micro-batches, and a wrapper in front of
  the task that the engine would have to look through for ``model``, the calibration probe
  and the state dict. One flat all-reduce after the last micro-batch is the whole of what DDP
  would do here; it loses DDP's overlap of communication with the backward pass, which for
  these networks costs little: from 38 k (lite student) to 3.2 M (paper teacher) parameters,
  and 2 gloo ranks on the 2-core CPU all-reduce 3.2 M floats in 8 ms (0.6 M: 4 ms), next to
  steps of about a second.
- **Identical replicas.** The ranks start from the same seed and rank 0 broadcasts its
  parameters and buffers once (:meth:`World.broadcast_state`), then every rank applies the
  same averaged gradients; the networks hold no running statistics (Instance/Layer/GroupNorm),
  which would otherwise drift apart per rank (a task with BatchNorm-style running statistics is
  refused, :func:`check_replicable`).
- **Files and output.** Only rank 0 takes the run folder's lock, validates, writes checkpoints,
  the best model and the history, and shows progress; the others wait at a barrier meanwhile
  (validation of a large set must fit in :data:`TIMEOUT`). Every rank reads the same training
  state on resume, so a killed distributed run resumes from its last checkpoint with the same
  command; a state written with another number of ranks is refused (its steps cut the
  micro-batch sequence differently).
"""

from __future__ import annotations

import atexit
import contextlib
import os
from datetime import timedelta

import torch
import torch.distributed as dist

from .devices import DeviceError, resolve_device

#: how long a rank waits at a collective (rank 0's validation and writing happen meanwhile)
TIMEOUT = timedelta(hours=2)
_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


class World:
    """This process's place among the ranks of a run (a single process: rank 0 of 1).

    Notebook: 03_training.ipynb
    """

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0,
                 device: torch.device | None = None):
        self.rank, self.size, self.local_rank = rank, size, local_rank
        self.device = device if device is not None else torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that validates, writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size}, device={self.device})"

    def micro_batches(self, step: int, accumulation: int) -> list[int]:
        """Positions, in the epoch's global micro-batch sequence, that this rank trains on at
        optimizer step ``step`` (module docstring).

        Notebook: 03_training.ipynb
        """
        first = (step * self.size + self.rank) * accumulation
        return list(range(first, first + accumulation))

    def barrier(self) -> None:
        """Wait until every rank gets here (nothing in a single process)."""
        if self.distributed:
            dist.barrier()

    def average(self, params: list[torch.Tensor], losses: dict[str, float]) -> dict[str, float]:
        """Average the gradients of ``params`` and the ``losses`` over the ranks, in place
        (one all-reduce); returns the averaged losses. A single process returns them as given.

        Notebook: 03_training.ipynb

        Parameters without a gradient are left out: every rank runs the same task on batches
        of one shape, so the set is the same on all ranks.
        """
        if not self.distributed:
            return losses
        grads = [p.grad for p in params if p.grad is not None]
        values = torch.tensor(list(losses.values()), dtype=torch.float32, device=self.device)
        flat = torch.cat([g.reshape(-1).float() for g in grads] + [values])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()
        return dict(zip(losses, flat[offset:].tolist()))

    def broadcast_state(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers (its state dict) into every rank's ``module``."""
        if not self.distributed:
            return
        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def share(self, value):
        """Rank 0's ``value`` on every rank (picklable Python data; no files involved)."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]


def world_from_env(environ=None) -> tuple[int, int, int] | None:
    """``(rank, world size, local rank)`` from torchrun's variables; ``None`` when this is not
    a launched process (or a world of one).

    Notebook: 03_training.ipynb
    """
    env = os.environ if environ is None else environ
    present = [name for name in _ENV if name in env]
    if not present:
        return None
    if len(present) != len(_ENV):
        missing = sorted(set(_ENV) - set(present))
        raise RuntimeError(f"torchrun variables {present} are set but {missing} not; launch "
                           "with torchrun, or unset them for a single process")
    try:
        rank, local, size = (int(env[name]) for name in _ENV)
    except ValueError:
        raise RuntimeError(f"torchrun variables must be integers, got "
                           f"{ {name: env[name] for name in _ENV} }") from None
    if size < 1 or not 0 <= rank < size or local < 0:
        raise RuntimeError(f"inconsistent torchrun variables RANK={rank}, LOCAL_RANK={local}, "
                           f"WORLD_SIZE={size}")
    return None if size == 1 else (rank, size, local)


def launched_rank() -> int:
    """This process's ``RANK`` under torchrun; 0 for a single process (it prints, like rank 0).

    Notebook: 03_training.ipynb
    """
    launched = world_from_env()
    return 0 if launched is None else launched[0]


def rank_device(name: str, local_rank: int) -> torch.device:
    """The device of the process with ``local_rank`` on its machine, for ``--device name``.

    Notebook: 03_training.ipynb

    ``cpu`` -> the CPU; ``auto`` and ``cuda`` -> ``cuda:LOCAL_RANK`` (``auto``: the CPU when
    no GPU is visible). ``cuda:N`` is refused: every rank would take the same GPU.
    """
    device = resolve_device(name)
    if device.type == "cpu":
        return device
    if str(name).strip().lower() not in ("auto", "cuda"):
        raise DeviceError(f"--device {name} under torchrun: every process takes the GPU of its "
                          "LOCAL_RANK; give --device cuda (or auto), and choose the GPUs with "
                          "CUDA_VISIBLE_DEVICES")
    return resolve_device(f"cuda:{local_rank}")


def process_device(name: str) -> torch.device:
    """The device of this process for ``--device name``: :func:`resolve_device` in a single
    process, :func:`rank_device` in a torchrun process; :class:`DeviceError` when unusable.

    Notebook: 03_training.ipynb
    """
    launched = world_from_env()
    return resolve_device(name) if launched is None else rank_device(name, launched[2])


@contextlib.contextmanager
def session(device_name: str):
    """The :class:`World` of this process, in the process group for the length of the block.

    Notebook: 03_training.ipynb

    A single process gets rank 0 of 1 on ``resolve_device(device_name)``. A torchrun process
    joins the process group (gloo on the CPU, NCCL on CUDA) on :func:`rank_device` the first
    time, and stays in it for later runs in the same process (it leaves at exit).
    """
    launched = world_from_env()
    device = process_device(device_name)
    if launched is None:
        yield World(device=device)
        return
    rank, size, local = launched
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # joined once per process and left at exit: a second init_process_group after a
        # destroy, in the same torchrun launch, can hang in the rendezvous (seen with gloo)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
        atexit.register(_leave)
    elif dist.get_world_size() != size or dist.get_rank() != rank:
        raise RuntimeError("a process group is already set up with another rank or size than "
                           "torchrun's variables say")
    yield World(rank, size, local, device)
    # Leave the block together (not reached when it raised): a rank that finished first would
    # otherwise exit and tear down its side of the group while rank 0 still writes the best
    # model, and the gloo process that leaves last then sometimes aborts at exit
    # ("terminate called without an active exception"), failing a finished run.
    dist.barrier()


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def check_replicable(task: torch.nn.Module) -> None:
    """Refuse a task whose trained modules keep running statistics (BatchNorm-style): each rank
    would update them from its own batches and the replicas would drift apart.

    Notebook: 03_training.ipynb
    """
    for name, module in task.named_modules():
        if getattr(module, "track_running_stats", False) and \
                any(p.requires_grad for p in module.parameters(recurse=False)):
            raise ValueError(f"{name} ({type(module).__name__}) keeps running statistics, which "
                             "the ranks of a distributed run would update apart; this engine "
                             "averages gradients only")
