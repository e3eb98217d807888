"""torchvision transforms built from a :class:`DataConfig`: what a model's weights expect."""

from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms import InterpolationMode, v2

from .config import DataConfig

__all__ = ["create_transform", "resolve_data_config"]


def resolve_data_config(model_or_config: Any) -> DataConfig:
    """DataConfig of a model created by the zoo (``model.pretrained_cfg``), a dict, or a DataConfig."""
    if isinstance(model_or_config, DataConfig):
        return model_or_config
    if isinstance(model_or_config, dict):
        return DataConfig.from_dict(model_or_config)
    cfg = getattr(model_or_config, "data_config", None)
    if isinstance(cfg, DataConfig):
        return cfg
    raise TypeError(
        f"cannot find the preprocessing of {type(model_or_config).__name__}: pass a DataConfig, a dict, or a "
        "model created with patchvae.models.create(...), which carries its data_config"
    )


def create_transform(model_or_config: Any, train: bool = False) -> v2.Compose:
    """PIL image / uint8 HWC ndarray / uint8 (C, H, W) tensor -> normalised float tensor (C, H, W).

    Steps: to tensor, grayscale <-> RGB to the model's channels, fit to size (``resize_crop``: resize
    the shorter side and centre-crop; ``pad``: centre pad/crop), random flip if ``train`` and the
    config asks for it, scale to [0, 1], normalise.
    """
    cfg = resolve_data_config(model_or_config)
    chans, height, width = cfg.input_size
    steps: list[Any] = [v2.ToImage(), v2.RGB() if chans == 3 else v2.Grayscale(num_output_channels=1)]
    if cfg.resize_mode == "resize_crop":
        steps.append(v2.Resize(max(height, width), interpolation=InterpolationMode(cfg.interpolation), antialias=True))
    steps.append(v2.CenterCrop((height, width)))
    if train and cfg.hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.mean), list(cfg.std))]
    return v2.Compose(steps)
