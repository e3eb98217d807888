"""The model zoo: PatchVAE, β-VAE, BiGAN, the VAE-GAN discriminator, the Table 5 classifier, Zhang et al.'s PixelVAEs
and Sixt's patch VAEs with block-local PixelCNN decoders.

    import patchvae
    model = patchvae.models.create("patchvae_resnet9", pretrained=True)
    phi = patchvae.models.create_backbone("patchvae_resnet9", pretrained=True)
    encoder = patchvae.models.create_encoder("patchvae_resnet9", pretrained=True)   # x -> posterior
    decoder = patchvae.models.create_decoder("patchvae_resnet9", pretrained=True)   # code -> x̂
    patchvae.models.list_models(), patchvae.models.list_pretrained()

Importing this package also registers the backbone families in timm (see ``_timm.py``).
"""

from ._builder import create, create_backbone, from_pretrained, load_weights
from ._components import create_decoder, create_encoder
from ._export import save_pretrained
from ._onnx import export_onnx
from ._pretrained import PretrainedCfg
from ._protocol import ELBOTerms, GenerativeModel, LikelihoodModel, RateModel, Representable, RepresentationInfo
from ._registry import get_pretrained_cfg, is_model, list_models, list_pretrained, register_model
from ._weights import WeightsError
from .backbones import BACKBONES, ResNetTrunk, build_backbone
from .beta_vae import BetaVAE, BetaVAEOutput, GaussianEncoder, GaussianPosterior
from .classifier import FREEZE_PRESETS, Classifier
from .gan import BiGAN, BiGANCode, BiGANEncoder, BiGANOutput, Discriminator, JointDiscriminator
from .layers import PyramidDecoder
from .likelihoods import DiscretizedLogisticMixture, bits_per_dim
from .m2 import M2VAE, M2Output
from .patchvae import PatchEncoder, PatchPosterior, PatchVAE, PatchVAEOutput
from .pixelcnn import FullPixelCNNHead, LocalPixelCNNHead, MaskedConv2d
from .pixelvae import PixelVAE, PixelVAEDecoder, PixelVAEOutput
from .sixt2018 import GlobalVAE, GlobalVAEOutput, SixtPatchVAE, SixtPatchVAEOutput

__all__ = [
    "BACKBONES",
    "FREEZE_PRESETS",
    "BetaVAE",
    "BetaVAEOutput",
    "BiGAN",
    "BiGANCode",
    "BiGANEncoder",
    "BiGANOutput",
    "Classifier",
    "DiscretizedLogisticMixture",
    "Discriminator",
    "ELBOTerms",
    "FullPixelCNNHead",
    "GaussianEncoder",
    "GaussianPosterior",
    "GenerativeModel",
    "GlobalVAE",
    "GlobalVAEOutput",
    "JointDiscriminator",
    "LikelihoodModel",
    "LocalPixelCNNHead",
    "M2Output",
    "M2VAE",
    "MaskedConv2d",
    "PatchEncoder",
    "PatchPosterior",
    "PatchVAE",
    "PatchVAEOutput",
    "PixelVAE",
    "PixelVAEDecoder",
    "PixelVAEOutput",
    "PretrainedCfg",
    "PyramidDecoder",
    "RateModel",
    "Representable",
    "RepresentationInfo",
    "ResNetTrunk",
    "SixtPatchVAE",
    "SixtPatchVAEOutput",
    "WeightsError",
    "bits_per_dim",
    "build_backbone",
    "create",
    "create_backbone",
    "create_decoder",
    "create_encoder",
    "export_onnx",
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
