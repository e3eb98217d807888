"""One training run per run directory: an exclusive lock that a killed run cannot leave behind.

The lock is ``flock`` on ``<out>/.patchvae.lock``: the kernel releases it when the holding process
exits for any reason (SIGKILL included), so a stale lock file is simply taken over by the next run.
The file records the holder's pid, host and start time for the error message. Where ``flock`` is
not available (Windows), the lock is the file itself, created exclusively and taken over when the
recorded pid no longer runs on this host.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_NAME", "RunLockedError", "run_lock"]

log = logging.getLogger(__name__)

LOCK_NAME = ".patchvae.lock"


class RunLockedError(RuntimeError):
    """Another live process is training into the same run directory."""


def _holder_text(raw: str) -> str:
    try:
        info = json.loads(raw)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {int(info['pid'])} on {info['host']}, started {started}"
    except (ValueError, KeyError, TypeError):
        return "an unknown process"


def _refused(directory: Path, holder: str) -> RunLockedError:
    return RunLockedError(
        f"{directory} is in use by another training run ({holder}); wait for it to finish or stop it, "
        "or train into another --out"
    )


def _record() -> bytes:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()


@contextlib.contextmanager
def _flock(directory: Path, path: Path) -> Iterator[Path]:
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_text(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            os.close(fd)
            raise _refused(directory, holder) from None
        except OSError as err:  # e.g. a file system without locks: train unlocked rather than not at all
            os.close(fd)
            log.warning("cannot lock %s (%s); make sure no other run writes into %s", path, err, directory)
            yield path
            return
        try:  # the previous holder may have removed the file between our open and flock: lock the new one
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _record(), 0)
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)  # still holding the lock: nobody else can hold this file
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _pidfile(directory: Path, path: Path) -> Iterator[Path]:
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            raw = path.read_text(errors="replace") if path.exists() else ""
            try:
                info = json.loads(raw)
                stale = info["host"] == socket.gethostname() and not _pid_alive(int(info["pid"]))
            except (ValueError, KeyError, TypeError):
                stale = False
            if not stale:
                raise _refused(directory, _holder_text(raw)) from None
            log.warning("removing the stale lock %s of a run that no longer runs", path)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(_record())
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)
        return
    raise _refused(directory, "a process that keeps recreating the lock")


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock of run directory ``directory`` (created if needed) for the ``with`` block.

    Raises :class:`RunLockedError` naming the holder if another live process holds it. A lock left
    by a killed process is taken over.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    try:
        import fcntl  # noqa: F401
    except ImportError:
        manager = _pidfile(directory, path)
    else:
        manager = _flock(directory, path)
    with manager as held:
        yield held
