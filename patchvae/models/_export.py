"""Writing a weights folder: ``model.safetensors`` + ``config.json`` (the model card is added by publishing)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from .._io import save_json, save_safetensors
from ._builder import folder_config_dict
from ._hub import CONFIG_FILENAME, WEIGHTS_FILENAME
from ._weights import sha256sum

__all__ = ["save_pretrained"]


def save_pretrained(model: nn.Module, directory: str | os.PathLike, *, extra: Mapping[str, Any] | None = None) -> Path:
    """Save a zoo model as a weights folder that :func:`from_pretrained` / ``create(checkpoint_path=...)`` load.

    Writes ``model.safetensors`` (atomically) and ``config.json`` with the architecture, the exact
    constructor arguments, the preprocessing, the parameter count and the sha256 of the weights.
    ``extra`` adds provenance entries (dataset, recipe, command, metrics ...). Returns the folder.
    """
    directory = Path(directory)
    weights = save_safetensors(directory / WEIGHTS_FILENAME, model.state_dict(), {"format": "pt"})
    save_json(directory / CONFIG_FILENAME, folder_config_dict(model, sha256sum(weights), extra))
    return directory
