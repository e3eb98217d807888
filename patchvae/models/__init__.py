"""The model zoo: PatchVAE, β-VAE, BiGAN, the VAE-GAN discriminator and the Table 5 classifier."""

from .backbones import BACKBONES, ResNetTrunk, build_backbone
from .beta_vae import BetaVAE, BetaVAEOutput, GaussianEncoder
from .classifier import FREEZE_PRESETS, Classifier
from .gan import BiGAN, BiGANEncoder, BiGANOutput, Discriminator, JointDiscriminator
from .layers import PyramidDecoder
from .patchvae import PatchEncoder, PatchPosterior, PatchVAE, PatchVAEOutput

__all__ = [
    "BACKBONES",
    "FREEZE_PRESETS",
    "BetaVAE",
    "BetaVAEOutput",
    "BiGAN",
    "BiGANEncoder",
    "BiGANOutput",
    "Classifier",
    "Discriminator",
    "GaussianEncoder",
    "JointDiscriminator",
    "PatchEncoder",
    "PatchPosterior",
    "PatchVAE",
    "PatchVAEOutput",
    "PyramidDecoder",
    "ResNetTrunk",
    "build_backbone",
]
