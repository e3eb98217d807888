"""Intrinsic dimension of a representation from its PCA spectrum.

    from patchvae.evaluation import intrinsic_dimension
    result = intrinsic_dimension("beta_vae_resnet9_32.fmnist", test_images)   # layer "latent", mode "mean"
    print(result.summary())           # intrinsic dimension 7 of 64 (explained-variance ratio > 0.001) ...
    result.save("spectrum.json")      # the full sorted spectrum, to re-read the threshold later

Definition (spec ``sixt_zhang.md`` §2.9 "Intrinsic dimension", §6.6): Zhang et al. apply a PCA to
the test-set MAP representations μ(x) and count "the non-zero eigenvalues"; the threshold is never
given. Here the features of every image (the chosen layer, flattened; default the model's latent
posterior mean, :func:`~patchvae.evaluation._metric_utils.default_latent_layer`) are centred, their
covariance's eigenvalues λ_1 ≥ λ_2 ≥ ... are taken (float64), and

    intrinsic_dimension = #{i : λ_i / Σ_j λ_j > threshold},   threshold = 1e-3 by default

(the explained-variance ratios of sklearn's ``PCA``, which the authors' code returns; whitening
does not change them). The full sorted spectrum and its ratios are always returned and saved, so
the threshold can be re-read. ``active_units`` is the alternative reading of §2.9: the number of
feature dimensions whose variance over images exceeds ``active_threshold`` = 0.01 (Burda et al.'s
active units).

The covariance is accumulated in a streaming pass (float64, Chan et al.'s pairwise merge, in input
order; memory D² for D feature dimensions), so the number of images is not bounded by memory.
:class:`PCASpectrumAccumulator` does the same from features the caller already has.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._metric_utils import default_latent_layer, resolve_model

__all__ = [
    "DEFAULT_ACTIVE_UNIT_THRESHOLD",
    "DEFAULT_ID_THRESHOLD",
    "IntrinsicDimension",
    "PCASpectrumAccumulator",
    "intrinsic_dimension",
    "pca_spectrum",
]

#: explained-variance ratio above which a principal component counts (spec §6.6)
DEFAULT_ID_THRESHOLD = 1e-3
#: per-dimension variance above which a feature dimension is an active unit (the alternative reading)
DEFAULT_ACTIVE_UNIT_THRESHOLD = 0.01


@dataclass(frozen=True)
class IntrinsicDimension:
    """The PCA spectrum of a representation and the intrinsic dimension read from it."""

    intrinsic_dimension: int  #: components with explained-variance ratio > threshold
    threshold: float
    eigenvalues: tuple[float, ...]  #: covariance eigenvalues, descending (float64, clamped at 0)
    explained_variance_ratio: tuple[float, ...]  #: eigenvalues / their sum
    active_units: int  #: feature dimensions with variance > active_threshold
    active_threshold: float
    feature_dim: int
    num_images: int
    layer: str = ""
    mode: str = "mean"
    elapsed_seconds: float = 0.0

    def with_threshold(self, threshold: float) -> int:
        """The intrinsic dimension under another ``threshold`` (from the saved spectrum)."""
        return sum(1 for r in self.explained_variance_ratio if r > threshold)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field (``metric`` = "intrinsic_dim"), spectrum included."""
        return {
            "metric": "intrinsic_dim", "intrinsic_dimension": self.intrinsic_dimension, "threshold": self.threshold,
            "active_units": self.active_units, "active_threshold": self.active_threshold,
            "feature_dim": self.feature_dim, "num_images": self.num_images, "layer": self.layer, "mode": self.mode,
            "elapsed_seconds": self.elapsed_seconds, "eigenvalues": list(self.eigenvalues),
            "explained_variance_ratio": list(self.explained_variance_ratio),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON (atomically)."""
        from .._io import save_json

        return save_json(path, self.to_dict())

    def scalars(self) -> dict[str, float]:
        return {"intrinsic_dimension": self.intrinsic_dimension, "active_units": self.active_units}

    def summary(self) -> str:
        top = ", ".join(f"{r:.3f}" for r in self.explained_variance_ratio[:5])
        where = f"{self.layer!r} ({self.mode}) " if self.layer else ""
        return (
            f"intrinsic dimension of {where}{self.intrinsic_dimension} of {self.feature_dim} (explained-variance "
            f"ratio > {self.threshold:g}; top ratios {top}); active units {self.active_units} (variance > "
            f"{self.active_threshold:g}); {self.num_images} images"
        )


class PCASpectrumAccumulator:
    """Streams feature batches (B, ...) in (flattened to (B, D)); :meth:`compute` gives the spectrum."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.scatter: torch.Tensor | None = None  #: Σ (x - mean)(x - mean)^T, float64 (D, D)

    def update(self, features: torch.Tensor) -> None:
        """Add a batch of features (B, ...) (any dtype/device; float64 on the CPU inside)."""
        x = features.detach().to("cpu", torch.float64).flatten(1)
        m = x.shape[0]
        if m == 0:
            return
        if not bool(torch.isfinite(x).all()):
            raise ValueError("features must be finite for the PCA spectrum")
        mean_b = x.mean(0)
        centred = x - mean_b
        scatter_b = centred.T @ centred
        if self.mean is None or self.scatter is None:
            self.mean, self.scatter, self.count = mean_b, scatter_b, m
            return
        if mean_b.shape != self.mean.shape:
            raise ValueError(f"got {mean_b.shape[0]} feature dimensions after {self.mean.shape[0]}")
        n = self.count + m
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (m / n)
        self.scatter = self.scatter + scatter_b + torch.outer(delta, delta) * (self.count * m / n)
        self.count = n

    def compute(
        self,
        *,
        threshold: float = DEFAULT_ID_THRESHOLD,
        active_threshold: float = DEFAULT_ACTIVE_UNIT_THRESHOLD,
        layer: str = "",
        mode: str = "mean",
    ) -> IntrinsicDimension:
        """Spectrum and intrinsic dimension of everything added so far (see the module docstring)."""
        for name, value in (("threshold", threshold), ("active_threshold", active_threshold)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if self.scatter is None or self.count < 2:
            raise ValueError("the PCA spectrum needs at least two images")
        cov = self.scatter / (self.count - 1)
        cov = 0.5 * (cov + cov.T)
        eig = torch.linalg.eigvalsh(cov).flip(0).clamp_min(0.0)
        total = float(eig.sum())
        ratio = eig / total if total > 0 else torch.zeros_like(eig)
        return IntrinsicDimension(
            intrinsic_dimension=int((ratio > threshold).sum()), threshold=float(threshold),
            eigenvalues=tuple(eig.tolist()), explained_variance_ratio=tuple(ratio.tolist()),
            active_units=int((cov.diagonal() > active_threshold).sum()), active_threshold=float(active_threshold),
            feature_dim=int(cov.shape[0]), num_images=self.count, layer=layer, mode=mode,
        )


def pca_spectrum(features: torch.Tensor, *, threshold: float = DEFAULT_ID_THRESHOLD,
                 active_threshold: float = DEFAULT_ACTIVE_UNIT_THRESHOLD) -> IntrinsicDimension:
    """Spectrum and intrinsic dimension of features already in memory (N, ...) (flattened per row)."""
    acc = PCASpectrumAccumulator()
    acc.update(features)
    return acc.compute(threshold=threshold, active_threshold=active_threshold)


def intrinsic_dimension(
    model: nn.Module | str | os.PathLike,
    inputs: Any,
    *,
    layer: str | None = None,
    mode: str = "mean",
    threshold: float = DEFAULT_ID_THRESHOLD,
    active_threshold: float = DEFAULT_ACTIVE_UNIT_THRESHOLD,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str | None = None,
    preprocessed: bool = False,
    progress: bool = False,
) -> IntrinsicDimension:
    """Intrinsic dimension of ``model``'s representation ``layer`` (``mode``) over ``inputs``.

    Args:
        model: any zoo model (the :class:`~patchvae.models.Representable` protocol), a zoo name with
            weights or a weights folder.
        inputs: anything :func:`patchvae.extract_features` takes.
        layer: a layer of ``model.representations()``; default the model's latent (``"latent"``, else
            its first stochastic layer with a distribution embedding, e.g. PatchVAE's ``"appearance"``).
        mode: ``"mean"`` (the paper's MAP μ, default), ``"sample"`` (``seed`` draws them) or ``"embedding"``.
        threshold: explained-variance ratio above which a component counts (default 1e-3).
        active_threshold: variance above which a feature dimension is an active unit (default 0.01).
    """
    from ..features import iter_features

    start = time.perf_counter()
    model = resolve_model(model)
    layer = layer or default_latent_layer(model)
    acc = PCASpectrumAccumulator()
    for batch in iter_features(model, inputs, layer=layer, mode=mode, batch_size=batch_size, device=device,
                               progress=progress, preprocessed=preprocessed, seed=seed, amp=amp):
        acc.update(batch.features[layer])
    result = acc.compute(threshold=threshold, active_threshold=active_threshold, layer=layer, mode=mode)
    return dataclasses.replace(result, elapsed_seconds=time.perf_counter() - start)
