"""Part health: are a model's parts alive? Active parts, P(visible) per part, entropy of part usage.

    from patchvae.evaluation import part_health
    health = part_health("patchvae_resnet9.fmnist", test_images)   # any input extract_features takes
    print(health.summary())   # 2/16 parts active (... > 0.02: [6, 15]); mean P(visible) 0.0659, ...

Works for any model that exposes part visibility, i.e. whose ``patchvae.extract_features`` has a
``"visibility"`` layer: Q^V(z_vis = 1 | x), maps (N, P, h, w) of P parts (PatchVAE). Over a dataset
of N images with h×w locations each, for every part p:

* ``part_mean[p]``: the mean P(visible) over images × locations;
* ``part_std[p]``: its standard deviation over images × locations (the spread of
  docs/reproduce/visibility_stats.py);
* ``part_image_std[p]``: the standard deviation over images of the per-image spatial mean (how much
  the part's total use changes from image to image).

Both standard deviations are sample standard deviations (Bessel's correction, as ``torch.std``); with
fewer than two values they are 0.

**Active parts.** A part is *active* when its visibility varies with the image: by default when
``part_std`` exceeds :data:`DEFAULT_ACTIVE_THRESHOLD` = 0.02. A part that collapsed onto the prior
keeps P(visible) at the prior (1/P for the paper's settings) everywhere with a spread of ~0.01 or
less (0.007-0.009 for the Fashion-MNIST weights), while a part in use reaches 0.1-0.2; 0.02 separates
the two and is the threshold the shipped Fashion-MNIST numbers in docs/results.md were counted with
(``.fmnist``: 2 of 16, ``.fmnist_lw``: 5 of 16, first 1000 test images). The spread over images ×
locations also counts a part whose total use is constant but whose position follows the image
content; ``spread="images"`` thresholds ``part_image_std`` instead (a stricter reading: the
part's amount of use changes with the image).

**Usage entropy.** The per-part mean usage normalised into a distribution over parts,
``u_p = part_mean[p] / Σ_q part_mean[q]``; ``part_usage_entropy = -Σ u_p log u_p`` in nats, and
``part_usage_entropy_fraction`` = that / log P (1 = every part used equally often, 0 = one part
only; 1 by convention when P = 1; 0 when no part is ever visible). It measures how evenly usage
is spread, not whether it depends on the image: parts collapsed at the same prior are used evenly,
so read it with the active count.

``mean_visibility`` is the mean P(visible) over parts, images and locations.

Computation streams over the inputs batch by batch (memory bounded by the batch size), in float64
accumulators merged in input order (Chan et al.'s pairwise update), so the result is deterministic
and does not depend on the batch size beyond float rounding of the forward pass. The model runs in
eval mode and float32 by default (``amp=None``). :class:`PartHealthAccumulator` does the same from
visibility maps the caller already has (the trainer's eval pass).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

__all__ = [
    "DEFAULT_ACTIVE_THRESHOLD",
    "PART_HEALTH_CARD_NOTE",
    "PartHealth",
    "PartHealthAccumulator",
    "has_part_visibility",
    "part_health",
    "part_health_card_metrics",
]

#: a part is active when the std of its P(visible) (over images × locations by default) exceeds this
DEFAULT_ACTIVE_THRESHOLD = 0.02

Spread = Literal["images_locations", "images"]
_SPREADS = ("images_locations", "images")

#: what the part-health metrics on a model card mean (appended to the card's protocol text)
PART_HEALTH_CARD_NOTE = (
    "Part health (patchvae.evaluation.part_health, `patchvae eval NAME --probe parts`): active_parts = parts "
    "whose P(visible) has a standard deviation over images × locations above {threshold:g}; "
    "part_usage_entropy = entropy (nats) of the per-part mean P(visible) normalised over parts, "
    "part_usage_entropy_fraction = that / log(num_parts); mean_visibility = mean P(visible); "
    "over {images}."
)


@dataclass(frozen=True)
class PartHealth:
    """Part-health statistics of a model over a set of images (see the module docstring).

    Per-part tuples are indexed by part. ``active`` lists the active parts' indices.
    """

    num_parts: int
    num_images: int
    num_locations: int  #: images × locations the per-part statistics are taken over
    part_mean: tuple[float, ...]
    part_std: tuple[float, ...]  #: std over images × locations
    part_image_std: tuple[float, ...]  #: std over images of the per-image spatial mean
    active: tuple[int, ...]
    active_threshold: float
    spread: str  #: which std ``active_threshold`` applies to: "images_locations" or "images"
    part_usage_entropy: float  #: nats
    part_usage_entropy_fraction: float  #: part_usage_entropy / log(num_parts)
    mean_visibility: float

    @property
    def active_parts(self) -> int:
        """Number of active parts."""
        return len(self.active)

    def scalars(self) -> dict[str, float]:
        """The headline numbers, for logs and model cards."""
        return {
            "active_parts": self.active_parts,
            "part_usage_entropy": self.part_usage_entropy,
            "part_usage_entropy_fraction": self.part_usage_entropy_fraction,
            "mean_visibility": self.mean_visibility,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field plus ``active_parts``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("part_mean", "part_std", "part_image_std", "active"):
            out[name] = list(out[name])
        out["active_parts"] = self.active_parts
        return out

    def summary(self) -> str:
        """One line: active parts, mean P(visible), usage entropy."""
        what = "images × locations" if self.spread == "images_locations" else "images"
        return (
            f"{self.active_parts}/{self.num_parts} parts active (std of P(visible) over {what} > "
            f"{self.active_threshold:g}: {list(self.active)}); mean P(visible) {self.mean_visibility:.4f}, "
            f"per part {min(self.part_mean):.3f}-{max(self.part_mean):.3f}; usage entropy "
            f"{self.part_usage_entropy:.3f} nats ({100 * self.part_usage_entropy_fraction:.1f}% of log "
            f"{self.num_parts}); {self.num_images} images"
        )


class _Moments:
    """Per-part count, mean and sum of squared deviations in float64, merged batch by batch."""

    def __init__(self, parts: int) -> None:
        self.count = 0
        self.mean = torch.zeros(parts, dtype=torch.float64)
        self.m2 = torch.zeros(parts, dtype=torch.float64)

    def update(self, values: torch.Tensor) -> None:
        """``values``: float64 (P, m), m new values per part."""
        m = values.shape[1]
        if m == 0:
            return
        mean_b = values.mean(1)
        m2_b = (values - mean_b[:, None]).square().sum(1)
        n = self.count + m
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (m / n)
        self.m2 = self.m2 + m2_b + delta.square() * (self.count * m / n)
        self.count = n

    def std(self) -> torch.Tensor:
        if self.count < 2:
            return torch.zeros_like(self.mean)
        return (self.m2.clamp_min(0) / (self.count - 1)).sqrt()


class PartHealthAccumulator:
    """Streams visibility maps (B, P, h, w) in; :meth:`compute` gives the :class:`PartHealth`.

    ``update`` copies each batch to the CPU in float64 (any device/dtype in), so the statistics are
    the same whatever the batch size or device. ``strict=False`` skips the check that the maps are
    finite probabilities (a diverged model's NaNs then make the statistics NaN instead of raising:
    the trainer reports divergence itself).
    """

    def __init__(self, *, strict: bool = True) -> None:
        self._locations: _Moments | None = None
        self._images: _Moments | None = None
        self.num_images = 0
        self.strict = strict

    def update(self, visibility: torch.Tensor) -> None:
        """Add a batch of part visibility maps Q^V(z_vis = 1 | x), shape (B, P, h, w), values in [0, 1]."""
        if not isinstance(visibility, torch.Tensor) or visibility.ndim != 4:
            shape = tuple(visibility.shape) if isinstance(visibility, torch.Tensor) else type(visibility).__name__
            raise ValueError(f"part visibility must be a (B, P, h, w) tensor, got {shape}")
        v = visibility.detach().to("cpu", torch.float64)
        batch, parts = v.shape[:2]
        if batch == 0:
            return
        if self._locations is None:
            self._locations, self._images = _Moments(parts), _Moments(parts)
        elif parts != self._locations.mean.shape[0]:
            raise ValueError(f"got {parts} parts after {self._locations.mean.shape[0]}")
        if self.strict and (not bool(torch.isfinite(v).all()) or float(v.min()) < 0 or float(v.max()) > 1):
            raise ValueError("part visibility must be probabilities in [0, 1] (finite)")
        assert self._images is not None
        self._locations.update(v.transpose(0, 1).reshape(parts, -1))
        self._images.update(v.mean((2, 3)).T)
        self.num_images += batch

    def compute(self, *, active_threshold: float = DEFAULT_ACTIVE_THRESHOLD, spread: Spread = "images_locations") -> PartHealth:
        """The statistics of everything added so far (see the module docstring for the definitions)."""
        if spread not in _SPREADS:
            raise ValueError(f"spread must be one of {_SPREADS}, got {spread!r}")
        if not isinstance(active_threshold, (int, float)) or isinstance(active_threshold, bool) or not active_threshold >= 0:
            raise ValueError(f"active_threshold must be a number >= 0, got {active_threshold!r}")
        if self._locations is None or self._images is None:
            raise ValueError("no visibility maps were added: part health needs at least one image")
        mean = self._locations.mean
        std, image_std = self._locations.std(), self._images.std()
        criterion = std if spread == "images_locations" else image_std
        active = tuple(int(i) for i in torch.nonzero(criterion > active_threshold).flatten().tolist())
        parts = mean.shape[0]
        total = float(mean.sum())
        if total > 0:
            usage = mean / total
            entropy = float(-(usage * usage.clamp_min(1e-300).log()).sum())
        else:  # nothing is ever visible: no part is used
            entropy = 0.0
        entropy = max(entropy, 0.0)
        fraction = entropy / math.log(parts) if parts > 1 else 1.0
        return PartHealth(
            num_parts=parts,
            num_images=self.num_images,
            num_locations=self._locations.count,
            part_mean=tuple(mean.tolist()),
            part_std=tuple(std.tolist()),
            part_image_std=tuple(image_std.tolist()),
            active=active,
            active_threshold=float(active_threshold),
            spread=spread,
            part_usage_entropy=entropy,
            part_usage_entropy_fraction=fraction,
            mean_visibility=float(mean.mean()),
        )


def has_part_visibility(model: Any) -> bool:
    """Whether ``model`` (a model object) exposes part visibility (a ``"visibility"`` feature layer)."""
    from ..features import available_layers

    try:
        return "visibility" in available_layers(model)
    except TypeError:  # not a model extract_features knows
        return False


def _no_visibility_error(model: Any) -> ValueError:
    return ValueError(
        f"part health needs part visibility: {type(model).__name__} has no 'visibility' layer in "
        "patchvae.extract_features (models with parts, e.g. PatchVAE, have one)"
    )


def _resolve(model_or_name: nn.Module | str | os.PathLike) -> nn.Module:
    """A model object as is; a weights folder (or its file) or a zoo name with weights, loaded."""
    if isinstance(model_or_name, nn.Module):
        return model_or_name
    if not isinstance(model_or_name, (str, os.PathLike)):
        raise TypeError(f"model must be an nn.Module, a zoo name or a weights folder, got {type(model_or_name).__name__}")
    from pathlib import Path

    from .. import models

    path = Path(model_or_name).expanduser()
    if path.exists():
        return models.from_pretrained(path.parent if path.is_file() else path)
    return models.create(os.fspath(model_or_name), pretrained=True)


def part_health(
    model: nn.Module | str | os.PathLike,
    inputs: Any,
    *,
    active_threshold: float = DEFAULT_ACTIVE_THRESHOLD,
    spread: Spread = "images_locations",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str | None = None,
    preprocessed: bool = False,
    progress: bool = False,
) -> PartHealth:
    """Part health of ``model`` over ``inputs`` (see the module docstring for the definitions).

    Args:
        model: a model with part visibility (a PatchVAE), a zoo name with weights or a weights folder.
        inputs: anything :func:`patchvae.extract_features` takes (uint8 images, a Dataset, a folder ...);
            raw images get the weights' own preprocessing, ``preprocessed=True`` takes normalised tensors.
        active_threshold: a part is active when its spread exceeds this (default 0.02).
        spread: which spread is thresholded: ``"images_locations"`` (default) or ``"images"``.
        batch_size, device, progress: as in :func:`patchvae.iter_features` (memory is bounded by the batch).
        amp: autocast precision; default None = the model's own (float32).

    Raises:
        ValueError: the model has no part visibility, or the inputs are empty.
    """
    from ..features import iter_features

    model = _resolve(model)
    if not has_part_visibility(model):
        raise _no_visibility_error(model)
    acc = PartHealthAccumulator()
    for batch in iter_features(model, inputs, layer="visibility", batch_size=batch_size, device=device,
                               progress=progress, preprocessed=preprocessed, amp=amp):
        acc.update(batch.features["visibility"])
    return acc.compute(active_threshold=active_threshold, spread=spread)


def part_health_card_metrics(
    model: nn.Module | str | os.PathLike,
    inputs: Any,
    *,
    images: str,
    active_threshold: float = DEFAULT_ACTIVE_THRESHOLD,
    **kwargs: Any,
) -> tuple[dict[str, float], str]:
    """``(metrics, note)`` to add to a weights folder's card: ``{}`` and ``""`` for a model without parts.

    ``metrics`` = :meth:`PartHealth.scalars` (``active_parts``, ``part_usage_entropy``,
    ``part_usage_entropy_fraction``, ``mean_visibility``, rounded to 4 decimals) plus ``num_parts``;
    ``note`` says what they mean, to append to the card's ``protocol``; ``images`` describes
    ``inputs`` in it (e.g. ``"the first 1000 Fashion-MNIST test images"``). Other keyword arguments
    go to :func:`part_health`.
    """
    model = _resolve(model)
    if not has_part_visibility(model):
        return {}, ""
    health = part_health(model, inputs, active_threshold=active_threshold, **kwargs)
    metrics: dict[str, float] = {"num_parts": health.num_parts}
    metrics.update({k: (v if isinstance(v, int) else round(v, 4)) for k, v in health.scalars().items()})
    return metrics, PART_HEALTH_CARD_NOTE.format(threshold=active_threshold, images=images)
