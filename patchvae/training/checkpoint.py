"""Training checkpoints: one safetensors file holding weights, optimiser state, RNG state and JSON metadata.

A single file renamed into place (see :mod:`patchvae._io`) makes every checkpoint atomic: a run
killed at any moment leaves the previous checkpoint intact. No pickled objects are stored.

A checkpoint is untrusted input, like a weights file: :func:`load_checkpoint` validates all of it
(metadata keys and types, step counters, every model tensor, every optimiser state tensor's shape,
dtype and layout against its parameter, the optimiser hyperparameters, the RNG state) before it
changes anything, and raises :class:`CheckpointError` naming the file and the fix. Fused optimiser
kernels do not check their state, so an unchecked tensor of the wrong size would be read and
written out of bounds.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import save_safetensors

__all__ = ["CHECKPOINT_NAME", "CheckpointError", "load_checkpoint", "read_checkpoint_meta", "save_checkpoint",
           "verify_checkpoint_file"]

CHECKPOINT_NAME = "checkpoint.safetensors"
_META_KEY = "patchvae_trainer_state"
_FIX = ("restore an intact copy of the checkpoint, or start the run again in a new --out (without --resume); "
        "--resume only continues checkpoints written by 'patchvae train'")
#: per-parameter state of the optimisers the trainer uses (torch.optim.Adam)
_ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")
#: how the update is computed, not what it is: these follow the run (its device), not the file
_IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable", "differentiable")


class CheckpointError(RuntimeError):
    """A training checkpoint is damaged, was modified, or does not fit the run. The message names the file and the fix."""


def _error(path: str | os.PathLike, what: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a valid training checkpoint: {what}. Fix: {_FIX}")


# --------------------------------------------------------------------------- writing
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


def non_finite_tensors(modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer]) -> list[str]:
    """Names of the floating-point weights, buffers and optimiser state tensors holding NaN/Inf (a diverged update)."""
    bad = []
    for name, module in modules.items():
        bad += [f"{name}.{k}" for k, v in module.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    for name, optimizer in optimizers.items():
        for i, per_param in enumerate(optimizer.state.values()):
            bad += [f"optimizer.{name}.state.{i}.{k}" for k, v in per_param.items()
                    if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    return bad


def verify_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a just-written checkpoint back: its metadata parses and every floating-point tensor is finite.

    Called on the temporary file before it replaces the previous checkpoint, so a bad write never
    costs the last good state. Returns the metadata; raises :class:`CheckpointError`.
    """
    meta = read_checkpoint_meta(path)
    bad = [k for k, v in _read_tensors(path).items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise _error(path, f"{len(bad)} tensor(s) hold NaN/Inf (e.g. {', '.join(bad[:3])})")
    return meta


def save_checkpoint(
    path: str | os.PathLike,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    meta: Mapping[str, Any],
    *,
    verify: bool = True,
) -> Path:
    """Write modules' state dicts, optimiser states, the CPU (and CUDA) RNG state and ``meta`` atomically.

    With ``verify`` (default) the written file is read back and checked (:func:`verify_checkpoint_file`)
    before it replaces the previous checkpoint; on any error the previous checkpoint stays as it was.
    """
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
    return save_safetensors(path, tensors, metadata, verify=verify_checkpoint_file if verify else None)


# --------------------------------------------------------------------------- reading and validating
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a training checkpoint (epoch, step, recipe, history, optimisers), validated.

    Reads only the file's header. Raises :class:`CheckpointError` if the file is not a readable
    patchvae checkpoint or its metadata lacks a key or has a wrong type or an impossible value.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training checkpoint at {path}")
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get(_META_KEY)
    except (SafetensorError, OSError, ValueError) as err:
        raise _error(path, f"it cannot be read as safetensors ({err}); the file is truncated or damaged") from err
    if raw_meta is None:
        raise _error(path, "it has no patchvae trainer state in its metadata")
    try:
        meta = json.loads(raw_meta)
    except (json.JSONDecodeError, ValueError, RecursionError) as err:
        raise _error(path, f"its trainer state is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise _error(path, f"its trainer state is a {type(meta).__name__}, not an object")
    types = {"epoch": (_is_int, "an int"), "step": (_is_int, "an int"), "recipe": (lambda v: isinstance(v, dict), "an object"),
             "history": (lambda v: isinstance(v, list), "a list"), "optimizers": (lambda v: isinstance(v, dict), "an object")}
    missing = [k for k in types if k not in meta]
    if missing:
        raise _error(path, f"its trainer state lacks {', '.join(map(repr, missing))}")
    for key, (check, kind) in types.items():
        if not check(meta[key]):
            raise _error(path, f"its trainer state has {key}={meta[key]!r:.80}, expected {kind}")
    epoch, step, history = meta["epoch"], meta["step"], meta["history"]
    if epoch < 0 or step < 0 or step < epoch:
        raise _error(path, f"its counters are impossible (epoch {epoch}, step {step}; each epoch has at least one step)")
    if len(history) != epoch or not all(isinstance(h, dict) for h in history):
        raise _error(path, f"its history has {len(history)} entries for epoch {epoch} (one object per finished epoch)")
    if epoch and history[-1].get("step") != step:
        raise _error(path, f"its history ends at step {history[-1].get('step')!r}, its counter says step {step}")
    if "run" in meta and not isinstance(meta["run"], dict):
        raise _error(path, f"its trainer state has run={meta['run']!r:.80}, expected an object")
    return meta


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from ..models._weights import WeightsError, read_safetensors

    try:
        return read_safetensors(path)
    except WeightsError as err:
        raise _error(path, "its tensors cannot be read; the file is truncated or damaged") from err


def _same(saved: Any, current: Any) -> bool:
    """JSON-loaded ``saved`` equals ``current`` with the same kinds (bools are not numbers, lists equal tuples)."""
    if isinstance(saved, bool) or isinstance(current, bool):
        return type(saved) is type(current) and saved == current
    if isinstance(current, numbers.Real):
        return _is_number(saved) and float(saved) == float(current)
    if isinstance(current, (list, tuple)):
        return isinstance(saved, list) and len(saved) == len(current) and all(map(_same, saved, current))
    return type(saved) is type(current) and saved == current


def _check_optimizer(path: Path, name: str, optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor],
                     ometa: Any, max_step: int) -> None:
    """Every group setting, per-parameter state key, shape, dtype, layout and step counter against ``optimizer``."""
    where = f"optimizer {name!r}"
    if not isinstance(ometa, dict) or not isinstance(ometa.get("param_groups"), list) or not isinstance(ometa.get("scalars"), dict):
        raise _error(path, f"the state of {where} is not an object with 'param_groups' (list) and 'scalars' (object)")
    current = optimizer.state_dict()["param_groups"]
    saved_groups = ometa["param_groups"]
    if len(saved_groups) != len(current):
        raise _error(path, f"{where} has {len(saved_groups)} parameter group(s), the model {len(current)}")
    for i, (saved, now) in enumerate(zip(saved_groups, current)):
        if not isinstance(saved, dict):
            raise _error(path, f"parameter group {i} of {where} is not an object")
        unknown = sorted(set(saved) - set(now))
        if unknown:
            raise _error(path, f"parameter group {i} of {where} has unknown settings {unknown}")
        if saved.get("params") != now["params"] or not all(_is_int(p) for p in saved.get("params", [None])):
            raise _error(path, f"parameter group {i} of {where} lists other parameters than the model has "
                               f"({len(now['params'])} parameters)")
        lr = saved.get("lr")
        if not _is_number(lr) or lr <= 0:
            raise _error(path, f"parameter group {i} of {where} has lr={lr!r:.40}, expected a positive number")
        flags = [k for k in _IMPLEMENTATION_FLAGS if k in saved and saved[k] not in (None, True, False)]
        if flags:
            raise _error(path, f"parameter group {i} of {where} has {flags[0]}={saved[flags[0]]!r:.40}, expected true, false or null")
        changed = [k for k in saved if k not in ("params", "lr", *_IMPLEMENTATION_FLAGS) and not _same(saved[k], now[k])]
        if changed:
            details = ", ".join(f"{k}={saved[k]!r:.40} (run: {now[k]!r})" for k in changed)
            raise _error(path, f"parameter group {i} of {where} has other settings than the run: {details}")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    adam = isinstance(optimizer, torch.optim.Adam)
    amsgrad = any(g.get("amsgrad") for g in optimizer.param_groups)
    allowed = (*_ADAM_STATE, "max_exp_avg_sq") if amsgrad else _ADAM_STATE
    if ometa["scalars"] and (adam or not all(isinstance(v, dict) and all(map(_is_number, v.values()))
                                             for v in ometa["scalars"].values())):
        raise _error(path, f"{where} has non-tensor per-parameter state {sorted(ometa['scalars'])[:3]} (its state is tensors only)")
    head = f"optimizer.{name}.state."
    seen: dict[int, set[str]] = {}
    for key, value in tensors.items():
        if not key.startswith(head):
            continue
        idx_text, _, state_key = key[len(head):].partition(".")
        if not idx_text.isdigit() or str(int(idx_text)) != idx_text or int(idx_text) >= len(params) or not state_key:
            raise _error(path, f"{key} names no parameter of {where} (it has {len(params)})")
        idx = int(idx_text)
        param = params[idx]
        if adam and state_key not in allowed:
            raise _error(path, f"{key}: unknown state {state_key!r} (Adam keeps {', '.join(allowed)})")
        if value.layout != torch.strided:
            raise _error(path, f"{key} has layout {value.layout}, expected torch.strided")
        if state_key == "step":
            ok = value.ndim == 0 and not value.is_complex() and value.dtype != torch.bool
            number = float(value) if ok else math.nan
            if not (ok and math.isfinite(number) and number == int(number) and 0 <= number <= max_step):
                shown = f"{number:g}" if ok else f"shape {tuple(value.shape)}, dtype {value.dtype}"
                raise _error(path, f"{key} is {shown}; an optimiser step counter is a scalar integer in [0, {max_step}] "
                                   "(the run's step)")
        else:
            if tuple(value.shape) != tuple(param.shape) or value.dtype != param.dtype:
                raise _error(path, f"{key} has shape {tuple(value.shape)} and dtype {value.dtype}, but its parameter has "
                                   f"shape {tuple(param.shape)} and dtype {param.dtype}")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise _error(path, f"{key} holds NaN/Inf (the checkpoint comes from a diverged run)")
        seen.setdefault(idx, set()).add(state_key)
    if adam:
        partial = {i: sorted(set(allowed) - keys) for i, keys in seen.items() if set(allowed) - keys}
        if partial:
            i, lacking = next(iter(partial.items()))
            raise _error(path, f"the state of parameter {i} of {where} lacks {', '.join(lacking)} "
                               f"({len(partial)} parameter(s) have incomplete state)")


def _check_rng(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    expected = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and "rng.cuda" in tensors:
        expected["rng.cuda"] = torch.cuda.get_rng_state()
    for key, now in expected.items():
        value = tensors.get(key)
        if value is None:
            raise _error(path, f"it has no {key} (the random number generator state)")
        if value.dtype != torch.uint8 or tuple(value.shape) != tuple(now.shape):
            raise _error(path, f"{key} has shape {tuple(value.shape)} and dtype {value.dtype}, expected "
                               f"{tuple(now.shape)} and torch.uint8")


def _restore_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for key, value in tensors.items():
        if key.startswith(head):
            idx, name = key[len(head) :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    current = optimizer.param_groups
    groups = [{**saved, **{k: now[k] for k in _IMPLEMENTATION_FLAGS if k in now}} for saved, now in zip(meta["param_groups"], current)]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def load_checkpoint(
    path: str | os.PathLike,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    map_location: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Validate everything :func:`save_checkpoint` wrote, then restore it (all or nothing); return the metadata.

    Raises :class:`CheckpointError` (naming the file and the fix) before anything is changed if the
    file is damaged, was modified, or does not fit ``modules``/``optimizers``.
    """
    from ..models._weights import WeightsError, check_state_dict

    path = Path(path)
    meta = read_checkpoint_meta(path)
    tensors = _read_tensors(path)
    known = ("rng.cpu", "rng.cuda", *(f"{n}." for n in modules), *(f"optimizer.{n}.state." for n in optimizers))
    if modules and optimizers:  # a full restore: every tensor must belong to something
        unknown = [k for k in tensors if not k.startswith(known) and k not in known]
        if unknown:
            raise _error(path, f"it holds {len(unknown)} tensor(s) that belong to nothing in this run (e.g. {', '.join(unknown[:3])})")
    states = {}
    for name, module in modules.items():
        head = f"{name}."
        states[name] = {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}
        try:
            check_state_dict(module, states[name], f"{path} [{name}]")
        except WeightsError as err:
            raise CheckpointError(f"{err} Fix: {_FIX}") from err
    for name, optimizer in optimizers.items():
        if name not in meta["optimizers"]:
            raise _error(path, f"it has no state for optimizer {name!r}")
        _check_optimizer(path, name, optimizer, tensors, meta["optimizers"][name], meta["step"])
    if modules or optimizers:
        _check_rng(path, tensors)

    # everything fits: restore
    for name, module in modules.items():
        module.load_state_dict(states[name], strict=True)
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
    if modules or optimizers:
        torch.set_rng_state(tensors["rng.cpu"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta
