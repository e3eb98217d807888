"""Sixt (2018)'s evaluation: patch metrics (S Tables 2-3) and linear classification of flattened feature maps (Table 4).

    from patchvae.evaluation import FeatureStore, patch_metrics, sgd_linear_probe
    metrics = patch_metrics(model, test_images, num_patches=100_000)   # M (bits), M/#pixel, CE both readings
    train = FeatureStore.write(model, train_images, "feats/p9_i3_train.npy", layer="dense")
    test = FeatureStore.write(model, test_images, "feats/p9_i3_test.npy", layer="dense")
    result = sgd_linear_probe([train], train_labels, [test], test_labels)   # ALL: several stores at once

**Patch metrics** (S Tables 2-3, spec §1.6.1-1.6.2, §6.3) of any model with a ``patch_size`` that scores
p×p patches (the :class:`~patchvae.models.RateModel` / :class:`~patchvae.models.LikelihoodModel`
protocols on patches): over a fixed seeded sample of test patches (:func:`patchvae.data.fixed_patches`;
spec §4.3: 100k patches), the rate M = E KL(q(z | patch) ‖ N(0, I)) in nats and bits, M/#pixel = bits/p²
(S Table 2's divisor), and the cross entropy in both readings of S Table 3: the reconstruction NLL
only, E_q[−log₂ p(x | z)] / (3p²), and the −ELBO / (3p²) (bits/dim). They are :func:`rate` and :func:`bpd`
applied to the patches.

**Feature stores**: a model's representation of a set of images, flattened per image, written row by
row to a float16 ``.npy`` file and read back memory-mapped: S's ALL combination on CIFAR-10 (the six dense
maps, ~97k features per image) is ~19 GB in float32 for 50k images, too much for a 24 GB machine's RAM,
and the probe streams it from disk in batches. Any model of the zoo and any layer (``dense``, the global
VAEs' ``bn1..bn4``, ``latent``), plus :meth:`FeatureStore.write_pixels` for S's PIXEL baseline.

**Linear classifier** (S §6, eq. 28-29; spec §1.6.3, §6.4): softmax regression W f + b trained by plain
SGD (lr 0.01, no momentum, no weight decay) on mini-batches of 100 with the cross entropy, "until
convergence" = at most 100 epochs, stopping when the accuracy on a seeded held-out part of the training
rows (5,000) has not improved for 5 epochs; the weights of the best held-out epoch are tested. Our
decision beyond the thesis: features are standardised with the fitting rows' per-feature mean and
standard deviation (streamed in float64), since plain SGD at lr 0.01 on 10⁴-10⁵ raw features of
arbitrary scale is at the mercy of their scale; ``standardize=False`` gives the raw features.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._io import atomic_write
from ._metric_utils import resolve_model
from .results import ProbeResult

__all__ = ["FeatureStore", "PatchMetrics", "chance_accuracy", "patch_metrics", "sgd_linear_probe"]

log = logging.getLogger(__name__)
_LN2 = math.log(2.0)


# --------------------------------------------------------------------------- patch metrics (S Tables 2-3)
@dataclass(frozen=True)
class PatchMetrics:
    """S Tables 2-3 of one patch model over a fixed sample of test patches."""

    rate_nats: float  #: M in nats per patch
    rate_bits: float  #: M in bits per patch (S Table 2)
    rate_bits_per_pixel: float  #: M / p² (S Table 2 "M/#pixel")
    reconstruction_bpd: float  #: E_q[−log₂ p(x | z)] / (3p²) (S Table 3, reading (a))
    elbo_bpd: float  #: −ELBO / (3p²) in bits/dim (S Table 3, reading (b))
    patch_size: int
    num_patches: int
    seed: int
    elapsed_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"metric": "patch_metrics", **dataclasses.asdict(self)}

    def summary(self) -> str:
        p = self.patch_size
        return (f"M = {self.rate_bits:.2f} bits ({self.rate_bits_per_pixel:.3f} bits/pixel over {p}x{p}); cross entropy "
                f"{self.reconstruction_bpd:.3f} bits/dim (reconstruction) / {self.elbo_bpd:.3f} (-ELBO); "
                f"{self.num_patches} test patches, seed {self.seed}")


def patch_metrics(
    model: nn.Module | str | os.PathLike,
    images: Any,
    *,
    num_patches: int = 100_000,
    seed: int = 0,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    preprocessed: bool = False,
) -> PatchMetrics:
    """S Tables 2-3 of a patch model (``model.patch_size``) over ``num_patches`` seeded random patches of ``images``.

    ``images``: anything :func:`patchvae.extract_features` takes (raw images get the model's preprocessing),
    or normalised tensors with ``preprocessed=True``. The posterior sample of the −ELBO is seeded by ``seed``.
    """
    from ..data.patches import fixed_patches
    from .information import rate
    from .likelihood import bpd
    from ._metric_utils import image_batches

    start = time.perf_counter()
    model = resolve_model(model)
    size = getattr(model, "patch_size", None)
    if not isinstance(size, int):
        raise ValueError(f"patch metrics need a model that scores p x p patches (a patch_size attribute, e.g. "
                         f"sixt2018_patch_*); {type(model).__name__} has none: use rate() / bpd() on whole images")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            batches = list(image_batches(model, images, batch_size=batch_size, device=torch.device("cpu"),
                                         preprocessed=preprocessed))
    finally:
        model.train(was)
    patches = fixed_patches(torch.cat(batches), size, num_patches, seed=seed)
    common = {"batch_size": batch_size, "device": device, "preprocessed": True}
    r = rate(model, patches, **common)
    b = bpd(model, patches, seed=seed, **common)
    return PatchMetrics(
        rate_nats=r.nats, rate_bits=r.bits, rate_bits_per_pixel=r.bits_per_pixel,
        reconstruction_bpd=b.reconstruction_bpd, elbo_bpd=b.bpd, patch_size=size, num_patches=num_patches, seed=seed,
        elapsed_seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- float16 feature stores
class FeatureStore:
    """(N, D) float16 rows in a ``.npy`` file, memory-mapped: a representation too large for RAM.

    ``store[idx]`` gives float32 torch rows; ``len(store)`` is N and ``store.dim`` is D.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no feature store at {self.path}; write one with FeatureStore.write(model, images, path)")
        self.array = np.load(self.path, mmap_mode="r")
        if self.array.ndim != 2 or self.array.dtype != np.float16:
            raise ValueError(f"{self.path} is not a feature store (float16 (N, D) rows), got {self.array.dtype} "
                             f"{self.array.shape}")

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @property
    def dim(self) -> int:
        return int(self.array.shape[1])

    def __getitem__(self, index: Any) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.array[index], dtype=np.float32))

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, rows={len(self)}, dim={self.dim})"

    @classmethod
    def _from_batches(cls, path: str | os.PathLike, batches: Any, rows: int) -> FeatureStore:
        def write(tmp: Path) -> None:
            out = None
            done = 0
            for batch in batches:
                flat = batch.detach().flatten(1).to("cpu", torch.float32)
                if out is None:
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(rows, flat.shape[1]))
                if done + flat.shape[0] > rows:
                    raise ValueError(f"more than the expected {rows} rows")
                out[done:done + flat.shape[0]] = flat.numpy().astype(np.float16)
                done += flat.shape[0]
            if out is None or done != rows:
                raise ValueError(f"expected {rows} rows, got {done}")
            out.flush()
            del out

        atomic_write(path, write, verify=cls)
        return cls(path)

    @classmethod
    def write(
        cls, model: nn.Module | str | os.PathLike, images: Any, path: str | os.PathLike, *, layer: str = "dense",
        mode: str = "mean", batch_size: int = 256, device: str | torch.device | None = None,
        preprocessed: bool = False,
    ) -> FeatureStore:
        """``model``'s ``layer`` of every image, flattened, as float16 rows at ``path`` (written atomically)."""
        from .._extract.inputs import count_images
        from ..features import iter_features

        rows = count_images(images)
        if rows is None:
            raise ValueError("a feature store needs inputs of known length (a Dataset, a tensor, a list or a folder)")
        batches = (b.features[layer] for b in iter_features(model, images, layer=layer, mode=mode, batch_size=batch_size,
                                                            device=device, progress=False, preprocessed=preprocessed,
                                                            amp=None))
        return cls._from_batches(path, batches, rows)

    @classmethod
    def write_pixels(cls, model: nn.Module | str | os.PathLike, images: Any, path: str | os.PathLike, *,
                     batch_size: int = 256) -> FeatureStore:
        """S's PIXEL baseline: the preprocessed images themselves (C·H·W features), with ``model``'s preprocessing."""
        from .._extract.inputs import count_images
        from ._metric_utils import image_batches

        model = resolve_model(model)
        rows = count_images(images)
        if rows is None:
            raise ValueError("a feature store needs inputs of known length (a Dataset, a tensor, a list or a folder)")
        return cls._from_batches(path, image_batches(model, images, batch_size=batch_size, device=torch.device("cpu")),
                                 rows)


def _rows(stores: Sequence[FeatureStore | torch.Tensor], index: np.ndarray) -> torch.Tensor:
    """Rows ``index`` of the stores side by side (ALL = the concatenation of several representations)."""
    return torch.cat([s[index] if isinstance(s, FeatureStore) else s[torch.as_tensor(index)].float() for s in stores], 1)


def _check_stores(stores: Sequence[FeatureStore | torch.Tensor], what: str) -> int:
    if isinstance(stores, (FeatureStore, torch.Tensor)):
        raise TypeError(f"{what} must be a list of feature stores / (N, D) tensors (one per representation)")
    if not stores:
        raise ValueError(f"{what}: no features")
    lengths = {len(s) for s in stores}
    if len(lengths) != 1:
        raise ValueError(f"{what}: the representations have different numbers of rows: {sorted(lengths)}")
    return lengths.pop()


def chance_accuracy(train_labels: torch.Tensor, test_labels: torch.Tensor) -> float:
    """S's CHANCE: the test accuracy (percent) of always predicting the most frequent training class."""
    majority = int(torch.bincount(torch.as_tensor(train_labels).long()).argmax())
    return 100.0 * float((torch.as_tensor(test_labels) == majority).double().mean())


def _moments(stores: Sequence[FeatureStore | torch.Tensor], index: np.ndarray, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    total = sq = None
    for start in range(0, len(index), chunk):
        x = _rows(stores, index[start:start + chunk]).double()
        total = x.sum(0) if total is None else total + x.sum(0)
        sq = x.square().sum(0) if sq is None else sq + x.square().sum(0)
    n = len(index)
    mean = total / n
    std = (sq / n - mean.square()).clamp_min(0).sqrt().clamp_min(1e-6)
    return mean.float(), std.float()


def sgd_linear_probe(
    train: Sequence[FeatureStore | torch.Tensor],
    train_labels: torch.Tensor,
    test: Sequence[FeatureStore | torch.Tensor],
    test_labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    lr: float = 0.01,
    batch_size: int = 100,
    max_epochs: int = 100,
    patience: int = 5,
    val_size: int = 5000,
    standardize: bool = True,
    seed: int = 0,
    chunk: int = 2000,
) -> ProbeResult:
    """S's linear classifier on the concatenated representations ``train`` / ``test`` (see the module docstring).

    Args:
        train, test: one or several feature stores (or (N, D) tensors) with the same rows; several are
            concatenated per batch (S's ALL) without ever holding the whole matrix in memory.
        train_labels, test_labels: (N,) class indices.
        val_size: training rows held out (seeded) for early stopping; the rest are fitted.
    Returns:
        a :class:`ProbeResult` (``probe="sgd_linear"``) with the test top-1/top-5 of the best held-out epoch.
    """
    start = time.perf_counter()
    n_train, n_test = _check_stores(train, "train"), _check_stores(test, "test")
    train_y, test_y = torch.as_tensor(train_labels).long(), torch.as_tensor(test_labels).long()
    if train_y.shape != (n_train,) or test_y.shape != (n_test,):
        raise ValueError(f"{n_train}/{n_test} train/test rows but {tuple(train_y.shape)}/{tuple(test_y.shape)} labels")
    dims = [s.dim if isinstance(s, FeatureStore) else int(s.shape[1]) for s in train]
    test_dims = [s.dim if isinstance(s, FeatureStore) else int(s.shape[1]) for s in test]
    if dims != test_dims:
        raise ValueError(f"train and test representations differ in width: {dims} vs {test_dims}")
    if not 0 < val_size < n_train:
        raise ValueError(f"val_size must be in (0, {n_train}) training rows, got {val_size}")
    if lr <= 0 or batch_size < 1 or max_epochs < 1 or patience < 1:
        raise ValueError("need lr > 0, batch_size >= 1, max_epochs >= 1 and patience >= 1")
    num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_train)
    val_idx, fit_idx = np.sort(order[:val_size]), order[val_size:]
    dim = sum(dims)
    mean, std = _moments(train, np.sort(fit_idx), chunk) if standardize else (torch.zeros(dim), torch.ones(dim))
    gen = torch.Generator().manual_seed(seed)
    linear = nn.Linear(dim, num_classes)
    with torch.no_grad():  # PyTorch's default init, seeded
        bound = 1.0 / math.sqrt(dim)
        linear.weight.uniform_(-bound, bound, generator=gen)
        linear.bias.uniform_(-bound, bound, generator=gen)
    optimizer = torch.optim.SGD(linear.parameters(), lr=lr)

    def scores(stores: Sequence[FeatureStore | torch.Tensor], index: np.ndarray) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for s0 in range(0, len(index), chunk):
                out.append(linear((_rows(stores, index[s0:s0 + chunk]) - mean) / std))
        return torch.cat(out)

    best = (-1.0, 0, {k: v.clone() for k, v in linear.state_dict().items()})
    history: list[float] = []
    epochs_run = 0
    for epoch in range(1, max_epochs + 1):
        epochs_run = epoch
        perm = fit_idx[rng.permutation(len(fit_idx))]
        for s0 in range(0, len(perm), batch_size):
            idx = perm[s0:s0 + batch_size]
            x = (_rows(train, idx) - mean) / std
            loss = F.cross_entropy(linear(x), train_y[torch.as_tensor(idx)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val_acc = 100.0 * float((scores(train, val_idx).argmax(1) == train_y[torch.as_tensor(val_idx)]).double().mean())
        history.append(val_acc)
        if val_acc > best[0]:
            best = (val_acc, epoch, {k: v.clone() for k, v in linear.state_dict().items()})
        elif epoch - best[1] >= patience:
            break
    linear.load_state_dict(best[2])
    test_scores = scores(test, np.arange(n_test))
    from .metrics import top_k_accuracy

    top1, top5 = top_k_accuracy(test_scores, test_y, (1, 5))
    log.info("sgd linear probe: %d features, best held-out epoch %d (%.2f %%), test top-1 %.2f %%", dim, best[1], best[0], top1)
    return ProbeResult(
        probe="sgd_linear", top1=top1, top5=top5, num_train=len(fit_idx), num_test=n_test, num_classes=num_classes,
        params={"feature_dim": dim, "lr": lr, "batch_size": batch_size, "max_epochs": max_epochs, "patience": patience, "val_size": val_size,
                "standardize": standardize, "seed": seed, "best_epoch": best[1], "epochs_run": epochs_run,
                "val_top1": best[0], "val_history": history,
                "implementation": "softmax regression, plain SGD, early stopping on held-out training rows (Sixt 2018 §6)"},
        elapsed_seconds=time.perf_counter() - start,
    )
