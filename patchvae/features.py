"""Feature extraction with the weights' own preprocessing.

``extract_features(model, inputs, layer=...)`` returns a dict of tensors; ``iter_features`` yields
them batch by batch; ``save_features`` streams them to a ``.npy``/``.safetensors`` file (what
``patchvae extract`` runs), so a folder of any size is never held in memory.

Every raw input (uint8 tensors, PIL images, uint8 numpy arrays, image files, folders, datasets) is
turned into uint8 (C, H, W) tensors (:mod:`patchvae._extract.inputs`) and goes through one pipeline,
so all input types give bit-identical features: drop alpha, then exactly
``patchvae.data.create_transform(model)`` of the image as a PIL image (grayscale <-> RGB to the
model's channels as PIL's ``convert``, resize by PIL + centre crop or pad to the weights' input size
(``model.data_config``), scale to [0, 1], normalise): the tensors timm's
``create_transform(**resolve_data_config(model=model))`` gives for images whose mode matches the
model's channels. Each image is preprocessed on its own and the model runs in eval mode, so the
batch size does not change the results.

Results carry the input file names (``.files``), what was skipped with ``on_error="skip"``
(``.skipped``) and the precision actually used (``.amp``): :class:`FeatureDict` is a plain
``dict[str, Tensor]`` with these attributes.

The layers come from the model itself, through the representation protocol
(:class:`patchvae.models.Representable`: ``model.representations()`` lists them with their shapes,
``model.represent(x, names, mode)`` computes them): this module knows no model family.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ._extract.inputs import IMAGE_SUFFIXES, ON_ERROR, Item, count_images, iter_items, list_image_files
from ._extract.writers import RowWriter, write_npy, write_safetensors
from ._runtime import autocast, resolve_amp

__all__ = [
    "IMAGE_SUFFIXES",
    "FeatureBatch",
    "FeatureDict",
    "available_layers",
    "extract_features",
    "iter_features",
    "list_image_files",
    "save_features",
]

log = logging.getLogger(__name__)

MODES = ("mean", "sample", "embedding")
_FEATURE_DOC = """
    Layers: every model lists its own, with per-image shapes, in ``model.representations()``
    (:func:`available_layers` gives the names; ``docs/api.md`` has the table of every family). All
    φ-based models have ``"stem"``, φ's stages (``"layer1"``, ``"layer2"`` ...), ``"features"``
    (f = φ(x), (N, d_e, h, w)) and ``"pooled"`` (N, d_e), the default. PatchVAE adds part
    ``"visibility"`` / ``"visibility_logits"`` (N, P, h, w), ``"appearance"`` / ``"appearance_var"``
    (N, P, d_p) and ``"patch_code"`` (N, P·d_p, h, w); β-VAE ``"latent"`` / ``"latent_var"`` (N, D);
    BiGAN ``"latent"`` (N, D); the Table 5 classifier ``"pre_logits"`` and ``"logits"``.

    Modes: ``"mean"`` posterior means (deterministic), ``"sample"`` posterior samples of the
    stochastic layers, ``"embedding"`` the distribution embedding ``[μ, σ]`` of Gaussian latents
    (last axis doubled: β-VAE ``latent`` (N, 2D), PatchVAE ``appearance`` (N, P, 2·d_p)).
"""


class FeatureBatch(NamedTuple):
    """One batch of :func:`iter_features`."""

    start: int  #: index of the batch's first image in the input order (skipped images not counted)
    features: dict[str, torch.Tensor]  #: layer -> float32 CPU tensor (B, ...)
    names: list[str | None]  #: file path of each image (None for in-memory images)
    #: ``(file, reason)`` of the images skipped (``on_error="skip"``) while this batch was read
    skipped: list[tuple[str, str]] = []  # noqa: RUF012 (always passed a fresh list)
    amp: str = "none"  #: the autocast precision actually used: "bf16", "fp16" or "none" (float32)


class FeatureDict(dict):
    """What :func:`extract_features` returns: ``{layer: float32 tensor (N, ...)}``, a plain dict, plus

    Attributes:
        files: the file path of each row (``None`` for in-memory images), in row order, e.g. the
            files of a folder in sorted path order.
        skipped: ``(file, reason)`` of each image left out with ``on_error="skip"``.
        amp: the autocast precision actually used: ``"bf16"``, ``"fp16"`` or ``"none"`` (float32).
    """

    def __init__(self, features: dict[str, torch.Tensor], files: list[str | None] | None = None,
                 skipped: list[tuple[str, str]] | None = None, amp: str = "none") -> None:
        super().__init__(features)
        self.files: list[str | None] = list(files or [])
        self.skipped: list[tuple[str, str]] = list(skipped or [])
        self.amp = amp


# --------------------------------------------------------------------------- models
def _unwrap(model: nn.Module) -> nn.Module:
    for attr in ("_orig_mod", "module"):  # torch.compile, DataParallel/DDP
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            model = inner
    return model


def _representable(model: nn.Module) -> nn.Module:
    from .models import Representable

    if not isinstance(model, Representable):
        raise TypeError(
            f"extract_features needs a model with named layers (the patchvae.models.Representable protocol: "
            f"representations() and represent()), got {type(model).__name__}. The φ trunks, VAEs, BiGANs and classifiers "
            "of patchvae.models have them; for a features_only model use patchvae.models.create_backbone(name) or the "
            "full model instead."
        )
    return model


def available_layers(model: nn.Module) -> list[str]:
    """The ``layer`` names :func:`extract_features` accepts for ``model`` (see its docstring)."""
    return list(_representable(_unwrap(model)).representations())


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


def _check_layers(model: nn.Module, layer: str | Sequence[str], mode: str) -> list[str]:
    from .models._protocol import check_representation_names

    layers = [layer] if isinstance(layer, str) else list(layer) if isinstance(layer, (list, tuple)) else None
    if not layers or not all(isinstance(name, str) for name in layers):
        raise TypeError(f"layer must be a layer name or a non-empty list of names, got {layer!r}")
    return check_representation_names(model, layers, mode)


# --------------------------------------------------------------------------- preprocessing + forward
def _to_pil(image: torch.Tensor) -> Any:
    """uint8 (C, h, w), C in 1-4 -> PIL "L" / "RGB" image (alpha dropped)."""
    from PIL import Image

    if image.shape[0] in (2, 4):
        image = image[:-1]  # drop alpha
    array = image.permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array[..., 0], mode="L") if array.shape[-1] == 1 else Image.fromarray(array, mode="RGB")


def _preprocess(images: list[torch.Tensor], data_config: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (C, h, w) images of any sizes -> normalised (B, *input_size), one image at a time, exactly as
    ``create_transform(data_config)`` of the image as a PIL image (so as timm's transform)."""
    from .data.transforms import create_transform

    transform = create_transform(data_config, is_training=False)
    return torch.stack([transform(_to_pil(image)) for image in images]).to(device=device, dtype=dtype)


def _noise(shape: tuple[int, ...], seed: int, index: int, draw: str) -> torch.Tensor:
    """Per-image noise: depends on (seed, image index) only, so batching does not change samples."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + index * 2 + (draw == "uniform")) % (2**63))
    return torch.rand(shape, generator=gen) if draw == "uniform" else torch.randn(shape, generator=gen)


def _per_image_noise(like: torch.Tensor, seed: int, start: int, draw: str) -> torch.Tensor:
    noise = [_noise(tuple(like.shape[1:]), seed, start + i, draw) for i in range(like.shape[0])]
    return torch.stack(noise).to(device=like.device, dtype=like.dtype)


@torch.no_grad()
def _represent(model: nn.Module, layers: list[str], x: torch.Tensor, mode: str, seed: int, start: int) -> dict[str, torch.Tensor]:
    """The model's own layers of a batch whose first image has index ``start``, as float32 CPU tensors."""
    out = model.represent(x, layers, mode=mode, noise=lambda like, draw: _per_image_noise(like, seed, start, draw))
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
    on_error: str = "raise",
) -> Iterator[FeatureBatch]:
    """Features of ``inputs`` batch by batch, as :class:`FeatureBatch` (see :func:`extract_features`).

    Images are read and preprocessed one batch at a time: memory stays bounded by ``batch_size``
    whatever the number of images. Arguments are checked when called; the model is put in eval mode
    (and on ``device``) while the iterator runs and restored when it ends (or is closed).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(preprocessed, bool):
        raise TypeError(f"preprocessed must be True or False, got {preprocessed!r}")
    model, owned = _resolve_model(model_or_name)
    inner = _representable(_unwrap(model))
    layers = _check_layers(inner, layer, mode)
    data_config = getattr(inner, "data_config", None)
    if not preprocessed and data_config is None:
        raise ValueError(
            f"this {type(inner).__name__} has no data_config (it was not made by patchvae.models.create), so its "
            "preprocessing is unknown: create it with patchvae.models.create(...), set model.data_config = "
            "patchvae.data.DataConfig(...), or pass normalised float tensors with preprocessed=True"
        )
    param = next(inner.parameters())
    target = torch.device(device) if device is not None else param.device
    if target.type == "meta" or param.device.type == "meta":
        raise ValueError(
            "extract_features cannot run on the 'meta' device: meta tensors hold no values, and moving the model "
            "there would discard its weights. Pass device='cpu' or 'cuda' (and load real weights into a meta model first)."
        )
    amp_dtype = resolve_amp(amp, target) if param.dtype == torch.float32 else None
    # validated above, at call time; the generator below runs the batches
    return _run(inner, owned, layers, data_config, inputs, mode, batch_size, target, progress, preprocessed, seed, amp_dtype,
                on_error)


def _amp_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "none")  # type: ignore[arg-type]


def _run(
    inner: nn.Module, owned: bool, layers: list[str], data_config: Any, inputs: Any, mode: str, batch_size: int,
    target: torch.device, progress: bool, preprocessed: bool, seed: int, amp_dtype: torch.dtype | None,
    on_error: str = "raise",
) -> Iterator[FeatureBatch]:
    param = next(inner.parameters())
    was_training, was_device = inner.training, param.device
    total = count_images(inputs)
    skipped: list[tuple[str, str]] | None = [] if on_error == "skip" else None
    reported = 0

    def batches() -> Iterator[list[Item]]:
        chunk: list[Item] = []
        lookahead = skipped is not None  # on_error="skip": a full batch goes once the next image is read, so that
        for item in iter_items(inputs, preprocessed, skipped=skipped):  # unreadable last files are still reported
            if lookahead and len(chunk) == batch_size:
                yield chunk
                chunk = []
            chunk.append(item)
            if not lookahead and len(chunk) == batch_size:
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
                x = torch.stack([i.image.to(target) for i in _same_size(chunk)]).to(dtype)
            else:
                x = _preprocess([i.image for i in chunk], data_config, target, dtype)
            if x.ndim == 4:  # channels_last: the fast convolution layout on CPU and GPU (same numbers)
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(target, amp_dtype):
                feats = _represent(inner, layers, x, mode, seed, seen)
            fresh = list(skipped[reported:]) if skipped else []
            reported += len(fresh)
            yield FeatureBatch(seen, feats, [i.name for i in chunk], fresh, _amp_name(amp_dtype))
            seen += len(chunk)
            bar.update(len(chunk) + len(fresh))
        if seen == 0:
            if skipped:
                raise ValueError(f"no readable images: all {len(skipped)} were skipped (first: {skipped[0][0]}: {skipped[0][1]})")
            raise ValueError("no images to extract features from (the inputs are empty)")
        if skipped:
            log.warning("skipped %d unreadable image(s) (on_error='skip'): %s", len(skipped),
                        ", ".join(name for name, _ in skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    finally:
        bar.close()
        if not owned:
            inner.train(was_training)
            if target != was_device:
                inner.to(was_device)


def _same_size(chunk: list[Item]) -> list[Item]:
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
    on_error: str = "raise",
) -> FeatureDict:
    """Features of images under a zoo model, with the weights' own preprocessing.

    Args:
        model_or_name: a model from :func:`patchvae.models.create` / ``create_backbone`` (or timm), a
            registered name with weights (``"arch"`` or ``"arch.tag"``), or a weights folder.
        inputs: uint8 tensor (N, C, H, W) or (C, H, W); PIL image or list of them; uint8 numpy array
            (H, W), (H, W, C) or (N, H, W, C) or list of them; image file path(s); a folder (read
            recursively, sorted path order: :func:`list_image_files`); a torch ``Dataset`` (items
            ``image`` or ``(image, label)``) or ``DataLoader``. Images may differ in size and have
            1-4 channels. With ``preprocessed=True``: normalised float tensors (N, C, H, W) the model
            takes as they are (or a Dataset/DataLoader of them). Float tensors of [0, 1] pixels
            (torchvision's ``ToTensor``) are refused on purpose, since they cannot be told apart from
            normalised ones: pass ``(x * 255).round().to(torch.uint8)``.
        layer: a layer name or a list of them (listed below); default ``"pooled"``.
        mode: ``"mean"`` (posterior means, deterministic), ``"sample"`` (posterior samples of the
            stochastic layers, e.g. ``appearance``, ``patch_code`` and β-VAE ``latent``; image ``i``
            gets the same sample for the same ``seed`` whatever the batch size) or ``"embedding"``
            (the distribution embedding [μ, σ] of Gaussian latents; see the layers below).
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
            The precision actually used is the result's ``.amp``.
        on_error: ``"raise"`` (default): an unreadable image file (e.g. a truncated JPEG) raises;
            ``"skip"``: it is left out, logged, and listed in the result's ``.skipped``.

    Returns:
        A :class:`FeatureDict`: ``{layer: float32 CPU tensor (N, ...)}``, rows in input order (a plain
        dict), with ``.files`` (the file of each row, e.g. a folder's files in sorted path order; None
        for in-memory images), ``.skipped`` (``(file, reason)`` pairs) and ``.amp``.
    """
    parts: dict[str, list[torch.Tensor]] = {}
    files: list[str | None] = []
    skipped: list[tuple[str, str]] = []
    used = "none"
    for batch in iter_features(
        model_or_name, inputs, layer=layer, mode=mode, batch_size=batch_size, device=device,
        progress=progress, preprocessed=preprocessed, seed=seed, amp=amp, on_error=on_error,
    ):
        for name, value in batch.features.items():
            parts.setdefault(name, []).append(value)
        files.extend(batch.names)
        skipped.extend(batch.skipped)
        used = batch.amp
    return FeatureDict({name: torch.cat(values) for name, values in parts.items()}, files, skipped, used)


extract_features.__doc__ = (extract_features.__doc__ or "") + _FEATURE_DOC + """
    Raises:
        TypeError: unsupported input/model type, non-uint8 raw images, or float tensors without
            ``preprocessed=True``.
        ValueError: unknown layer or mode, bad image shapes/channels, unreadable image files, empty inputs.
        FileNotFoundError: a path that does not exist.
"""


# --------------------------------------------------------------------------- streaming to disk
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
    go to ``<stem>.files.txt`` next to it (and the skipped ones, with ``on_error="skip"``, to
    ``<stem>.skipped.txt``: ``file<TAB>reason`` lines). ``.safetensors``: one tensor per layer, with
    metadata ``model`` (the full ``arch.tag`` name), ``layers``, ``mode``, ``amp`` (the precision
    actually used: bf16, fp16 or none), ``files`` (JSON list of the input files) and ``skipped`` (JSON
    list of ``[file, reason]``). Other arguments as :func:`extract_features`. The file appears only
    when complete. Returns ``out``.
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
    skipped: list[tuple[str, str]] = []
    used = "none"
    mode = kwargs.get("mode", "mean")
    model_or_name, _ = _resolve_model(model_or_name)  # a name becomes its model: its full arch.tag name
    inner = _unwrap(model_or_name)
    cfg = getattr(inner, "patchvae_cfg", None) or getattr(inner, "pretrained_cfg", None)
    model_name = getattr(cfg, "name", None) or type(inner).__name__
    with tempfile.TemporaryDirectory(prefix=".patchvae-extract-", dir=out.parent) as tmp:
        writer = RowWriter(Path(tmp))
        try:
            for batch in iter_features(model_or_name, inputs, layer=layer, **kwargs):
                writer.write(batch.features)
                names.extend(batch.names)
                skipped.extend(batch.skipped)
                used = batch.amp
        finally:
            writer.close()
        partial = Path(tmp) / f"out{out.suffix}"
        if out.suffix == ".npy":
            write_npy(writer, partial)
        else:
            files = [n or "" for n in names] if any(names) else []
            metadata = {
                "format": "pt",
                "model": model_name,
                "layers": json.dumps(list(writer.files)),
                "mode": str(mode),
                "amp": used,
                "files": json.dumps(files),
                "skipped": json.dumps([list(pair) for pair in skipped]),
            }
            write_safetensors(writer, partial, metadata)
        os.replace(partial, out)
    if out.suffix == ".npy" and any(names):
        listing = out.with_name(out.stem + ".files.txt")
        listing.write_text("".join(f"{n or ''}\n" for n in names), encoding="utf-8")
    if out.suffix == ".npy":
        listing = out.with_name(out.stem + ".skipped.txt")
        if skipped:
            listing.write_text("".join(f"{name}\t{reason}\n" for name, reason in skipped), encoding="utf-8")
        else:
            listing.unlink(missing_ok=True)  # not one of an earlier run's
    return out
