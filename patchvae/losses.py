"""Every training objective of the PatchVAE paper, in one place.

* L2 reconstruction (eq. 2) and the weighted reconstruction L_w (§3.4, supplement Fig. 1).
* KL of the appearance posterior to N(0, I) and of the visibility posterior to Bern(z_vis_prior) (eq. 9, 11).
* β-VAE (eq. 3) and PatchVAE (eq. 11) objectives that return their parts by name.
* GAN losses for the '-GAN' variants (Larsen et al. 2016) and BiGAN (Donahue et al. 2017).
* The relaxed-Bernoulli temperature schedule (§4 "Training details").

Reduction convention (the authors' code): every term is summed over the pixels / latent units of
one image and averaged over the batch, so the L2 term is a per-image sum of squared errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from .models.beta_vae import BetaVAEOutput
from .models.patchvae import PatchVAEOutput

__all__ = [
    "AdversarialLoss",
    "BetaVAELoss",
    "BetaVAEObjective",
    "PatchVAELoss",
    "PatchVAEObjective",
    "TemperatureSchedule",
    "bernoulli_kl",
    "bigan_encoder_generator_loss",
    "discriminator_loss",
    "fake_loss",
    "gaussian_kl",
    "generator_loss",
    "laplacian_weights",
    "real_loss",
    "reconstruction_loss",
]


def _per_image_mean(t: torch.Tensor) -> torch.Tensor:
    """Sum over all but the batch dimension, mean over the batch."""
    return t.flatten(1).sum(1).mean()


# --------------------------------------------------------------------------- KL terms
def gaussian_kl(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, var) || N(0, I)) = ½ Σ (μ² + σ² - log σ² - 1), per-image sum, batch mean. Shapes (B, ...)."""
    var = var.float()
    return _per_image_mean(0.5 * (mean.float().square() + var - var.clamp_min(1e-30).log() - 1.0))


def bernoulli_kl(logits: torch.Tensor, prior: float) -> torch.Tensor:
    """KL(Bern(q) || Bern(prior)), q = sigmoid(logits), summed over parts and locations, batch mean.

    Computed from the logits (log q = logsigmoid(l), log(1-q) = logsigmoid(-l)), so it stays finite
    for saturated visibilities. ``logits``: (B, N, h, w); ``prior`` in (0, 1).
    """
    if not 0.0 < prior < 1.0:
        raise ValueError(f"visibility prior must be in (0, 1), got {prior}")
    logits = logits.float()
    q = torch.sigmoid(logits)
    kl = q * (F.logsigmoid(logits) - math.log(prior)) + (1.0 - q) * (F.logsigmoid(-logits) - math.log1p(-prior))
    return _per_image_mean(kl)


# --------------------------------------------------------------------------- reconstruction
_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


@torch.no_grad()
def laplacian_weights(x: torch.Tensor, cell: int = 8) -> torch.Tensor:
    """Per-pixel weights of L_w (§3.4): gradient energy of ``cell``×``cell`` patches, normalised.

    |Laplacian| of every channel (3×3 kernel, replicate padding), averaged over each cell,
    broadcast back to the cell's pixels and normalised to mean 1 over each image and channel
    (the paper's "normalized to sum to one", scaled by H·W as in the authors' code so that L_w and
    L2 have the same scale). A flat image/channel gets uniform weights.

    Shapes: x (B, C, H, W) with H, W divisible by ``cell`` -> weights (B, C, H, W), no gradient.
    """
    b, c, h, w = x.shape
    if h % cell or w % cell:
        raise ValueError(f"image size {h}x{w} is not divisible by the L_w cell size {cell}")
    x = x.float()
    kernel = torch.tensor(_LAPLACIAN, device=x.device).expand(c, 1, 3, 3)
    energy = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=c).abs()
    energy = F.avg_pool2d(energy, cell)
    mean = energy.mean(dim=(2, 3), keepdim=True)
    weights = torch.where(mean > 0, energy / mean.clamp_min(torch.finfo(x.dtype).tiny), torch.ones_like(energy))
    return weights.repeat_interleave(cell, dim=2).repeat_interleave(cell, dim=3)


def reconstruction_loss(
    reconstruction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Σ w·(x̂ - x)² per image, batch mean (L2 when ``weights`` is None, L_w with :func:`laplacian_weights`)."""
    if reconstruction.shape != target.shape:
        raise ValueError(
            f"reconstruction shape {tuple(reconstruction.shape)} != target shape {tuple(target.shape)}"
        )
    err = (reconstruction.float() - target.float()).square()
    return _per_image_mean(err if weights is None else err * weights)


# --------------------------------------------------------------------------- VAE objectives
class BetaVAELoss(NamedTuple):
    total: torch.Tensor  #: reconstruction + β·kl
    reconstruction: torch.Tensor  #: L2 or L_w
    kl: torch.Tensor  #: KL(Q(z|x) || N(0, I))


class PatchVAELoss(NamedTuple):
    total: torch.Tensor  #: reconstruction + β_app·kl_appearance + β_vis·kl_visibility
    reconstruction: torch.Tensor  #: L2 or L_w
    kl_appearance: torch.Tensor  #: Σ_i KL(Q^A(i) || N(0, I))
    kl_visibility: torch.Tensor  #: Σ_i Σ_l KL(Q^V(i, l) || Bern(z_vis_prior))


@dataclass(frozen=True)
class BetaVAEObjective:
    """β-VAE loss, eq. 3: ‖x - x̂‖² + β·KL. ``weighted=True`` replaces L2 by L_w ('β-VAE + L_w')."""

    beta: float = 1.0
    weighted: bool = False
    weight_cell: int = 8  #: L_w cell side (the paper's 8×8 patches)

    def __call__(self, out: BetaVAEOutput, x: torch.Tensor) -> BetaVAELoss:
        weights = laplacian_weights(x, self.weight_cell) if self.weighted else None
        rec = reconstruction_loss(out.reconstruction, x, weights)
        kl = gaussian_kl(out.latent_mean, out.latent_var)
        return BetaVAELoss(rec + self.beta * kl, rec, kl)


@dataclass(frozen=True)
class PatchVAEObjective:
    """PatchVAE loss, eq. 11: reconstruction + β_app·KL_app + β_vis·KL_vis.

    Eq. 9/11 of the paper print the two β labels swapped (β_app on the visibility term); here, as
    in the authors' code, ``beta_vis`` weights the visibility KL and ``beta_app`` the appearance KL.
    Defaults are the authors' code defaults (β_app = 1, β_vis = 10). ``visibility_prior`` defaults to
    1/N (§4.2). ``weighted=True`` uses L_w with cells of the latent grid (8×8 pixels for ResNet-9).
    """

    beta_app: float = 1.0
    beta_vis: float = 10.0
    visibility_prior: float | None = None
    weighted: bool = False

    def prior_for(self, num_parts: int) -> float:
        return 1.0 / num_parts if self.visibility_prior is None else self.visibility_prior

    def __call__(self, out: PatchVAEOutput, x: torch.Tensor) -> PatchVAELoss:
        num_parts, grid_h = out.visibility_logits.shape[1:3]
        weights = laplacian_weights(x, x.shape[-2] // grid_h) if self.weighted else None
        rec = reconstruction_loss(out.reconstruction, x, weights)
        kl_app = gaussian_kl(out.appearance_mean, out.appearance_var)
        kl_vis = bernoulli_kl(out.visibility_logits, self.prior_for(num_parts))
        return PatchVAELoss(rec + self.beta_app * kl_app + self.beta_vis * kl_vis, rec, kl_app, kl_vis)


# --------------------------------------------------------------------------- adversarial losses
class AdversarialLoss(NamedTuple):
    total: torch.Tensor  #: real + fake
    real: torch.Tensor  #: BCE(D(real), 1)
    fake: torch.Tensor  #: BCE(D(fake), 0)


def real_loss(logits: torch.Tensor) -> torch.Tensor:
    """BCE(logits, 1): the loss of scoring samples as real. Logits (B,)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def fake_loss(logits: torch.Tensor) -> torch.Tensor:
    """BCE(logits, 0): the loss of scoring samples as generated. Logits (B,)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> AdversarialLoss:
    """Discriminator BCE: real pairs/images labelled 1, generated ones 0. Logits (B,)."""
    real, fake = real_loss(real_logits), fake_loss(fake_logits)
    return AdversarialLoss(real + fake, real, fake)


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss BCE(D(fake), 1) (the authors' VAE-GAN generator step)."""
    return real_loss(fake_logits)


def bigan_encoder_generator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> AdversarialLoss:
    """BiGAN loss of E and G with flipped labels: BCE(D(x, E(x)), 0) + BCE(D(G(z), z), 1)."""
    real, fake = fake_loss(real_logits), real_loss(fake_logits)
    return AdversarialLoss(real + fake, real, fake)


# --------------------------------------------------------------------------- temperature
@dataclass(frozen=True)
class TemperatureSchedule:
    """Temperature τ of the relaxed-Bernoulli visibility samples after ``step`` optimiser steps.

    Paper §4: "we start with the temperature of 1.0 with an annealing rate of 3e-5"; the floor 0.1 is
    the authors' ``--min-temp``. Two forms:

    * ``"reference"`` (default, the authors' code): every ``interval`` steps, at steps 1, 1001, 2001 ...,
      ``τ ← max(floor, τ·exp(-rate·step))``. In closed form τ(t) = max(floor, start·exp(-rate·S(t))),
      S(t) the sum of the update steps ≤ t: τ reaches the floor at step 12,001 (τ(12,000) = 0.138).
    * ``"exponential"`` (Jang et al. 2017): τ(t) = max(floor, start·exp(-rate·t)).

    A pure function of the step, so resumed training continues the same schedule.
    """

    start: float = 1.0
    anneal_rate: float = 3e-5
    floor: float = 0.1
    mode: Literal["reference", "exponential"] = "reference"
    interval: int = 1000

    def __post_init__(self) -> None:
        if not (self.start > 0 and self.floor > 0 and self.anneal_rate >= 0 and self.interval >= 1):
            raise ValueError(f"invalid temperature schedule {self}")
        if self.mode not in ("reference", "exponential"):
            raise ValueError(f"mode must be 'reference' or 'exponential', got {self.mode!r}")

    def __call__(self, step: int) -> float:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.mode == "exponential":
            exponent = float(step)
        else:
            updates = 0 if step < 1 else (step - 1) // self.interval + 1
            exponent = self.interval * updates * (updates - 1) / 2 + updates
        return max(self.floor, self.start * math.exp(-self.anneal_rate * exponent))
