"""Patch VAEs with block-local PixelCNN decoders, and the global VAE baselines (Sixt 2018, master's thesis).

::

    patch p×p ─valid 3×3 convs (receptive field exactly p)─► q(z | patch) = N(μ, σ²), σ = softplus(·)
    z ─MLP─► c (B, C_cond, p, p) ─┐
    patch ─space-to-batch─► (p/i)² blocks of i×i ─mask-A PixelCNN (c enters once)─► DMOL ─► log p(patch | z)

    image H×W ─the same encoder at stride 1─► the dense map of patch codes μ (B, d, H-p+1, W-p+1)

**Patch VAE ``p|i``** (S §5, Fig. 3; spec ``sixt_zhang.md`` §1.2.5 and §6.1, which fix our reading: the
thesis gives no architecture, so every number published for these models is "under our architecture"):

* Encoder: ⌊p/2⌋ valid 3×3 convs (BN, ReLU), then 1×1 convs to μ and σ = softplus(·) — its receptive
  field is exactly p, so the same network encodes one p×p patch (a 1×1 map) or, densely at stride 1, a
  whole image (S §6 "similar to convolution with stride 1"; valid borders, spec §1.2.5).
* Decoder: z → Linear(d, 256) → ReLU → Linear(256, C_cond·p²): the conditioning map c of the patch
  (spec §1.2.5 "(a) FC for p ≤ 15"; the hidden layer is ours).
* Block-local PixelCNN: the p×p patch is tiled into (p/i)² independent i×i blocks (space-to-batch,
  :func:`~patchvae.models.pixelcnn.blocks_to_batch`); each block is an autoregressive chain in raster
  order, by a :class:`~patchvae.models.pixelcnn.LocalPixelCNNHead` with horizon i − 1, whose
  (2i−1)×(2i−1) mask-A kernel covers every earlier pixel of the block while the zero padding at the
  block border keeps context from crossing into another block (spec §3.2). i = 1: no pixel context
  (the 1×1 mask-A kernel is zero); the RGB channels of a pixel stay dependent through the
  channel-autoregressive DMOL (spec §1.2.5 "i = 1 case", reading (b)).
* Likelihood: the shared discretized logistic mixture (:mod:`~patchvae.models.likelihoods`), K = 5
  components (the CPU option of spec §1.2.5; ``num_mixtures`` sets it), on v/127.5 − 1.
* Ours (spec silent, listed in docs/models.md): d = 32, encoder width 64, C_cond = 16, a 32-channel head
  with one residual block of two 1×1 convs.

**Global VAE** (S §6: "the same [architecture] as Higgins et al., 2016", with batch norm; spec §1.2.3,
§6.2): at 32×32 (no upsampling), four 4×4/2 convs 32-32-64-64 (BN, ReLU) → 256 → FC 256 (ReLU) → μ, log σ²;
the decoder mirrors it with transposed convs and outputs a Gaussian per sub-pixel, mean and learned
log-variance (clamped to [−9, 2]; ``fixed_variance=True`` fixes σ² = 0.1² instead). Images enter as
v/127.5 − 1 like every generative model of the zoo (spec §1.4 suggests [0, 1]; the scale shifts the
Gaussian NLL by a constant and leaves the rate unchanged). The β-VAE of S eq. 27 (β = 250) is the same
network trained with ``objective_args.beta`` (recipe ``sixt2018_cifar10_betavae_*``).

Both implement the zoo protocol (:mod:`~patchvae.models._protocol`): the patch VAE's ``represent`` gives
the dense map (``dense``; ``embedding`` = [μ, σ] on the channel axis) and every encoder conv's map; the
global VAE's gives every BN layer's output (S Figs 11-12) and the latent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data.config import DataConfig
from ._builder import build_model_with_cfg
from ._pretrained import PretrainedCfg, sixt2018_provenance
from ._protocol import (
    ELBOTerms,
    NoiseFn,
    RepresentationInfo,
    check_representation_names,
    default_noise,
    gaussian_latent_infos,
    gaussian_representation,
    select,
)
from ._registry import register_model
from .beta_vae import GaussianPosterior
from .layers import check_images, gaussian_kl_per_image, upcast
from .likelihoods import DiscreteLikelihoodVAE, DiscretizedLogisticMixture
from .pixelcnn import LocalPixelCNNHead, batch_to_blocks, blocks_to_batch
from .pixelvae import DECODE_SEED, autoregressive_sample

__all__ = [
    "PATCH_CONFIGS",
    "SIXT_CIFAR",
    "GlobalVAE",
    "GlobalVAEOutput",
    "PatchVAEDecoder",
    "SixtPatchVAE",
    "SixtPatchVAEOutput",
    "ValidConvEncoder",
]

#: the six (patch size, independence size) pairs trained in S (Tables 2-4): 3|1, 9|1, 9|3, 15|1, 15|3, 15|5
PATCH_CONFIGS: tuple[tuple[int, int], ...] = ((3, 1), (9, 1), (9, 3), (15, 1), (15, 3), (15, 5))
#: CIFAR-10 images as v/127.5 - 1, 32×32, no augmentation (S §6 "No preprocessing is done for the CIFAR-10 images")
SIXT_CIFAR = DataConfig((3, 32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), resize_mode="resize_crop")


def _dense_embedding(mean: torch.Tensor, var: torch.Tensor, mode: str, noise: NoiseFn) -> torch.Tensor:
    """A map of Gaussian posteriors (B, d, h, w) as a representation; ``embedding`` = [μ, σ] on the channel axis."""
    if mode == "embedding":
        return torch.cat([mean, var.sqrt()], dim=1)
    return gaussian_representation(mean, var, mode, noise)


# --------------------------------------------------------------------------- patch VAE p|i (S §5)
class ValidConvEncoder(nn.Module):
    """q(z | patch): ⌊p/2⌋ valid 3×3 convs (BN, ReLU) then 1×1 convs to μ and σ = softplus(·).

    Receptive field exactly p: (B, C, p, p) -> maps (B, d, 1, 1); any (B, C, H, W) with H, W >= p -> the
    dense stride-1 maps (B, d, H-p+1, W-p+1), position (r, c) being the code of the crop at rows r..r+p-1,
    columns c..c+p-1.
    """

    def __init__(self, in_chans: int, patch_size: int, latent_dim: int, width: int = 64) -> None:
        super().__init__()
        if patch_size < 3 or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be odd and >= 3 (a stack of valid 3x3 convs), got {patch_size}")
        self.patch_size = patch_size
        depth = patch_size // 2
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_chans if k == 0 else width, width, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU())
            for k in range(depth)
        )
        self.mean = nn.Conv2d(width, latent_dim, 1)
        self.std = nn.Conv2d(width, latent_dim, 1)

    def layers(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The conv maps ``conv1..conv{⌊p/2⌋}`` and the posterior maps μ, σ² (B, d, H-p+1, W-p+1), one pass."""
        out: dict[str, torch.Tensor] = {}
        h = x
        for k, conv in enumerate(self.convs, 1):
            h = conv(h)
            out[f"conv{k}"] = h
        mean = upcast(self.mean(h))
        var = F.softplus(upcast(self.std(h))).square()
        return out, mean, var

    def forward(self, x: torch.Tensor) -> GaussianPosterior:
        """p×p patches -> :class:`GaussianPosterior` (features (B, width, 1, 1), μ (B, d), σ² (B, d)); larger
        images -> the same fields as dense maps (μ, σ² (B, d, H-p+1, W-p+1))."""
        layers, mean, var = self.layers(x)
        features = layers[f"conv{len(self.convs)}"]
        if mean.shape[-2:] == (1, 1):
            return GaussianPosterior(features, mean.flatten(1), var.flatten(1))
        return GaussianPosterior(features, mean, var)


class PatchVAEDecoder(nn.Module):
    """p(patch | z) = ∏_blocks ∏_pixels p(x_pixel | earlier pixels of its i×i block, z) (S Fig. 3).

    ``forward(code)`` is the protocol's decoder: a sample of p(patch | code) (B, C, p, p) with the fixed
    noise seed :data:`~patchvae.models.pixelvae.DECODE_SEED` unless a ``generator`` is given.
    """

    def __init__(self, in_chans: int, patch_size: int, block_size: int, latent_dim: int, cond_chans: int,
                 head: LocalPixelCNNHead, likelihood: DiscretizedLogisticMixture, hidden_dim: int = 256) -> None:
        super().__init__()
        self.patch_size, self.block_size, self.cond_chans = patch_size, block_size, cond_chans
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, cond_chans * patch_size * patch_size))
        self.head = head
        self.likelihood = likelihood

    def condition(self, code: torch.Tensor) -> torch.Tensor:
        """c: (B, d) -> (B, C_cond, p, p)."""
        p = self.patch_size
        return self.net(code.to(self.head.out.weight.dtype)).view(code.shape[0], self.cond_chans, p, p)

    def params(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """DMOL parameters of every pixel of the patches x (B, C, p, p) given z (teacher forcing): (B, P, p, p)."""
        i, p = self.block_size, self.patch_size
        blocks = self.head(blocks_to_batch(x, i), blocks_to_batch(self.condition(code), i))
        return batch_to_blocks(blocks, i, p, p)

    @torch.no_grad()
    def sample(self, code: torch.Tensor, *, generator: torch.Generator | None = None, method: str = "fast") -> torch.Tensor:
        """patch ~ p(patch | z = code), (B, C, p, p) in [-1, 1] on the 8-bit grid; all blocks sampled at once."""
        i, p = self.block_size, self.patch_size
        cond = self.condition(code)
        noise = self.likelihood.sample_noise(code.shape[0], p, p, generator=generator, device=cond.device)
        block_noise = type(noise)(blocks_to_batch(noise.component, i), blocks_to_batch(noise.value, i))
        blocks = autoregressive_sample(self.head, self.likelihood, blocks_to_batch(cond, i), block_noise, method=method)
        return batch_to_blocks(blocks, i, p, p)

    def forward(self, code: torch.Tensor, *, generator: torch.Generator | None = None, method: str = "fast") -> torch.Tensor:
        """Decode codes, a sample with the noise of DECODE_SEED unless ``generator`` is given.

        ``code`` (B, d): one patch each, (B, C, p, p). ``code`` (B, d, h, w), the dense map of an H×W image
        (h = H-p+1): the codes of the non-overlapping tiles (positions 0, p, 2p ...) decoded and reassembled,
        (B, C, ⌊H/p⌋·p, ⌊W/p⌋·p): the tiled reconstruction of S §7.1.
        """
        if generator is None:
            generator = torch.Generator(device=code.device).manual_seed(DECODE_SEED)
        if code.ndim == 2:
            return self.sample(code, generator=generator, method=method)
        if code.ndim != 4:
            raise ValueError(f"expected codes (B, d) or a dense code map (B, d, h, w), got {tuple(code.shape)}")
        p = self.patch_size
        tiles = code[:, :, ::p, ::p]  # (B, d, nh, nw)
        batch, dim, nh, nw = tiles.shape
        out = self.sample(tiles.permute(0, 2, 3, 1).reshape(-1, dim), generator=generator, method=method)
        return batch_to_blocks(out, p, nh * p, nw * p)


class SixtPatchVAEOutput(NamedTuple):
    """Everything :meth:`SixtPatchVAE.forward` computes on p×p patches, by name (nats per patch)."""

    likelihood_params: torch.Tensor  #: DMOL parameters, (B, P, p, p)
    latent_mean: torch.Tensor  #: μ, (B, d)
    latent_var: torch.Tensor  #: σ², (B, d)
    latent_sample: torch.Tensor  #: z (a posterior sample in training, μ in eval), (B, d)
    reconstruction_nll: torch.Tensor  #: −log p(patch | z), (B,)
    kl: torch.Tensor  #: KL(q(z | patch) ‖ N(0, I)), (B,)


class SixtPatchVAE(DiscreteLikelihoodVAE, nn.Module):
    """The patch VAE ``p|i`` of Sixt (2018) §5: a VAE on p×p patches whose i×i blocks are independent given z.

    Args:
        patch_size: p (3, 9, 15 in S); odd.
        block_size: i (1, 3, 5 in S); must divide p.
        in_chans: image channels (3).
        latent_dim: d (32, ours).
        width: encoder channels (64).
        cond_chans: channels of the conditioning map c (16).
        head_width, head_blocks, head_convs_per_block: the block PixelCNN (32, 1, 2).
        num_mixtures: K of the DMOL (5).
        img_size: the image side of the dense map the model's data config and ``representations()`` refer
            to (32, CIFAR-10); ``represent`` takes any side >= p.

    Training and likelihoods (``forward``, ``elbo_terms``, ``rate``, ``log_importance_weights``) take p×p
    patches (draw them with :func:`patchvae.data.random_patches`); ``encode``, ``represent`` and
    ``reconstruct`` also take whole images (dense maps; tiled reconstructions). ``forward(x)`` samples z in training mode and uses μ in eval mode (override with ``sample=``).
    """

    def __init__(
        self,
        patch_size: int = 9,
        block_size: int = 1,
        *,
        in_chans: int = 3,
        latent_dim: int = 32,
        width: int = 64,
        cond_chans: int = 16,
        head_width: int = 32,
        head_blocks: int = 1,
        head_convs_per_block: int = 2,
        num_mixtures: int = 5,
        img_size: int = 32,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        if block_size < 1 or patch_size % block_size:
            raise ValueError(f"block_size i must divide patch_size p (S trains 3|1, 9|1, 9|3, 15|1, 15|3, 15|5), "
                             f"got p={patch_size}, i={block_size}")
        if img_size < patch_size:
            raise ValueError(f"img_size ({img_size}) must be >= patch_size ({patch_size})")
        self.patch_size, self.block_size = patch_size, block_size
        self.in_chans, self.latent_dim, self.img_size = in_chans, latent_dim, img_size
        self.check_inputs = check_inputs
        self.encoder = ValidConvEncoder(in_chans, patch_size, latent_dim, width)
        likelihood = DiscretizedLogisticMixture(in_chans, num_mixtures)
        head = LocalPixelCNNHead(in_chans, cond_chans, likelihood.param_channels, horizon=block_size - 1,
                                 width=head_width, num_blocks=head_blocks, convs_per_block=head_convs_per_block)
        self.decoder = PatchVAEDecoder(in_chans, patch_size, block_size, latent_dim, cond_chans, head, likelihood)

    #: input pixels per cell of the dense map (stride-1 convolutions)
    stride = 1

    @property
    def likelihood(self) -> DiscretizedLogisticMixture:
        return self.decoder.likelihood

    @property
    def num_dims(self) -> int:
        """D = C·p², the dimensions of one patch (bits per dimension divide by it)."""
        return self.in_chans * self.patch_size ** 2

    def _check(self, x: torch.Tensor, *, patches: bool, always: bool = False) -> None:
        if not (self.check_inputs or always):
            return
        p = self.patch_size
        check_images(x, in_chans=self.in_chans, stride=1, param_dtype=self.decoder.head.out.weight.dtype)
        if patches and tuple(x.shape[-2:]) != (p, p):
            raise ValueError(
                f"this {p}|{self.block_size} patch VAE scores {p}x{p} patches, got {x.shape[-2]}x{x.shape[-1]}; draw "
                f"patches with patchvae.data.random_patches(images, {p}), or use represent(x, ['dense']) for the "
                "dense map of a whole image")
        if not patches and min(x.shape[-2:]) < p:
            raise ValueError(f"images must be at least {p}x{p} (the patch size), got {x.shape[-2]}x{x.shape[-1]}")

    # ----------------------------------------------------------------- VAE on patches
    def encode(self, x: torch.Tensor) -> GaussianPosterior:
        """Validated q(z | patch): p×p patches give :class:`GaussianPosterior` (features, μ (B, d), σ² (B, d));
        larger images the dense maps (μ, σ² (B, d, H-p+1, W-p+1)), whose ``code()`` decodes to the tiled image."""
        self._check(x, patches=False)
        return self.encoder(x)

    def _likelihood_posterior(self, x: torch.Tensor) -> GaussianPosterior:
        """q(z | patch) of p×p patches only (the likelihood, rate and ELBO are per patch)."""
        self._check(x, patches=True)
        return self.encoder(x)

    def forward(self, x: torch.Tensor, *, sample: bool | None = None) -> SixtPatchVAEOutput:
        params, post, z, nll, kl = self._elbo_pass(x, sample)
        return SixtPatchVAEOutput(params, post.mean, post.var, z, nll, kl)

    def decode(self, code: torch.Tensor, *, generator: torch.Generator | None = None, method: str = "fast") -> torch.Tensor:
        """patch ~ p(patch | z = code): (B, d) -> (B, C, p, p); a dense code map -> the tiled image (see
        :meth:`PatchVAEDecoder.forward`). Fixed noise unless ``generator`` is given."""
        return self.decoder(code, generator=generator, method=method)

    def reconstruct(self, x: torch.Tensor, *, generator: torch.Generator | None = None, method: str = "fast") -> torch.Tensor:
        """S §7.1 / Figs 4-5: the image cut into non-overlapping p×p patches, each encoded and sampled from
        p(patch | μ), reassembled: (B, C, H, W) -> (B, C, ⌊H/p⌋·p, ⌊W/p⌋·p), the largest tiled region from
        the top left (32 is not a multiple of 9 or 15; the border is left out). Equals
        ``decode(encode(x).code())``; the tile codes are read off the dense map (a conv at stride 1)."""
        return self.decode(self.encode(x).code(), generator=generator, method=method)

    @torch.no_grad()
    def sample(self, num_samples: int, *, generator: torch.Generator | None = None, method: str = "fast") -> torch.Tensor:
        """z ~ N(0, I), then patch ~ p(patch | z): (num_samples, C, p, p) in [-1, 1]."""
        device = self.decoder.head.out.weight.device
        z = torch.randn(num_samples, self.latent_dim, generator=generator, device=device)
        return self.decoder.sample(z, generator=generator, method=method)

    # rate, elbo_terms, log_importance_weights (per p×p patch; Sixt's M averages the rate): DiscreteLikelihoodVAE

    # ----------------------------------------------------------------- representation protocol (images)
    def representations(self, input_size: tuple[int, int, int] | None = None) -> dict[str, RepresentationInfo]:
        """Dense stride-1 maps (valid borders) of an image (C, H, W), default (C, img_size, img_size):
        ``conv1..conv{⌊p/2⌋}`` (the encoder's convs), ``dense`` = μ / z / [μ, σ] of every p×p patch
        (d or 2d, H-p+1, W-p+1), ``dense_var`` (σ²) and ``pooled`` (μ averaged over positions, (d,))."""
        chans, height, width = input_size or (self.in_chans, self.img_size, self.img_size)
        p, d = self.patch_size, self.latent_dim
        if chans != self.in_chans or min(height, width) < p:
            raise ValueError(f"{p}|{self.block_size} takes ({self.in_chans}, H, W) images with H, W >= {p}, "
                             f"got {(chans, height, width)}")
        infos: dict[str, RepresentationInfo] = {}
        enc_width = self.encoder.mean.in_channels
        for k in range(1, len(self.encoder.convs) + 1):
            infos[f"conv{k}"] = RepresentationInfo(
                f"conv{k}", (enc_width, height - 2 * k, width - 2 * k), f"the encoder's valid 3x3 conv {k} (BN, ReLU)")
        h, w = height - p + 1, width - p + 1
        infos["dense"] = RepresentationInfo(
            "dense", (d, h, w), f"the code of every {p}x{p} patch at stride 1 (S §6): μ (mean), z (sample), "
            "[μ, σ] on the channel axis (embedding)", stochastic=True, embedding_shape=(2 * d, h, w))
        infos["dense_var"] = RepresentationInfo("dense_var", (d, h, w), "σ² of every patch's posterior")
        infos["pooled"] = RepresentationInfo("pooled", (d,), "μ averaged over all patch positions")
        return infos

    def represent(
        self, x: torch.Tensor, names: Sequence[str], mode: str = "mean", noise: NoiseFn | None = None
    ) -> dict[str, torch.Tensor]:
        """The layers ``names`` of a preprocessed batch of images (B, C, H >= p, W >= p), the encoder run once."""
        names = check_representation_names(self, names, mode)
        self._check(x, patches=False, always=True)
        out, mean, var = self.encoder.layers(x)
        out["dense"] = _dense_embedding(mean, var, mode, noise or default_noise)
        out["dense_var"] = var
        out["pooled"] = mean.mean(dim=(2, 3))
        return select(out, names)


# --------------------------------------------------------------------------- global VAE (S §6, Higgins et al.)
def _conv_bn_relu(in_chans: int, out_chans: int, *, transposed: bool = False) -> nn.Sequential:
    conv = nn.ConvTranspose2d if transposed else nn.Conv2d
    return nn.Sequential(conv(in_chans, out_chans, 4, 2, 1, bias=False), nn.BatchNorm2d(out_chans), nn.ReLU())


class GlobalVAEOutput(NamedTuple):
    """Everything :meth:`GlobalVAE.forward` computes, by name (nats per image)."""

    reconstruction: torch.Tensor  #: the Gaussian means, (B, C, H, W)
    reconstruction_log_var: torch.Tensor  #: log σ² of each sub-pixel, (B, C, H, W)
    latent_mean: torch.Tensor  #: μ, (B, D)
    latent_var: torch.Tensor  #: σ², (B, D)
    latent_sample: torch.Tensor  #: z, (B, D)
    reconstruction_nll: torch.Tensor  #: −log N(x; mean, σ²) summed over sub-pixels, (B,)
    kl: torch.Tensor  #: KL(q(z | x) ‖ N(0, I)), (B,)


class _GlobalEncoder(nn.Module):
    """x (B, C, 32, 32) -> four 4×4/2 convs (BN, ReLU) 32-32-64-64 -> FC 256 (ReLU) -> μ, σ² = exp(log σ²)."""

    def __init__(self, in_chans: int, latent_dim: int, widths: Sequence[int], hidden_dim: int, img_size: int) -> None:
        super().__init__()
        chans = [in_chans, *widths]
        self.convs = nn.ModuleList(_conv_bn_relu(a, b) for a, b in zip(chans[:-1], chans[1:]))
        side = img_size // 2 ** len(widths)
        self.fc = nn.Sequential(nn.Linear(widths[-1] * side * side, hidden_dim), nn.ReLU())
        self.mean = nn.Linear(hidden_dim, latent_dim)
        self.log_var = nn.Linear(hidden_dim, latent_dim)

    def layers(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], GaussianPosterior]:
        """``bn1..bn4`` (each conv's BN output, before the ReLU: S Figs 11-12), ``fc`` and the posterior."""
        out: dict[str, torch.Tensor] = {}
        h = x
        for k, block in enumerate(self.convs, 1):
            conv, bn, act = block
            b = bn(conv(h))
            out[f"bn{k}"] = b
            h = act(b)
        f = self.fc(h.flatten(1))
        out["fc"] = f
        return out, GaussianPosterior(f, upcast(self.mean(f)), upcast(self.log_var(f)).clamp(-30.0, 20.0).exp())

    def forward(self, x: torch.Tensor) -> GaussianPosterior:
        return self.layers(x)[1]


class _GlobalDecoder(nn.Module):
    """z -> FC 256 (ReLU) -> FC to 64×2×2 (ReLU) -> transposed convs 64-32-32 (BN, ReLU) -> 2C maps: mean, log σ²."""

    def __init__(self, in_chans: int, latent_dim: int, widths: Sequence[int], hidden_dim: int, img_size: int,
                 fixed_variance: bool) -> None:
        super().__init__()
        self.side = img_size // 2 ** len(widths)
        self.top = widths[-1]
        self.fc = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                nn.Linear(hidden_dim, widths[-1] * self.side * self.side), nn.ReLU())
        rev = list(reversed(widths))
        self.deconvs = nn.Sequential(*[_conv_bn_relu(a, b, transposed=True) for a, b in zip(rev[:-1], rev[1:])])
        self.fixed_variance = fixed_variance
        self.out = nn.ConvTranspose2d(rev[-1], in_chans * (1 if fixed_variance else 2), 4, 2, 1)
        self.in_chans = in_chans

    def gaussian(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log σ²) of p(x | z), each (B, C, H, W); log σ² clamped to [-9, 2] (or log 0.1² when fixed)."""
        h = self.fc(code.to(self.out.weight.dtype)).view(code.shape[0], self.top, self.side, self.side)
        o = upcast(self.out(self.deconvs(h)))
        if self.fixed_variance:
            return o, torch.full_like(o, 2.0 * math.log(0.1))
        mean, log_var = o.chunk(2, dim=1)
        return mean, log_var.clamp(-9.0, 2.0)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """The decoded image of ``code``: the Gaussian mean, clamped to [-1, 1], (B, C, H, W)."""
        return self.gaussian(code)[0].clamp(-1.0, 1.0)


class GlobalVAE(nn.Module):
    """Sixt's global VAE (S §6, VAE_32d / VAE_256d / VAE_4096d; β-VAE = the same network, objective β = 250).

    Args:
        latent_dim: D (32, 256, 4096 in S).
        in_chans: image channels (3).
        img_size: the fixed input side (32: CIFAR-10 without upsampling, spec §6.2); a multiple of 16.
        widths: the four conv widths (32, 32, 64, 64; Higgins et al.).
        hidden_dim: the FC layer (256).
        fixed_variance: σ² = 0.1² instead of a learned per-sub-pixel log-variance.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        *,
        in_chans: int = 3,
        img_size: int = 32,
        widths: Sequence[int] = (32, 32, 64, 64),
        hidden_dim: int = 256,
        fixed_variance: bool = False,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if img_size % 2 ** len(widths):
            raise ValueError(f"img_size must be a multiple of {2 ** len(widths)} ({len(widths)} stride-2 convs), got {img_size}")
        self.latent_dim, self.in_chans, self.img_size = latent_dim, in_chans, img_size
        self.check_inputs = check_inputs
        self.encoder = _GlobalEncoder(in_chans, latent_dim, widths, hidden_dim, img_size)
        self.decoder = _GlobalDecoder(in_chans, latent_dim, widths, hidden_dim, img_size, fixed_variance)

    #: a fixed-size model: any H = W = img_size input is valid
    stride = 1

    def _check(self, x: torch.Tensor, always: bool = False) -> None:
        if self.check_inputs or always:
            check_images(x, in_chans=self.in_chans, stride=1, image_size=(self.img_size, self.img_size),
                         param_dtype=self.decoder.out.weight.dtype)

    def encode(self, x: torch.Tensor) -> GaussianPosterior:
        """Validated q(z | x): :class:`GaussianPosterior` (features = the FC layer (B, 256), μ (B, D), σ² (B, D))."""
        self._check(x)
        return self.encoder(x)

    def forward(self, x: torch.Tensor, *, sample: bool | None = None) -> GlobalVAEOutput:
        post = self.encode(x)
        z = post.mean
        if self.training if sample is None else sample:
            z = post.mean + post.var.sqrt() * torch.randn_like(post.mean)
        mean, log_var = self.decoder.gaussian(z)
        nll = 0.5 * (math.log(2 * math.pi) + log_var + (x.float() - mean).square() * torch.exp(-log_var))
        return GlobalVAEOutput(mean, log_var, post.mean, post.var, z, nll.flatten(1).sum(1),
                               gaussian_kl_per_image(post.mean, post.var))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> the Gaussian mean image (B, C, H, W), clamped to [-1, 1]."""
        return self.decoder(code)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x).code())

    @torch.no_grad()
    def sample(self, num_samples: int, *, generator: torch.Generator | None = None, noise: bool = False) -> torch.Tensor:
        """Decoded prior draws (num_samples, C, H, W): the means, or with ``noise=True`` samples of p(x | z) (S §7.1)."""
        device = self.decoder.out.weight.device
        z = torch.randn(num_samples, self.latent_dim, generator=generator, device=device)
        mean, log_var = self.decoder.gaussian(z)
        if noise:
            eps = torch.randn(mean.shape, generator=generator, device=device)
            mean = mean + (0.5 * log_var).exp() * eps
        return mean.clamp(-1.0, 1.0)

    def rate(self, x: torch.Tensor) -> torch.Tensor:
        """KL(q(z | x) ‖ N(0, I)) per image in nats, (B,)."""
        post = self.encode(x)
        return gaussian_kl_per_image(post.mean, post.var)

    def elbo_terms(self, x: torch.Tensor) -> ELBOTerms:
        """Gaussian −log p(x | z) (a density: not bits of 8-bit data) and the KL, nats per image, one z ~ q."""
        out = self.forward(x, sample=True)
        return ELBOTerms(out.reconstruction_nll, out.kl)

    def representations(self, input_size: tuple[int, int, int] | None = None) -> dict[str, RepresentationInfo]:
        """``bn1..bn4`` (each conv's BN output, S Figs 11-12), ``fc`` (256), ``latent`` and ``latent_var``."""
        size = (self.in_chans, self.img_size, self.img_size)
        if input_size is not None and tuple(input_size) != size:
            raise ValueError(f"GlobalVAE has a fixed input size {size}, got {tuple(input_size)}")
        infos: dict[str, RepresentationInfo] = {}
        side = self.img_size
        for k, block in enumerate(self.encoder.convs, 1):
            side //= 2
            chans = block[1].num_features
            infos[f"bn{k}"] = RepresentationInfo(f"bn{k}", (chans, side, side), f"conv {k}'s batch-norm output (S Figs 11-12)")
        infos["fc"] = RepresentationInfo("fc", (self.encoder.fc[0].out_features,), "the FC layer before the latent heads")
        return {**infos, **gaussian_latent_infos(self.latent_dim, "Sixt 2018 §6")}

    def represent(
        self, x: torch.Tensor, names: Sequence[str], mode: str = "mean", noise: NoiseFn | None = None
    ) -> dict[str, torch.Tensor]:
        names = check_representation_names(self, names, mode)
        self._check(x, always=True)
        out, post = self.encoder.layers(x)
        out["latent"] = gaussian_representation(post.mean, post.var, mode, noise or default_noise)
        out["latent_var"] = post.var
        return select(out, names)


# --------------------------------------------------------------------------- zoo entrypoints
def _create_patch_vae(variant: str, pretrained: bool = False, **kwargs: Any) -> SixtPatchVAE:
    return build_model_with_cfg(SixtPatchVAE, variant, pretrained, **kwargs)


def _create_global_vae(variant: str, pretrained: bool = False, **kwargs: Any) -> GlobalVAE:
    return build_model_with_cfg(GlobalVAE, variant, pretrained, **kwargs)


def _cfg(**kwargs: Any) -> PretrainedCfg:
    return PretrainedCfg(paper="sixt2018", **kwargs)


def _patch_name(p: int, i: int) -> str:
    return f"sixt2018_patch_p{p}_i{i}"


default_cfgs: dict[str, PretrainedCfg] = {
    **{_patch_name(p, i): _cfg(data_config=SIXT_CIFAR, description=(
        f"Sixt 2018 patch VAE {p}|{i}: {p}x{p} patches, {i}x{i} blocks independent given z, block-local PixelCNN "
        "decoder, DMOL-5; dense stride-1 patch codes (our architecture, spec §6.1)")) for p, i in PATCH_CONFIGS},
    **{f"sixt2018_vae_{d}d": _cfg(data_config=SIXT_CIFAR, description=(
        f"Sixt 2018 global VAE, Dim(z) = {d}: Higgins et al. conv architecture with BN at 32x32, Gaussian "
        "likelihood with learned variance (β-VAE: the same network, objective β = 250)")) for d in (32, 256, 4096)},
    # weights trained here on CIFAR-10 (JPEG copy), shipped in the package (docs/reproduce/package_sixt2018_weights.py)
    "sixt2018_patch_p3_i1.cifar10": _cfg(
        file="sixt2018_patch_p3_i1.cifar10/model.safetensors", data_config=SIXT_CIFAR,
        **sixt2018_provenance("sixt2018_patch_p3_i1.cifar10", "sixt2018_cifar10_p3_i1", "sx_p3_i1", epochs=5),
        sha256="f7f8e6b9f9da31880e815ebe4dfdd66e2e16a9e91d974e388cbed309c62c36cf",
        num_params=56594,
        metrics={"rate_bits": 13.41, "rate_bits_per_pixel": 1.4899, "cross_entropy_reconstruction_bpd": 4.8658, "cross_entropy_elbo_bpd": 5.3624, "linear_probe_top1": 44.38},
        description="Sixt 2018 3|1 trained on CIFAR-10 (JPEG copy), 5 epochs, under our architecture (docs/models.md)",
    ),
    "sixt2018_patch_p9_i1.cifar10": _cfg(
        file="sixt2018_patch_p9_i1.cifar10/model.safetensors", data_config=SIXT_CIFAR,
        **sixt2018_provenance("sixt2018_patch_p9_i1.cifar10", "sixt2018_cifar10_p9_i1", "sx_p9_i1", epochs=5),
        sha256="d181d0875ab3e318236d3803497863c3f6d244297d03b52fc77a9ce67d7bc0e7",
        num_params=463634,
        metrics={"rate_bits": 29.69, "rate_bits_per_pixel": 0.3666, "cross_entropy_reconstruction_bpd": 5.2556, "cross_entropy_elbo_bpd": 5.3778, "linear_probe_top1": 42.66},
        description="Sixt 2018 9|1 trained on CIFAR-10 (JPEG copy), 5 epochs, under our architecture (docs/models.md)",
    ),
    "sixt2018_patch_p9_i3.cifar10": _cfg(
        file="sixt2018_patch_p9_i3.cifar10/model.safetensors", data_config=SIXT_CIFAR,
        **sixt2018_provenance("sixt2018_patch_p9_i3.cifar10", "sixt2018_cifar10_p9_i3", "sx_p9_i3", epochs=5),
        sha256="b071d9eb920e39f9034b540f4b3b225da3e5d56dd583ad07e6d3c8648613c015",
        num_params=464786,
        metrics={"rate_bits": 19.86, "rate_bits_per_pixel": 0.2452, "cross_entropy_reconstruction_bpd": 4.3563, "cross_entropy_elbo_bpd": 4.438, "linear_probe_top1": 43.01},
        description="Sixt 2018 9|3 trained on CIFAR-10 (JPEG copy), 5 epochs, under our architecture (docs/models.md)",
    ),
    "sixt2018_patch_p15_i1.cifar10": _cfg(
        file="sixt2018_patch_p15_i1.cifar10/model.safetensors", data_config=SIXT_CIFAR,
        **sixt2018_provenance("sixt2018_patch_p15_i1.cifar10", "sixt2018_cifar10_p15_i1", "sx_p15_i1", epochs=5),
        sha256="df1877624dfcd2df20ad8968034f88fe37f24fe8b414374f962b74f83a2be428",
        num_params=1166738,
        metrics={"rate_bits": 38.89, "rate_bits_per_pixel": 0.1728, "cross_entropy_reconstruction_bpd": 5.6879, "cross_entropy_elbo_bpd": 5.7456, "linear_probe_top1": 41.54},
        description="Sixt 2018 15|1 trained on CIFAR-10 (JPEG copy), 5 epochs, under our architecture (docs/models.md)",
    ),
    "sixt2018_patch_p15_i3.cifar10": _cfg(
        file="sixt2018_patch_p15_i3.cifar10/model.safetensors", data_config=SIXT_CIFAR,
        **sixt2018_provenance("sixt2018_patch_p15_i3.cifar10", "sixt2018_cifar10_p15_i3", "sx_p15_i3", epochs=5),
        sha256="42012450c38c0500eaf18cfa4dba9556f7093482d0956358c73e535fbe5ab126",
        num_params=1167890,
        metrics={"rate_bits": 24.84, "rate_bits_per_pixel": 0.1104, "cross_entropy_reconstruction_bpd": 4.4276, "cross_entropy_elbo_bpd": 4.4644, "linear_probe_top1": 39.72},
        description="Sixt 2018 15|3 trained on CIFAR-10 (JPEG copy), 5 epochs, under our architecture (docs/models.md)",
    ),
    "sixt2018_patch_p15_i5.cifar10": _cfg(
        file="sixt2018_patch_p15_i5.cifar10/model.safetensors", data_config=SIXT_CIFAR,
        **sixt2018_provenance("sixt2018_patch_p15_i5.cifar10", "sixt2018_cifar10_p15_i5", "sx_p15_i5", epochs=5),
        sha256="53eec6da037c1680a449ab07f4238052f430a3e1edebeadb70d0834036f3085d",
        num_params=1170578,
        metrics={"rate_bits": 18.44, "rate_bits_per_pixel": 0.082, "cross_entropy_reconstruction_bpd": 4.2006, "cross_entropy_elbo_bpd": 4.2279, "linear_probe_top1": 39.94},
        description="Sixt 2018 15|5 trained on CIFAR-10 (JPEG copy), 5 epochs, under our architecture (docs/models.md)",
    ),
    "sixt2018_vae_32d.cifar10": _cfg(
        file="sixt2018_vae_32d.cifar10/model.safetensors", data_config=SIXT_CIFAR,
        **sixt2018_provenance("sixt2018_vae_32d.cifar10", "sixt2018_cifar10_vae_32d", "sx_vae_32d", epochs=10),
        sha256="249d31df6304e6328c110e1a922f2029e72d8aeab7ea509b41a341c391b37be0",
        num_params=391110,
        metrics={"rate_bits": 145.84, "rate_bits_per_4096": 0.0356, "linear_probe_top1": 37.45},
        description="Sixt 2018 VAE_32d trained on CIFAR-10 (JPEG copy), 10 epochs, under our architecture (docs/models.md)",
    ),
    "sixt2018_vae_256d.cifar10": _cfg(
        file="sixt2018_vae_256d.cifar10/model.safetensors", data_config=SIXT_CIFAR,
        **sixt2018_provenance("sixt2018_vae_256d.cifar10", "sixt2018_cifar10_vae_256d", "sx_vae_256d", epochs=10),
        sha256="56b3a568a056c488225b9023e49e5aa6d8266cbeaaed7076721f43216a2626c8",
        num_params=563590,
        metrics={"rate_bits": 221.24, "rate_bits_per_4096": 0.054, "linear_probe_top1": 40.45},
        description="Sixt 2018 VAE_256d trained on CIFAR-10 (JPEG copy), 10 epochs, under our architecture (docs/models.md)",
    ),
    "sixt2018_vae_4096d.cifar10": _cfg(
        file="sixt2018_vae_4096d.cifar10/model.safetensors", data_config=SIXT_CIFAR,
        **sixt2018_provenance("sixt2018_vae_4096d.cifar10", "sixt2018_cifar10_vae_4096d", "sx_vae_4096d", epochs=10),
        sha256="86a31c75ffb5d7a66335312f0a1dea63d7fefacc85b589cfe96f7cbd88ec1411",
        num_params=3520390,
        metrics={"rate_bits": 271.89, "rate_bits_per_4096": 0.0664, "linear_probe_top1": 40.08},
        description="Sixt 2018 VAE_4096d trained on CIFAR-10 (JPEG copy), 10 epochs, under our architecture (docs/models.md)",
    ),
    "sixt2018_vae_32d.cifar10_beta250": _cfg(
        file="sixt2018_vae_32d.cifar10_beta250/model.safetensors", data_config=SIXT_CIFAR,
        **sixt2018_provenance("sixt2018_vae_32d.cifar10_beta250", "sixt2018_cifar10_betavae_32d", "sx_betavae_32d", epochs=10),
        sha256="6c1fec24a54bf8a40281b6a2614febcf78b7e280f6de28816b9d2df31e5955cb",
        num_params=391110,
        metrics={"rate_bits": 1.81, "rate_bits_per_4096": 0.0004, "linear_probe_top1": 25.9},
        description="Sixt 2018 β-VAE_32d trained on CIFAR-10 (JPEG copy), 10 epochs, under our architecture (docs/models.md)",
    ),
}


def _patch(p: int, i: int, pretrained: bool, kwargs: dict[str, Any]) -> SixtPatchVAE:
    return _create_patch_vae(_patch_name(p, i), pretrained, model_defaults={"patch_size": p, "block_size": i}, **kwargs)


@register_model
def sixt2018_patch_p3_i1(pretrained: bool = False, **kwargs: Any) -> SixtPatchVAE:
    """Sixt 2018 patch VAE 3|1: 3×3 patches, every pixel independent given z."""
    return _patch(3, 1, pretrained, kwargs)


@register_model
def sixt2018_patch_p9_i1(pretrained: bool = False, **kwargs: Any) -> SixtPatchVAE:
    """Sixt 2018 patch VAE 9|1: 9×9 patches, every pixel independent given z."""
    return _patch(9, 1, pretrained, kwargs)


@register_model
def sixt2018_patch_p9_i3(pretrained: bool = False, **kwargs: Any) -> SixtPatchVAE:
    """Sixt 2018 patch VAE 9|3: 9×9 patches, 3×3 blocks independent given z (a PixelCNN inside each block)."""
    return _patch(9, 3, pretrained, kwargs)


@register_model
def sixt2018_patch_p15_i1(pretrained: bool = False, **kwargs: Any) -> SixtPatchVAE:
    """Sixt 2018 patch VAE 15|1: 15×15 patches, every pixel independent given z."""
    return _patch(15, 1, pretrained, kwargs)


@register_model
def sixt2018_patch_p15_i3(pretrained: bool = False, **kwargs: Any) -> SixtPatchVAE:
    """Sixt 2018 patch VAE 15|3: 15×15 patches, 3×3 blocks independent given z."""
    return _patch(15, 3, pretrained, kwargs)


@register_model
def sixt2018_patch_p15_i5(pretrained: bool = False, **kwargs: Any) -> SixtPatchVAE:
    """Sixt 2018 patch VAE 15|5: 15×15 patches, 5×5 blocks independent given z."""
    return _patch(15, 5, pretrained, kwargs)


@register_model
def sixt2018_vae_32d(pretrained: bool = False, **kwargs: Any) -> GlobalVAE:
    """Sixt 2018 global VAE_32d (Higgins et al. architecture with BN, 32×32, Gaussian likelihood)."""
    return _create_global_vae("sixt2018_vae_32d", pretrained, model_defaults={"latent_dim": 32}, **kwargs)


@register_model
def sixt2018_vae_256d(pretrained: bool = False, **kwargs: Any) -> GlobalVAE:
    """Sixt 2018 global VAE_256d."""
    return _create_global_vae("sixt2018_vae_256d", pretrained, model_defaults={"latent_dim": 256}, **kwargs)


@register_model
def sixt2018_vae_4096d(pretrained: bool = False, **kwargs: Any) -> GlobalVAE:
    """Sixt 2018 global VAE_4096d."""
    return _create_global_vae("sixt2018_vae_4096d", pretrained, model_defaults={"latent_dim": 4096}, **kwargs)
