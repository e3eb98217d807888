"""Options shared by the sub-commands, with one spelling, one set of choices and one default each.

``--device`` (default ``auto``: CUDA if available, else CPU), ``--amp`` (choices ``auto``, ``bf16``,
``fp16``, ``none``), ``--workers`` (default ``auto``: at most 4, and fewer than the CPU cores),
``--threads`` (CPU threads; default: torch's).
"""

from __future__ import annotations

import argparse
import os

__all__ = ["AMP_CHOICES", "add_runtime_args", "amp_arg", "apply_threads", "resolve_workers"]

AMP_CHOICES = ("auto", "bf16", "fp16", "none")


def add_runtime_args(parser: argparse.ArgumentParser, *, amp: bool = True, amp_default: str | None = "none",
                     workers: bool = True) -> None:
    """Add ``--device``, ``--threads`` and optionally ``--amp`` / ``--workers`` to ``parser``."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto, CUDA if available)")
    if amp:
        parser.add_argument("--amp", choices=AMP_CHOICES, default=amp_default,
                            help=f"autocast precision: auto (bf16 where the CPU/GPU has it), bf16, fp16 (CUDA) or none "
                                 f"(exact float32) (default: {amp_default})")
    if workers:
        parser.add_argument("--workers", default="auto", metavar="N",
                            help="DataLoader worker processes for on-disk datasets (default: auto, at most 4 and fewer "
                                 "than the CPU cores)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads (torch.set_num_threads); 1 is fastest on a machine shared with other jobs")


def amp_arg(value: str | None) -> str | None:
    """The CLI's ``--amp`` as the library's ``amp`` argument (``"none"`` -> None)."""
    return None if value in (None, "none") else value


def resolve_workers(value: str | int) -> int:
    """``--workers``: ``auto`` -> min(4, CPU cores - 1) (0 on one core), else a non-negative int."""
    if str(value) == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(0, min(4, cores - 1))
    try:
        workers = int(value)
    except ValueError:
        workers = -1
    if workers < 0:
        raise ValueError(f"--workers takes 'auto' or an int >= 0, got {value!r}")
    return workers


def apply_threads(threads: int | None) -> None:
    """``--threads N``: ``torch.set_num_threads(N)``."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
