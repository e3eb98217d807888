"""torch.hub entry points of patchvae: one per architecture of the zoo (``patchvae.models.list_models()``).

    import torch
    model = torch.hub.load("<owner>/<repo>", "patchvae_resnet9", pretrained=True)           # from GitHub
    model = torch.hub.load("/path/to/checkout", "patchvae_resnet9", source="local")          # from a checkout
    phi = torch.hub.load(..., "patchvae_resnet9", pretrained=True, tag="...", num_classes=0)  # φ, pooled features

Each entry point is ``patchvae.models.create(arch[.tag], pretrained, **kwargs)``.
"""

from __future__ import annotations

from typing import Any as _Any

from patchvae.models import create as _create
from patchvae.models import list_models as _list_models
from patchvae.models._registry import get_architecture_cfg as _architecture_cfg
from patchvae.models._registry import model_entrypoint as _model_entrypoint

dependencies = ["torch", "torchvision", "timm", "safetensors", "huggingface_hub"]


def _make_entrypoint(arch: str) -> _Any:
    def entrypoint(pretrained: bool = False, tag: str = "", **kwargs: _Any) -> _Any:
        return _create(f"{arch}.{tag}" if tag else arch, pretrained, **kwargs)

    summary = (_model_entrypoint(arch).__doc__ or "").strip()
    description = _architecture_cfg(arch).description or arch
    entrypoint.__name__ = entrypoint.__qualname__ = arch
    entrypoint.__doc__ = f"""{summary or description}

    Args:
        pretrained: load the default weights of ``{arch}`` (or those of ``tag``).
        tag: pretrained tag (``{arch}.<tag>``, see ``patchvae.models.list_pretrained("{arch}.*")``).
        **kwargs: as ``patchvae.models.create``: ``checkpoint_path``, ``cache_dir``, ``in_chans``,
            ``num_classes``, ``features_only``, ``out_indices`` and constructor arguments.

    Returns:
        the model, carrying ``pretrained_cfg``, ``model_args`` and ``data_config`` (its preprocessing).
    """
    return entrypoint


for _arch in _list_models():
    globals()[_arch] = _make_entrypoint(_arch)
del _arch
