"""Fine-tuning the supplement Table 5 classifier on a pretrained φ (paper §4, Table 1 columns).

The decoder is discarded; the classifier (φ + dropout + FC 512 + ReLU + FC classes) starts from a
copy of φ's weights (the caller's φ is not modified) and a freshly initialised head. The freeze
preset says how much of φ stays fixed: ``"conv1"`` the first conv, ``"conv3"`` three conv units,
``"conv5"`` all of ResNet-9 (only the two FC layers train), ``"none"`` nothing. Frozen parameters
get no gradient and are left out of the optimizer (so weight decay does not touch them either). With
``bn_mode="ours"`` frozen BatchNorm layers stay in eval mode, so their running statistics do not move;
with ``"authors"`` (the paper protocols) no BN scale/shift of φ trains and every BN layer runs in train
mode, as the authors' classifier code (see :class:`FinetuneConfig`).

Training follows :class:`FinetuneConfig`: SGD with momentum on the cross-entropy, step schedule
``lr · gamma^(epoch // step)``, weight decay on every trainable parameter (biases and BN included,
as ``SGD(model.parameters(), weight_decay=...)`` in the authors' code). Test accuracy is measured
once at the end (and every ``eval_every`` epochs if asked) with eval-mode preprocessing (no
augmentation). Everything random (head init, baseline φ, dropout, data order) derives from
``config.seed`` inside a forked RNG, so the caller's global RNG state is left alone and the same
seed gives identical numbers on CPU.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from tqdm.auto import tqdm

from ..data import DataConfig, EpochBatches, ImageTensorDataset
from ..models import Classifier, ResNetTrunk
from .backbone_source import BackboneSource, backbone_arch, resolve_backbone
from .config import PROTOCOLS, FinetuneConfig, get_protocol
from .metrics import top_k_correct
from .results import FinetuneResult
from .._runtime import autocast, deterministic_mode, resolve_device, retain_freed_memory

__all__ = ["build_classifier", "evaluate_classifier", "finetune", "protocol_name", "resolve_data_config_for"]

log = logging.getLogger(__name__)

_RECIPE_FIELDS = (
    "epochs", "batch_size", "lr", "momentum", "weight_decay", "lr_step", "lr_gamma", "drop_rate", "head_init", "bn_mode",
)


def protocol_name(config: FinetuneConfig, hint: str | None = None) -> str:
    """Name of the protocol whose recipe ``config`` follows: ``hint`` if it matches, else any
    matching protocol, else ``"<hint>-modified"`` / ``"custom"``. Seed, device etc. do not count."""

    def same(name: str) -> bool:
        ref = PROTOCOLS[name]
        return all(getattr(ref, f) == getattr(config, f) for f in _RECIPE_FIELDS)

    if hint in PROTOCOLS and same(hint):
        return hint
    if hint:
        return f"{hint}-modified"
    return next((name for name in PROTOCOLS if same(name)), "custom")


def build_classifier(
    backbone: ResNetTrunk,
    num_classes: int,
    *,
    img_size: int,
    freeze: str | int = "none",
    drop_rate: float = 0.5,
    hidden_dim: int = 512,
    head_init: str = "pytorch",
    bn_mode: str = "ours",
) -> Classifier:
    """Table 5 classifier whose φ is a copy of ``backbone``'s weights, with ``freeze`` applied.

    The head (FC 512 + FC classes) is freshly initialised from the global RNG: ``head_init="pytorch"``
    is ``nn.Linear``'s default, ``"authors"`` weights ~ N(0, 0.01²) and zero biases. ``bn_mode``: see
    :class:`FinetuneConfig` (``"authors"``: φ's BN scale/shift fixed, every BN layer in train mode).
    Input: images (B, backbone.in_chans, img_size, img_size); output: logits (B, num_classes).
    """
    model = Classifier(
        num_classes, in_chans=backbone.in_chans, img_size=img_size, backbone=backbone_arch(backbone),
        hidden_dim=hidden_dim, drop_rate=drop_rate, freeze="none",
    )
    state = {k: v for k, v in backbone.state_dict().items() if not k.startswith("fc.")}  # drop any φ head
    model.backbone.load_state_dict(state, strict=True)
    model.freeze(freeze)
    model.set_bn_mode(bn_mode)
    if head_init == "authors":  # the authors' classifier code: normal_(0, 0.01) weights, zero biases
        for layer in (model.head.fc1, model.fc):
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, 0.01)
                nn.init.zeros_(layer.bias)
    elif head_init != "pytorch":
        raise ValueError(f"head_init must be 'authors' or 'pytorch', got {head_init!r}")
    return model


def resolve_data_config_for(source: BackboneSource, data_config: DataConfig | None) -> DataConfig | None:
    """The preprocessing to evaluate with: ``data_config`` (the dataset's), else the one of φ's weights.

    Channels are adapted to φ's input (grayscale images repeated for an RGB φ, RGB converted to luma
    for a 1-channel φ). A warning says when pretrained weights were trained with another
    normalisation. Returns None only when neither is known (a generic dataset of ready tensors).
    """
    in_chans = source.backbone.in_chans
    cfg = data_config or source.data_config
    if cfg is None:
        return None
    if cfg.channels != in_chans:
        log.info("images have %d channel(s), φ takes %d: converting", cfg.channels, in_chans)
        cfg = cfg.with_channels(in_chans)
    if source.kind in ("registry", "folder", "module") and source.data_config is not None and data_config is not None:
        src = source.data_config.with_channels(in_chans)
        if (src.mean, src.std) != (cfg.mean, cfg.std):
            log.warning(
                "φ was trained with normalisation mean=%s std=%s but the dataset uses mean=%s std=%s; "
                "evaluating with the dataset's", src.mean, src.std, cfg.mean, cfg.std,
            )
    return cfg


def _img_size(cfg: DataConfig | None, dataset: Dataset) -> int:
    if cfg is not None:
        _, h, w = cfg.input_size
    else:
        h, w = dataset[0][0].shape[-2:]
    if h != w:
        raise ValueError(f"the Table 5 classifier takes square images, got {h}x{w}")
    return int(h)


def _check_labels(dataset: Dataset, num_classes: int) -> None:
    if isinstance(dataset, ImageTensorDataset) and len(dataset):
        lo, hi = int(dataset.labels.min()), int(dataset.labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"labels span [{lo}, {hi}] but num_classes={num_classes}")


@torch.inference_mode()
def evaluate_classifier(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, device: torch.device | str = "cpu",
    amp: str | None = None, channels_last: bool = False, progress: bool = False,
) -> tuple[float, float, int]:
    """Top-1 and top-5 accuracy (percent) and sample count of ``model`` (eval mode) over ``batches``."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    counts = torch.zeros(2, dtype=torch.long)
    total = 0
    total_batches = len(batches) if hasattr(batches, "__len__") else None
    for images, labels in tqdm(batches, total=total_batches, desc="test", disable=not progress, leave=False, unit="batch"):
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)
        counts += top_k_correct(logits.float(), labels, (1, 5))
        total += labels.shape[0]
    model.train(was_training)
    if total == 0:
        raise ValueError("the test split is empty")
    top1, top5 = (100.0 * float(c) / total for c in counts)
    return top1, top5, total


# --------------------------------------------------------------------------- Conv5: φ computed once
_CACHE_LIMIT_BYTES = 4 << 30


class _Head(nn.Module):
    """The trainable part of a classifier whose φ is frozen entirely: cached φ(x) -> logits."""

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features)


def _can_cache_phi(model: Classifier, train_data: Dataset, test_data: Dataset, cfg: DataConfig | None) -> bool:
    """φ frozen entirely (eval-mode BN, no gradient) and deterministic training preprocessing (in-memory
    images, no random flips): φ(x) is the same every epoch, so it can be computed once."""
    if model.frozen_units != len(model.backbone.paper_conv_units()) or cfg is None or cfg.hflip:
        return False
    if model.bn_mode == "authors":  # BN in train mode: φ(x) depends on the batch and its statistics drift
        return False
    if not (isinstance(train_data, ImageTensorDataset) and isinstance(test_data, ImageTensorDataset)):
        return False
    side = cfg.input_size[1] // model.backbone.stride
    size = (len(train_data) + len(test_data)) * model.backbone.num_features * side * side * 4
    return size <= _CACHE_LIMIT_BYTES


@torch.no_grad()
def _phi_of(model: Classifier, data: ImageTensorDataset, config: FinetuneConfig, loader_args: dict[str, Any]) -> TensorDataset:
    outputs, labels = [], []
    for images, y in EpochBatches(data, batch_size=config.eval_batch_size, train=False, **loader_args):
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(images.device, config.amp):
            outputs.append(model.backbone.forward_features(images).float().contiguous())
        labels.append(y)
    return TensorDataset(torch.cat(outputs), torch.cat(labels))


def _cached_phi_batches(
    model: Classifier, train_data: ImageTensorDataset, test_data: ImageTensorDataset, config: FinetuneConfig,
    loader_args: dict[str, Any],
) -> tuple[EpochBatches, EpochBatches]:
    """Batches of precomputed φ(x), in the same order as the image batches (same sampler and seed).

    Exact: with φ frozen and no augmentation the classifier sees the same inputs as when φ runs every
    epoch; only the cost changes (one φ pass instead of one per epoch)."""
    log.info("φ is frozen entirely and the preprocessing is deterministic: computing φ(x) once")
    model.eval()
    args = {**loader_args, "data_config": None, "num_workers": 0}
    train = EpochBatches(_phi_of(model, train_data, config, loader_args), batch_size=config.batch_size, train=True, **args)
    test = EpochBatches(_phi_of(model, test_data, config, loader_args), batch_size=config.eval_batch_size, train=False, **args)
    return train, test


def _train_one_epoch(
    model: nn.Module, batches: EpochBatches, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
    *, device: torch.device, config: FinetuneConfig, desc: str, progress: bool,
) -> tuple[float, float]:
    """One pass over ``batches``; returns (mean training loss, training top-1 in percent)."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    bar = tqdm(batches, total=len(batches), desc=desc, disable=not progress, leave=False, unit="batch")
    for step, (images, labels) in enumerate(bar):
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, config.amp):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach().double() * labels.shape[0]
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += labels.shape[0]
        if progress and step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    if seen == 0:
        raise ValueError(f"no training batch: the training split is smaller than batch_size={config.batch_size}")
    mean_loss = float(loss_sum) / seen
    if not math.isfinite(mean_loss):
        raise RuntimeError(f"training diverged (loss {mean_loss}); lower the learning rate or disable amp")
    return mean_loss, 100.0 * float(correct) / seen


def finetune(
    backbone: ResNetTrunk | BackboneSource | str | os.PathLike,
    train_data: Dataset,
    test_data: Dataset,
    *,
    num_classes: int,
    freeze: str | int = "conv5",
    config: FinetuneConfig | str | None = None,
    data_config: DataConfig | None = None,
    protocol: str | None = None,
    arch: str = "patchvae_resnet9",
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune the Table 5 classifier on φ and report test top-1/top-5 (paper §4 protocol).

    Args:
        backbone: φ (``ResNetTrunk``), a :class:`BackboneSource`, or anything
            :func:`resolve_backbone` takes (registry name, weights folder, ``"random"``, ``"supervised"``;
            baselines use ``arch`` and draw φ from ``config.seed``).
        train_data, test_data: an :class:`~patchvae.data.ImageTensorDataset` (uint8, preprocessed by
            ``data_config``) or a Dataset of transformed ``(float image (C, H, W), label)`` pairs.
        num_classes: number of classes. freeze: preset (``"none"``, ``"conv1"``, ``"conv3"``,
            ``"conv5"``, ``"all"``) or number of φ units; the supervised baseline always uses ``"none"``.
        config: a :class:`FinetuneConfig` or protocol name (default: ``"paper_cifar100"``'s recipe).
        data_config: the images' preprocessing (default: the one carried by φ's weights).
        protocol: name recorded in the result (default: the protocol the config matches).
        progress: tqdm progress bars.
    """
    start = time.perf_counter()
    if isinstance(config, str):
        protocol = protocol or config
        config = get_protocol(config)
    config = config or get_protocol("paper_cifar100")
    label = protocol_name(config, protocol)
    device = resolve_device(config.device)
    if device.type == "cpu":
        retain_freed_memory()
    in_chans = data_config.channels if data_config is not None else None
    img_size = data_config.input_size[1] if data_config is not None else None
    if isinstance(backbone, ResNetTrunk):
        source = BackboneSource(backbone, "module", type(backbone).__name__, getattr(backbone, "data_config", None))
    elif isinstance(backbone, BackboneSource):
        source = backbone
    else:
        source = resolve_backbone(backbone, arch=arch, in_chans=in_chans, img_size=img_size, seed=config.seed)
    freeze = source.freeze_for(freeze)
    cfg = resolve_data_config_for(source, data_config)
    if cfg is None and isinstance(train_data, ImageTensorDataset):
        raise ValueError("pass data_config: neither the dataset nor φ says how to preprocess the images")
    _check_labels(train_data, num_classes)
    _check_labels(test_data, num_classes)
    size = _img_size(cfg, train_data)

    cuda_devices = []  # CUDA RNGs that fork_rng saves and restores
    if device.type == "cuda":
        cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with deterministic_mode(config.deterministic), torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(config.seed)
        model = build_classifier(source.backbone, num_classes, img_size=size, freeze=freeze, drop_rate=config.drop_rate,
                                 head_init=config.head_init, bn_mode=config.bn_mode)
        model.to(device)
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        params = [p for p in model.parameters() if p.requires_grad]
        trainable = sum(p.numel() for p in params)
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
        scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
        loader_args: dict[str, Any] = {
            "data_config": cfg, "seed": config.seed, "device": device, "num_workers": config.num_workers,
        }
        train_batches = EpochBatches(train_data, batch_size=config.batch_size, train=True, **loader_args)
        test_batches = EpochBatches(test_data, batch_size=config.eval_batch_size, train=False, **loader_args)
        net: nn.Module = model
        if _can_cache_phi(model, train_data, test_data, cfg):
            train_batches, test_batches = _cached_phi_batches(model, train_data, test_data, config, loader_args)
            net = _Head(model)
        log.info(
            "fine-tuning %s (%s, freeze=%s: %d of %d φ units frozen, %s trainable parameters) on %d images, %s protocol",
            source.name, backbone_arch(source.backbone), freeze, model.frozen_units,
            len(source.backbone.paper_conv_units()), f"{trainable:,}", len(train_data), label,
        )
        history: list[dict[str, float]] = []
        for epoch in range(config.epochs):
            lr = config.lr_at(epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            train_batches.set_epoch(epoch)
            t0 = time.perf_counter()
            loss, train_top1 = _train_one_epoch(
                net, train_batches, optimizer, scaler, device=device, config=config,
                desc=f"epoch {epoch + 1}/{config.epochs}", progress=progress,
            )
            record = {
                "epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss,
                "train_top1": train_top1, "seconds": time.perf_counter() - t0,
            }
            if config.eval_every and (epoch + 1) % config.eval_every == 0 and epoch + 1 < config.epochs:
                record["test_top1"], record["test_top5"], _ = evaluate_classifier(
                    net, test_batches, device=device, amp=config.amp, channels_last=config.channels_last,
                )
            history.append(record)
            log.info(
                "epoch %d/%d  lr %.0e  loss %.4f  train top-1 %.2f%%  (%.1f s)",
                epoch + 1, config.epochs, lr, loss, train_top1, record["seconds"],
            )
        top1, top5, num_test = evaluate_classifier(
            net, test_batches, device=device, amp=config.amp, channels_last=config.channels_last, progress=progress,
        )
    if config.eval_every:
        history[-1]["test_top1"], history[-1]["test_top5"] = top1, top5
    elapsed = time.perf_counter() - start
    log.info("%s freeze=%s: test top-1 %.2f%%  top-5 %.2f%%  (%.0f s)", source.name, freeze, top1, top5, elapsed)
    return FinetuneResult(
        protocol=label, freeze=freeze, top1=top1, top5=top5, history=history, config=config.to_dict(),
        elapsed_seconds=elapsed, num_train=len(train_data), num_test=num_test, num_classes=num_classes,
        trainable_params=trainable, backbone=source.name,
        data_config=cfg.to_dict() if cfg is not None else None, model=model,
    )
