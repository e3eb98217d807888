"""Atomic file writes: a crash or SIGKILL never leaves a half-written checkpoint or weights file."""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write", "remove_stale_temp_files", "save_json", "save_safetensors"]

log = logging.getLogger(__name__)
_TMP_SUFFIX = ".tmp"


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], None], *, verify: Callable[[Path], Any] | None = None
) -> Path:
    """Run ``write(tmp_path)`` on a temporary file in the target folder, fsync it, then rename it over ``path``.

    ``verify(tmp_path)``, if given, runs on the written file before the rename: if it raises, ``path``
    keeps its previous content. The file gets the usual mode (``0o666`` less the umask), whatever
    ``write`` did to it. On any error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp (and some writers) create 0600; give the usual permissions
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left next to ``path`` when its process was killed.

    Only call this while no other process writes ``path`` (e.g. holding the run directory's lock).
    Returns the files removed.
    """
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*{_TMP_SUFFIX}"):
        if stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
            removed.append(stale)
    if removed:
        log.info("removed %d temporary file(s) of an interrupted write of %s", len(removed), path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def save_safetensors(
    path: str | os.PathLike,
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
    *,
    verify: Callable[[Path], Any] | None = None,
) -> Path:
    """Write ``tensors`` to a safetensors file atomically (see :func:`atomic_write`).

    Write errors (disk full, quota, I/O) raise :class:`OSError` with their errno, whatever the
    safetensors version reports them as.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}

    def write(p: Path) -> None:
        try:
            save_file(flat, os.fspath(p), metadata=dict(metadata or {}))
        except SafetensorError as err:  # an io::Error inside the Rust writer
            text = str(err)
            code = errno.ENOSPC if ("code: 28" in text or "StorageFull" in text) else errno.EIO
            raise OSError(code, f"{os.strerror(code)} while writing {path} ({text})") from err

    return atomic_write(path, write, verify=verify)
