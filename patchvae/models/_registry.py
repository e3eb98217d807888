"""Model registry: architecture entrypoints and their pretrained cfgs, addressed as ``arch`` or ``arch.tag``.

Model files declare ``default_cfgs`` (``{"arch": cfg, "arch.tag": cfg, ...}``) and decorate thin
entrypoint functions with :func:`register_model`. The first tag with weights is the architecture's
default, so ``create("patchvae_resnet9", pretrained=True)`` means its default weights. Registering
a name twice is an error.
"""

from __future__ import annotations

import difflib
import fnmatch
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ._pretrained import PretrainedCfg

__all__ = [
    "get_architecture_cfg",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "model_entrypoint",
    "register_model",
    "split_model_name_tag",
]

F = TypeVar("F", bound=Callable[..., Any])

_entrypoints: dict[str, Callable[..., Any]] = {}
_arch_cfgs: dict[str, PretrainedCfg] = {}  # arch -> cfg without weights (architecture defaults)
_tag_cfgs: dict[str, dict[str, PretrainedCfg]] = {}  # arch -> {tag: cfg}, in declaration order
_default_tags: dict[str, str] = {}


def split_model_name_tag(name: str) -> tuple[str, str]:
    """``"arch.tag"`` -> ``("arch", "tag")``; ``"arch"`` -> ``("arch", "")``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"model name must be a non-empty string, got {name!r}")
    arch, _, tag = name.partition(".")
    return arch, tag


def register_model(fn: F) -> F:
    """Register an entrypoint under its function name, with the cfgs its module declares in ``default_cfgs``."""
    arch = fn.__name__
    if arch in _entrypoints:
        prev = _entrypoints[arch]
        raise ValueError(
            f"model {arch!r} is already registered (by {prev.__module__}.{prev.__qualname__}); "
            "pick another name for the new entrypoint"
        )
    cfgs: dict[str, PretrainedCfg] = getattr(sys.modules[fn.__module__], "default_cfgs", {})
    arch_cfg = cfgs.get(arch, PretrainedCfg()).replace(architecture=arch, tag="")
    tags: dict[str, PretrainedCfg] = {}
    for key, cfg in cfgs.items():
        key_arch, tag = split_model_name_tag(key)
        if key_arch != arch or not tag:
            continue
        if not cfg.has_weights:
            raise ValueError(f"pretrained cfg {key!r} has a tag but no weights (file or hf_hub_id)")
        # a tag inherits the architecture's defaults it does not set itself
        tags[tag] = cfg.replace(
            architecture=arch,
            tag=tag,
            input_convs=cfg.input_convs or arch_cfg.input_convs,
            output_convs=cfg.output_convs or arch_cfg.output_convs,
            data_config=cfg.data_config or arch_cfg.data_config,
        )
    _entrypoints[arch] = fn
    _arch_cfgs[arch] = arch_cfg
    _tag_cfgs[arch] = tags
    if tags:
        _default_tags[arch] = next(iter(tags))
    return fn


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def is_model(name: str) -> bool:
    return split_model_name_tag(name)[0] in _entrypoints


def model_entrypoint(name: str) -> Callable[..., Any]:
    arch, _ = split_model_name_tag(name)
    if arch not in _entrypoints:
        raise ValueError(
            f"unknown model {name!r}.{_suggest(arch, _entrypoints)} "
            "See patchvae.models.list_models() for every architecture."
        )
    return _entrypoints[arch]


def get_architecture_cfg(name: str) -> PretrainedCfg:
    """Defaults of an architecture without weights (data config, input/output convs)."""
    return _arch_cfgs[split_model_name_tag(model_entrypoint(name).__name__)[0]]


def get_pretrained_cfg(name: str, *, allow_no_weights: bool = True) -> PretrainedCfg:
    """Cfg of ``arch.tag``; for a bare ``arch``, its default weights (or its defaults if it has none)."""
    arch, tag = split_model_name_tag(name)
    model_entrypoint(arch)
    if not tag:
        tag = _default_tags.get(arch, "")
        if not tag:
            if allow_no_weights:
                return _arch_cfgs[arch]
            raise ValueError(f"model {arch!r} has no pretrained weights yet; see patchvae.models.list_pretrained()")
    if tag not in _tag_cfgs[arch]:
        known = [f"{arch}.{t}" for t in _tag_cfgs[arch]]
        raise ValueError(
            f"no pretrained weights {name!r}.{_suggest(f'{arch}.{tag}', known)} "
            f"Weights of {arch!r}: {known or 'none'}."
        )
    return _tag_cfgs[arch][tag]


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Architecture names matching ``pattern``; with ``pretrained=True``, every ``arch.tag`` with weights."""
    if pretrained:
        names = [f"{arch}.{tag}" for arch, tags in _tag_cfgs.items() for tag in tags]
    else:
        names = list(_entrypoints)
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def list_pretrained(pattern: str = "*") -> list[str]:
    """Every ``arch.tag`` with published weights, matching ``pattern``."""
    return list_models(pattern, pretrained=True)
