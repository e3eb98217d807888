"""Linear probe: multinomial logistic regression on frozen, pooled φ features.

Choices (the paper fine-tunes, it has no probe):

* Features are standardised with the mean and standard deviation of the training features.
* The model is ``softmax(W f + b)`` fitted by full-batch L-BFGS (strong-Wolfe line search, in
  float64 so the optimum is reached reliably and reproducibly) on the mean cross-entropy plus
  ``l2/2 · ||W||²`` (the bias is not penalised), at most 500 iterations: no randomness in the fit.
* ``l2`` is chosen on a held-out part of the training split: a seeded random ``val_fraction``
  (10%) of it. Each value of ``l2_grid`` (1e-6 ... 1e-1) is fitted on the remaining 90% (from the
  strongest penalty down, each fit starting from the previous solution, which cuts the iterations)
  and scored on the held-out part (top-1, ties broken by the lower held-out loss, then by the
  stronger L2); the chosen value is then refitted from zero on the whole training split and
  evaluated on the test split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .metrics import top_k_accuracy
from .results import ProbeResult

__all__ = ["DEFAULT_L2_GRID", "fit_logistic_regression", "linear_probe"]

log = logging.getLogger(__name__)

DEFAULT_L2_GRID: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def _standardize(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean = train.mean(0, keepdim=True)
    std = train.std(0, unbiased=False, keepdim=True).clamp_min(1e-6)
    return [(x - mean) / std for x in (train, *others)]


def fit_logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    l2: float,
    max_iter: int = 500,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS (at most ``max_iter`` iterations).

    Args:
        features: (N, D) float (standardise them first); labels: (N,) int64 in [0, num_classes).
        l2: penalty ``l2/2 · ||W||²`` added to the mean cross-entropy.
        init: starting (weight, bias) (default: zeros).
    Returns:
        weight (num_classes, D) and bias (num_classes,), float64.
    """
    x = features.detach().to(torch.float64, copy=True)  # a normal tensor even if made under inference_mode
    y = labels.detach().long().clone()
    if init is None:
        weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64)
        bias = torch.zeros(num_classes, dtype=torch.float64)
    else:
        weight, bias = (t.detach().to(torch.float64, copy=True) for t in init)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-7, tolerance_change=1e-10,
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def _scores(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return features.double() @ weight.T + bias


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    val_fraction: float = 0.1,
    seed: int = 0,
    max_iter: int = 500,
) -> ProbeResult:
    """Linear probe (see the module docstring): features (N, D) / (M, D), labels (N,) / (M,).

    Returns a :class:`ProbeResult` with test top-1/top-5 (percent); ``params`` records the chosen
    ``l2`` and the held-out top-1 of every grid value.
    """
    start = time.perf_counter()
    if not l2_grid:
        raise ValueError("l2_grid must hold at least one value")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    n = train_features.shape[0]
    n_val = max(1, round(val_fraction * n))
    if n - n_val < 1:
        raise ValueError(f"need at least 2 training samples to hold some out, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    x_fit, x_val = _standardize(train_features[fit_idx], train_features[val_idx])
    y_fit, y_val = train_labels[fit_idx], train_labels[val_idx]
    grid_scores: dict[str, float] = {}
    best: tuple[float, float, float] | None = None  # (val top-1, -val loss, l2)
    params = None
    for l2 in sorted(l2_grid, reverse=True):  # strongest first, each fit warm-started from the previous one
        params = weight, bias = fit_logistic_regression(x_fit, y_fit, num_classes, l2=l2, max_iter=max_iter, init=params)
        scores = _scores(x_val, weight, bias)
        (top1,) = top_k_accuracy(scores, y_val, (1,))
        loss = float(F.cross_entropy(scores, y_val))
        grid_scores[repr(l2)] = top1
        log.debug("linear probe l2=%g: held-out top-1 %.2f%% loss %.4f", l2, top1, loss)
        if best is None or (top1, -loss) > best[:2]:
            best = (top1, -loss, l2)
    assert best is not None
    l2 = best[2]
    x_train, x_test = _standardize(train_features, test_features)
    weight, bias = fit_logistic_regression(x_train, train_labels, num_classes, l2=l2, max_iter=max_iter)
    top1, top5 = top_k_accuracy(_scores(x_test, weight, bias), test_labels, (1, 5))
    elapsed = time.perf_counter() - start
    log.info("linear probe: l2=%g (held-out top-1 %.2f%%), test top-1 %.2f%% top-5 %.2f%%", l2, best[0], top1, top5)
    return ProbeResult(
        probe="linear", top1=top1, top5=top5,
        params={"l2": l2, "val_fraction": val_fraction, "held_out_top1": grid_scores, "max_iter": max_iter, "seed": seed},
        num_train=n, num_test=test_features.shape[0], num_classes=num_classes, elapsed_seconds=elapsed,
    )
