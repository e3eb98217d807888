"""Feature extraction with the weights' own preprocessing.

``extract_features(model, inputs, layer=...)`` returns a dict of tensors; ``iter_features`` yields
them batch by batch; ``save_features`` streams them to a ``.npy``/``.safetensors`` file (what
``patchvae extract`` runs), so a folder of any size is never held in memory.

Every raw input (uint8 tensors, PIL images, uint8 numpy arrays, image files, folders, datasets) is
turned into uint8 (C, H, W) tensors and goes through one pipeline, so all input types give
bit-identical features: drop alpha, grayscale <-> RGB to the model's channels (ITU-R 601 luma),
fit to the weights' input size (``model.data_config``: resize + centre crop, or pad), scale to
[0, 1] and normalise. Each image is preprocessed on its own and the model runs in eval mode, so the
batch size does not change the results.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from ._runtime import autocast, resolve_amp

__all__ = [
    "IMAGE_SUFFIXES",
    "FeatureBatch",
    "available_layers",
    "extract_features",
    "iter_features",
    "list_image_files",
    "save_features",
]

log = logging.getLogger(__name__)

#: file types read from folders (case-insensitive)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
MODES = ("mean", "sample")
_FEATURE_DOC = """
    Layers and their shapes (``N`` images; ``H×W`` the weights' input size ``data_config.input_size``,
    or the size of preprocessed tensors; ``h×w = H/s × W/s`` with φ's stride ``s``: 8 for ResNet-9,
    32 for ResNet-18; ``P`` parts of dimension ``d_p``; ``D`` latent size; ``d_e`` φ's width):

    * ``"stem"`` (all models): (N, 64, H/2, W/2), φ's stem (7×7/2 conv + BN + ReLU).
    * ``"layer1"`` (all): (N, 64, H/4, W/4), φ's first residual stage.
    * ``"layer2"`` (all): (N, 128, H/8, W/8), φ's second stage (ResNet-9's last).
    * ``"layer3"`` (ResNet-18 φ): (N, 256, H/16, W/16).
    * ``"layer4"`` (ResNet-18 φ): (N, 512, H/32, W/32).
    * ``"features"`` (all): (N, d_e, h, w), f = φ(x), the last stage (d_e = 128 or 512).
    * ``"pooled"`` (all, the default): (N, d_e), the global average of φ(x).
    * ``"visibility"`` (PatchVAE): (N, P, h, w), Q^V(z_vis = 1 | x), the part visibility maps.
    * ``"visibility_logits"`` (PatchVAE): (N, P, h, w), their logits.
    * ``"appearance"`` (PatchVAE): (N, P, d_p), pooled part appearance μ̄ (``mode="mean"``) or a
      sample z_app ~ N(μ̄, σ̄²) (``mode="sample"``).
    * ``"appearance_var"`` (PatchVAE): (N, P, d_p), σ̄².
    * ``"patch_code"`` (PatchVAE): (N, P·d_p, h, w), ẑ = z_app ⊗ z_vis: μ̄ ⊗ P(visible) with
      ``mode="mean"`` (the model's eval-mode code), z_app ⊗ Bernoulli(P(visible)) with ``"sample"``.
    * ``"latent"`` (β-VAE, BiGAN): (N, D), β-VAE μ (mean) or z ~ N(μ, σ²) (sample); BiGAN E(x),
      deterministic in both modes.
    * ``"latent_var"`` (β-VAE): (N, D), σ².
    * ``"pre_logits"`` (Table 5 classifier): (N, hidden_dim).
    * ``"logits"`` (Table 5 classifier with classes): (N, num_classes).
"""


class FeatureBatch(NamedTuple):
    """One batch of :func:`iter_features`."""

    start: int  #: index of the batch's first image in the input order
    features: dict[str, torch.Tensor]  #: layer -> float32 CPU tensor (B, ...)
    names: list[str | None]  #: file path of each image (None for in-memory images)


# --------------------------------------------------------------------------- models
def _unwrap(model: nn.Module) -> nn.Module:
    for attr in ("_orig_mod", "module"):  # torch.compile, DataParallel/DDP
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            model = inner
    return model


def _kind(model: nn.Module) -> str:
    from .models import BetaVAE, BiGAN, Classifier, PatchVAE, ResNetTrunk

    for cls, kind in ((PatchVAE, "patchvae"), (BetaVAE, "beta_vae"), (BiGAN, "bigan"), (Classifier, "classifier"), (ResNetTrunk, "backbone")):
        if isinstance(model, cls):
            return kind
    raise TypeError(
        f"extract_features supports PatchVAE, BetaVAE, BiGAN, Classifier and backbone (φ) models, got "
        f"{type(model).__name__}. For a features_only model use patchvae.models.create_backbone(name) or the "
        "full model instead."
    )


def _trunk(model: nn.Module) -> nn.Module:
    return model if _kind(model) == "backbone" else model.backbone


def available_layers(model: nn.Module) -> list[str]:
    """The ``layer`` names :func:`extract_features` accepts for ``model`` (see its docstring for shapes)."""
    model = _unwrap(model)
    kind = _kind(model)
    trunk = _trunk(model)
    layers = ["stem", *trunk.stage_names, "features", "pooled"]
    if kind == "patchvae":
        layers += ["visibility", "visibility_logits", "appearance", "appearance_var", "patch_code"]
    elif kind == "beta_vae":
        layers += ["latent", "latent_var"]
    elif kind == "bigan":
        layers += ["latent"]
    elif kind == "classifier":
        layers += ["pre_logits"] + (["logits"] if model.num_classes > 0 else [])
    return layers


available_layers.__doc__ = (available_layers.__doc__ or "") + "\n" + _FEATURE_DOC


def _resolve_model(model_or_name: Any) -> tuple[nn.Module, bool]:
    """(model, owned): a model object is used as is; a name or weights folder is created here."""
    if isinstance(model_or_name, nn.Module):
        return model_or_name, False
    if isinstance(model_or_name, (str, os.PathLike)):
        from .models import create, from_pretrained, get_pretrained_cfg

        path = Path(model_or_name)
        if path.is_dir():
            return from_pretrained(path), True
        name = os.fspath(model_or_name)
        if not get_pretrained_cfg(name).has_weights:
            raise ValueError(
                f"{name!r} has no pretrained weights (see patchvae.models.list_pretrained()); pass a model instead, "
                f"e.g. patchvae.models.create({name!r}, checkpoint_path=...) (CLI: --checkpoint), or a weights folder"
            )
        return create(name, pretrained=True), True
    raise TypeError(f"model_or_name must be an nn.Module, a registered model name or a weights folder, got {type(model_or_name).__name__}")


def _check_layers(model: nn.Module, layer: str | Sequence[str]) -> list[str]:
    import difflib

    layers = [layer] if isinstance(layer, str) else list(layer) if isinstance(layer, (list, tuple)) else None
    if not layers or not all(isinstance(name, str) for name in layers):
        raise TypeError(f"layer must be a layer name or a non-empty list of names, got {layer!r}")
    known = available_layers(model)
    for name in layers:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{type(_unwrap(model)).__name__} has no layer {name!r}.{hint} Its layers: {known}")
    return list(dict.fromkeys(layers))


# --------------------------------------------------------------------------- inputs -> uint8 (C, H, W)
def list_image_files(directory: str | os.PathLike) -> list[Path]:
    """Image files under ``directory`` (recursive, :data:`IMAGE_SUFFIXES`), in sorted path order: the
    order of the rows :func:`extract_features` returns for a folder."""
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    files = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _check_chw(image: torch.Tensor, what: str) -> torch.Tensor:
    chans, height, width = image.shape
    if chans not in (1, 2, 3, 4):
        raise ValueError(
            f"{what} has {chans} channels (shape {tuple(image.shape)}); images have 1 (gray), 2 (gray+alpha), "
            "3 (RGB) or 4 (RGBA) channels, channels first for tensors (C, H, W) and last for numpy arrays (H, W, C)"
        )
    if height == 0 or width == 0:
        raise ValueError(f"{what} is empty (shape {tuple(image.shape)})")
    return image


def _from_numpy(array: np.ndarray, what: str = "numpy image") -> list[torch.Tensor]:
    if array.dtype != np.uint8:
        raise TypeError(
            f"{what} must be uint8 (H, W[, C]) pixels, got dtype {array.dtype}. Convert [0, 1] floats with "
            "(a * 255).round().astype(np.uint8); for normalised float inputs pass a torch tensor (N, C, H, W) "
            "with preprocessed=True."
        )
    if array.ndim == 2:
        return [_check_chw(torch.from_numpy(np.array(array, order="C"))[None], what)]
    if array.ndim == 3:
        if array.shape[-1] not in (1, 2, 3, 4):
            raise ValueError(
                f"{what} of shape {array.shape} is not (H, W, C) with C in 1-4. A channels-first array? Use "
                "np.transpose(a, (1, 2, 0)). A stack of gray images (N, H, W)? Use a[..., None]."
            )
        return [_check_chw(torch.from_numpy(np.array(array, order="C")).permute(2, 0, 1), what)]
    if array.ndim == 4:
        return [image for item in array for image in _from_numpy(item, what)]
    raise ValueError(f"{what} must be (H, W), (H, W, C) or (N, H, W, C), got shape {array.shape}")


def _from_pil(image: Any, what: str = "PIL image") -> torch.Tensor:
    mode = image.mode
    if mode.startswith("I;16"):
        array = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)  # 16-bit -> 8-bit
    elif mode in ("I", "F"):
        raise ValueError(f"{what} has mode {mode!r} (32-bit, no fixed range); convert it to 8-bit 'L' or 'RGB' first")
    elif mode in ("L", "RGB", "LA", "RGBA"):
        array = np.asarray(image)
    elif mode == "1":
        array = np.asarray(image.convert("L"))
    else:  # P, PA, CMYK, YCbCr, LAB, HSV ...
        array = np.asarray(image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB"))
    return _from_numpy(array, what)[0]


def _from_file(path: Path) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return _from_pil(image, str(path))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot read image file {path}: {err}") from err


def _from_tensor(tensor: torch.Tensor, preprocessed: bool, what: str) -> list[torch.Tensor]:
    if tensor.ndim not in (3, 4):
        hint = " For one grayscale image use x[None] (1, H, W)." if tensor.ndim == 2 else ""
        raise ValueError(f"{what} must be (C, H, W) or (N, C, H, W), got shape {tuple(tensor.shape)}.{hint}")
    images = [tensor] if tensor.ndim == 3 else list(tensor.unbind(0))
    if preprocessed:
        if not tensor.is_floating_point():
            raise TypeError(
                f"preprocessed=True expects normalised float tensors, got {tensor.dtype}; pass uint8 images "
                "without preprocessed=True to have the weights' preprocessing applied"
            )
        return images
    if tensor.dtype != torch.uint8:
        raise TypeError(
            f"{what} has dtype {tensor.dtype}; raw images are uint8 tensors (C, H, W) / (N, C, H, W). If the "
            "tensor is already normalised for the model, pass preprocessed=True; if it holds [0, 1] pixels, "
            "convert it with (x * 255).round().to(torch.uint8)."
        )
    return [_check_chw(image.detach().cpu(), what) for image in images]


class _Item(NamedTuple):
    image: torch.Tensor  # uint8 (C, H, W), or float (C, H, W) when preprocessed
    name: str | None


def _items(inputs: Any, preprocessed: bool, *, nested: bool = False) -> Iterator[_Item]:
    """Every image of ``inputs`` as an :class:`_Item`, in order, lazily (files are read one at a time)."""
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    if isinstance(inputs, torch.Tensor):
        for image in _from_tensor(inputs, preprocessed, "input tensor"):
            yield _Item(image, None)
        return
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        if path.is_dir():
            files = list_image_files(path)
            if not files and not nested:
                raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {path}")
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"{path} does not exist")
        _refuse_preprocessed(preprocessed, "image files")
        for file in files:
            yield _Item(_from_file(file), str(file))
        return
    if isinstance(inputs, np.ndarray):
        _refuse_preprocessed(preprocessed, "numpy arrays")
        for image in _from_numpy(inputs):
            yield _Item(image, None)
        return
    if _is_pil(inputs):
        _refuse_preprocessed(preprocessed, "PIL images")
        yield _Item(_from_pil(inputs), None)
        return
    if isinstance(inputs, DataLoader):
        for batch in inputs:
            if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor) and batch[0].ndim == 4:
                batch = batch[0]  # (images, labels)
            yield from _items(batch, preprocessed, nested=True)
        return
    if isinstance(inputs, (Dataset, IterableDataset)) and not isinstance(inputs, (list, tuple)):
        iterator = iter(inputs) if isinstance(inputs, IterableDataset) else (inputs[i] for i in range(len(inputs)))
        for sample in iterator:
            if isinstance(sample, (tuple, list)) and sample:
                sample = sample[0]  # (image, label)
            yield from _single(sample, preprocessed)
        return
    if isinstance(inputs, (list, tuple)):
        for item in inputs:
            if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
                yield from _items(item, preprocessed, nested=True)
            else:
                yield from _single(item, preprocessed)
        return
    raise TypeError(
        f"unsupported inputs of type {type(inputs).__name__}: pass a tensor (N, C, H, W) or (C, H, W), a PIL "
        "image, a uint8 numpy array (H, W[, C]) / (N, H, W, C), a file or folder path, a list of those, or a "
        "torch Dataset/DataLoader"
    )


def _single(item: Any, preprocessed: bool) -> Iterator[_Item]:
    """One image: a (C, H, W) tensor, a PIL image, an (H, W[, C]) array or a file path."""
    if isinstance(item, torch.Tensor):
        if item.ndim != 3:
            raise ValueError(f"each image in a list/dataset must be (C, H, W), got a tensor of shape {tuple(item.shape)}")
        yield _Item(_from_tensor(item, preprocessed, "image tensor")[0], None)
    elif isinstance(item, np.ndarray):
        if item.ndim not in (2, 3):
            raise ValueError(f"each image in a list/dataset must be (H, W) or (H, W, C), got an array of shape {item.shape}")
        _refuse_preprocessed(preprocessed, "numpy arrays")
        yield _Item(_from_numpy(item)[0], None)
    elif isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist or is not a file")
        _refuse_preprocessed(preprocessed, "image files")
        yield _Item(_from_file(path), str(path))
    elif _is_pil(item):
        _refuse_preprocessed(preprocessed, "PIL images")
        yield _Item(_from_pil(item), None)
    else:
        raise TypeError(
            f"unsupported image of type {type(item).__name__}: each image is a (C, H, W) tensor, a PIL image, a "
            "uint8 (H, W[, C]) array or a file path"
        )


def _is_pil(obj: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(obj, Image.Image)


def _refuse_preprocessed(preprocessed: bool, what: str) -> None:
    if preprocessed:
        raise TypeError(
            f"preprocessed=True is for normalised float tensors; {what} are raw images: drop preprocessed=True and "
            "the weights' preprocessing is applied"
        )


def _count(inputs: Any) -> int | None:
    """Number of images, when known without reading them (for the progress bar)."""
    if isinstance(inputs, torch.Tensor):
        return 1 if inputs.ndim == 3 else int(inputs.shape[0]) if inputs.ndim == 4 else None
    if isinstance(inputs, np.ndarray):
        return int(inputs.shape[0]) if inputs.ndim == 4 else 1
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        return len(list_image_files(path)) if path.is_dir() else 1
    try:
        from torch.utils.data import DataLoader

        if isinstance(inputs, (list, tuple)):
            return sum(
                len(list_image_files(i)) if isinstance(i, (str, os.PathLike)) and Path(i).is_dir() else 1 for i in inputs
            )
        return len(inputs.dataset if isinstance(inputs, DataLoader) else inputs)
    except TypeError:
        return None


# --------------------------------------------------------------------------- preprocessing + forward
def _preprocess(images: list[torch.Tensor], data_config: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (C, h, w) images of any sizes -> normalised (B, *input_size), one image at a time."""
    from .data.memory import BatchPreprocess

    step = BatchPreprocess(data_config, train=False)
    images = [image[:-1] if image.shape[0] in (2, 4) else image for image in images]  # drop alpha
    if len({tuple(image.shape) for image in images}) == 1:  # one size: one batched call (same per-image maths)
        return step(torch.stack(images).to(device)).to(dtype)
    return torch.stack([step(image[None].to(device))[0] for image in images]).to(dtype)


def _check_preprocessed(x: torch.Tensor, model: nn.Module, trunk: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    from .models.layers import check_images

    size = getattr(model, "img_size", None)
    x = x.to(dtype)
    check_images(x, in_chans=trunk.in_chans, stride=trunk.stride, image_size=(size, size) if size else None, param_dtype=dtype)
    return x


def _noise(shape: tuple[int, ...], seed: int, index: int, draw: str) -> torch.Tensor:
    """Per-image noise: depends on (seed, image index) only, so batching does not change samples."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + index * 2 + (draw == "uniform")) % (2**63))
    return torch.rand(shape, generator=gen) if draw == "uniform" else torch.randn(shape, generator=gen)


def _per_image_noise(like: torch.Tensor, seed: int, start: int, draw: str) -> torch.Tensor:
    noise = [_noise(tuple(like.shape[1:]), seed, start + i, draw) for i in range(like.shape[0])]
    return torch.stack(noise).to(device=like.device, dtype=like.dtype)


@torch.no_grad()
def _forward(model: nn.Module, kind: str, layers: list[str], x: torch.Tensor, mode: str, seed: int, start: int) -> dict[str, torch.Tensor]:
    trunk = _trunk(model)
    modules = {"stem": trunk.act1, **{name: getattr(trunk, name) for name in trunk.stage_names}}
    last = trunk.stage_names[-1]
    wanted = {name for name in layers if name in modules} | ({last} if kind == "bigan" else set())
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out.detach().clone()))
        for name in wanted
    ]
    out: dict[str, torch.Tensor] = {}
    try:
        if kind == "patchvae":
            from .models.patchvae import assemble_patch_code

            post = model.encode(x)
            f = post.features
            sample = mode == "sample"
            app = post.appearance_mean
            if sample and ("appearance" in layers or "patch_code" in layers):
                app = app + post.appearance_var.sqrt() * _per_image_noise(app, seed, start, "normal")
            out.update(visibility=post.visibility_probs, visibility_logits=post.visibility_logits, appearance=app, appearance_var=post.appearance_var)
            if "patch_code" in layers:
                probs = post.visibility_probs
                if sample:
                    vis = (_per_image_noise(probs, seed, start, "uniform") < probs).to(probs.dtype)
                else:
                    vis = (probs > 0.5).to(probs.dtype) if model.hard else probs
                out["patch_code"] = assemble_patch_code(app, vis)
        elif kind == "beta_vae":
            f, mean, var = model.encode(x)
            latent = mean + var.sqrt() * _per_image_noise(mean, seed, start, "normal") if mode == "sample" else mean
            out.update(latent=latent, latent_var=var)
        elif kind == "bigan":
            if "latent" in layers:
                out["latent"] = model.encode(x)  # E(x) = proj(reduce(φ(x))): φ(x) is captured on the way
                f = captured[last]
            else:
                f = trunk.forward_features(x)
        elif kind == "classifier":
            f = model.forward_features(x)
            pre = model.forward_head(f, pre_logits=True)
            out.update(pre_logits=pre, logits=model.fc(pre))
        else:
            f = trunk.forward_features(x)
        out["features"] = f
        out["pooled"] = f.float().mean(dim=(2, 3))
        out.update(captured)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: out[name].detach().float().cpu().contiguous() for name in layers}


# --------------------------------------------------------------------------- public API
def iter_features(
    model_or_name: nn.Module | str | os.PathLike,
    inputs: Any,
    *,
    layer: str | Sequence[str] = "pooled",
    mode: str = "mean",
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = True,
    preprocessed: bool = False,
    seed: int = 0,
    amp: str | None = "auto",
) -> Iterator[FeatureBatch]:
    """Features of ``inputs`` batch by batch, as :class:`FeatureBatch` (see :func:`extract_features`).

    Images are read and preprocessed one batch at a time: memory stays bounded by ``batch_size``
    whatever the number of images. Arguments are checked when called; the model is put in eval mode
    (and on ``device``) while the iterator runs and restored when it ends (or is closed).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(preprocessed, bool):
        raise TypeError(f"preprocessed must be True or False, got {preprocessed!r}")
    model, owned = _resolve_model(model_or_name)
    inner = _unwrap(model)
    kind = _kind(inner)
    layers = _check_layers(inner, layer)
    trunk = _trunk(inner)
    data_config = getattr(inner, "data_config", None)
    if not preprocessed and data_config is None:
        raise ValueError(
            f"this {type(inner).__name__} has no data_config (it was not made by patchvae.models.create), so its "
            "preprocessing is unknown: create it with patchvae.models.create(...), set model.data_config = "
            "patchvae.data.DataConfig(...), or pass normalised float tensors with preprocessed=True"
        )
    param = next(inner.parameters())
    target = torch.device(device) if device is not None else param.device
    amp_dtype = resolve_amp(amp, target) if param.dtype == torch.float32 else None
    # validated above, at call time; the generator below runs the batches
    return _run(inner, owned, kind, layers, trunk, data_config, inputs, mode, batch_size, target, progress, preprocessed,
                seed, amp_dtype)


def _run(
    inner: nn.Module, owned: bool, kind: str, layers: list[str], trunk: nn.Module, data_config: Any, inputs: Any,
    mode: str, batch_size: int, target: torch.device, progress: bool, preprocessed: bool, seed: int,
    amp_dtype: torch.dtype | None,
) -> Iterator[FeatureBatch]:
    param = next(inner.parameters())
    was_training, was_device = inner.training, param.device
    total = _count(inputs)

    def batches() -> Iterator[list[_Item]]:
        chunk: list[_Item] = []
        for item in _items(inputs, preprocessed):
            chunk.append(item)
            if len(chunk) == batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="img", desc="extract", disable=not progress or (total is not None and total <= batch_size))
    seen = 0
    try:
        inner.eval()
        if target != was_device:
            inner.to(target)
        dtype = next(inner.parameters()).dtype
        for chunk in batches():
            if preprocessed:
                x = _check_preprocessed(torch.stack([i.image.to(target) for i in _same_size(chunk)]), inner, trunk, dtype)
            else:
                x = _preprocess([i.image for i in chunk], data_config, target, dtype)
            if x.ndim == 4:  # channels_last: the fast convolution layout on CPU and GPU (same numbers)
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(target, amp_dtype):
                feats = _forward(inner, kind, layers, x, mode, seed, seen)
            yield FeatureBatch(seen, feats, [i.name for i in chunk])
            seen += len(chunk)
            bar.update(len(chunk))
        if seen == 0:
            raise ValueError("no images to extract features from (the inputs are empty)")
    finally:
        bar.close()
        if not owned:
            inner.train(was_training)
            if target != was_device:
                inner.to(was_device)


def _same_size(chunk: list[_Item]) -> list[_Item]:
    shapes = {tuple(i.image.shape) for i in chunk}
    if len(shapes) > 1:
        raise ValueError(f"preprocessed tensors in one batch must have the same shape, got {sorted(shapes)}")
    return chunk


def extract_features(
    model_or_name: nn.Module | str | os.PathLike,
    inputs: Any,
    *,
    layer: str | Sequence[str] = "pooled",
    mode: str = "mean",
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = True,
    preprocessed: bool = False,
    seed: int = 0,
    amp: str | None = "auto",
) -> dict[str, torch.Tensor]:
    """Features of images under a zoo model, with the weights' own preprocessing.

    Args:
        model_or_name: a model from :func:`patchvae.models.create` / ``create_backbone`` (or timm), a
            registered name with weights (``"arch"`` or ``"arch.tag"``), or a weights folder.
        inputs: uint8 tensor (N, C, H, W) or (C, H, W); PIL image or list of them; uint8 numpy array
            (H, W), (H, W, C) or (N, H, W, C) or list of them; image file path(s); a folder (read
            recursively, sorted path order: :func:`list_image_files`); a torch ``Dataset`` (items
            ``image`` or ``(image, label)``) or ``DataLoader``. Images may differ in size and have
            1-4 channels. With ``preprocessed=True``: normalised float tensors (N, C, H, W) the model
            takes as they are (or a Dataset/DataLoader of them).
        layer: a layer name or a list of them (listed below); default ``"pooled"``.
        mode: ``"mean"`` (posterior means, deterministic) or ``"sample"`` (posterior samples for
            ``appearance``, ``patch_code`` and β-VAE ``latent``; image ``i`` gets the same sample for
            the same ``seed`` whatever the batch size).
        batch_size: images per forward pass. Preprocessing is per image and the model runs in eval
            mode, so the batch size changes the results only at float rounding level (relative ~1e-5,
            from how the convolution kernels block a batch).
        device: where to run (default: where the model is). A model object is moved back afterwards.
        progress: a tqdm progress bar when there is more than one batch.
        preprocessed: the inputs are already normalised float tensors: no preprocessing.
        seed: seed of ``mode="sample"``.
        amp: autocast precision: ``"auto"`` (default) is bf16 on CPUs with native bf16 (AVX512-BF16/AMX)
            and on bf16-capable GPUs, about 3x faster than float32 on such CPUs with the same linear-probe
            and kNN accuracy (docs/benchmarks.md); ``None`` computes in the model's own precision
            (float32), ``"bf16"``/``"fp16"`` force one. Batches run channels_last (same maths, faster).

    Returns:
        ``{layer: float32 CPU tensor (N, ...)}``, rows in input order.
    """
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in iter_features(
        model_or_name, inputs, layer=layer, mode=mode, batch_size=batch_size, device=device,
        progress=progress, preprocessed=preprocessed, seed=seed, amp=amp,
    ):
        for name, value in batch.features.items():
            parts.setdefault(name, []).append(value)
    return {name: torch.cat(values) for name, values in parts.items()}


extract_features.__doc__ = (extract_features.__doc__ or "") + _FEATURE_DOC + """
    Raises:
        TypeError: unsupported input/model type, non-uint8 raw images, or float tensors without
            ``preprocessed=True``.
        ValueError: unknown layer or mode, bad image shapes/channels, unreadable image files, empty inputs.
        FileNotFoundError: a path that does not exist.
"""


# --------------------------------------------------------------------------- streaming to disk
class _RowWriter:
    """Appends each layer's rows to a raw float32 file in a temporary folder next to the output."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, Any] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.rows = 0

    def write(self, features: dict[str, torch.Tensor]) -> None:
        for name, value in features.items():
            if name not in self.files:
                self.files[name] = open(self.folder / f"{len(self.files)}.f32", "wb")  # noqa: SIM115
                self.shapes[name] = tuple(value.shape[1:])
            self.files[name].write(value.numpy().astype("<f4", copy=False).tobytes())
        self.rows += next(iter(features.values())).shape[0]

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def path(self, name: str) -> Path:
        return Path(self.files[name].name)


def _write_npy(writer: _RowWriter, out: Path) -> None:
    (name,) = writer.files
    header = {"descr": "<f4", "fortran_order": False, "shape": (writer.rows, *writer.shapes[name])}
    with open(out, "wb") as f, open(writer.path(name), "rb") as src:
        np.lib.format.write_array_header_1_0(f, header)
        shutil.copyfileobj(src, f, 1 << 20)


def _write_safetensors(writer: _RowWriter, out: Path, metadata: dict[str, str]) -> None:
    header: dict[str, Any] = {}
    offset = 0
    for name in writer.files:
        size = writer.path(name).stat().st_size
        header[name] = {"dtype": "F32", "shape": [writer.rows, *writer.shapes[name]], "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(out, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name in writer.files:
            with open(writer.path(name), "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)


def save_features(
    model_or_name: nn.Module | str | os.PathLike,
    inputs: Any,
    out: str | os.PathLike,
    *,
    layer: str | Sequence[str] = "pooled",
    overwrite: bool = False,
    **kwargs: Any,
) -> Path:
    """Stream the features of ``inputs`` to ``out`` without holding them (or the images) in memory.

    ``out`` ending in ``.npy``: one layer, an array (N, ...) float32; file paths of folder/file inputs
    go to ``<stem>.files.txt`` next to it. ``.safetensors``: one tensor per layer, with metadata
    ``model``, ``layers``, ``mode`` and ``files`` (JSON list of the input files). Other arguments as
    :func:`extract_features`. The file appears only when complete. Returns ``out``.
    """
    out = Path(out)
    if out.suffix not in (".npy", ".safetensors"):
        raise ValueError(f"out must end in .npy or .safetensors, got {out}")
    layers = [layer] if isinstance(layer, str) else list(layer) if isinstance(layer, (list, tuple)) else layer
    if out.suffix == ".npy" and isinstance(layers, list) and len(layers) != 1:
        raise ValueError(f"a .npy file holds one array: pick one layer (got {layers}) or write a .safetensors file")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    names: list[str | None] = []
    mode = kwargs.get("mode", "mean")
    if isinstance(model_or_name, (str, os.PathLike)):
        model_name = os.fspath(model_or_name)
    else:
        inner = _unwrap(model_or_name)
        cfg = getattr(inner, "patchvae_cfg", None) or getattr(inner, "pretrained_cfg", None)
        model_name = getattr(cfg, "name", None) or type(inner).__name__
    with tempfile.TemporaryDirectory(prefix=".patchvae-extract-", dir=out.parent) as tmp:
        writer = _RowWriter(Path(tmp))
        try:
            for batch in iter_features(model_or_name, inputs, layer=layer, **kwargs):
                writer.write(batch.features)
                names.extend(batch.names)
        finally:
            writer.close()
        partial = Path(tmp) / f"out{out.suffix}"
        if out.suffix == ".npy":
            _write_npy(writer, partial)
        else:
            files = [n or "" for n in names] if any(names) else []
            metadata = {
                "format": "pt",
                "model": model_name,
                "layers": json.dumps(list(writer.files)),
                "mode": str(mode),
                "amp": str(kwargs.get("amp", "auto")),
                "files": json.dumps(files),
            }
            _write_safetensors(writer, partial, metadata)
        os.replace(partial, out)
    if out.suffix == ".npy" and any(names):
        listing = out.with_name(out.stem + ".files.txt")
        listing.write_text("".join(f"{n or ''}\n" for n in names), encoding="utf-8")
    return out
