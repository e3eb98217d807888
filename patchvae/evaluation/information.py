"""Rate ("mutual information") and conditional entropy of a VAE's posterior over a set of images.

    from patchvae.evaluation import conditional_entropy, rate
    print(rate("beta_vae_resnet9_32.fmnist", test_images).summary())
    # rate 52.1 nats = 75.2 bits (0.0734 bits/pixel over 32×32), 1000 images
    print(conditional_entropy("beta_vae_resnet9_32.fmnist", test_images).summary())

**Rate** (spec ``sixt_zhang.md`` §2.9 "Mutual Info", §1.6.1, §3.1, §6.6): ``E_x KL(q(z | x) ‖ p(z))``
over the images, from the model's own :meth:`~patchvae.models.RateModel.rate` (nats per image: the
analytic KL of every VAE of the zoo: β-VAE's Gaussian latent; PatchVAE's appearance KL of every
part plus the visibility KL at every location against Bern(1/N), the two KL terms of its objective).
It is Zhang et al.'s "Mutual Info" (eq. 3, nats as their code computes it) and Sixt's M (bits,
S Table 2); both are this same estimator, an upper bound on I(X; Z) (the gap is KL(q(z) ‖ p(z))).
Reported in nats and bits, per image, and Sixt's "M/#pixel" = bits / (H·W), the spatial pixels of
the model's input (his patch models divide by p², his global models by 64·64; never by the channels).
``bits_per_dim`` divides by C·H·W instead. Models without ``rate`` (a classifier, BiGAN) are refused
with a one-line error.

**Conditional entropy** (§2.9, Z Table 1): ``E_x H(q(z | x)) = E_x Σ_d ½ log(2πe σ_d²(x))`` in nats
(and bits), the differential entropy of a diagonal Gaussian posterior. The protocol has no entropy
method, so it is computed from what every model exposes: the distribution embedding ``[μ, σ]``
(``represent(x, [layer], mode="embedding")``, σ = the second half of the last axis) of the model's
Gaussian latent layer (default: ``"latent"``, else the first stochastic layer with an embedding,
e.g. PatchVAE's ``"appearance"``). For PatchVAE that is the entropy of the Gaussian part
appearances only: the Bernoulli visibilities are discrete (their entropy is not on the same scale
as a differential entropy) and are left out. It can be negative (a posterior narrower than
1/sqrt(2πe) per dimension).

Both stream over the inputs (float64 accumulators), the model in eval mode, float32 (``amp=None``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._runtime import autocast, resolve_device
from ._metric_utils import (
    Moments,
    default_latent_layer,
    evaluating,
    image_batches,
    resolve_model,
)

__all__ = ["ConditionalEntropyResult", "RateResult", "conditional_entropy", "has_rate", "rate"]

_LN2 = math.log(2.0)
_HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)


def _as_dict(obj: Any, metric: str) -> dict[str, Any]:
    out: dict[str, Any] = {"metric": metric}
    for f in dataclasses.fields(obj):
        if f.name == "per_image":
            continue
        value = getattr(obj, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


@dataclass(frozen=True)
class RateResult:
    """E_x KL(q(z|x) ‖ p(z)) over a set of images (see the module docstring)."""

    nats: float  #: mean rate per image, nats (Zhang's "Mutual Info")
    nats_std: float  #: sample std over images, nats
    bits: float  #: mean rate per image, bits (Sixt's M)
    bits_per_pixel: float  #: bits / (H·W) (Sixt's "M/#pixel")
    bits_per_dim: float  #: bits / (C·H·W)
    num_images: int
    input_size: tuple[int, int, int]  #: (C, H, W) of the model's input
    elapsed_seconds: float = 0.0
    per_image: torch.Tensor | None = dataclasses.field(default=None, repr=False, compare=False)  #: (N,) nats, float64

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (``metric`` = "rate"), without ``per_image``."""
        return _as_dict(self, "rate")

    def scalars(self) -> dict[str, float]:
        return {"rate_nats": self.nats, "rate_bits": self.bits, "rate_bits_per_pixel": self.bits_per_pixel}

    def summary(self) -> str:
        _, h, w = self.input_size
        return (
            f"rate E_x KL(q(z|x) || p(z)) = {self.nats:.3f} nats = {self.bits:.3f} bits per image "
            f"({self.bits_per_pixel:.4f} bits/pixel over {h}x{w}); {self.num_images} images"
        )


@dataclass(frozen=True)
class ConditionalEntropyResult:
    """E_x H(q(z|x)) of a Gaussian latent layer over a set of images (see the module docstring)."""

    nats: float  #: mean differential entropy per image, nats
    nats_std: float  #: sample std over images
    bits: float
    layer: str
    latent_dim: int  #: the number of Gaussian dimensions summed over
    num_images: int
    elapsed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (``metric`` = "conditional_entropy")."""
        return _as_dict(self, "conditional_entropy")

    def scalars(self) -> dict[str, float]:
        return {"conditional_entropy_nats": self.nats}

    def summary(self) -> str:
        return (
            f"conditional entropy E_x H(q(z|x)) of {self.layer!r} ({self.latent_dim} dims) = {self.nats:.3f} nats "
            f"= {self.bits:.3f} bits; {self.num_images} images"
        )


def has_rate(model: Any) -> bool:
    """Whether ``model`` implements :class:`patchvae.models.RateModel` (a ``rate(x)`` method)."""
    from ..models import RateModel

    return isinstance(model, RateModel)


def rate(
    model: nn.Module | str | os.PathLike,
    inputs: Any,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str | None = None,
    preprocessed: bool = False,
    progress: bool = False,
    keep_per_image: bool = False,
) -> RateResult:
    """The rate E_x KL(q(z|x) ‖ p(z)) of ``model`` over ``inputs`` (see the module docstring).

    Args:
        model: a :class:`~patchvae.models.RateModel` (every VAE of the zoo), a zoo name with weights or
            a weights folder.
        inputs: anything :func:`patchvae.extract_features` takes (``preprocessed=True``: normalised tensors).
        keep_per_image: keep every image's rate (nats, float64) in ``result.per_image``.

    Raises:
        ValueError: the model has no ``rate`` (e.g. a classifier), or the inputs are empty.
    """
    start = time.perf_counter()
    model = resolve_model(model)
    if not has_rate(model):
        raise ValueError(
            f"the rate needs a model with an encoder posterior and a prior (the patchvae.models.RateModel protocol: "
            f"rate(x)); {type(model).__name__} has none"
        )
    device = resolve_device(device) if device is not None else None
    moments, kept = Moments(), []
    input_size: tuple[int, int, int] | None = None
    with evaluating(model, device) as target, torch.no_grad():
        for x in image_batches(model, inputs, batch_size=batch_size, device=target, preprocessed=preprocessed,
                               progress=progress, desc="rate"):
            size = tuple(int(v) for v in x.shape[1:])
            if input_size is not None and size != input_size:
                raise ValueError(f"all images need the same size, got {input_size} and {size}")
            input_size = size  # type: ignore[assignment]
            with autocast(target, amp):
                values = model.rate(x).detach().to("cpu", torch.float64)
            if values.shape != (x.shape[0],):
                raise ValueError(f"{type(model).__name__}.rate returned shape {tuple(values.shape)}, expected ({x.shape[0]},)")
            moments.update(values)
            if keep_per_image:
                kept.append(values)
    assert input_size is not None
    chans, height, width = input_size
    bits = moments.mean / _LN2
    return RateResult(
        nats=moments.mean, nats_std=moments.std(), bits=bits, bits_per_pixel=bits / (height * width),
        bits_per_dim=bits / (chans * height * width), num_images=moments.count, input_size=input_size,
        elapsed_seconds=time.perf_counter() - start, per_image=torch.cat(kept) if keep_per_image else None,
    )


def conditional_entropy(
    model: nn.Module | str | os.PathLike,
    inputs: Any,
    *,
    layer: str | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str | None = None,
    preprocessed: bool = False,
    progress: bool = False,
) -> ConditionalEntropyResult:
    """E_x H(q(z|x)) = E_x Σ_d ½ log(2πe σ_d²(x)) of ``layer``'s Gaussian posterior (see the module docstring).

    ``layer`` must be a stochastic layer with a distribution embedding ``[μ, σ]`` (default: the
    model's latent, :func:`default_latent_layer`).

    Raises:
        ValueError: the layer has no distribution embedding (not a Gaussian posterior), or empty inputs.
    """
    from ..features import iter_features

    start = time.perf_counter()
    model = resolve_model(model)
    layer = layer or default_latent_layer(model)
    infos = model.representations()
    info = infos.get(layer)
    if info is None:
        raise ValueError(f"{type(model).__name__} has no layer {layer!r}; its layers: {list(infos)}")
    if info.embedding_shape is None or not info.stochastic:
        raise ValueError(
            f"the conditional entropy needs a Gaussian posterior layer with a distribution embedding [mu, sigma]; "
            f"{type(model).__name__}'s {layer!r} has none"
        )
    moments, dim = Moments(), 0
    for batch in iter_features(model, inputs, layer=layer, mode="embedding", batch_size=batch_size, device=device,
                               progress=progress, preprocessed=preprocessed, amp=amp):
        emb = batch.features[layer].double()
        half = emb.shape[-1] // 2
        sigma = emb[..., half:].flatten(1)
        dim = sigma.shape[1]
        moments.update((_HALF_LOG_2PI_E + sigma.clamp_min(1e-300).log()).sum(1))
    return ConditionalEntropyResult(
        nats=moments.mean, nats_std=moments.std(), bits=moments.mean / _LN2, layer=layer, latent_dim=dim,
        num_images=moments.count, elapsed_seconds=time.perf_counter() - start,
    )
