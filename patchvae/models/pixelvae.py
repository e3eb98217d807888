"""Local and Full PixelVAE (Zhang, Xiao, Paige & Barber 2022, "Improving VAE-based Representation Learning").

::

    x ─Enc (MLP | ResNet)─► q(z | x) = N(μ, σ²), σ = softplus(·)        z ~ q(z | x) (training), μ (eval)
    z ─Dec (MLP | ResNet)─► c (B, C_cond, H, W), computed once per image ──────────┐
    x (masked: only each pixel's context reaches it) ─► PixelCNN head (c enters once) ─► DMOL params ─► log p(x | z)

The four decoders of the paper share everything but the PixelCNN head (spec §2.2-2.3):

* VAE (``horizon=0``): the local head with a 1×1 mask-A input conv, i.e. no pixel context: p(x | z) factorises
  over (super-)pixels, and the RGB channels of a pixel stay dependent through the DMOL (spec §6.7);
* LPVAE(h) (``horizon=1, 2``): p(x_ij | x_ij^local, z), the 2h(h+1) pixels of eq. 8 (zero padding);
* FPVAE (``horizon=None``): the full head, 7×7 mask A then 3×3 mask-B residual blocks (the [REF] variant,
  with the stacked-mask blind spot, spec §2.2).

Encoders and decoders (spec §2.4 MNIST, §2.5 CIFAR-10):

* ``arch="mlp"``: 784 → 500 (BN, ReLU) → 500 (BN, ReLU) → μ, σ = softplus (Dim(z) = 32); decoder z → 500 (BN,
  ReLU) → 500 (BN, ReLU) → C_cond·H·W (linear), reshaped to (C_cond, H, W) (C_cond = 32).
* ``arch="resnet"``: the [REF] "ResNet with 3 convolutional blocks" of spec §2.5 (hidden width 400, ELU,
  BN, average pooling; a skip stream s and a residual stream r: the residual stream is never reset to s,
  as in the reference architecture); decoder Linear → (400, H/8, W/8), three ×2 upsampling blocks
  (transposed 4×4 conv skip + [BN, ELU, ConvT 4×4/2, BN, ELU, Conv 5×5, BN, ELU, Conv 1×1]), then
  BN, ELU, Conv 3×3 to C_cond = 100 channels.

Decisions (ours, where spec §2 leaves it open; listed in docs/models.md):

* Input: 8-bit images as v/127.5 - 1 (``DataConfig`` mean = std = 0.5), at the paper's sizes: 28×28×1 for
  the MLP architecture (D = 784, so bits/dim are the paper's), 32×32×3 for the ResNet one (D = 3072).
* ``decode(code)`` / ``reconstruct(x)`` return a **sample** of p(x | z) (Zhang Fig. 8 and Sixt §7.1 show
  samples; a per-pixel mode is not the mode of an autoregressive decoder), drawn by the fast sampler with
  the fixed noise seed :data:`DECODE_SEED` unless a ``generator`` is given: the same code always decodes
  to the same image, so ``create_decoder(name)(create_encoder(name)(x).code())`` equals
  ``create(name).reconstruct(x)`` bitwise. ``sample(n)`` draws fresh z and pixel noise (global RNG or
  ``generator``).
* Sampling (issue 10 item 4): the conditioning map c is computed once; the pixel noise
  (:meth:`~patchvae.models.likelihoods.DiscretizedLogisticMixture.sample_noise`) is drawn up front, so
  every sampler consumes the same numbers whatever order it visits the pixels in. ``method="fast"``: a
  local head evaluates only the (2h+1)×(2h+1) window of each pixel
  (:meth:`LocalPixelCNNHead.forward_window`), batching the pixels of a wavefront (h+1)·i + j = t, none
  of which is in another's context ((h+1)(H-1) + W passes instead of H·W); h = 0 samples every pixel in
  one pass; the full head evaluates, pixel by pixel, only the crop its receptive field covers (R rows
  up, ±R columns, R = 3 + 3·blocks, clipped to the image), which is exact. ``method="naive"``: the
  whole head over the whole image for every pixel in raster order (kept for tests and
  ``benchmarks/pixelvae_sampling.py``).
* σ = softplus(linear) as [REF]; the KL uses log σ² with σ² clamped at 1e-30 (never active in practice).
* No channel adaptation of weights (``in_chans``): the DMOL parameter layout depends on the channel count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data.config import DataConfig
from ._builder import build_model_with_cfg
from ._pretrained import PretrainedCfg, zhang2022_provenance
from ._protocol import (
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
from .layers import check_images, upcast
from .likelihoods import DiscreteLikelihoodVAE, DiscretizedLogisticMixture, DMOLNoise
from .pixelcnn import FullPixelCNNHead, LocalPixelCNNHead, PixelCNNHead

__all__ = [
    "DECODE_SEED",
    "PIXELVAE_CIFAR",
    "PIXELVAE_MNIST",
    "MLPEncoder",
    "PixelVAE",
    "PixelVAEDecoder",
    "PixelVAEOutput",
    "ResNetEncoder",
    "autoregressive_sample",
    "receptive_reach",
]

#: the noise seed of ``decode``/``reconstruct`` when no generator is given (deterministic reconstructions)
DECODE_SEED = 0

#: MNIST architecture: 28×28 grey images as v/127.5 - 1 (any other image: shorter side to 28, centre crop)
PIXELVAE_MNIST = DataConfig((1, 28, 28), (0.5,), (0.5,), resize_mode="pad", crop_pct=1.0)
#: CIFAR-10 architecture: 32×32 RGB as v/127.5 - 1; random flips in training (spec §2.8; the random crops of
#: §2.8 are the recipe's ``objective_args.random_crop_padding``)
PIXELVAE_CIFAR = DataConfig((3, 32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), resize_mode="resize_crop", hflip=True)


class PixelVAEOutput(NamedTuple):
    """Everything :meth:`PixelVAE.forward` computes, by name. −ELBO = reconstruction_nll + kl (nats per image)."""

    likelihood_params: torch.Tensor  #: DMOL parameters of p(x_ij | context, z), (B, P, H, W)
    latent_mean: torch.Tensor  #: μ, (B, D)
    latent_var: torch.Tensor  #: σ², (B, D)
    latent_sample: torch.Tensor  #: z (a posterior sample in training, μ in eval), (B, D)
    reconstruction_nll: torch.Tensor  #: −log p(x | z) in nats, (B,)
    kl: torch.Tensor  #: KL(q(z | x) ‖ N(0, I)) in nats, analytic, (B,)


def _posterior(features: torch.Tensor, mean: nn.Linear, std: nn.Linear) -> GaussianPosterior:
    h = features.flatten(1)
    sigma = F.softplus(upcast(std(h)))
    return GaussianPosterior(features, upcast(mean(h)), sigma.square())


# --------------------------------------------------------------------------- MNIST architecture (spec §2.4)
class MLPEncoder(nn.Module):
    """q(z | x) of the MNIST models: C·H·W → hidden (BN, ReLU) → hidden (BN, ReLU) → μ, σ = softplus (spec §2.4)."""

    def __init__(self, in_chans: int, img_size: int, latent_dim: int, hidden_dim: int = 500) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(in_chans * img_size * img_size, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU())
        self.mean = nn.Linear(hidden_dim, latent_dim)
        self.std = nn.Linear(hidden_dim, latent_dim)

    def layers(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], GaussianPosterior]:
        """The hidden layers ``hidden1``, ``hidden2`` (B, hidden) and the posterior, in one pass."""
        h1 = self.fc1(x.flatten(1))
        h2 = self.fc2(h1)
        return {"hidden1": h1, "hidden2": h2}, _posterior(h2, self.mean, self.std)

    def forward(self, x: torch.Tensor) -> GaussianPosterior:
        """(B, C, H, W) -> :class:`GaussianPosterior` (features = the second hidden layer, μ, σ²)."""
        return self.layers(x)[1]


class MLPConditioner(nn.Module):
    """Dec of the MNIST models: z → hidden (BN, ReLU) → hidden (BN, ReLU) → C_cond·H·W, a (C_cond, H, W) map."""

    def __init__(self, latent_dim: int, cond_chans: int, img_size: int, hidden_dim: int = 500) -> None:
        super().__init__()
        self.shape = (cond_chans, img_size, img_size)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, cond_chans * img_size * img_size),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


# --------------------------------------------------------------------------- CIFAR-10 architecture (spec §2.5)
def _bn_elu_conv(in_chans: int, out_chans: int, kernel_size: int, *, transposed: bool = False) -> nn.Sequential:
    conv = (nn.ConvTranspose2d(in_chans, out_chans, 4, 2, 1) if transposed
            else nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2))
    return nn.Sequential(nn.BatchNorm2d(in_chans), nn.ELU(), conv)


class _EncoderBlock(nn.Module):
    """One ×1/2 block: r = [pool,] conv(ELU(BN r)) [, pool, conv(ELU(BN r))]; s = pool(s) + r (spec §2.5)."""

    def __init__(self, width: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.conv_a = _bn_elu_conv(width, width, 3)
        self.conv_b = None if first else _bn_elu_conv(width, width, 3)

    def forward(self, s: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            r = self.conv_a(F.avg_pool2d(r, 2))
        else:
            r = self.conv_b(F.avg_pool2d(self.conv_a(r), 2))
        return F.avg_pool2d(s, 2) + r, r


class ResNetEncoder(nn.Module):
    """q(z | x) of the CIFAR-10 models: the [REF] ResNet of spec §2.5 (3 blocks, width 400 in the paper).

    A skip stream s and a residual stream r start from two 3×3 convs of x; each block halves both and adds
    r to s (the residual stream continues from the previous block, as in the reference architecture).
    Then ELU(BN(s)) (the ``features``, (width, H/8, W/8)), flattened, gives μ and σ = softplus(·).
    """

    def __init__(self, in_chans: int, img_size: int, latent_dim: int, width: int = 400) -> None:
        super().__init__()
        if img_size % 8:
            raise ValueError(f"the ResNet encoder halves the image three times: img_size must be a multiple of 8, got {img_size}")
        self.stem_skip = nn.Conv2d(in_chans, width, 3, padding=1)
        self.stem_res = nn.Conv2d(in_chans, width, 3, padding=1)
        self.blocks = nn.ModuleList([_EncoderBlock(width, first=i == 0) for i in range(3)])
        self.norm = nn.BatchNorm2d(width)
        flat = width * (img_size // 8) ** 2
        self.mean = nn.Linear(flat, latent_dim)
        self.std = nn.Linear(flat, latent_dim)

    def layers(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], GaussianPosterior]:
        """``stage1..3`` (the skip stream after each block), ``features`` = ELU(BN(s)) and the posterior."""
        out: dict[str, torch.Tensor] = {}
        s, r = self.stem_skip(x), self.stem_res(x)
        for i, block in enumerate(self.blocks, 1):
            s, r = block(s, r)
            out[f"stage{i}"] = s
        f = F.elu(self.norm(s))
        out["features"] = f
        return out, _posterior(f, self.mean, self.std)

    def forward(self, x: torch.Tensor) -> GaussianPosterior:
        """(B, C, H, W) -> :class:`GaussianPosterior` (features (B, width, H/8, W/8), μ, σ²)."""
        return self.layers(x)[1]


class _DecoderBlock(nn.Module):
    """×2 block: x' = ConvT(x) + [BN, ELU, ConvT 4×4/2, BN, ELU, Conv 5×5, BN, ELU, Conv 1×1](x) (spec §2.5)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.skip = nn.ConvTranspose2d(width, width, 4, 2, 1)
        self.branch = nn.Sequential(_bn_elu_conv(width, width, 4, transposed=True), _bn_elu_conv(width, width, 5),
                                    _bn_elu_conv(width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.branch(x)


class ResNetConditioner(nn.Module):
    """Dec of the CIFAR-10 models: Linear → (width, H/8, W/8), 3 ×2 blocks, BN, ELU, Conv 3×3 → (C_cond, H, W)."""

    def __init__(self, latent_dim: int, cond_chans: int, img_size: int, width: int = 400) -> None:
        super().__init__()
        self.shape = (width, img_size // 8, img_size // 8)
        self.fc = nn.Linear(latent_dim, width * (img_size // 8) ** 2)
        self.blocks = nn.Sequential(*[_DecoderBlock(width) for _ in range(3)])
        self.out = _bn_elu_conv(width, cond_chans, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.fc(z).view(z.shape[0], *self.shape)))


# --------------------------------------------------------------------------- autoregressive sampling
def receptive_reach(head: PixelCNNHead) -> int:
    """R: output pixel (i, j) of ``head`` depends on input rows i-R..i and columns j-R..j+R only.

    Each masked k×k conv adds k//2 (1×1 convs add nothing): h for LPVAE(h), 3 + 3·blocks for the full head.
    """
    reach = head.input_conv.kernel_size[0] // 2
    return reach + sum(m.kernel_size[0] // 2 for m in head.blocks.modules() if isinstance(m, nn.Conv2d))


def _wavefronts(height: int, width: int, slope: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The pixels (rows, cols) with slope·i + j = t for t = 0, 1, ...: with slope = h + 1 no pixel of a front is in
    the LPVAE(h) context of another (the context of (i, j) has slope·i' + j' < slope·i + j), so a front is sampled
    in one batched pass: (h+1)(H-1) + W passes instead of H·W, each pixel still seeing only its own window."""
    fronts = []
    for t in range(slope * (height - 1) + width):
        rows = torch.arange(max(0, -(-(t - width + 1) // slope)), min(height - 1, t // slope) + 1, device=device)
        fronts.append((rows, t - slope * rows))
    return fronts


def _check_method(method: str) -> None:
    if method not in ("fast", "naive"):
        raise ValueError(f"method must be 'fast' (local windows / receptive-field crops) or 'naive' (whole image "
                         f"per pixel), got {method!r}")


@torch.no_grad()
def autoregressive_sample(
    head: PixelCNNHead,
    likelihood: DiscretizedLogisticMixture,
    cond: torch.Tensor,
    noise: DMOLNoise,
    *,
    method: str = "fast",
) -> torch.Tensor:
    """Draw x ~ ∏_ij p(x_ij | context, c) in raster order: (B, C_cond, H, W) -> (B, C, H, W) on the bin grid.

    Args:
        head: the PixelCNN head.
        likelihood: the DMOL the head parameterises.
        cond: the head's conditioning map c = Dec(z), (B, C_cond, H, W), computed once by the caller.
        noise: ``likelihood.sample_noise(B, H, W)``, consumed pixel by pixel (``noise.at(i, j)``).
        method: ``"fast"`` or ``"naive"`` (see the module docstring). Both give the same image for the same
            noise (up to the rounding of the head's floating-point sums, which does not reach a bin edge
            in practice).
    """
    _check_method(method)
    batch, _, height, width = cond.shape
    chans = head.in_chans
    local = isinstance(head, LocalPixelCNNHead)
    if method == "fast" and local and head.horizon == 0:  # no pixel context: one pass for every pixel
        params = head(cond.new_zeros(batch, chans, height, width), cond)
        return likelihood.sample(params, noise=noise).to(cond.dtype)
    if method == "fast" and local:
        h = head.horizon
        k = 2 * h + 1
        padded = cond.new_zeros(batch, chans, height + 2 * h, width + 2 * h)  # the head's zero padding
        offsets = torch.arange(k, device=cond.device)
        for rows, cols in _wavefronts(height, width, h + 1, cond.device):
            n = rows.numel()
            # the (2h+1)×(2h+1) windows around the n pixels of this wavefront, (B·n, C, k, k)
            windows = padded[:, :, (rows[:, None] + offsets)[:, :, None], (cols[:, None] + offsets)[:, None, :]]
            windows = windows.permute(0, 2, 1, 3, 4).reshape(batch * n, chans, k, k)
            c = cond[:, :, rows, cols].permute(0, 2, 1).reshape(batch * n, -1)
            params = head.forward_window(windows, c).view(batch, n, -1).permute(0, 2, 1)[:, :, None]  # (B, P, 1, n)
            pixel_noise = DMOLNoise(noise.component[:, :, rows, cols][:, :, None], noise.value[:, :, rows, cols][:, :, None])
            padded[:, :, rows + h, cols + h] = likelihood.sample(params, noise=pixel_noise)[:, :, 0].to(padded.dtype)
        return padded[:, :, h:h + height, h:h + width].contiguous()
    x = cond.new_zeros(batch, chans, height, width)
    if method == "naive":  # the whole head over the whole image for every pixel
        for i in range(height):
            for j in range(width):
                pixel = head(x, cond)[:, :, i:i + 1, j:j + 1]
                x[:, :, i, j] = likelihood.sample(pixel, noise=noise.at(i, j))[:, :, 0, 0]
        return x
    # the full head: only the crop its receptive field covers (rows i-R..i, columns j-R..j+R, clipped), exact
    reach = receptive_reach(head)
    for i in range(height):
        top = max(0, i - reach)
        for j in range(width):
            left, right = max(0, j - reach), min(width, j + reach + 1)
            params = head(x[:, :, top:i + 1, left:right], cond[:, :, top:i + 1, left:right])
            pixel = params[:, :, i - top:i - top + 1, j - left:j - left + 1]
            x[:, :, i, j] = likelihood.sample(pixel, noise=noise.at(i, j))[:, :, 0, 0]
    return x


# --------------------------------------------------------------------------- the decoder
class PixelVAEDecoder(nn.Module):
    """p(x | z): Dec (z → conditioning map c), the PixelCNN head and the DMOL likelihood.

    ``forward(code)`` is the protocol's decoder: a sample of p(x | code) with the fixed noise seed
    :data:`DECODE_SEED` (pass ``generator=`` for other noise); :meth:`sample` draws fresh noise;
    :meth:`params` gives the likelihood parameters of given images (teacher forcing, for training).
    """

    def __init__(self, net: nn.Module, head: PixelCNNHead, likelihood: DiscretizedLogisticMixture) -> None:
        super().__init__()
        self.net = net
        self.head = head
        self.likelihood = likelihood

    def condition(self, code: torch.Tensor) -> torch.Tensor:
        """c = Dec(z): (B, D) -> (B, C_cond, H, W)."""
        return self.net(code.to(self.head.out.weight.dtype))

    def params(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """DMOL parameters of p(x_ij | context of x, z) for every pixel at once: (B, P, H, W)."""
        return self.head(x, self.condition(code))

    @torch.no_grad()
    def sample(
        self, code: torch.Tensor, *, generator: torch.Generator | None = None, noise: DMOLNoise | None = None,
        method: str = "fast",
    ) -> torch.Tensor:
        """x ~ p(x | z = code), (B, C, H, W) in [-1, 1] on the 8-bit grid; pixel noise from ``noise``, else
        drawn up front from ``generator`` (torch's global generator by default)."""
        _check_method(method)
        cond = self.condition(code)
        batch, _, height, width = cond.shape
        if noise is None:
            noise = self.likelihood.sample_noise(batch, height, width, generator=generator, device=cond.device)
        return autoregressive_sample(self.head, self.likelihood, cond, noise, method=method)

    def forward(self, code: torch.Tensor, *, generator: torch.Generator | None = None, method: str = "fast") -> torch.Tensor:
        """The decoded image of ``code``: a sample with the noise of :data:`DECODE_SEED` unless ``generator`` is given."""
        if generator is None:
            generator = torch.Generator(device=code.device).manual_seed(DECODE_SEED)
        return self.sample(code, generator=generator, method=method)


# --------------------------------------------------------------------------- the model
class PixelVAE(DiscreteLikelihoodVAE, nn.Module):
    """VAE / LPVAE(h) / FPVAE of Zhang et al. 2022 with the MNIST (MLP) or CIFAR-10 (ResNet) networks.

    Args:
        arch: ``"mlp"`` (spec §2.4) or ``"resnet"`` (spec §2.5).
        horizon: h of the local PixelCNN head (0 = the conditionally independent VAE, 1, 2 = LPVAE);
            ``None`` = the full head (FPVAE).
        in_chans: image channels (1 MNIST, 3 CIFAR-10).
        img_size: the fixed input side (28 MNIST, 32 CIFAR-10).
        latent_dim: Dim(z) (32 MNIST, 64 CIFAR-10).
        hidden_dim: MLP width (500) or ResNet width (400).
        cond_chans: channels of the conditioning map c = Dec(z) (32 MNIST, 100 CIFAR-10).
        head_width: channels of the PixelCNN trunk (256 in [REF]).
        head_blocks: its residual blocks (5).
        head_convs_per_block: convs per residual block (3 in [REF]).
        full_kernel: the full head's mask-A kernel (7 in [REF]).
        num_mixtures: K of the DMOL (10).
        channel_autoregressive: RGB channels linearly autoregressive within a pixel (PixelCNN++, default,
            spec §6.7) or independent given the component ("ci").

    ``forward(x)`` samples z in training mode and uses μ in eval mode (override with ``sample=``) and
    returns :class:`PixelVAEOutput`; the −ELBO per image is ``out.reconstruction_nll + out.kl`` (nats).
    """

    def __init__(
        self,
        arch: str = "resnet",
        horizon: int | None = 1,
        in_chans: int = 3,
        img_size: int = 32,
        latent_dim: int = 64,
        hidden_dim: int = 400,
        cond_chans: int = 100,
        head_width: int = 256,
        head_blocks: int = 5,
        head_convs_per_block: int = 3,
        full_kernel: int = 7,
        num_mixtures: int = 10,
        channel_autoregressive: bool = True,
    ) -> None:
        super().__init__()
        if arch not in ("mlp", "resnet"):
            raise ValueError(f"arch must be 'mlp' (Zhang's MNIST networks) or 'resnet' (CIFAR-10), got {arch!r}")
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 0):
            raise ValueError(f"horizon must be an int >= 0 (0 = conditionally independent VAE) or None (full head), got {horizon!r}")
        if latent_dim < 1 or img_size < 1:
            raise ValueError(f"latent_dim and img_size must be >= 1, got {latent_dim} and {img_size}")
        self.arch = arch
        self.horizon = horizon
        self.in_chans = in_chans
        self.img_size = img_size
        self.latent_dim = latent_dim
        self.check_inputs = True  #: validate every input batch (the trainer turns it off after the first)
        likelihood = DiscretizedLogisticMixture(in_chans, num_mixtures, channel_autoregressive)
        head_args = {"width": head_width, "num_blocks": head_blocks, "convs_per_block": head_convs_per_block}
        if horizon is None:
            head: PixelCNNHead = FullPixelCNNHead(in_chans, cond_chans, likelihood.param_channels,
                                                  first_kernel=full_kernel, **head_args)
        else:
            head = LocalPixelCNNHead(in_chans, cond_chans, likelihood.param_channels, horizon, **head_args)
        if arch == "mlp":
            self.encoder: nn.Module = MLPEncoder(in_chans, img_size, latent_dim, hidden_dim)
            net: nn.Module = MLPConditioner(latent_dim, cond_chans, img_size, hidden_dim)
        else:
            self.encoder = ResNetEncoder(in_chans, img_size, latent_dim, hidden_dim)
            net = ResNetConditioner(latent_dim, cond_chans, img_size, hidden_dim)
        self.decoder = PixelVAEDecoder(net, head, likelihood)

    @property
    def stride(self) -> int:
        """Input pixels per cell of the encoder's last map (8 for the ResNet; the MLP has none: 1)."""
        return 8 if self.arch == "resnet" else 1

    @property
    def num_dims(self) -> int:
        """D = C·H·W, the dimensions bits per dimension divide by (784 MNIST, 3072 CIFAR-10)."""
        return self.in_chans * self.img_size * self.img_size

    @property
    def likelihood(self) -> DiscretizedLogisticMixture:
        return self.decoder.likelihood

    def _check(self, x: torch.Tensor, always: bool = False) -> None:
        if self.check_inputs or always:
            check_images(x, in_chans=self.in_chans, stride=self.stride, image_size=(self.img_size, self.img_size),
                         param_dtype=self.decoder.head.out.weight.dtype)

    # ----------------------------------------------------------------- VAE
    def encode(self, x: torch.Tensor) -> GaussianPosterior:
        """Validated q(z | x): :class:`GaussianPosterior` (features, μ (B, D), σ² (B, D)); ``code()`` is μ."""
        self._check(x)
        return self.encoder(x)

    def forward(self, x: torch.Tensor, *, sample: bool | None = None) -> PixelVAEOutput:
        params, post, z, nll, kl = self._elbo_pass(x, sample)
        return PixelVAEOutput(params, post.mean, post.var, z, nll, kl)

    def decode(self, code: torch.Tensor, *, generator: torch.Generator | None = None, method: str = "fast") -> torch.Tensor:
        """x ~ p(x | z = code) (B, C, H, W) in [-1, 1]: the noise of :data:`DECODE_SEED` unless ``generator`` is given."""
        return self.decoder(code, generator=generator, method=method)

    def reconstruct(self, x: torch.Tensor, *, generator: torch.Generator | None = None, method: str = "fast") -> torch.Tensor:
        """A sample of p(x | μ(x)), deterministic by default (see :meth:`decode`), (B, C, H, W) in [-1, 1]."""
        return self.decode(self.encode(x).code(), generator=generator, method=method)

    @torch.no_grad()
    def sample(self, num_samples: int, *, generator: torch.Generator | None = None, method: str = "fast") -> torch.Tensor:
        """z ~ N(0, I), then x ~ p(x | z) autoregressively: (num_samples, C, H, W) in [-1, 1]."""
        device = self.decoder.head.out.weight.device
        z = torch.randn(num_samples, self.latent_dim, generator=generator, device=device)
        return self.decoder.sample(z, generator=generator, method=method)

    @torch.no_grad()
    def sample_from(
        self, x: torch.Tensor, num_samples: int = 8, *, generator: torch.Generator | None = None, method: str = "fast",
    ) -> torch.Tensor:
        """Zhang Fig. 8: per image x', one z' ~ q(z | x'), then ``num_samples`` draws x ~ p(x | z').

        Returns (B, num_samples, C, H, W): row b shares z' (global features), the draws differ in local detail.
        """
        post = self.encode(x)
        eps = torch.randn(post.mean.shape, generator=generator, device=post.mean.device, dtype=post.mean.dtype)
        z = (post.mean + post.var.sqrt() * eps).repeat_interleave(num_samples, 0)
        out = self.decoder.sample(z, generator=generator, method=method)
        return out.view(x.shape[0], num_samples, *out.shape[1:])

    # rate, elbo_terms and log_importance_weights: DiscreteLikelihoodVAE

    # ----------------------------------------------------------------- representation protocol
    def representations(self, input_size: tuple[int, int, int] | None = None) -> dict[str, RepresentationInfo]:
        """The encoder's layers and the Gaussian latent: ``latent`` μ / z / [μ, σ] (mean / sample / embedding),
        ``latent_var`` σ². MLP: ``hidden1``, ``hidden2``; ResNet: ``stage1..3``, ``features``, ``pooled``."""
        size = (self.in_chans, self.img_size, self.img_size)
        if input_size is not None and tuple(input_size) != size:
            raise ValueError(f"{type(self).__name__} ({self.arch}) has a fixed input size {size}, got {tuple(input_size)}")
        infos: dict[str, RepresentationInfo] = {}
        if self.arch == "mlp":
            width = self.encoder.fc1[0].out_features
            for i in (1, 2):
                infos[f"hidden{i}"] = RepresentationInfo(f"hidden{i}", (width,), f"the encoder's hidden layer {i} (after BN, ReLU)")
        else:
            width = self.encoder.norm.num_features
            for i in (1, 2, 3):
                side = self.img_size // 2**i
                infos[f"stage{i}"] = RepresentationInfo(
                    f"stage{i}", (width, side, side), f"the encoder's skip stream after residual block {i}")
            side = self.img_size // 8
            infos["features"] = RepresentationInfo("features", (width, side, side), "ELU(BN(s)), the input of the latent heads")
            infos["pooled"] = RepresentationInfo("pooled", (width,), "the global average of features")
        return {**infos, **gaussian_latent_infos(self.latent_dim, "Zhang §2")}

    def represent(
        self, x: torch.Tensor, names: Sequence[str], mode: str = "mean", noise: NoiseFn | None = None
    ) -> dict[str, torch.Tensor]:
        """The layers ``names`` of a preprocessed batch (B, C, img_size, img_size), the encoder run once."""
        names = check_representation_names(self, names, mode)
        noise = noise or default_noise
        self._check(x, always=True)
        out, post = self.encoder.layers(x)
        if "pooled" in names:
            out["pooled"] = out["features"].float().mean(dim=(2, 3))
        out["latent"] = gaussian_representation(post.mean, post.var, mode, noise)
        out["latent_var"] = post.var
        return select(out, names)


# --------------------------------------------------------------------------- zoo entrypoints
def _create_pixelvae(variant: str, pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    return build_model_with_cfg(PixelVAE, variant, pretrained, **kwargs)


def _cfg(**kwargs: Any) -> PretrainedCfg:
    # no input/output convs to adapt: the DMOL parameter layout depends on the number of channels
    return PretrainedCfg(paper="zhang2022", **kwargs)


_HEADS = {"h0": (0, "VAE (h=0, conditionally independent decoder)"), "h1": (1, "LPVAE h=1"),
          "h2": (2, "LPVAE h=2"), "full": (None, "FPVAE (full PixelCNN decoder)")}
#: paper/reference sizes (spec §2.4, §2.5) and the CPU sizes (ours: spec §4, §6.5)
_SIZES: dict[str, dict[str, Any]] = {
    "mlp": {"arch": "mlp", "in_chans": 1, "img_size": 28, "latent_dim": 32, "hidden_dim": 500, "cond_chans": 32,
            "head_width": 256, "head_blocks": 5},
    "mlp_small": {"arch": "mlp", "in_chans": 1, "img_size": 28, "latent_dim": 32, "hidden_dim": 500, "cond_chans": 16,
                  "head_width": 64, "head_blocks": 2},
    "resnet": {"arch": "resnet", "in_chans": 3, "img_size": 32, "latent_dim": 64, "hidden_dim": 400, "cond_chans": 100,
               "head_width": 256, "head_blocks": 5},
    "resnet_small": {"arch": "resnet", "in_chans": 3, "img_size": 32, "latent_dim": 64, "hidden_dim": 32,
                     "cond_chans": 32, "head_width": 64, "head_blocks": 2},
}


def _defaults(size: str, head: str) -> dict[str, Any]:
    return {**_SIZES[size], "horizon": _HEADS[head][0]}


def _describe(size: str, head: str) -> str:
    net = "MNIST architecture (MLP, 28×28×1, Dim(z)=32)" if size.startswith("mlp") else \
        "CIFAR-10 architecture (ResNet, 32×32×3, Dim(z)=64)"
    scale = "CPU size (64-channel, 2-block PixelCNN head; ours)" if size.endswith("_small") else \
        "paper/reference size (256-channel, 5-block PixelCNN head)"
    table = "Table 2" if size.startswith("mlp") else "Table 3"
    return f"{_HEADS[head][1]}, {net}, {scale}; Zhang et al. 2022 {table}"


def _name(size: str, head: str) -> str:
    """("mlp_small", "h1") -> "pixelvae_mlp_h1_small"."""
    base, small = size.removesuffix("_small"), size.endswith("_small")
    return f"pixelvae_{base}_{head}" + ("_small" if small else "")


#: head -> recipe variant of the Table 3 weights (patchvae.recipes.zhang2022)
_VARIANTS = {"h0": "vae", "h1": "lpvae_h1", "h2": "lpvae_h2", "full": "fpvae"}
#: pretraining epochs of the packaged CIFAR-10 weights (docs/reproduce/zhang2022_cifar10.sh)
_CIFAR10_EPOCHS = 3


def _cifar10_weights(head: str, sha256: str, num_params: int, metrics: dict[str, float]) -> PretrainedCfg:
    """A Table 3 analogue weight trained here (weights/pixelvae_resnet_<head>_small.cifar10/)."""
    name, variant = f"{_name('resnet_small', head)}.cifar10", _VARIANTS[head]
    return _cfg(
        file=f"{name}/model.safetensors", data_config=PIXELVAE_CIFAR, sha256=sha256, num_params=num_params,
        metrics=metrics,
        **zhang2022_provenance(name, f"zhang2022_cifar10_{variant}", f"zc10_{variant}", epochs=_CIFAR10_EPOCHS),
        description=(f"{_HEADS[head][1]} (Zhang et al. 2022), CPU size, trained on the 50,000 CIFAR-10 (JPEG copy) "
                     f"training images for {_CIFAR10_EPOCHS} epochs (the paper: 1000); the Table 3 analogue in "
                     "docs/results.md"),
    )


default_cfgs: dict[str, PretrainedCfg] = {
    _name(size, head): _cfg(data_config=PIXELVAE_MNIST if size.startswith("mlp") else PIXELVAE_CIFAR,
                            description=_describe(size, head))
    for size in _SIZES for head in _HEADS
}
# weights trained here on CIFAR-10 (JPEG copy), shipped in the package (docs/reproduce/package_zhang2022_weights.py)
default_cfgs.update({
    "pixelvae_resnet_h0_small.cifar10": _cifar10_weights(
        "h0", "a58b8bfa6c11e2e4749a03e9d31e368220c811b32147ef14b28e4b02c6c0ea5e", 372_548,
        {"bpd": 5.9859, "rate_nats": 141.3, "conditional_entropy_nats": -43.72, "intrinsic_dim": 46, "linear_svm_top1": 39.47, "nonlinear_probe_top1": 51.25}),
    "pixelvae_resnet_h1_small.cifar10": _cifar10_weights(
        "h1", "1fccfac915535450f1f764a036fe728c2a36308740c3c6206cfa3a0b4cc773cd", 373_316,
        {"bpd": 4.6681, "rate_nats": 114.32, "conditional_entropy_nats": -20.28, "intrinsic_dim": 48, "linear_svm_top1": 38.02, "nonlinear_probe_top1": 50.21}),
    "pixelvae_resnet_h2_small.cifar10": _cifar10_weights(
        "h2", "3cc85e7173fb5b0a12f560c618fb4fc1680d2feace46ccfb4750b93660d78a43", 374_852,
        {"bpd": 4.5364, "rate_nats": 110.37, "conditional_entropy_nats": -17.15, "intrinsic_dim": 50, "linear_svm_top1": 37.53, "nonlinear_probe_top1": 49.57}),
    "pixelvae_resnet_full_small.cifar10": _cifar10_weights(
        "full", "3bf408f489a4de839be106eaa32a37b08269febea85f811d59e82ff0e08709f4", 573_764,
        {"bpd": 4.7061, "rate_nats": 109.5, "conditional_entropy_nats": -16.39, "intrinsic_dim": 51, "linear_svm_top1": 38.49, "nonlinear_probe_top1": 50.61}),
})


def _entry(size: str, head: str, pretrained: bool, kwargs: dict[str, Any]) -> PixelVAE:
    return _create_pixelvae(_name(size, head), pretrained, model_defaults=_defaults(size, head), **kwargs)


@register_model
def pixelvae_mlp_h0(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """Zhang et al. 2022 VAE (h=0: conditionally independent decoder), MNIST MLP networks, paper size (Table 2)."""
    return _entry("mlp", "h0", pretrained, kwargs)


@register_model
def pixelvae_mlp_h1(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """Zhang et al. 2022 LPVAE h=1 (3×3 local PixelCNN decoder), MNIST MLP networks, paper size (Table 2)."""
    return _entry("mlp", "h1", pretrained, kwargs)


@register_model
def pixelvae_mlp_h2(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """Zhang et al. 2022 LPVAE h=2 (5×5 local PixelCNN decoder), MNIST MLP networks, paper size (Table 2)."""
    return _entry("mlp", "h2", pretrained, kwargs)


@register_model
def pixelvae_mlp_full(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """Zhang et al. 2022 FPVAE (full PixelCNN decoder), MNIST MLP networks, paper size (Table 2)."""
    return _entry("mlp", "full", pretrained, kwargs)


@register_model
def pixelvae_mlp_h0_small(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """VAE (h=0), MNIST MLP networks, CPU size: 16-channel conditioning map, 64-channel 2-block head."""
    return _entry("mlp_small", "h0", pretrained, kwargs)


@register_model
def pixelvae_mlp_h1_small(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """LPVAE h=1, MNIST MLP networks, CPU size: 16-channel conditioning map, 64-channel 2-block head."""
    return _entry("mlp_small", "h1", pretrained, kwargs)


@register_model
def pixelvae_mlp_h2_small(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """LPVAE h=2, MNIST MLP networks, CPU size: 16-channel conditioning map, 64-channel 2-block head."""
    return _entry("mlp_small", "h2", pretrained, kwargs)


@register_model
def pixelvae_mlp_full_small(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """FPVAE, MNIST MLP networks, CPU size: 16-channel conditioning map, 64-channel 2-block full head."""
    return _entry("mlp_small", "full", pretrained, kwargs)


@register_model
def pixelvae_resnet_h0(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """Zhang et al. 2022 VAE (h=0: conditionally independent decoder), CIFAR-10 ResNet networks, paper size (Table 3)."""
    return _entry("resnet", "h0", pretrained, kwargs)


@register_model
def pixelvae_resnet_h1(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """Zhang et al. 2022 LPVAE h=1 (3×3 local PixelCNN decoder), CIFAR-10 ResNet networks, paper size (Table 3)."""
    return _entry("resnet", "h1", pretrained, kwargs)


@register_model
def pixelvae_resnet_h2(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """Zhang et al. 2022 LPVAE h=2 (5×5 local PixelCNN decoder), CIFAR-10 ResNet networks, paper size (Table 3)."""
    return _entry("resnet", "h2", pretrained, kwargs)


@register_model
def pixelvae_resnet_full(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """Zhang et al. 2022 FPVAE (full PixelCNN decoder), CIFAR-10 ResNet networks, paper size (Table 3)."""
    return _entry("resnet", "full", pretrained, kwargs)


@register_model
def pixelvae_resnet_h0_small(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """VAE (h=0), CIFAR-10 ResNet networks, CPU size: width 32, 32-channel conditioning map, 64-channel 2-block head."""
    return _entry("resnet_small", "h0", pretrained, kwargs)


@register_model
def pixelvae_resnet_h1_small(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """LPVAE h=1, CIFAR-10 ResNet networks, CPU size: width 32, 32-channel conditioning map, 64-channel 2-block head."""
    return _entry("resnet_small", "h1", pretrained, kwargs)


@register_model
def pixelvae_resnet_h2_small(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """LPVAE h=2, CIFAR-10 ResNet networks, CPU size: width 32, 32-channel conditioning map, 64-channel 2-block head."""
    return _entry("resnet_small", "h2", pretrained, kwargs)


@register_model
def pixelvae_resnet_full_small(pretrained: bool = False, **kwargs: Any) -> PixelVAE:
    """FPVAE, CIFAR-10 ResNet networks, CPU size: width 32, 32-channel conditioning map, 64-channel 2-block full head."""
    return _entry("resnet_small", "full", pretrained, kwargs)
