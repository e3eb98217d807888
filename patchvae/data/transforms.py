"""torchvision transforms built from a :class:`DataConfig`: what a model's weights expect."""

from __future__ import annotations

from typing import Any

import PIL.Image
import torch
from torchvision.transforms import InterpolationMode, v2

from .._deprecation import DeprecationNotice, warn_deprecated
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


class _AsImage:
    """PIL images pass through (so that resizing happens in PIL, as in timm); anything else becomes a tv_tensors.Image."""

    def __call__(self, image: Any) -> Any:
        if isinstance(image, PIL.Image.Image):
            return image
        return v2.functional.to_image(image)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _ResizeToCover:
    """Resize (aspect ratio kept) to :meth:`DataConfig.resized_size` of the image; PIL images stay PIL."""

    def __init__(self, config: DataConfig) -> None:
        self.config = config
        self.interpolation = InterpolationMode(config.interpolation)

    def __call__(self, image: Any) -> Any:
        height, width = v2.functional.get_size(image)
        size = self.config.resized_size(height, width)
        if size is None:
            return image
        return v2.functional.resize(image, list(size), interpolation=self.interpolation, antialias=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale_size={self.config.scale_size}, interpolation={self.config.interpolation})"


_TRAIN_ARG = DeprecationNotice("create_transform(train=...)", "0.1.0", "0.2.0", "create_transform(is_training=...) (timm's name)")


class _ToUnitRange:
    """uint8 image -> float32 in [0, 1] as ``x.float() / 255`` (what timm's ``ToTensor`` and the batched training
    preprocessing compute; torchvision's ``ToDtype(scale=True)`` multiplies by 1/255, which rounds differently)."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image.as_subclass(torch.Tensor).to(torch.float32).div(255.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def create_transform(model_or_config: Any, is_training: bool = False, *, train: bool | None = None) -> v2.Compose:
    """PIL image / uint8 HWC ndarray / uint8 (C, H, W) tensor -> normalised float tensor (C, H, W).

    Steps: grayscale <-> RGB to the model's channels; resize to cover ``config.scale_size``
    (``size / crop_pct``; none for a ``"pad"`` config without ``crop_pct``);
    centre-crop to ``input_size`` (padding with black where the image is smaller); random flip if
    ``is_training`` and the config asks for it; scale to [0, 1]; normalise. PIL images are resized by PIL,
    so for an image whose mode matches the model's channels this is exactly timm's eval transform
    ``timm.data.create_transform(**timm.data.resolve_data_config(model=model))``, and for any PIL image
    exactly what :func:`patchvae.extract_features` computes. ``train=`` is the deprecated spelling of
    ``is_training=`` (it warns).
    """
    if train is not None:
        warn_deprecated(_TRAIN_ARG)
        is_training = train
    cfg = resolve_data_config(model_or_config)
    chans, height, width = cfg.input_size
    steps: list[Any] = [_AsImage(), v2.RGB() if chans == 3 else v2.Grayscale(num_output_channels=1)]
    if cfg.scale_size is not None:
        steps.append(_ResizeToCover(cfg))
    steps.append(v2.CenterCrop((height, width)))
    if is_training and cfg.hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToImage(), _ToUnitRange(), v2.Normalize(list(cfg.mean), list(cfg.std))]
    return v2.Compose(steps)
