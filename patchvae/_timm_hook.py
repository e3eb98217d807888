"""Register patchvae's backbones in timm as soon as timm is imported, without importing timm ourselves.

``import patchvae`` must stay cheap, and importing timm costs over a second. So: if timm is already
imported, its registry gets our entrypoints now; otherwise a ``sys.meta_path`` finder wraps the loader
of the ``timm`` module and registers them right after timm finishes importing (then removes itself).
Either order (``import patchvae; import timm`` or ``import timm; import patchvae``) ends with
``timm.create_model("patchvae_resnet9", ...)`` working. This module imports nothing heavy.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["install"]

_TARGET = "timm"


def _initializing(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _register() -> None:
    if _initializing("patchvae.models"):
        return  # patchvae.models is importing timm itself and registers at the end of its own import
    try:
        from .models._timm import register_timm_models

        register_timm_models()
    except Exception as err:  # never break `import timm` for the user
        import logging

        logging.getLogger(__name__).warning("could not register patchvae's models in timm: %s", err)


class _RegisteringLoader:
    """Runs the real loader of ``timm``, then registers our entrypoints."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader  # hand timm its real loader back
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        _remove_finder()
        _register()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, get_code ...
        return getattr(self._loader, name)


class _TimmFinder:
    """``sys.meta_path`` entry that only wraps the loader of the top-level ``timm`` module."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != _TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, _TimmFinder):
                continue
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None

    def invalidate_caches(self) -> None:
        pass


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TimmFinder)]


def install() -> None:
    """Register now if timm is imported, else register when it is (idempotent)."""
    if _TARGET in sys.modules and not _initializing(_TARGET):
        _register()
    elif not any(isinstance(f, _TimmFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TimmFinder())
