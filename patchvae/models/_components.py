"""Parts of the zoo's generative models by name: ``create_encoder`` and ``create_decoder``.

They build the whole model with :func:`~patchvae.models.create` (same names, same published weights,
no separate files) and return its encoder or decoder module, which carries the weights'
``pretrained_cfg``, ``model_args`` and ``data_config``. Composed, they give the model's eval-mode
reconstruction bitwise::

    enc = create_encoder("patchvae_resnet9", pretrained=True).eval()
    dec = create_decoder("patchvae_resnet9", pretrained=True).eval()
    x_hat = dec(enc(x).code())          # == create(...).eval().reconstruct(x)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ._builder import _attach, create
from ._protocol import GenerativeModel

__all__ = ["create_decoder", "create_encoder"]

_WHOLE_MODEL_ONLY = ("num_classes", "features_only", "out_indices")


def _generative(name: str, pretrained: bool, what: str, kwargs: dict[str, Any]) -> nn.Module:
    refused = [key for key in _WHOLE_MODEL_ONLY if key in kwargs]
    if refused:
        raise TypeError(
            f"create_{what}() takes no {', '.join(refused)}: they change the whole model's head; use "
            "create(...) or create_backbone(...) for a classifier or a feature pyramid"
        )
    model = create(name, pretrained, **kwargs)
    if not isinstance(model, GenerativeModel):
        raise ValueError(
            f"{name!r} ({type(model).__name__}) has no encoder and decoder: it is not a generative model. Use "
            f"patchvae.models.create({name!r}) for it, or create_backbone(...) for the φ trunk of a VAE"
        )
    return model


def create_encoder(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """The encoder of a generative zoo model: images (B, C, H, W) -> the family's posterior.

    The posterior is a named tuple with the family's fields and a ``code()`` method giving the
    decoder's input for the posterior mean:

    * PatchVAE: :class:`~patchvae.models.PatchPosterior` (features (B, d_e, h, w), visibility
      logits/probs (B, N, h, w), appearance mean/var (B, N, d_p)); ``code(hard=model.hard)`` is ẑ
      (B, N·d_p, h, w).
    * β-VAE: :class:`~patchvae.models.GaussianPosterior` (features, mean (B, D), var (B, D)); ``code()`` is μ.
    * BiGAN: :class:`~patchvae.models.BiGANCode` (features, latent (B, D)); ``code()`` is E(x).

    Args:
        name: ``arch`` or ``arch.tag``, as for :func:`~patchvae.models.create`.
        pretrained: load the published weights (the whole model's file).
        **kwargs: as :func:`~patchvae.models.create` (``checkpoint_path``, ``in_chans``, overrides),
            except ``num_classes``/``features_only``/``out_indices``.

    The module does not validate its input; ``create(name).encode(x)`` does.

    Raises:
        ValueError: ``name`` is not a generative model (a classifier, the discriminator).
    """
    model = _generative(name, pretrained, "encoder", kwargs)
    return _attach(model.encoder, model, "encoder")


def create_decoder(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """The decoder of a generative zoo model: a latent code (the posterior's ``code()``) -> images in [-1, 1].

    PatchVAE: ẑ (B, N·d_p, h, w) -> (B, C, h·s, w·s) with φ's stride s; β-VAE and BiGAN (the
    generator G): z (B, D) -> (B, C, img_size, img_size). Arguments as :func:`create_encoder`.

    Raises:
        ValueError: ``name`` is not a generative model (a classifier, the discriminator).
    """
    model = _generative(name, pretrained, "decoder", kwargs)
    return _attach(model.decoder, model, "decoder")
