"""Building models from the registry: arguments, weights, channel adaptation, heads, feature extractors.

``create(name, pretrained=True)`` resolves the name to an entrypoint and a :class:`PretrainedCfg`,
builds the model with the weights' constructor arguments, loads the weights strictly (after
checking their sha256), adapts the image convs if ``in_chans`` differs, and attaches
``pretrained_cfg``, ``model_args`` and ``data_config`` (the preprocessing) to the model.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.config import CIFAR, DataConfig
from ._folder_config import MAX_CONFIG_BYTES, validate_folder_config
from ._hub import CONFIG_FILENAME, WEIGHTS_FILENAME, resolve_weights_file
from ._legacy import ConvertedWeights, convert_state_dict, load_legacy_checkpoint, suggest_architecture
from ._pretrained import PretrainedCfg
from ._registry import get_architecture_cfg, get_pretrained_cfg, model_entrypoint, split_model_name_tag
from ._weights import WeightsError, adapt_in_chans, check_state_dict, load_state_dict_strict, read_safetensors, verify_sha256

__all__ = [
    "build_model_with_cfg",
    "create",
    "create_backbone",
    "from_pretrained",
    "load_weights",
    "read_folder_config",
    "read_state_dict",
    "read_weights",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = "patchvae/1"
LEGACY_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")


# --------------------------------------------------------------------------- reading weights
def read_folder_config(checkpoint_path: str | os.PathLike | None) -> dict[str, Any] | None:
    """``config.json`` next to a weights file (or inside a weights folder), if there is one."""
    if checkpoint_path is None:
        return None
    path = Path(checkpoint_path).expanduser()
    config = path / CONFIG_FILENAME if path.is_dir() else path.parent / CONFIG_FILENAME
    if not config.is_file() or (not path.is_dir() and path.name != WEIGHTS_FILENAME):
        return None
    if config.stat().st_size > MAX_CONFIG_BYTES:
        raise WeightsError(f"{config} is {config.stat().st_size} bytes, not a patchvae config.json (a few KB); re-export the weights folder")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise WeightsError(f"{config} is not valid JSON ({err}); re-export the weights folder") from err
    return validate_folder_config(data, config)  # untrusted: types, ranges and sizes before anything is built


def read_weights(path: str | os.PathLike) -> ConvertedWeights:
    """Tensors of a ``.safetensors`` file or a legacy PyTorch checkpoint (``torch.load(weights_only=True)``),
    in our key layout (the authors' ``PatchyVAE``/``VAE`` keys are converted), with what the file says
    about the model (see :class:`patchvae.models._legacy.ConvertedWeights`)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return convert_state_dict(read_safetensors(path), path)
    if path.suffix in LEGACY_SUFFIXES:
        return load_legacy_checkpoint(path)
    raise WeightsError(
        f"{path}: unknown weights format {path.suffix!r}; expected .safetensors (or a legacy {'/'.join(LEGACY_SUFFIXES)})"
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """State dict of a weights file in our key layout (see :func:`read_weights`)."""
    return read_weights(path).state


# --------------------------------------------------------------------------- building
def _constructor_default(model_cls: type, arg: str) -> Any:
    param = inspect.signature(model_cls).parameters.get(arg)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def _select_cfg(variant: str, tag: str, pretrained: bool, checkpoint_path: Any, folder: dict | None) -> PretrainedCfg:
    if folder is not None:
        if folder["architecture"] != variant:
            raise WeightsError(
                f"{checkpoint_path} holds weights of {folder['architecture']!r}, not {variant!r}; "
                f"create({folder['architecture']!r}, ...) or use patchvae.models.from_pretrained({str(checkpoint_path)!r})"
            )
        if tag and folder.get("tag") and folder["tag"] != tag:
            held = f"{variant}.{folder['tag']}"
            raise WeightsError(
                f"{checkpoint_path} holds the weights {held}, not {variant}.{tag}: "
                f"create({held!r}, checkpoint_path=...) or drop the tag"
            )
        base = get_architecture_cfg(variant)
        data = folder.get("data_config")
        return base.replace(
            tag=folder.get("tag") or tag,
            model_args=dict(folder.get("model_args") or {}),
            data_config=DataConfig.from_dict(data) if data else base.data_config,
            metrics=dict(folder.get("metrics") or {}),
            dataset=folder.get("dataset"),
            recipe=folder.get("recipe"),
            command=folder.get("command"),
            epochs=folder.get("epochs"),
            protocol=folder.get("protocol"),
            eval_command=folder.get("eval_command"),
            license=folder.get("license") or base.license,
            description=folder.get("description") or base.description,
        )
    if tag or (pretrained and checkpoint_path is None):
        cfg = get_pretrained_cfg(f"{variant}.{tag}" if tag else variant)
        if checkpoint_path is not None:  # other weights under a published name: its provenance is not theirs
            cfg = cfg.replace(file=None, sha256=None, hf_hub_id=None, hf_revision=None, dataset=None, recipe=None,
                              command=None, epochs=None, metrics={}, eval_command=None, protocol=None, num_params=None)
        return cfg
    return get_architecture_cfg(variant)


def _check_legacy_fits(weights: ConvertedWeights, model_cls: type, variant: str, model_args: Mapping[str, Any], path: Path) -> None:
    """Authors' weights of another family / backbone / input size than ``variant``: say which architecture fits."""
    if weights.family is None:
        return
    fits = suggest_architecture(weights)
    hint = f"create({fits!r}, checkpoint_path={str(path)!r})" if fits else "no zoo architecture matches it"
    if weights.family != model_cls.__name__:
        raise WeightsError(f"{path} holds the authors' {weights.family} weights, not a {model_cls.__name__} ({variant!r}): {hint}")
    for key in ("backbone", "img_size"):
        if key in weights.model_args and key in model_args and model_args[key] != weights.model_args[key]:
            raise WeightsError(
                f"{path} holds the authors' {weights.family} with {key}={weights.model_args[key]!r}, but {variant!r} "
                f"has {key}={model_args[key]!r}: {hint}"
            )


def _file_in_chans(state: Mapping[str, torch.Tensor], input_convs: tuple[str, ...]) -> int | None:
    for name in input_convs:
        weight = state.get(f"{name}.weight")
        if weight is not None and weight.ndim == 4:
            return int(weight.shape[1])
    return None


def _check_fits_before_building(model_cls: type, model_args: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: Path) -> None:
    """The weights' keys and shapes against the model built on the ``meta`` device: nothing is allocated for
    constructor arguments (from an untrusted config.json) that do not fit the weights."""
    params = inspect.signature(model_cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k in model_args if k not in params)
        if unknown:
            raise WeightsError(
                f"the model_args of {path} name arguments {model_cls.__name__} does not have ({', '.join(unknown)}); "
                "the config.json is damaged or belongs to another architecture: re-export the weights folder"
            )
    try:
        with torch.device("meta"):
            skeleton = model_cls(**model_args)
    except (TypeError, ValueError):
        raise
    except Exception as err:  # noqa: BLE001 - a constructor that cannot run on meta: the strict load still checks
        log.debug("cannot check %s on the meta device (%s); checking after building", model_cls.__name__, err)
        return
    check_state_dict(skeleton, state, path)


#: the metadata key of a trainer checkpoint (patchvae.training.checkpoint)
_TRAINER_STATE_KEY = "patchvae_trainer_state"


def _refuse_training_checkpoint(checkpoint_path: str | os.PathLike | None) -> None:
    """A training run's ``checkpoint.safetensors`` (weights + optimiser + RNG state) is not a weights file:
    say so, and name the run's weights folder."""
    if checkpoint_path is None:
        return
    path = Path(checkpoint_path).expanduser()
    if path.suffix != ".safetensors" or not path.is_file():
        return
    try:
        from safetensors import safe_open

        with safe_open(os.fspath(path), "pt") as f:
            is_trainer = _TRAINER_STATE_KEY in (f.metadata() or {})
    except Exception:  # noqa: BLE001 - damaged files are reported by the weights reader with its own message
        return
    if is_trainer:
        weights = path.parent / "model"
        where = (f"its weights folder is {weights}" if (weights / WEIGHTS_FILENAME).is_file()
                 else f"its weights folder {weights} is written when the run ends")
        raise WeightsError(
            f"{path} is a training checkpoint (weights + optimiser + RNG state), not a weights file: {where}; "
            f"pass checkpoint_path={os.fspath(weights)!r} or use patchvae.models.from_pretrained({os.fspath(weights)!r}) "
            "(to continue training: patchvae train ... --resume)"
        )


def build_model_with_cfg(
    model_cls: type[nn.Module],
    variant: str,
    pretrained: bool = False,
    *,
    pretrained_tag: str = "",
    checkpoint_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    in_chans: int | None = None,
    num_classes: int | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    model_defaults: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build ``model_cls`` for registry entry ``variant`` (see :func:`create` for the arguments).

    Constructor arguments: the entrypoint's ``model_defaults``, then the weights' ``model_args``
    (``config.json``, or read from the shapes of an authors' checkpoint), then the caller's
    ``kwargs``. The weights are read and validated before the model is built, and loaded strictly.
    """
    _check_overrides(model_cls, kwargs, variant)
    _refuse_training_checkpoint(checkpoint_path)
    folder = read_folder_config(checkpoint_path)
    cfg = _select_cfg(variant, pretrained_tag, pretrained, checkpoint_path, folder)
    weights: ConvertedWeights | None = None
    path: Path | None = None
    if pretrained or checkpoint_path is not None:
        path, sha256 = resolve_weights_file(
            cfg, checkpoint_path=checkpoint_path, cache_dir=cache_dir, local_files_only=local_files_only
        )
        if folder is not None and folder.get("sha256"):
            sha256 = folder["sha256"]
        if checkpoint_path is None and path.suffix != ".safetensors":
            raise WeightsError(f"published weights must be safetensors, got {path}; fix the registry entry of {cfg.name!r}")
        if sha256:
            verify_sha256(path, sha256)
        weights = read_weights(path)
    file_args = weights.model_args if weights is not None else {}
    model_args = {**(model_defaults or {}), **cfg.model_args, **file_args, **kwargs}
    if weights is not None:
        _check_legacy_fits(weights, model_cls, variant, {**(model_defaults or {}), **kwargs}, path)
    # the weights' own channel count is what their input conv says; in_chans asks for an adaptation
    weights_chans = (_file_in_chans(weights.state, cfg.input_convs) if weights is not None else None) or model_args.get(
        "in_chans", _constructor_default(model_cls, "in_chans")
    )
    target_chans = weights_chans if in_chans is None else in_chans
    if target_chans is not None:
        model_args["in_chans"] = target_chans
    state = None
    if weights is not None:
        state = weights.state
        if target_chans is not None:
            state = adapt_in_chans(state, target_chans, cfg.input_convs, cfg.output_convs)
        _check_fits_before_building(model_cls, model_args, state, path)
    model = model_cls(**model_args)
    if state is not None:
        load_state_dict_strict(model, state, path)
        log.info("loaded %s weights from %s", cfg.name, path)
    data_config = cfg.data_config or CIFAR
    if folder is None and weights is not None and weights.data_config is not None:
        data_config = weights.data_config  # the authors' saved args say how they preprocessed
    model.model_args = model_args
    model.data_config = data_config.with_channels(target_chans) if target_chans else data_config
    # the cfg describes this model's input (what timm.data.resolve_data_config reads), e.g. after in_chans adaptation
    model.pretrained_cfg = cfg if cfg.data_config == model.data_config else cfg.replace(data_config=model.data_config)
    return _finalize(model, num_classes, features_only, out_indices)


_ATTACHED = ("pretrained_cfg", "model_args", "data_config")


def _attach(target: nn.Module, source: nn.Module, component: str | None = None) -> nn.Module:
    """Carry the source model's cfg, constructor arguments and preprocessing over to a part of it."""
    for attr in _ATTACHED:
        setattr(target, attr, getattr(source, attr))
    if component is not None:
        target.zoo_component = component  # save_pretrained refuses parts: their config.json would lie
    return target


def _features_only(model: nn.Module, out_indices: Any) -> nn.Module:
    from timm.models import FeatureListNet

    trunk = getattr(model, "backbone", None)
    base = trunk if trunk is not None else model
    if not hasattr(base, "feature_info"):
        raise ValueError(f"{type(model).__name__} has no feature pyramid; features_only is not supported")
    count = len(base.feature_info)
    indices = tuple(range(count)) if out_indices is None else tuple(out_indices)
    if not indices or any(isinstance(i, bool) or not isinstance(i, int) or not -count <= i < count for i in indices):
        raise ValueError(
            f"out_indices {out_indices!r} are not valid feature levels of {type(base).__name__}: use indices in "
            f"[0, {count - 1}] (reductions {[f['reduction'] for f in base.feature_info]})"
        )
    indices = tuple(i % count for i in indices)
    return _attach(FeatureListNet(base, out_indices=indices), model, "features")


def _finalize(model: nn.Module, num_classes: int | None, features_only: bool, out_indices: Any) -> nn.Module:
    if features_only:
        if num_classes is not None:
            raise ValueError("features_only=True returns feature maps, which have no classifier: drop num_classes")
        return _features_only(model, out_indices)
    if out_indices is not None:
        raise ValueError("out_indices selects feature levels and needs features_only=True")
    if num_classes is None:
        return model
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an int >= 0 (0: no head, pooled features), got {num_classes!r}")
    if hasattr(model, "reset_classifier"):  # a classifier: a new head if the class count differs
        if getattr(model, "num_classes", None) != num_classes:
            model.reset_classifier(num_classes)
            model.model_args["num_classes"] = num_classes
        return model
    trunk = getattr(model, "backbone", None)
    if trunk is None:
        raise ValueError(f"{type(model).__name__} has no classification head or backbone for num_classes")
    trunk.reset_classifier(num_classes)  # a VAE: φ with a fresh linear head (timm semantics)
    return _attach(trunk, model, "backbone")


def _check_overrides(model_cls: type, overrides: Mapping[str, Any], variant: str) -> None:
    params = inspect.signature(model_cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in overrides if k not in params]
    if unknown:
        import difflib

        close = {k: difflib.get_close_matches(k, list(params), n=1) for k in unknown}
        hints = "; ".join(f"{k!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for k, c in close.items())
        raise TypeError(
            f"{variant!r} ({model_cls.__name__}) has no argument {hints}. Its arguments: {', '.join(params)}; "
            "create() itself takes pretrained, checkpoint_path, cache_dir, local_files_only, in_chans, "
            "num_classes, features_only, out_indices, device, dtype."
        )


# --------------------------------------------------------------------------- public API
def create(
    name: str,
    pretrained: bool = False,
    *,
    checkpoint_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    in_chans: int | None = None,
    num_classes: int | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    **overrides: Any,
) -> nn.Module:
    """Create a model of the zoo by name.

    Args:
        name: ``arch`` or ``arch.tag`` (see :func:`list_models` / :func:`list_pretrained`); a bare
            ``arch`` with ``pretrained=True`` means its default weights.
        pretrained: load weights (explicit ``checkpoint_path`` -> shipped ``weights/`` -> Hugging Face Hub).
        checkpoint_path: a ``model.safetensors`` file or weights folder (or a legacy ``.pt``, including
            the authors' ``run.py`` checkpoints) to load instead.
        cache_dir: Hugging Face cache directory for downloads.
        local_files_only: never download; use the Hugging Face cache only (also set by ``HF_HUB_OFFLINE=1``).
        in_chans: image channels; pretrained input/output convs are adapted (e.g. 1-channel weights at 3).
            Default: the channels of the weights.
        num_classes: for classifiers, a new head if it differs; for VAEs, returns φ with a fresh
            ``num_classes``-way linear head (0: pooled features), like ``timm.create_model``.
        features_only, out_indices: return φ's feature pyramid (timm ``FeatureListNet``, strides 2/4/8[/16/32]).
        device, dtype: where and in which floating-point dtype the parameters live (timm's factory
            arguments). A random init is allocated on ``device`` directly (``"meta"``: no memory at all);
            weights are read on the CPU, then the model is moved.
        **overrides: constructor arguments (e.g. ``num_parts=8``, ``hard=True``).

    The model carries ``pretrained_cfg``, ``model_args`` (its exact constructor arguments) and
    ``data_config`` (its preprocessing; see :func:`patchvae.data.create_transform`).

    Raises:
        ValueError: unknown name or tag (with the closest matches), invalid head/feature options.
        TypeError: a constructor argument the architecture does not have.
        WeightsError: weights missing, damaged, of another architecture, or not downloadable.
        FileNotFoundError: ``checkpoint_path`` does not exist.
    """
    if not isinstance(pretrained, bool):
        raise TypeError(
            f"pretrained must be True or False, got {pretrained!r}; pick weights with the name "
            "('arch.tag') or load a file with checkpoint_path=..."
        )
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype (e.g. torch.bfloat16), got {dtype!r}")
    device = torch.device(device) if device is not None else None
    arch, tag = split_model_name_tag(name)
    entrypoint = model_entrypoint(arch)
    random_init_on_device = device is not None and not pretrained and checkpoint_path is None
    with device if random_init_on_device else contextlib.nullcontext():
        model = entrypoint(
            pretrained=pretrained,
            pretrained_tag=tag,
            checkpoint_path=checkpoint_path,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            in_chans=in_chans,
            num_classes=num_classes,
            features_only=features_only,
            out_indices=out_indices,
            **overrides,
        )
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model


def create_backbone(
    name: str,
    pretrained: bool = False,
    *,
    num_classes: int = 0,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """φ of a zoo model, for fine-tuning: a timm-style ResNet trunk.

    ``num_classes=0`` (default): ``forward`` returns pooled features (B, num_features); ``> 0``: a fresh
    linear head. ``features_only=True``: a timm ``FeatureListNet`` returning φ's maps at ``out_indices``.
    Other arguments as :func:`create`. The trunk carries the weights' ``pretrained_cfg``/``data_config``.
    """
    if features_only:
        return create(name, pretrained, features_only=True, out_indices=out_indices, **kwargs)
    if out_indices is not None:
        raise ValueError("out_indices selects feature levels and needs features_only=True")
    model = create(name, pretrained, **kwargs)
    trunk = getattr(model, "backbone", None)
    if trunk is None:
        raise ValueError(f"{name!r} ({type(model).__name__}) has no backbone φ; pick a VAE, BiGAN or classifier")
    trunk.reset_classifier(num_classes)
    return _attach(trunk, model, "backbone")


def from_pretrained(directory: str | os.PathLike, **kwargs: Any) -> nn.Module:
    """Load a published weights folder (``model.safetensors`` + ``config.json``), whatever its architecture."""
    folder = read_folder_config(directory)
    if folder is None:
        raise FileNotFoundError(f"{directory} is not a weights folder: expected {CONFIG_FILENAME} and {WEIGHTS_FILENAME}")
    return create(folder["architecture"], pretrained=True, checkpoint_path=directory, **kwargs)


def load_weights(
    model: nn.Module, checkpoint_path: str | os.PathLike, *, sha256: str | None = None, adapt_in_chans: bool = False
) -> nn.Module:
    """Load a weights file/folder into an existing model, strictly: all or nothing.

    Accepts what :func:`create` accepts as ``checkpoint_path`` (safetensors, weights folder, legacy or
    authors' ``.pt``). Weights for another number of image channels than the model's ``in_chans``
    are refused unless ``adapt_in_chans=True``, which adapts 1-channel weights to N channels and
    N-channel weights to 1 (as ``create(..., in_chans=N)``); nothing else is adapted. On any error
    (:class:`WeightsError`) the model is left exactly as it was.
    """
    from ._weights import adapt_in_chans as adapt

    path, _ = resolve_weights_file(PretrainedCfg(), checkpoint_path=checkpoint_path)
    folder = read_folder_config(checkpoint_path)
    sha256 = sha256 or (folder or {}).get("sha256")
    if sha256:
        verify_sha256(path, sha256)
    state = read_weights(path).state
    cfg = getattr(model, "pretrained_cfg", None)
    chans = getattr(model, "in_chans", None)
    file_chans = _file_in_chans(state, cfg.input_convs) if isinstance(cfg, PretrainedCfg) else None
    if chans is not None and file_chans is not None and file_chans != chans:
        if not adapt_in_chans:
            raise WeightsError(
                f"{path} holds weights for {file_chans}-channel images, the model takes {chans}: create the model with "
                f"in_chans={file_chans}, or pass adapt_in_chans=True to adapt 1-channel weights to N channels (or back)"
            )
        state = adapt(state, chans, cfg.input_convs, cfg.output_convs)
    load_state_dict_strict(model, state, path)
    return model


def folder_config_dict(model: nn.Module, sha256: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` written next to a model's ``model.safetensors``."""
    from ..version import __version__

    cfg = getattr(model, "patchvae_cfg", None) or getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, PretrainedCfg) or not hasattr(model, "model_args"):
        raise ValueError("save_pretrained needs a model created by patchvae.models.create(...) (it records its arguments)")
    part = getattr(model, "zoo_component", None)
    if part is not None:
        raise ValueError(
            f"this is the {part} of a {cfg.architecture!r} model, not the whole model: its config.json would describe "
            "the whole model. Save the full model (create(...) without num_classes/features_only), or the part's "
            "state_dict with torch.save / safetensors."
        )
    return {
        "format": FORMAT_VERSION,
        "architecture": cfg.architecture,
        "tag": cfg.tag,
        "model_args": dict(model.model_args),
        "data_config": model.data_config.to_dict(),
        "num_params": sum(p.numel() for p in model.parameters()),
        "sha256": sha256,
        "library": f"patchvae {__version__}",
        **dict(extra or {}),
    }
