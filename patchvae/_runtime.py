"""Device, autocast and determinism helpers shared by training, evaluation and feature extraction."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
import sys
from collections.abc import Iterator

import torch

__all__ = ["autocast", "deterministic_mode", "resolve_amp", "resolve_device", "retain_freed_memory"]

log = logging.getLogger(__name__)

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# glibc mallopt parameters (malloc.h) and the values retain_freed_memory() sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20  # glibc's own ceiling for its dynamic mmap threshold on 64-bit
_TRIM_THRESHOLD = 256 * 2**20
_HEAP_ENV = "PATCHVAE_RETAIN_FREED_MEMORY"
_heap_tuned = False


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA if available else CPU; anything else as ``torch.device`` (checked)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} requested but CUDA is not available; use --device cpu")
    return dev


def _is_glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


def retain_freed_memory() -> bool:
    """Let this process's heap keep freed tensor memory for reuse instead of returning it to the OS.

    With glibc's defaults, the activations of every CPU training step (blocks of 0.1-32 MB) are
    ``mmap``-ed and unmapped again, so each step pays thousands of page faults for fresh zeroed pages
    (2,500 in bf16, 11,000+ in float32 for PatchVAE-ResNet9 at batch 128; docs/benchmarks.md). Raising the mmap threshold to 32 MiB and the trim
    threshold to 256 MiB (``mallopt``) keeps those pages in the heap; peak memory is unchanged since
    the same blocks are reused every step. Process-wide and permanent; Linux/glibc only (a no-op
    elsewhere). Set ``PATCHVAE_RETAIN_FREED_MEMORY=0`` to keep the allocator's defaults.

    Returns True if the setting is in effect.
    """
    global _heap_tuned
    if _heap_tuned:
        return True
    if os.environ.get(_HEAP_ENV, "1") == "0" or not _is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - a static or unusual libc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _heap_tuned = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    log.debug("glibc heap keeps freed memory (mmap threshold %d, trim threshold %d): %s",
              _MMAP_THRESHOLD, _TRIM_THRESHOLD, _heap_tuned)
    return _heap_tuned


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 instructions (x86: AVX512-BF16 / AMX), where bf16 autocast is fast.

    oneDNN's own check (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) also says yes on x86 CPUs with plain
    AVX-512, where it emulates bf16: there a PatchVAE-ResNet9 training step in bf16 autocast runs at 0.36×
    the speed of float32 (docs/benchmarks.md), so on x86 the instructions themselves must be there. Other
    architectures keep oneDNN's answer.
    """
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False
    if platform.machine().lower() not in {"x86_64", "amd64", "i386", "i686", "x86"}:
        return True
    cpu = torch.cpu
    if hasattr(cpu, "_is_avx512_bf16_supported") and hasattr(cpu, "_is_amx_tile_supported"):
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    flags = _cpuinfo_flags()  # pragma: no cover - torch without torch.cpu's ISA checks
    return "avx512_bf16" in flags or "amx_bf16" in flags  # pragma: no cover


def _cpuinfo_flags() -> set[str]:
    """The CPU flags of /proc/cpuinfo (Linux); empty where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_amp(amp: str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """Autocast dtype of ``amp``: "bf16", "fp16", None/"none" (full precision), or "auto" = bf16 on CPUs with
    native bf16 and on bf16-capable GPUs (fp16 on older GPUs), full precision elsewhere."""
    if isinstance(amp, torch.dtype) or amp is None:
        return amp
    if amp == "none":
        return None
    if amp in _AMP_DTYPES:
        if amp == "fp16" and device.type != "cuda":
            raise ValueError("fp16 autocast needs a CUDA device; use bf16 or none on CPU")
        return _AMP_DTYPES[amp]
    if amp != "auto":
        raise ValueError(f"amp must be 'auto', 'bf16', 'fp16', 'none' or None, got {amp!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None


def autocast(device: torch.device, amp: str | torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` on ``device`` with :func:`resolve_amp`'s dtype; a no-op for full precision."""
    dtype = resolve_amp(amp, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Deterministic kernels (and no cuDNN autotuning) inside the block; the previous settings are restored."""
    if not enabled:
        yield
        return
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for deterministic GEMMs
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev[2], prev[3]
