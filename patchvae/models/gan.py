"""Adversarial parts of the baselines: the VAE-GAN discriminator and BiGAN (Donahue et al. 2017).

* :class:`Discriminator` (supplement A): "four conv layers, two of which have batchnorm". Used by
  the '-GAN' rows of paper Table 1 (Larsen et al. 2016 style: real images vs reconstructions).
* :class:`BiGAN`: encoder E per supplement Table 1/2 (BiGAN column), generator G per Tables 3/4
  (same as the β-VAE decoder) and a joint discriminator D(x, z). The supplement does not give
  D(x, z); ours reuses the image discriminator's conv trunk and fuses it with z by an MLP.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from timm.layers import ConvNormAct
from torch import nn

from ..data.config import CIFAR, SCENES_64
from ._builder import build_model_with_cfg
from ._pretrained import PretrainedCfg
from ._protocol import (
    NoiseFn,
    RepresentationInfo,
    check_representation_names,
    model_input_size,
    select,
    trunk_representation_infos,
    trunk_representations,
)
from ._registry import register_model
from .backbones import ResNetTrunk, build_backbone
from .beta_vae import bottleneck_size
from .layers import PyramidDecoder, check_images, upcast

__all__ = ["BiGAN", "BiGANCode", "BiGANEncoder", "BiGANOutput", "Discriminator", "JointDiscriminator"]


def _conv_trunk(in_chans: int, width: int, stride: int) -> nn.Sequential:
    """log2(stride) 4×4/2 convs with LeakyReLU(0.2); all but the first with BN. (B, C, H, W) -> (B, width·stride/2, H/stride, W/stride)."""
    num_down = int(math.log2(stride))
    if 2**num_down != stride or num_down < 1:
        raise ValueError(f"discriminator stride must be a power of two >= 2, got {stride}")
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv0=nn.Conv2d(in_chans, width, 4, 2, 1, bias=False), act0=nn.LeakyReLU(0.2, inplace=True)
    )
    for i in range(1, num_down):
        layers[f"conv{i}"] = nn.Conv2d(width * 2 ** (i - 1), width * 2**i, 4, 2, 1, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm2d(width * 2**i)
        layers[f"act{i}"] = nn.LeakyReLU(0.2, inplace=True)
    return nn.Sequential(layers)


class Discriminator(nn.Module):
    """Image discriminator of the '-GAN' variants: 3 strided convs (two with BN) + a 1×1 conv to one logit
    per location, averaged over locations.

    Shapes: (B, C, H, W) with H, W divisible by ``stride`` -> logits (B,).
    """

    def __init__(self, in_chans: int = 3, width: int = 64, stride: int = 8) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.stride = stride
        self.features = _conv_trunk(in_chans, width, stride)
        self.classifier = nn.Conv2d(width * stride // 2, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upcast(self.classifier(self.features(x))).mean(dim=(1, 2, 3))


class BiGANCode(NamedTuple):
    """E(x) of BiGAN, a deterministic code (a point mass, not a distribution)."""

    features: torch.Tensor  #: f = φ(x), (B, d_e, h, w)
    latent: torch.Tensor  #: z = E(x), (B, D)

    def code(self) -> torch.Tensor:
        """z = E(x) (B, D): the generator's input."""
        return self.latent


class BiGANEncoder(nn.Module):
    """E(x) of BiGAN (supplement Table 1/2, BiGAN column): 789,792 parameters at 32×32×3, D=96."""

    def __init__(self, backbone: ResNetTrunk, latent_dim: int, img_size: int, reduce_width: int = 64) -> None:
        super().__init__()
        self.backbone = backbone
        self.reduce = ConvNormAct(backbone.num_features, reduce_width, kernel_size=1)
        self.proj = nn.Conv2d(reduce_width, latent_dim, bottleneck_size(img_size, backbone))

    def forward(self, x: torch.Tensor) -> BiGANCode:
        """(B, C, H, W) -> :class:`BiGANCode`: f (B, d_e, h, w), z (B, D)."""
        return self.posterior(self.backbone.forward_features(x))

    def posterior(self, f: torch.Tensor) -> BiGANCode:
        """The projection of φ's feature map f (B, d_e, h, w) -> :class:`BiGANCode`."""
        return BiGANCode(f, self.proj(self.reduce(f)).flatten(1))


class JointDiscriminator(nn.Module):
    """D(x, z) of BiGAN: image conv trunk (as :class:`Discriminator`) pooled to a vector, z embedded by a
    linear layer, both concatenated and scored by a 2-layer MLP. (B, C, H, W), (B, D) -> logits (B,)."""

    def __init__(self, in_chans: int, latent_dim: int, width: int = 64, stride: int = 8, hidden: int = 512) -> None:
        super().__init__()
        self.features = _conv_trunk(in_chans, width, stride)
        img_chs = width * stride // 2
        self.embed_latent = nn.Sequential(nn.Linear(latent_dim, img_chs), nn.LeakyReLU(0.2, inplace=True))
        self.classifier = nn.Sequential(
            nn.Linear(2 * img_chs, hidden), nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        img = self.features(x).mean(dim=(2, 3))
        joint = torch.cat([img, self.embed_latent(z.to(img.dtype))], dim=1)
        return upcast(self.classifier(joint)).squeeze(1)


class BiGANOutput(NamedTuple):
    """Everything :meth:`BiGAN.forward` computes, by name."""

    latent: torch.Tensor  #: E(x), (B, D)
    prior_sample: torch.Tensor  #: z ~ N(0, I), (B, D)
    generated: torch.Tensor  #: G(z), (B, C, H, W), in [-1, 1]
    real_logits: torch.Tensor  #: D(x, E(x)), (B,)
    fake_logits: torch.Tensor  #: D(G(z), z), (B,)


class BiGAN(nn.Module):
    """BiGAN / ALI baseline with the paper's encoder and generator.

    Args:
        latent_dim: D (96). in_chans: image channels. img_size: input side (32 or 64).
        backbone: φ of the encoder. reduce_width: 1×1 reduction width (64).
        decoder_width: generator width (64). disc_width: discriminator width (64).
    """

    def __init__(
        self,
        latent_dim: int = 96,
        in_chans: int = 3,
        img_size: int = 32,
        backbone: str = "resnet9",
        reduce_width: int = 64,
        decoder_width: int = 64,
        disc_width: int = 64,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.in_chans = in_chans
        self.img_size = img_size
        self.check_inputs = True
        trunk = build_backbone(backbone, in_chans)
        self.encoder = BiGANEncoder(trunk, latent_dim, img_size, reduce_width)
        self.decoder = PyramidDecoder(
            latent_dim, in_chans, stride=trunk.stride, width=decoder_width,
            bottleneck_size=bottleneck_size(img_size, trunk),
        )
        self.discriminator = JointDiscriminator(in_chans, latent_dim, width=disc_width)

    @property
    def backbone(self) -> ResNetTrunk:
        return self.encoder.backbone

    @property
    def generator(self) -> PyramidDecoder:
        """G, the same module as ``decoder``."""
        return self.decoder

    @property
    def stride(self) -> int:
        return self.encoder.backbone.stride

    def _check(self, x: torch.Tensor, always: bool = False) -> None:
        if self.check_inputs or always:
            check_images(
                x, in_chans=self.in_chans, stride=self.stride,
                image_size=(self.img_size, self.img_size), param_dtype=self.decoder.head.weight.dtype,
            )

    def encode(self, x: torch.Tensor) -> BiGANCode:
        """Validated E(x): (B, C, H, W) -> :class:`BiGANCode` (f, z)."""
        self._check(x)
        return self.encoder(x)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): (B, D) -> (B, C, img_size, img_size)."""
        return self.decoder(z.to(self.decoder.head.weight.dtype))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """G(z), the protocol name of :meth:`generate`: (B, D) -> (B, C, img_size, img_size) in [-1, 1]."""
        return self.generate(code)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """G(E(x)): (B, C, img_size, img_size) in [-1, 1]."""
        return self.generate(self.encode(x).latent)

    @torch.no_grad()
    def sample(self, num_samples: int) -> torch.Tensor:
        """G(z) for z ~ N(0, I): (num_samples, C, img_size, img_size) in [-1, 1]."""
        return self.generate(torch.randn(num_samples, self.latent_dim, device=self.decoder.head.weight.device))

    # ----------------------------------------------------------------- representation protocol
    def representations(self, input_size: tuple[int, int, int] | None = None) -> dict[str, RepresentationInfo]:
        """φ's layers and ``latent``, z = E(x) (deterministic: the same in every mode)."""
        infos = trunk_representation_infos(self.backbone, model_input_size(self, input_size))
        infos["latent"] = RepresentationInfo("latent", (self.latent_dim,), "z = E(x), the encoder's code")
        return infos

    def represent(
        self, x: torch.Tensor, names: Sequence[str], mode: str = "mean", noise: NoiseFn | None = None
    ) -> dict[str, torch.Tensor]:
        """The layers ``names`` of a preprocessed batch (B, C, img_size, img_size), φ run once."""
        names = check_representation_names(self, names, mode)
        self._check(x, always=True)
        out, f = trunk_representations(self.backbone, x, names)
        if "latent" in names:
            out["latent"] = self.encoder.posterior(f).latent
        return select(out, names)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> BiGANOutput:
        """Encode real images, generate from ``z`` (default: fresh N(0, I) samples) and score both pairs."""
        latent = self.encode(x).latent
        if z is None:
            z = torch.randn(x.shape[0], self.latent_dim, device=x.device, dtype=latent.dtype)
        generated = self.generate(z)
        return BiGANOutput(
            latent=latent,
            prior_sample=z,
            generated=generated,
            real_logits=self.discriminator(x, latent),
            fake_logits=self.discriminator(generated, z),
        )


# --------------------------------------------------------------------------- zoo entrypoints
def _cfg(**kwargs: Any) -> PretrainedCfg:
    return PretrainedCfg(
        input_convs=("encoder.backbone.conv1", "discriminator.features.conv0"), output_convs=("decoder.head",), **kwargs
    )


default_cfgs: dict[str, PretrainedCfg] = {
    "bigan_resnet9_32": _cfg(data_config=CIFAR, description="BiGAN, ResNet-9 φ encoder, 32×32 (supplement Tables 1, 3)"),
    "bigan_resnet9_64": _cfg(data_config=SCENES_64, description="BiGAN, ResNet-9 φ encoder, 64×64 (supplement Tables 2, 4)"),
    "vaegan_discriminator": PretrainedCfg(
        input_convs=("features.conv0",), data_config=CIFAR, description="VAE-GAN discriminator (supplement A)"
    ),
}


@register_model
def bigan_resnet9_32(pretrained: bool = False, **kwargs: Any) -> BiGAN:
    """BiGAN for 32×32 images: ResNet-9 φ encoder (789,792 parameters), pyramid generator, joint D(x, z)."""
    defaults = {"latent_dim": 96, "img_size": 32, "backbone": "resnet9"}
    return build_model_with_cfg(BiGAN, "bigan_resnet9_32", pretrained, model_defaults=defaults, **kwargs)


@register_model
def bigan_resnet9_64(pretrained: bool = False, **kwargs: Any) -> BiGAN:
    """BiGAN for 64×64 images: ResNet-9 φ encoder (1,084,704 parameters), pyramid generator, joint D(x, z)."""
    defaults = {"latent_dim": 96, "img_size": 64, "backbone": "resnet9"}
    return build_model_with_cfg(BiGAN, "bigan_resnet9_64", pretrained, model_defaults=defaults, **kwargs)


@register_model
def vaegan_discriminator(pretrained: bool = False, **kwargs: Any) -> Discriminator:
    """Image discriminator of the '-GAN' variants (supplement A): four convs, two with batchnorm."""
    return build_model_with_cfg(Discriminator, "vaegan_discriminator", pretrained, **kwargs)
