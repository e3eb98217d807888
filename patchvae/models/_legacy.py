"""Legacy PyTorch checkpoints (``.pt``/``.pth``): read with ``torch.load(weights_only=True)``, never full pickle.

Accepted layouts: a bare state dict, or a dict holding one under ``state_dict``/``model``/
``model_state_dict``/``vae_dict`` (the authors' ``run.py`` saves ``{'args', 'vae_dict', 'loss', ...}``).
``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes are stripped.
"""

from __future__ import annotations

import argparse
import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import torch

from ._weights import WeightsError

__all__ = ["read_legacy_checkpoint", "strip_prefixes", "unwrap_state_dict"]

_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "vae_dict", "module")
_PREFIXES = ("module.", "_orig_mod.")


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def unwrap_state_dict(obj: Any, source: str | os.PathLike) -> dict[str, torch.Tensor]:
    if _is_state_dict(obj):
        return strip_prefixes(obj)
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            if key in obj and _is_state_dict(obj[key]):
                return strip_prefixes(obj[key])
    keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise WeightsError(
        f"{source} holds no state dict (found {keys}); expected a state dict or a dict with one of {_CONTAINER_KEYS}"
    )


def read_legacy_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(
            f"{path} contains pickled Python objects that cannot be loaded safely (torch.load(weights_only=True) "
            f"refused: {str(err).splitlines()[0]}). Re-save only the tensors (torch.save(model.state_dict(), ...)) "
            "or convert to safetensors, then load that file."
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise WeightsError(f"cannot read {path} as a PyTorch checkpoint ({err}); the file is truncated or damaged") from err
    return unwrap_state_dict(obj, path)
