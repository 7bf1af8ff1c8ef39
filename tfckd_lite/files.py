"""Files written safely: atomic writes, folder locks, content hashes.

Notebook: 01_signals_and_data.ipynb

Everything the library writes (WAVs, manifests, model files, training states, reports) goes
through :func:`atomic_write_bytes`: a temporary file in the same folder, ``fsync``,
``os.replace``, so a reader sees either no file or the whole file, never half of one. Work that
two processes must not do at once in one folder (building a dataset, training a run) holds
:func:`folder_lock`. Datasets and model files are pinned by their sha256 (:func:`sha256_file`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_writer", "folder_lock", "FolderBusyError", "sha256_bytes", "sha256_file"]

_UMASK = os.umask(0o022)          # read the process umask (only possible by setting it) ...
os.umask(_UMASK)                  # ... and put it back at once


@contextlib.contextmanager
def atomic_writer(path):
    """A binary file handle whose content replaces ``path`` only if the block succeeds.

    Notebook: 01_signals_and_data.ipynb

    A temporary file in the same folder, ``fsync``, ``os.replace``; on an exception the
    temporary file is removed and ``path`` is left as it was. For output written in pieces
    (e.g. a long enhanced recording); :func:`atomic_write_bytes` is the one-shot form.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):        # mkstemp makes 0600 files; give the usual permissions
            os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb+") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    Notebook: 01_signals_and_data.ipynb
    """
    with atomic_writer(path) as handle:
        handle.write(data)
    return Path(path)


class FolderBusyError(RuntimeError):
    """Another process holds the lock of a folder (see :func:`folder_lock`).

    Notebook: 03_training.ipynb
    """


@contextlib.contextmanager
def folder_lock(folder, name: str, wait: bool = True):
    """Hold an advisory lock on ``folder`` (the file ``folder/name``) for the ``with`` block.

    Notebook: 01_signals_and_data.ipynb

    For work that two processes must not do at once in one folder (building a dataset, training
    a run). ``wait=False`` raises :class:`FolderBusyError` at once instead of waiting. The lock
    is the kernel's (``flock``), so it is released when its process dies, even by ``kill -9``.
    Without ``fcntl`` (Windows) it does nothing.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / name, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise FolderBusyError(f"another process is working in {folder} (it holds "
                                  f"{folder / name}); wait for it or stop it first") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    Notebook: 01_signals_and_data.ipynb
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's contents.

    Notebook: 01_signals_and_data.ipynb
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
