"""patchvae: PatchVAE (Gupta, Singh, Shrivastava, CVPR 2020) and VAE representation learning.

Quick start::

    import patchvae
    model = patchvae.models.create("patchvae_resnet9", pretrained=True)
    feats = patchvae.extract_features(model, images)

Sub-modules are imported lazily, so ``import patchvae`` imports neither torch, torchvision nor timm:
the heavy imports happen on first use. When timm is (or later gets) imported, the zoo's backbones
are registered in timm's registry (``timm.create_model("patchvae_resnet9", ...)``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .version import __version__

_SUBMODULES = frozenset({"models", "losses", "data", "recipes", "training", "evaluation", "features", "cli"})
_ATTRIBUTES = {
    "extract_features": "patchvae.features",
    "iter_features": "patchvae.features",
    "save_features": "patchvae.features",
}

__all__ = ["__version__", *sorted(_ATTRIBUTES), *sorted(_SUBMODULES)]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _install_timm_hook() -> None:
    from ._timm_hook import install

    install()


_install_timm_hook()
