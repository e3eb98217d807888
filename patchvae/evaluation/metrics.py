"""Top-k accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["top_k_accuracy", "top_k_correct"]


def top_k_correct(scores: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> torch.Tensor:
    """Number of samples whose target is among the ``k`` highest scores, for each ``k``.

    Args:
        scores: (N, C) logits or any per-class scores (higher is better).
        targets: (N,) class indices.
        ks: the ``k`` values; a ``k`` above C counts every sample as correct.
    Returns:
        int64 (len(ks),) counts.
    """
    if scores.ndim != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(f"expected scores (N, C) and targets (N,), got {tuple(scores.shape)} and {tuple(targets.shape)}")
    if any(k < 1 for k in ks):
        raise ValueError(f"k must be >= 1, got {tuple(ks)}")
    if scores.shape[0] == 0:
        return torch.zeros(len(ks), dtype=torch.long)
    max_k = min(max(ks), scores.shape[1])
    top = scores.topk(max_k, dim=1).indices  # (N, max_k), best first
    hit = top.eq(targets.view(-1, 1).to(top.device))
    hits_within = hit.cumsum(dim=1).clamp_(max=1)  # (N, max_k): target within the first j+1
    return torch.stack([hits_within[:, min(k, max_k) - 1].sum() for k in ks]).cpu().long()


def top_k_accuracy(scores: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> tuple[float, ...]:
    """Top-k accuracies in percent, one per ``k`` (see :func:`top_k_correct`); scores (N, C), targets (N,)."""
    if scores.shape[0] == 0:
        raise ValueError("top-k accuracy of an empty set is undefined")
    counts = top_k_correct(scores, targets, ks)
    return tuple(100.0 * float(c) / scores.shape[0] for c in counts)
