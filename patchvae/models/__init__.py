"""The model zoo: PatchVAE, β-VAE, BiGAN, the VAE-GAN discriminator and the Table 5 classifier.

    import patchvae
    model = patchvae.models.create("patchvae_resnet9", pretrained=True)
    phi = patchvae.models.create_backbone("patchvae_resnet9", pretrained=True)
    patchvae.models.list_models(), patchvae.models.list_pretrained()

Importing this package also registers the backbone families in timm (see ``_timm.py``).
"""

from ._builder import create, create_backbone, from_pretrained, load_weights
from ._export import save_pretrained
from ._pretrained import PretrainedCfg
from ._registry import get_pretrained_cfg, is_model, list_models, list_pretrained, register_model
from ._weights import WeightsError
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
    "PretrainedCfg",
    "PyramidDecoder",
    "ResNetTrunk",
    "WeightsError",
    "build_backbone",
    "create",
    "create_backbone",
    "from_pretrained",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "load_weights",
    "register_model",
    "save_pretrained",
]


def _register_in_timm() -> None:
    from ._timm import register_timm_models

    register_timm_models()


_register_in_timm()
