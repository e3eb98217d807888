"""β-VAE baseline (Higgins et al. 2017) with the PatchVAE paper's architecture (supplement Tables 1-4).

::

    x ─φ─► f (B, d_e, h, w) ─1×1 conv 64 + BN + ReLU─► (B, 64, h, w) ─h×w convs─► μ, log σ² (B, D)
    z ~ N(μ, σ²) ─G (h×w deconv to 64, then the pyramid decoder)─► x̂

The bottleneck convolution spans the whole h×w feature map (4×4 at 32×32 input, 8×8 at 64×64),
so the model has a fixed input size, ``img_size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from timm.layers import ConvNormAct
from torch import nn

from .._deprecation import deprecated
from ..data.config import CIFAR, IMAGENET, SCENES_64
from ._builder import build_model_with_cfg
from ._pretrained import PretrainedCfg, cifar10_weights, fmnist_weights
from ._protocol import (
    NoiseFn,
    RepresentationInfo,
    check_representation_names,
    default_noise,
    gaussian_latent_infos,
    gaussian_representation,
    model_input_size,
    select,
    trunk_representation_infos,
    trunk_representations,
)
from ._registry import register_model
from .backbones import ResNetTrunk, build_backbone
from .layers import PyramidDecoder, check_images, sample_gaussian, upcast

__all__ = ["BetaVAE", "BetaVAEOutput", "GaussianEncoder", "GaussianPosterior", "bottleneck_size"]


class GaussianPosterior(NamedTuple):
    """Q(z | x) = N(μ, σ²) computed by :class:`GaussianEncoder` (a tuple: ``f, mean, var = posterior``)."""

    features: torch.Tensor  #: f = φ(x), (B, d_e, h, w)
    mean: torch.Tensor  #: μ, (B, D)
    var: torch.Tensor  #: σ², (B, D)

    def code(self) -> torch.Tensor:
        """The posterior mean μ (B, D): the decoder's input in eval mode."""
        return self.mean


class BetaVAEOutput(NamedTuple):
    """Everything :meth:`BetaVAE.forward` computes, by name."""

    reconstruction: torch.Tensor  #: x̂, (B, C, H, W), in [-1, 1]
    features: torch.Tensor  #: f = φ(x), (B, d_e, h, w)
    latent_mean: torch.Tensor  #: μ, (B, D)
    latent_var: torch.Tensor  #: σ², (B, D)
    latent_sample: torch.Tensor  #: z, (B, D)


def bottleneck_size(img_size: int, backbone: ResNetTrunk) -> int:
    """Side of φ's output map for ``img_size`` inputs: the kernel of the fixed-size bottleneck convs."""
    if img_size <= 0 or img_size % backbone.stride:
        raise ValueError(f"img_size must be a positive multiple of the backbone stride {backbone.stride}, got {img_size}")
    return img_size // backbone.stride


class GaussianEncoder(nn.Module):
    """Q(z | x) of the β-VAE (supplement Table 1/2, β-VAE column): 888,192 parameters at 32×32×3, D=96."""

    def __init__(self, backbone: ResNetTrunk, latent_dim: int, img_size: int, reduce_width: int = 64) -> None:
        super().__init__()
        self.backbone = backbone
        kernel = bottleneck_size(img_size, backbone)
        self.reduce = ConvNormAct(backbone.num_features, reduce_width, kernel_size=1)
        self.mean = nn.Conv2d(reduce_width, latent_dim, kernel)
        self.logvar = nn.Conv2d(reduce_width, latent_dim, kernel)

    def forward(self, x: torch.Tensor) -> GaussianPosterior:
        """(B, C, H, W) -> :class:`GaussianPosterior`: f (B, d_e, h, w), μ (B, D), σ² (B, D)."""
        return self.posterior(self.backbone.forward_features(x))

    def posterior(self, f: torch.Tensor) -> GaussianPosterior:
        """The bottleneck on φ's feature map f (B, d_e, h, w) -> :class:`GaussianPosterior`."""
        h = self.reduce(f)
        mean = upcast(self.mean(h)).flatten(1)
        var = upcast(self.logvar(h)).flatten(1).exp()
        return GaussianPosterior(f, mean, var)


class BetaVAE(nn.Module):
    """β-VAE with a ResNet φ encoder and the pyramid decoder (supplement Tables 1-4).

    Args:
        latent_dim: D, the size of z (96 = N·d_p of the matching PatchVAE).
        in_chans: image channels.
        img_size: input side length (32 for CIFAR-100, 64 for Indoor67/Places205, 224 for ImageNet).
        backbone: φ, ``"resnet9"`` or ``"resnet18"``.
        reduce_width: channels of the 1×1 reduction before the bottleneck (64).
        decoder_width: width of the decoder's last hidden layer (64).

    ``forward`` samples z in training mode and uses μ in eval mode (override with ``sample=``).
    """

    def __init__(
        self,
        latent_dim: int = 96,
        in_chans: int = 3,
        img_size: int = 32,
        backbone: str = "resnet9",
        reduce_width: int = 64,
        decoder_width: int = 64,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.in_chans = in_chans
        self.img_size = img_size
        self.check_inputs = True  #: validate every input batch
        trunk = build_backbone(backbone, in_chans)
        self.encoder = GaussianEncoder(trunk, latent_dim, img_size, reduce_width)
        self.decoder = PyramidDecoder(
            latent_dim,
            in_chans,
            stride=trunk.stride,
            width=decoder_width,
            bottleneck_size=bottleneck_size(img_size, trunk),
        )

    @property
    def backbone(self) -> ResNetTrunk:
        return self.encoder.backbone

    @property
    def stride(self) -> int:
        return self.encoder.backbone.stride

    def _check(self, x: torch.Tensor, always: bool = False) -> None:
        if self.check_inputs or always:
            check_images(
                x,
                in_chans=self.in_chans,
                stride=self.stride,
                image_size=(self.img_size, self.img_size),
                param_dtype=self.decoder.head.weight.dtype,
            )

    def encode(self, x: torch.Tensor) -> GaussianPosterior:
        """Validated Q(z | x): :class:`GaussianPosterior` (f, μ, σ²)."""
        self._check(x)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G: z (B, D) -> x̂ (B, C, img_size, img_size)."""
        return self.decoder(z.to(self.decoder.head.weight.dtype))

    def forward(self, x: torch.Tensor, *, sample: bool | None = None) -> BetaVAEOutput:
        f, mean, var = self.encode(x)
        z = sample_gaussian(mean, var) if (self.training if sample is None else sample) else mean
        return BetaVAEOutput(reconstruction=self.decode(z), features=f, latent_mean=mean, latent_var=var, latent_sample=z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x̂ = G(μ), the eval-mode forward: (B, C, img_size, img_size) in [-1, 1]."""
        return self.forward(x, sample=False).reconstruction

    @torch.no_grad()
    def sample(self, num_samples: int) -> torch.Tensor:
        """Decode z ~ N(0, I): (num_samples, C, img_size, img_size) in [-1, 1]."""
        z = torch.randn(num_samples, self.latent_dim, device=self.decoder.head.weight.device)
        return self.decode(z)

    @deprecated("0.1.0", "0.2.0", "BetaVAE.sample")
    def sample_prior(self, num_samples: int) -> torch.Tensor:
        """Deprecated alias of :meth:`sample`."""
        return self.sample(num_samples)

    def rate(self, x: torch.Tensor) -> torch.Tensor:
        """KL(N(μ, σ²) ‖ N(0, I)) per image in nats, (B,)."""
        post = self.encode(x)
        var = post.var.float()
        return (0.5 * (post.mean.float().square() + var - var.clamp_min(1e-30).log() - 1.0)).sum(1)

    # ----------------------------------------------------------------- representation protocol
    def representations(self, input_size: tuple[int, int, int] | None = None) -> dict[str, RepresentationInfo]:
        """φ's layers and the Gaussian latent's: ``latent`` μ / z / [μ, σ] (mean / sample / embedding), ``latent_var`` σ²."""
        infos = trunk_representation_infos(self.backbone, model_input_size(self, input_size))
        return {**infos, **gaussian_latent_infos(self.latent_dim)}

    def represent(
        self, x: torch.Tensor, names: Sequence[str], mode: str = "mean", noise: NoiseFn | None = None
    ) -> dict[str, torch.Tensor]:
        """The layers ``names`` of a preprocessed batch (B, C, img_size, img_size), φ run once."""
        names = check_representation_names(self, names, mode)
        noise = noise or default_noise
        self._check(x, always=True)
        out, f = trunk_representations(self.backbone, x, names)
        post = self.encoder.posterior(f)
        out["latent"] = gaussian_representation(post.mean, post.var, mode, noise)
        out["latent_var"] = post.var
        return select(out, names)


# --------------------------------------------------------------------------- zoo entrypoints
def _create_beta_vae(variant: str, pretrained: bool = False, **kwargs: Any) -> BetaVAE:
    return build_model_with_cfg(BetaVAE, variant, pretrained, **kwargs)


def _cfg(**kwargs: Any) -> PretrainedCfg:
    return PretrainedCfg(input_convs=("encoder.backbone.conv1",), output_convs=("decoder.head",), **kwargs)


default_cfgs: dict[str, PretrainedCfg] = {
    "beta_vae_resnet9_32": _cfg(data_config=CIFAR, description="β-VAE, ResNet-9 φ, 32×32 (supplement Tables 1, 3)"),
    # the first tag is the default weights of ``create("beta_vae_resnet9_32", pretrained=True)``
    "beta_vae_resnet9_32.cifar10": _cfg(
        **cifar10_weights("beta_vae_resnet9_32.cifar10", "cifar10_beta_vae"),
        sha256="56297c1f06e3ea3b62bd7ca943afc3d8b8cd0839ef65fad3b95e859607bd271c",
        num_params=1_662_336,
        metrics={"conv1_top1": 68.86, "conv3_top1": 63.18, "conv5_top1": 51.99, "conv5_top5": 93.54, "linear_probe_top1": 45.78,
                 "knn_top1": 40.65, "rate_nats": 109.62, "intrinsic_dim": 74},
        description=(
            "β-VAE baseline (β=1), ResNet-9 φ, 32×32 RGB, trained on the 50,000 CIFAR-10 (JPEG copy) training "
            "images with the same recipe and budget as patchvae_resnet9.cifar10 (30 epochs)."
        ),
    ),
    "beta_vae_resnet9_32.cifar10_e90": _cfg(
        **cifar10_weights("beta_vae_resnet9_32.cifar10_e90", "cifar10_beta_vae", epochs=90),
        sha256="ca04cc8d90ce93515ff7a3a0790fa96ddaa91ba6abb081158fcf4f1ab7cf2d6e",
        num_params=1_662_336,
        metrics={"conv1_top1": 69.85, "conv3_top1": 64.3, "conv5_top1": 50.59, "conv5_top5": 93.2, "linear_probe_top1": 45.24, "knn_top1": 40.34, "rate_nats": 120.1, "intrinsic_dim": 93},
        description=(
            "β-VAE baseline (β=1), ResNet-9 φ, 32×32 RGB, trained on the 50,000 CIFAR-10 (JPEG copy) training images with "
            "the same recipe and budget as patchvae_resnet9.cifar10_e90 (90 epochs): beta_vae_resnet9_32.cifar10 trained 60"
            " epochs more (this run's epoch-30 checkpoint is that file bit for bit). Stored in float16; Conv1 fine-tuned from "
            "this float16 file (docs/results.md)."
        ),
    ),
    "beta_vae_resnet9_32.cifar10_lw": _cfg(
        **cifar10_weights("beta_vae_resnet9_32.cifar10_lw", "cifar10_beta_vae_lw"),
        sha256="5b9d3e1255af9a54d85603055919ceccb334942ea9f5369221b809e2081ff95e",
        num_params=1_662_336,
        metrics={"conv1_top1": 70.21, "conv3_top1": 64.47, "conv5_top1": 52.74, "conv5_top5": 93.56, "linear_probe_top1": 45.0,
                 "knn_top1": 40.74, "rate_nats": 123.56, "intrinsic_dim": 80},
        description=(
            "β-VAE baseline + L_w (β=1, the paper's weighted reconstruction loss on 8×8 patches), ResNet-9 φ, 32×32 "
            "RGB, trained on the 50,000 CIFAR-10 (JPEG copy) training images with the same recipe and budget as "
            "patchvae_resnet9.cifar10_lw (30 epochs)."
        ),
    ),
    "beta_vae_resnet9_32.cifar10_lw_e90": _cfg(
        **cifar10_weights("beta_vae_resnet9_32.cifar10_lw_e90", "cifar10_beta_vae_lw", epochs=90),
        sha256="f2bab85ef00af74c78445456471414457aef12429fb412e5f92c715117a4743b",
        num_params=1_662_336,
        metrics={"conv1_top1": 71.1, "conv3_top1": 65.43, "conv5_top1": 52.02, "conv5_top5": 93.45, "linear_probe_top1": 45.17, "knn_top1": 39.52, "rate_nats": 133.86, "intrinsic_dim": 96},
        description=(
            "β-VAE baseline + L_w (β=1, the paper's weighted reconstruction loss on 8×8 patches), ResNet-9 φ, 32×32 RGB, "
            "trained on the 50,000 CIFAR-10 (JPEG copy) training images with the same recipe and budget as "
            "patchvae_resnet9.cifar10_lw_e90 (the paper's 90 epochs): the command of beta_vae_resnet9_32.cifar10_lw, 60 "
            "epochs longer. Stored in float16. Conv1 and Conv3 fine-tuned from this float16 file (docs/results.md)."
        ),
    ),
    "beta_vae_resnet9_32.fmnist": _cfg(
        **fmnist_weights("beta_vae_resnet9_32.fmnist", "fmnist_beta_vae"),
        sha256="a06c2deb9cd64c9e01749e899a7c77153eb86abd7701d57a2fc5429dc6fe9c29",
        num_params=1_654_016,
        metrics={"conv1_top1": 90.76, "conv3_top1": 90.07, "conv5_top1": 87.26, "conv5_top5": 99.81,
                 "linear_probe_top1": 84.81, "knn_top1": 84.56},
        description=(
            "β-VAE baseline (β=1, the paper's Table 1 baseline), ResNet-9 φ, 32×32, 1 channel, 20 epochs on "
            "the 60,000 Fashion-MNIST training images with the same budget as the PatchVAE weights."
        ),
    ),
    "beta_vae_resnet9_64": _cfg(data_config=SCENES_64, description="β-VAE, ResNet-9 φ, 64×64 (supplement Tables 2, 4)"),
    "beta_vae_resnet18_224": _cfg(data_config=IMAGENET, description="β-VAE, ResNet-18 φ, 224×224 (paper Table 2)"),
}


@register_model
def beta_vae_resnet9_32(pretrained: bool = False, **kwargs: Any) -> BetaVAE:
    """β-VAE for 32×32 images: ResNet-9 φ, 4×4 bottleneck convs, D=96 (supplement Tables 1 and 3)."""
    defaults = {"latent_dim": 96, "img_size": 32, "backbone": "resnet9"}
    return _create_beta_vae("beta_vae_resnet9_32", pretrained, model_defaults=defaults, **kwargs)


@register_model
def beta_vae_resnet9_64(pretrained: bool = False, **kwargs: Any) -> BetaVAE:
    """β-VAE for 64×64 images: ResNet-9 φ, 8×8 bottleneck convs, D=96 (supplement Tables 2 and 4)."""
    defaults = {"latent_dim": 96, "img_size": 64, "backbone": "resnet9"}
    return _create_beta_vae("beta_vae_resnet9_64", pretrained, model_defaults=defaults, **kwargs)


@register_model
def beta_vae_resnet18_224(pretrained: bool = False, **kwargs: Any) -> BetaVAE:
    """β-VAE for ImageNet: ResNet-18 φ, 7×7 bottleneck convs, D=1024 = N·d_p of patchvae_resnet18 (paper Table 2)."""
    defaults = {"latent_dim": 1024, "img_size": 224, "backbone": "resnet18"}
    return _create_beta_vae("beta_vae_resnet18_224", pretrained, model_defaults=defaults, **kwargs)
