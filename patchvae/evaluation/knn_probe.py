"""kNN probe: weighted k-nearest-neighbour vote with cosine similarity on frozen, pooled φ features.

Choices (the paper fine-tunes, it has no probe):

* Features are centred on the training mean, then L2-normalised. Pooled φ features come after a
  ReLU, so they are all non-negative and raw cosine similarities crowd near 1 along the mean
  direction; centring spreads them out at no cost (``center=False`` gives the plain cosine).
* ``k = 20`` neighbours, each voting for its class with weight ``exp(similarity / 0.07)``
  (the weighting of Wu et al. 2018's instance-discrimination kNN, used by many later SSL papers),
  so closer neighbours count more. Class scores are the summed weights; top-1 and top-5 rank them.
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F

from .metrics import top_k_correct
from .results import ProbeResult

__all__ = ["knn_classify", "knn_probe"]

log = logging.getLogger(__name__)


def knn_classify(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    center: bool = True,
    chunk_size: int = 512,
) -> torch.Tensor:
    """Class scores (M, num_classes) of the weighted kNN vote for queries (M, D) among train (N, D)."""
    if k < 1 or temperature <= 0:
        raise ValueError(f"need k >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    train = train_features.float()
    query = query_features.float()
    if center:
        mean = train.mean(0, keepdim=True)
        train, query = train - mean, query - mean
    train = F.normalize(train, dim=1)
    query = F.normalize(query, dim=1)
    k = min(k, train.shape[0])
    labels = train_labels.long()
    out = []
    for q in query.split(chunk_size):
        sims, idx = (q @ train.T).topk(k, dim=1)  # (m, k)
        weights = (sims / temperature).exp()
        scores = torch.zeros(q.shape[0], num_classes, dtype=torch.float32)
        out.append(scores.scatter_add_(1, labels[idx], weights))
    return torch.cat(out) if out else torch.zeros(0, num_classes)


def knn_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    k: int = 20,
    temperature: float = 0.07,
    center: bool = True,
    chunk_size: int = 512,
) -> ProbeResult:
    """kNN probe (see the module docstring): features (N, D) / (M, D), labels (N,) / (M,)."""
    start = time.perf_counter()
    if test_features.shape[0] == 0:
        raise ValueError("the test split is empty")
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    scores = knn_classify(
        train_features, train_labels, test_features, num_classes=num_classes, k=k,
        temperature=temperature, center=center, chunk_size=chunk_size,
    )
    top1, top5 = (100.0 * float(c) / test_features.shape[0] for c in top_k_correct(scores, test_labels, (1, 5)))
    elapsed = time.perf_counter() - start
    log.info("kNN probe (k=%d): test top-1 %.2f%% top-5 %.2f%%", k, top1, top5)
    return ProbeResult(
        probe="knn", top1=top1, top5=top5,
        params={"k": min(k, train_features.shape[0]), "temperature": temperature, "center": center, "similarity": "cosine"},
        num_train=train_features.shape[0], num_test=test_features.shape[0], num_classes=num_classes,
        elapsed_seconds=elapsed,
    )
