"""Validating an untrusted ``config.json`` of a weights folder before anything is built from it.

A weights folder may come from anywhere, so its ``config.json`` is checked like its weights: the
types of every entry patchvae reads, the ranges of the constructor arguments, and the sizes of the
input it describes. A bad entry raises :class:`~patchvae.models.WeightsError` naming the file,
the entry and the fix; nothing is allocated for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._weights import STORAGE_DTYPES, WeightsError

__all__ = ["MAX_CONFIG_BYTES", "MAX_IMAGE_SIDE", "validate_folder_config"]

#: a config.json is a few KB; refuse to parse anything much larger
MAX_CONFIG_BYTES = 4 << 20
#: the largest H or W a weights folder may ask for (the zoo's largest input is 224)
MAX_IMAGE_SIDE = 4096
#: the largest image channel count a weights folder may ask for
MAX_CHANNELS = 16
#: the largest integer constructor argument (sizes, counts): larger ones would allocate gigabytes
MAX_MODEL_INT = 1 << 16
_NAME = re.compile(r"[A-Za-z0-9_]{1,100}")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos")
_TEXT_KEYS = ("format", "dataset", "recipe", "command", "protocol", "eval_command", "license", "description",
              "library", "paper", "citation")


def _bad(path: Path, key: str, value: Any, expected: str) -> WeightsError:
    return WeightsError(
        f"{path}: entry {key!r} is {value!r:.100}, expected {expected}. The config.json is damaged or was edited: "
        "re-export the folder with patchvae.models.save_pretrained(...), or fix the entry"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_model_arg(path: Path, key: str, value: Any, depth: int = 0) -> None:
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and len(value) > 200:
            raise _bad(path, key, value, "a short string")
        return
    if _is_int(value):
        if abs(value) > MAX_MODEL_INT:
            raise _bad(path, key, value, f"an int of at most {MAX_MODEL_INT} in magnitude")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(path, key, value, "a finite number")
        return
    if isinstance(value, list) and depth < 2 and len(value) <= 64:
        for item in value:
            _check_model_arg(path, key, item, depth + 1)
        return
    raise _bad(path, key, value, "a number, bool, string, or a short list of them")


def _check_data_config(path: Path, data: Any) -> None:
    from ..data.config import DataConfig

    key = "data_config"
    if not isinstance(data, dict):
        raise _bad(path, key, data, "an object with input_size, mean and std")
    size = data.get("input_size")
    if not (isinstance(size, list) and len(size) == 3 and all(_is_int(v) for v in size)):
        raise _bad(path, f"{key}.input_size", size, "[C, H, W] (three ints)")
    chans, height, width = size
    if not 1 <= chans <= MAX_CHANNELS or not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
        raise _bad(path, f"{key}.input_size", size, f"1 <= C <= {MAX_CHANNELS} and 1 <= H, W <= {MAX_IMAGE_SIDE}")
    for stat in ("mean", "std"):
        values = data.get(stat)
        if not (isinstance(values, list) and len(values) == chans and all(_is_number(v) for v in values)):
            raise _bad(path, f"{key}.{stat}", values, f"a list of {chans} finite numbers")
    if data.get("resize_mode", "resize_crop") not in ("pad", "resize_crop"):
        raise _bad(path, f"{key}.resize_mode", data.get("resize_mode"), "'pad' or 'resize_crop'")
    if data.get("interpolation", "bilinear") not in _INTERPOLATIONS:
        raise _bad(path, f"{key}.interpolation", data.get("interpolation"), f"one of {', '.join(_INTERPOLATIONS)}")
    if not isinstance(data.get("hflip", False), bool):
        raise _bad(path, f"{key}.hflip", data.get("hflip"), "true or false")
    if not isinstance(data.get("extra", {}), dict):
        raise _bad(path, f"{key}.extra", data.get("extra"), "an object")
    try:
        DataConfig.from_dict(data)
    except (TypeError, ValueError) as err:
        raise _bad(path, key, data, f"a valid data config ({err})") from err


def validate_folder_config(data: Any, path: Path) -> dict[str, Any]:
    """Return ``data`` (a parsed ``config.json``) if every entry patchvae reads has the right type and range.

    Checked: ``architecture`` and ``tag`` (names), ``model_args`` (JSON scalars or short lists; ints
    up to :data:`MAX_MODEL_INT`), ``data_config`` (input at most ``MAX_CHANNELS`` x
    ``MAX_IMAGE_SIDE`` x ``MAX_IMAGE_SIDE``), ``sha256`` (64 hex digits), ``num_params``, ``epochs``,
    ``steps`` (ints >= 0), ``metrics`` (numbers), ``storage_dtype`` / ``storage_rel_change`` (how the weights are
    stored) and the provenance texts. Unknown entries are kept.
    """
    if not isinstance(data, dict):
        raise WeightsError(f"{path} holds a JSON {type(data).__name__}, not an object; it is not a patchvae weights folder")
    if "architecture" not in data:
        raise WeightsError(f"{path} has no 'architecture' entry; it is not a patchvae weights folder")
    arch = data["architecture"]
    if not isinstance(arch, str) or not _NAME.fullmatch(arch):
        raise _bad(path, "architecture", arch, "a registered architecture name (letters, digits, _)")
    tag = data.get("tag")
    if tag not in (None, "") and not (isinstance(tag, str) and _TAG.fullmatch(tag)):
        raise _bad(path, "tag", tag, "a tag name (letters, digits, _ and -)")
    sha = data.get("sha256")
    if sha not in (None, "") and not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
        raise _bad(path, "sha256", sha, "64 hexadecimal digits")
    model_args = data.get("model_args")
    if model_args is not None:
        if not isinstance(model_args, Mapping) or len(model_args) > 100:
            raise _bad(path, "model_args", model_args, "an object of constructor arguments")
        for key, value in model_args.items():
            _check_model_arg(path, f"model_args.{key}", value)
    if data.get("data_config") is not None:
        _check_data_config(path, data["data_config"])
    for key in ("num_params", "epochs", "steps"):
        value = data.get(key)
        if value is not None and not (_is_int(value) and value >= 0):
            raise _bad(path, key, value, "an int >= 0")
    metrics = data.get("metrics")
    if metrics is not None and not (isinstance(metrics, dict) and all(_is_number(v) for v in metrics.values())):
        raise _bad(path, "metrics", metrics, "an object of numbers")
    storage = data.get("storage_dtype")
    if storage is not None and storage not in STORAGE_DTYPES:
        raise _bad(path, "storage_dtype", storage, f"one of {', '.join(STORAGE_DTYPES)}")
    change = data.get("storage_rel_change")
    if change is not None and not (_is_number(change) and change >= 0):
        raise _bad(path, "storage_rel_change", change, "a number >= 0")
    for key in _TEXT_KEYS:
        value = data.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= 100_000):
            raise _bad(path, key, value, "a string")
    return data
