"""Training checkpoints: one safetensors file holding weights, optimiser state, RNG state and JSON metadata.

A single file renamed into place (see :mod:`patchvae._io`) makes every checkpoint atomic: a run
killed at any moment leaves the previous checkpoint intact. No pickled objects are stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import save_safetensors

__all__ = ["CHECKPOINT_NAME", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_NAME = "checkpoint.safetensors"
_META_KEY = "patchvae_trainer_state"


def _flatten_optimizer(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.state.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for key, value in tensors.items():
        if key.startswith(head):
            idx, name = key[len(head) :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    path: str | os.PathLike,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    meta: Mapping[str, Any],
) -> Path:
    """Write modules' state dicts, optimiser states, the CPU (and CUDA) RNG state and ``meta`` atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        tensors.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
    optim_meta = {}
    for name, optimizer in optimizers.items():
        flat, optim_meta[name] = _flatten_optimizer(f"optimizer.{name}", optimizer)
        tensors.update(flat)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    metadata = {_META_KEY: json.dumps({**meta, "optimizers": optim_meta})}
    return save_safetensors(path, tensors, metadata)


def load_checkpoint(
    path: str | os.PathLike,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    map_location: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Restore everything :func:`save_checkpoint` wrote (strictly) and return its metadata."""
    from safetensors import safe_open

    from ..models._weights import load_state_dict_strict, read_safetensors

    path = Path(path)
    with safe_open(os.fspath(path), framework="pt") as f:
        raw_meta = (f.metadata() or {}).get(_META_KEY)
    if raw_meta is None:
        raise ValueError(f"{path} is not a patchvae training checkpoint (no trainer state in its metadata)")
    meta = json.loads(raw_meta)
    tensors = read_safetensors(path)
    for name, module in modules.items():
        head = f"{name}."
        state = {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}
        load_state_dict_strict(module, state, f"{path} [{name}]")
    for name, optimizer in optimizers.items():
        _restore_optimizer(f"optimizer.{name}", optimizer, tensors, meta["optimizers"][name])
        # per-parameter state in its parameter's device and memory layout (channels_last conv weights): the
        # file holds contiguous tensors, and fused optimizer kernels expect state laid out as the parameter
        for param, per_param in optimizer.state.items():
            for key, value in per_param.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and key != "step":
                    per_param[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
                elif isinstance(value, torch.Tensor) and key != "step":
                    per_param[key] = value.to(map_location)
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta
