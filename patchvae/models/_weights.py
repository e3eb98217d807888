"""Reading weight files safely and loading them strictly.

Published weights are safetensors files checked against their sha256. A state dict is validated
against the model (every key present, no extra key, every shape equal) *before* anything is copied,
so a bad file never leaves a half-loaded model behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping

import torch
from torch import nn

__all__ = [
    "STORAGE_DTYPES",
    "STORAGE_TOLERANCE",
    "WeightsError",
    "adapt_in_chans",
    "cast_for_storage",
    "check_state_dict",
    "load_state_dict_strict",
    "read_safetensors",
    "sha256sum",
    "storage_error",
    "verify_sha256",
]

log = logging.getLogger(__name__)


class WeightsError(RuntimeError):
    """A weight file is damaged, not the expected one, or does not fit the model. The message names the file and the fix."""


def sha256sum(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`WeightsError` unless ``path`` has the sha256 ``expected`` (64 hex digits)."""
    if not isinstance(expected, str) or len(expected) != 64 or any(c not in "0123456789abcdefABCDEF" for c in expected):
        raise WeightsError(
            f"the sha256 given for {path} is {expected!r:.80}, not 64 hexadecimal digits: fix the 'sha256' entry "
            "(config.json, registry) or the sha256= argument"
        )
    actual = sha256sum(path)
    if actual != expected.lower():
        raise WeightsError(
            f"sha256 of {path} is {actual}, expected {expected}: the file is damaged or not the published "
            "weights. Delete it and download it again (a file from the Hugging Face cache is fetched anew; a file "
            "shipped with patchvae needs a reinstall), or pass the right file as checkpoint_path."
        )


def _sniff(path: str | os.PathLike) -> str:
    """What a weights file looks like from its first bytes: ``"zip"``/``"pickle"`` (torch.save) or ``"other"``."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return "other"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    return "other"


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, on CPU. Damaged/truncated files raise :class:`WeightsError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if _sniff(path) in ("zip", "pickle"):
        raise WeightsError(
            f"{path} is a PyTorch pickle checkpoint (torch.save), not safetensors. Published weights are "
            "safetensors only: give the file a .pt suffix to load it as a legacy checkpoint (read with "
            "torch.load(weights_only=True)), or convert it with patchvae.models.save_pretrained(...)."
        )
    try:
        return load_file(os.fspath(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(
            f"cannot read {path} as safetensors ({err}). The file is truncated or damaged: delete it and "
            "download it again, or re-export it with patchvae.models.save_pretrained(...)."
        ) from err


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Raise :class:`WeightsError` unless ``state`` has exactly the model's keys, shapes and dtype kinds, all finite."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    mismatched += [
        f"{k}: file dtype {state[k].dtype} vs model {v.dtype}"
        for k, v in expected.items()
        if k in state and state[k].is_floating_point() != v.is_floating_point()
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape/dtype mismatches", mismatched)):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise WeightsError(
            f"{source} does not fit {type(model).__name__}: {'; '.join(parts)}. These are weights of another "
            "architecture or configuration: check the model name and its arguments (config.json of the "
            "weights lists both), or load them with the architecture they were saved from."
        )
    # finite in the dtype the model holds: a float64 1e300 is finite, but Inf once copied into float32
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v.to(expected[k].dtype)).all())]
    if bad:
        raise WeightsError(
            f"{source} has NaN/Inf values in {len(bad)} tensor(s) (e.g. {', '.join(bad[:3])}): the file is "
            "damaged or comes from a diverged run. Download it again or use an earlier checkpoint."
        )


#: the floating-point dtypes a weights file may be stored in; loading copies the values into the model's own dtype
STORAGE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: the largest relative change of any output layer that storing a model's weights in a smaller dtype may cause
STORAGE_TOLERANCE = 1e-2


def cast_for_storage(state: Mapping[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """``state`` with every floating-point tensor cast to ``dtype`` (a key of :data:`STORAGE_DTYPES`; integer
    tensors such as BatchNorm's step counter are kept). Refuses values outside the dtype's range."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"unknown storage dtype {dtype!r}: choose one of {', '.join(STORAGE_DTYPES)}")
    target = STORAGE_DTYPES[dtype]
    out = {k: v.to(target) if v.is_floating_point() else v for k, v in state.items()}
    overflow = [k for k, v in out.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if overflow:
        largest = max(float(state[k].abs().max()) for k in overflow)
        raise ValueError(
            f"{len(overflow)} tensor(s) overflow {dtype} (e.g. {', '.join(overflow[:3])}; largest |value| {largest:.3g}): "
            "store these weights in bfloat16 or float32"
        )
    return out


@torch.no_grad()
def storage_error(model: nn.Module, stored: Mapping[str, torch.Tensor], inputs: torch.Tensor | None = None, *,
                  batch_size: int = 8, seed: int = 0) -> float:
    """The largest relative change (‖a − b‖ / ‖a‖ per layer) of the model's representations (every layer of
    ``model.representations()``, mode "mean", eval mode) when ``stored`` (e.g. :func:`cast_for_storage` output)
    replaces its weights, on the preprocessed batch ``inputs`` (B, C, H, W), by default a seeded standard-normal
    batch (``batch_size`` × its ``data_config.input_size``). The model is left unchanged."""
    import copy

    x = inputs if inputs is not None else torch.randn(
        batch_size, *model.data_config.input_size, generator=torch.Generator().manual_seed(seed))
    reference = copy.deepcopy(model).float().eval()
    other = copy.deepcopy(reference)
    load_state_dict_strict(other, stored, "the stored weights")
    names = list(reference.representations())
    a, b = reference.represent(x, names, "mean"), other.represent(x, names, "mean")
    return max(float((a[k].float() - b[k].float()).norm() / a[k].float().norm().clamp_min(1e-12)) for k in names)


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Validate (keys, shapes, dtype kinds, finite values), then load ``state`` into ``model``: all or nothing."""
    check_state_dict(model, state, source)
    model.load_state_dict(state, strict=True)


def adapt_in_chans(
    state: dict[str, torch.Tensor], in_chans: int, input_convs: tuple[str, ...], output_convs: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """Adapt weights saved for another number of image channels (1-channel weights used at 3 and back).

    Input convs use timm's ``adapt_input_conv`` (1 -> 3 repeats and rescales, so an RGB image with
    equal channels gives the same activations; 3 -> 1 sums). Only 1 <-> N is defined: anything else
    (e.g. 5 -> 3, which would truncate) raises :class:`WeightsError`. A decoder's image-output transposed
    conv, weight (in, out, k, k), repeats its single output channel, or averages 3 into 1.
    """
    from timm.models._manipulate import adapt_input_conv

    state = dict(state)
    for name in input_convs:
        key = f"{name}.weight"
        if key in state and state[key].shape[1] != in_chans:
            if 1 not in (state[key].shape[1], in_chans):
                raise WeightsError(
                    f"cannot adapt {key} from {state[key].shape[1]} to {in_chans} input channels: only 1-channel "
                    f"weights at N channels and N-channel weights at 1 are supported; use in_chans="
                    f"{state[key].shape[1]} (the weights' channels)"
                )
            log.info("adapting %s from %d to %d input channels", key, state[key].shape[1], in_chans)
            state[key] = adapt_input_conv(in_chans, state[key], base_chans=state[key].shape[1])
    for name in output_convs:
        key = f"{name}.weight"
        if key not in state or state[key].shape[1] == in_chans:
            continue
        weight, have = state[key], state[key].shape[1]
        if have == 1:
            state[key] = weight.repeat(1, in_chans, 1, 1)
        elif in_chans == 1:
            state[key] = weight.mean(1, keepdim=True)
        else:
            raise WeightsError(f"cannot adapt {key} from {have} to {in_chans} output channels (only 1 <-> N)")
        if f"{name}.bias" in state:
            bias = state[f"{name}.bias"]
            state[f"{name}.bias"] = bias.repeat(in_chans) if have == 1 else bias.mean(0, keepdim=True)
    return state
