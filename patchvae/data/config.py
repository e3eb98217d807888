"""What a model expects as input: the preprocessing that travels with every set of weights."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["CIFAR", "FASHION_MNIST", "IMAGENET", "IMAGENET_NORMALIZATION", "MINUS_ONE_TO_ONE", "MNIST", "SCENES_64", "SVHN", "DataConfig"]

#: mean/std mapping [0, 1] pixels to [-1, 1], the range of the decoders' tanh output.
MINUS_ONE_TO_ONE = (0.5, 0.5)
#: ImageNet statistics (the authors' ``--inet`` flag, used in their CIFAR/Places/ImageNet commands).
IMAGENET_NORMALIZATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing of one set of weights.

    Attributes:
        input_size: (C, H, W) of the model input.
        mean, std: per-channel normalisation of [0, 1] pixels (length C).
        resize_mode: how a raw image reaches H×W. ``"resize_crop"``: resize (aspect ratio kept) to
            cover ``floor((H, W) / crop_pct)`` (:meth:`resized_size`), then centre-crop
            (CIFAR/Indoor67/Places205/ImageNet as in the paper). ``"pad"``: the image keeps a black
            border: resized likewise when ``crop_pct`` is set (Fashion-MNIST: 32/28, so any image
            becomes 28 pixels on the shorter side, centred on a 32×32 black canvas, as the 28×28
            training images were), else not resized at all (weights folders written before
            ``crop_pct`` existed), then centre-padded / centre-cropped.
        interpolation: resize interpolation (torchvision name).
        hflip: random horizontal flips during training.
        crop_pct: timm's ``crop_pct``: the resize target is ``size / crop_pct`` before the centre crop
            (``None``: 1.0 for ``"resize_crop"``, no resize for ``"pad"``); above 1 the crop pads with black.

    :meth:`to_timm` gives the same preprocessing in timm's vocabulary (what
    ``timm.data.resolve_data_config`` reads), so ``timm.data.create_transform`` reproduces it.
    """

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_mode: Literal["pad", "resize_crop"] = "resize_crop"
    interpolation: str = "bilinear"
    hflip: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    crop_pct: float | None = None

    def __post_init__(self) -> None:
        chans = self.input_size[0]
        if len(self.input_size) != 3 or min(self.input_size) < 1:
            raise ValueError(f"input_size must be (C, H, W) with positive entries, got {self.input_size}")
        if len(self.mean) != chans or len(self.std) != chans:
            raise ValueError(f"mean/std need {chans} values for {chans} channels, got {self.mean} / {self.std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        if self.resize_mode not in ("pad", "resize_crop"):
            raise ValueError(f"resize_mode must be 'pad' or 'resize_crop', got {self.resize_mode!r}")
        if self.crop_pct is not None and not 0.1 <= self.crop_pct <= 10:
            raise ValueError(f"crop_pct must be between 0.1 and 10 (resize to size / crop_pct), or None; got {self.crop_pct!r}")

    @property
    def channels(self) -> int:
        return self.input_size[0]

    @property
    def scale_size(self) -> tuple[int, int] | None:
        """(h, w) the image is resized to cover before the centre crop: ``floor(size / crop_pct)``
        (``None``: not resized, a ``"pad"`` config without ``crop_pct``)."""
        if self.crop_pct is None and self.resize_mode == "pad":
            return None
        return tuple(math.floor(side / (self.crop_pct or 1.0)) for side in self.input_size[1:])  # type: ignore[return-value]

    def resized_size(self, height: int, width: int) -> tuple[int, int] | None:
        """Size an image of ``height``×``width`` is resized to (aspect ratio kept), as timm's eval transform
        does: a square ``scale_size`` S makes the shorter side S (the longer one ``int(S·long/short)``,
        torchvision's ``Resize(S)``); otherwise the image is scaled to cover ``scale_size``. ``None``:
        no resize (no ``scale_size``, or the image already has it)."""
        target = self.scale_size
        if target is None:
            return None
        th, tw = target
        if th == tw:
            short, long = (height, width) if height <= width else (width, height)
            if short == th:
                return None
            new_short, new_long = th, int(th * long / short)
            return (new_short, new_long) if height <= width else (new_long, new_short)
        ratio = min(height / th, width / tw)
        size = (round(height / ratio), round(width / ratio))
        return None if size == (height, width) else size

    def to_timm(self) -> dict[str, Any]:
        """This preprocessing as timm's data config keys (``input_size``, ``mean``, ``std``,
        ``interpolation``, ``crop_pct``, ``crop_mode``).

        timm's eval transform resizes the image to cover ``size / crop_pct`` and centre-crops (padding
        with black where the image is smaller), which is exactly :func:`patchvae.data.create_transform`
        for every config with a ``scale_size``; a ``"pad"`` config without ``crop_pct`` (no resize)
        has no timm equivalent and agrees with timm only for images already at ``input_size``.
        """
        return {
            "input_size": tuple(self.input_size),
            "mean": tuple(self.mean),
            "std": tuple(self.std),
            "interpolation": self.interpolation,
            "crop_pct": float(self.crop_pct or 1.0),
            "crop_mode": "center",
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        keys = ("input_size", "mean", "std", "resize_mode", "interpolation", "hflip", "extra", "crop_pct")
        known = {k: d[k] for k in keys if k in d}
        for key in ("input_size", "mean", "std"):
            if key not in known:
                raise ValueError(f"data config is missing {key!r}: {d}")
        known["input_size"] = tuple(int(v) for v in known["input_size"])
        known["mean"] = tuple(float(v) for v in known["mean"])
        known["std"] = tuple(float(v) for v in known["std"])
        return cls(**known)

    def with_channels(self, chans: int) -> DataConfig:
        """The same preprocessing for ``chans`` input channels (grayscale <-> RGB)."""
        if chans == self.channels:
            return self
        mean = sum(self.mean) / len(self.mean)
        std = sum(self.std) / len(self.std)
        return DataConfig(
            (chans, *self.input_size[1:]), (mean,) * chans, (std,) * chans,
            self.resize_mode, self.interpolation, self.hflip, dict(self.extra), self.crop_pct,
        )


#: Fashion-MNIST: 28×28 images centred on a black 32×32 canvas (other sizes: shorter side to 28 first).
FASHION_MNIST = DataConfig((1, 32, 32), (0.5,), (0.5,), resize_mode="pad", crop_pct=32 / 28)
CIFAR = DataConfig((3, 32, 32), *IMAGENET_NORMALIZATION)
#: MNIST as Fashion-MNIST (28×28 grey padded to 32×32, [-1, 1]); likelihood models use their own 28×28 config.
MNIST = FASHION_MNIST
#: SVHN at 32×32 with ImageNet statistics, no flips (digits), as CIFAR.
SVHN = CIFAR
#: Indoor67 / Places205 at 64×64: resize + centre crop, flips in training (the authors' train transform).
SCENES_64 = DataConfig((3, 64, 64), *IMAGENET_NORMALIZATION, hflip=True)
#: ImageNet at 224×224 (paper Table 2).
IMAGENET = DataConfig((3, 224, 224), *IMAGENET_NORMALIZATION, hflip=True)
