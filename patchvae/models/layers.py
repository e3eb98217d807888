"""Building blocks shared by the model families: the pyramid decoder, Gaussian sampling and KL, input checks."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "PyramidDecoder",
    "check_images",
    "gaussian_kl_per_image",
    "gaussian_log_importance_weights",
    "sample_gaussian",
    "upcast",
]


def _deconv_bn_act(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.ConvTranspose2d(in_chs, out_chs, kernel_size, stride, padding, bias=False),
            bn=nn.BatchNorm2d(out_chs),
            act=nn.LeakyReLU(0.2, inplace=True),
        )
    )


class PyramidDecoder(nn.Module):
    """G(x | z): the "pyramid" decoder of supplement Tables 3-4.

    Each 4×4/2 transposed conv doubles the spatial size and halves the width, ending in a tanh:

    * ``expand`` (β-VAE and BiGAN only, ``bottleneck_size=k``): k×k deconv, latent vector -> ``width``
      channels at k×k (+BN+LeakyReLU(0.2)). Absent for PatchVAE, whose ẑ is already a map.
    * ``stem``: 1×1 deconv to ``width·stride/2`` channels (256 for stride 8) + BN + LeakyReLU(0.2).
    * ``blocks``: log2(stride)-1 × [4×4/2 deconv halving the width + BN + LeakyReLU(0.2)].
    * ``head``: 4×4/2 deconv to the image channels, then tanh.

    Shapes: (B, latent_chans, h, w) -> (B, out_chans, h·stride, w·stride); with ``bottleneck_size=k``
    the input is (B, latent_chans) or (B, latent_chans, 1, 1) and the output is k·stride square.
    """

    def __init__(
        self,
        latent_chans: int,
        out_chans: int = 3,
        stride: int = 8,
        width: int = 64,
        bottleneck_size: int | None = None,
    ) -> None:
        super().__init__()
        num_up = int(math.log2(stride))
        if 2**num_up != stride or num_up < 1:
            raise ValueError(f"decoder stride must be a power of two >= 2, got {stride}")
        self.stride = stride
        self.bottleneck_size = bottleneck_size
        if bottleneck_size is None:
            self.expand = nn.Identity()
            in_chs = latent_chans
        else:
            self.expand = _deconv_bn_act(latent_chans, width, kernel_size=bottleneck_size)
            in_chs = width
        top = width * 2 ** (num_up - 1)
        self.stem = _deconv_bn_act(in_chs, top, kernel_size=1)
        self.blocks = nn.Sequential(
            *[_deconv_bn_act(width * 2**i, width * 2 ** (i - 1), 4, 2, 1) for i in range(num_up - 1, 0, -1)]
        )
        self.head = nn.ConvTranspose2d(width, out_chans, 4, 2, 1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.bottleneck_size is not None and z.ndim == 2:
            z = z[:, :, None, None]
        return torch.tanh(self.head(self.blocks(self.stem(self.expand(z)))))


def sample_gaussian(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Reparameterised sample of N(mean, var): ``mean + sqrt(var) · ε``, ε ~ N(0, I)."""
    return mean + var.sqrt() * torch.randn_like(mean)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (posterior maths stays in full precision under autocast)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def check_images(
    x: object,
    *,
    in_chans: int,
    stride: int,
    image_size: tuple[int, int] | None = None,
    param_dtype: torch.dtype | None = None,
    check_finite: bool = True,
) -> None:
    """Raise a ``TypeError``/``ValueError`` that says what was expected if ``x`` is not a valid batch.

    A valid batch is a floating-point tensor (B, in_chans, H, W) with H and W divisible by the
    network ``stride`` (equal to ``image_size`` for fixed-bottleneck models), of the model's dtype
    (any float dtype under autocast), without NaN/Inf.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected images as a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"expected a floating-point image tensor, got dtype {x.dtype}. Models take normalised float "
            "images: convert uint8 images with the model's transforms (patchvae.data.create_transform(model)), "
            "or pass raw images to patchvae.extract_features, which preprocesses them."
        )
    if x.ndim != 4:
        hint = " For a single image use x.unsqueeze(0)." if x.ndim == 3 else ""
        raise ValueError(f"expected a 4-D batch (B, C, H, W), got shape {tuple(x.shape)}.{hint}")
    _, chans, height, width = x.shape
    if chans != in_chans:
        raise ValueError(
            f"expected {in_chans} input channel(s), got {chans} (input shape {tuple(x.shape)}). Create the "
            f"model with in_chans={chans}, or convert the images (e.g. grayscale -> RGB with "
            "x.expand(-1, 3, -1, -1), RGB -> grayscale with x.mean(1, keepdim=True))."
        )
    if image_size is not None and (height, width) != tuple(image_size):
        raise ValueError(
            f"this model has a fixed {image_size[0]}x{image_size[1]} bottleneck but got {height}x{width} "
            f"images; resize/crop them to {image_size[0]}x{image_size[1]} or create the model with "
            f"img_size={height}."
        )
    if height % stride or width % stride or height == 0 or width == 0:
        fit_h, fit_w = (max(stride, -(-s // stride) * stride) for s in (height, width))
        raise ValueError(
            f"spatial size {height}x{width} is not a positive multiple of the network stride {stride}; "
            f"resize or pad the images (e.g. to {fit_h}x{fit_w})."
        )
    if param_dtype is not None and x.dtype != param_dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(
            f"input dtype {x.dtype} does not match the model's parameter dtype {param_dtype}; "
            f"call x.to({param_dtype}) or run under torch.autocast."
        )
    if check_finite and not torch.compiler.is_compiling() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"input contains {bad} NaN/Inf value(s); clean or drop those images before the model.")


# --------------------------------------------------------------------------- diagonal Gaussian latents (every VAE)
_VAR_MIN = 1e-30
_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl_per_image(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per item in nats: ½ Σ (μ² + σ² − log σ² − 1) over all but the batch axis, float32, (B,)."""
    mean, var = mean.float(), var.float()
    return 0.5 * (mean.square() + var - var.clamp_min(_VAR_MIN).log() - 1.0).flatten(1).sum(1)


def gaussian_log_importance_weights(
    mean: torch.Tensor, var: torch.Tensor, log_likelihood: Callable[[torch.Tensor], torch.Tensor], num_samples: int
) -> torch.Tensor:
    """log p(x | z_k) + log p(z_k) − log q(z_k | x), z_k ~ q = N(μ, σ²), p(z) = N(0, I): (B, num_samples) nats.

    ``log_likelihood(z)`` gives log p(x | z) per item (B,) for a batch of codes z shaped like ``mean``.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    std = var.sqrt()
    log_std = var.clamp_min(_VAR_MIN).log().mul(0.5).float()
    weights = []
    for _ in range(num_samples):
        eps = torch.randn_like(mean)
        z = mean + std * eps
        log_pz = -0.5 * (z.float().square() + _LOG_2PI).flatten(1).sum(1)
        log_qz = (-0.5 * (eps.float().square() + _LOG_2PI) - log_std).flatten(1).sum(1)
        weights.append(log_likelihood(z) + log_pz - log_qz)
    return torch.stack(weights, 1)
