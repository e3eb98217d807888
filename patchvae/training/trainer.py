"""The training loop shared by every family: epochs, checkpoints, resume, logs, images, export.

A run directory holds::

    checkpoint.safetensors   latest epoch (weights, optimiser, RNG, step, recipe), written atomically
    log.jsonl, tb/           every loss part and the temperature (JSON lines; TensorBoard if installed)
    images/                  per-epoch reconstructions, part visibility maps, prior samples
    model/                   the final weights folder (model.safetensors + config.json), for create()/publish
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .. import models
from .._runtime import deterministic_mode, resolve_amp, resolve_device, retain_freed_memory
from ..models.layers import check_images
from ..recipes import Recipe
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .data import build_run_data
from .distributed import World, broadcast_buffers, init_world
from .logs import RunLogger
from .tasks import make_task

__all__ = ["TrainResult", "TrainingDivergedError", "train"]

log = logging.getLogger(__name__)

# Recipe fields that may change when resuming (everything else must match the checkpoint).
_RESUMABLE_CHANGES = frozenset({"epochs", "name", "description", "notes", "gemm_weight_grads"})


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/Inf. The last checkpoint (previous epoch) is intact."""


@dataclass
class TrainResult:
    out_dir: Path
    epochs: int
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)  #: per-epoch mean losses (train and eval)
    weights_dir: Path | None = None
    model: torch.nn.Module | None = None  #: the trained model (every process holds the same weights)


def _check_resume(saved: dict[str, Any], recipe: Recipe, path: Path) -> None:
    current = recipe.to_dict()
    changed = sorted(k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise ValueError(f"cannot resume {path}: the recipe differs from the checkpoint's ({details}); use another --out")


def _mean(values: dict[str, float], count: int) -> dict[str, float]:
    return {k: v / max(count, 1) for k, v in values.items()}


def train(
    recipe: Recipe,
    out_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    train_subset: int | None = None,
    eval_subset: int | None = None,
    log_every: int = 50,
    num_workers: int = 4,
    deterministic: bool = False,
    save_images: bool = True,
    export: bool = True,
    progress: bool | None = None,
    command: str | None = None,
    download: bool = False,
) -> TrainResult:
    """Train ``recipe`` into ``out_dir`` (see the module docstring for its layout).

    Launch with ``torchrun --nproc_per_node N`` for data-parallel training (the global batch is
    split across processes). With ``resume=True`` training continues from ``checkpoint.safetensors``;
    a single-process CPU run in ``deterministic`` mode then ends bit-identical to an uninterrupted one.
    Raises :class:`TrainingDivergedError` if a loss becomes NaN/Inf (the last checkpoint is kept).
    """
    out_dir = Path(out_dir)
    device = resolve_device(device)
    world = init_world(device)
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = not deterministic
    if device.type == "cpu":
        retain_freed_memory()  # no page faults for the activations every step
    amp_dtype = resolve_amp(recipe.amp, device)
    with deterministic_mode(deterministic):
        return _run(recipe, out_dir, device, world, amp_dtype, data_dir=data_dir, resume=resume,
                    train_subset=train_subset, eval_subset=eval_subset, log_every=log_every, num_workers=num_workers,
                    save_images=save_images, export=export, progress=progress, command=command, download=download)


def _run(
    recipe: Recipe, out_dir: Path, device: torch.device, world: World, amp_dtype: torch.dtype | None, *,
    data_dir: str | os.PathLike | None, resume: bool, train_subset: int | None, eval_subset: int | None,
    log_every: int, num_workers: int, save_images: bool, export: bool, progress: bool | None,
    command: str | None, download: bool,
) -> TrainResult:
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if checkpoint_path.exists() and not resume:
        raise FileExistsError(f"{out_dir} already holds a training run; pass --resume to continue it or choose another --out")
    if resume and not checkpoint_path.exists():
        log.warning("--resume: no checkpoint in %s yet, starting from scratch", out_dir)

    torch.manual_seed(recipe.seed)
    data = build_run_data(recipe, data_dir, world, device, train_subset=train_subset, eval_subset=eval_subset,
                          num_workers=num_workers, download=download)
    model = models.create(recipe.model, **dict(recipe.model_args)).to(device)
    model.data_config = data.data_config.with_channels(model.in_chans)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    task = make_task(model, recipe, device, world, amp_dtype)
    if recipe.compile != "none":
        task.compile(mode=None if recipe.compile == "default" else recipe.compile)
    torch.manual_seed(recipe.seed + 7919 * (world.rank + 1))  # per-process sampling noise

    start_epoch = step = 0
    history: list[dict[str, Any]] = []
    if resume and checkpoint_path.exists():
        meta = load_checkpoint(checkpoint_path, task.modules, task.optimizers, map_location=device)
        _check_resume(meta["recipe"], recipe, checkpoint_path)
        start_epoch, step, history = meta["epoch"], meta["step"], meta.get("history", [])
        log.info("resuming %s at epoch %d (step %d)", out_dir, start_epoch, step)

    logger = RunLogger(out_dir) if world.is_main else None
    image_dir = out_dir / "images"
    fixed = None
    if data.eval is not None:
        fixed = next(iter(data.eval))[0][:16]
    if logger is not None:
        logger.event("start", recipe=recipe.to_dict(), epoch=start_epoch, step=step, world_size=world.size,
                     device=str(device), amp=str(amp_dtype), command=command)
    show = world.is_main and (progress if progress is not None else sys.stderr.isatty())
    first = True
    for epoch in range(start_epoch, recipe.epochs):
        data.set_epoch(epoch)
        task.train(True)
        sums: dict[str, float] = defaultdict(float)
        window: dict[str, torch.Tensor] = {}
        count = window_count = 0
        t0 = time.perf_counter()
        bar = tqdm(data.train, desc=f"{recipe.name} epoch {epoch + 1}/{recipe.epochs}", disable=not show, leave=False)
        for x, _ in bar:
            if first:  # validate real data once; the hot loop then skips the per-batch checks
                check_images(x, in_chans=model.in_chans, stride=model.stride)
                model.check_inputs = False
                first = False
            if recipe.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            parts = task.train_step(x, step)
            step += 1
            count += 1
            window_count += 1
            for k, v in parts.items():
                window[k] = window.get(k, 0) + v
            if step % log_every == 0:
                values = _flush(window, window_count, sums, step, epoch, out_dir)
                window, window_count = {}, 0
                values["temperature"] = task.schedule(step)
                if logger is not None:
                    logger.scalars("train", step, values, epoch=epoch)
                bar.set_postfix(loss=f"{values['loss']:.4g}")
        if window_count:
            _flush(window, window_count, sums, step, epoch, out_dir)
        elapsed = time.perf_counter() - t0
        broadcast_buffers(model, world)
        for extra in task.modules.values():
            if extra is not model:
                broadcast_buffers(extra, world)
        summary: dict[str, Any] = {"epoch": epoch + 1, "step": step, "train": _mean(dict(sums), count),
                                   "images_per_s": count * recipe.batch_size / elapsed, "seconds": elapsed,
                                   "temperature": task.schedule(step)}
        if world.is_main:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                task.train(False)
                if data.eval is not None:
                    summary["eval"] = _evaluate(task, data.eval, step)
                if save_images and fixed is not None:
                    image_dir.mkdir(parents=True, exist_ok=True)
                    task.save_images(image_dir, epoch + 1, fixed.to(device), model.data_config)
                task.train(True)
            history.append(summary)
            save_checkpoint(checkpoint_path, task.modules, task.optimizers,
                            {"epoch": epoch + 1, "step": step, "recipe": recipe.to_dict(), "history": history})
            logger.event("epoch", **summary)
            log.info("epoch %d/%d: train loss %.4g, %.0f img/s", epoch + 1, recipe.epochs,
                     summary["train"].get("loss", float("nan")), summary["images_per_s"])
        if world.distributed:
            dist.barrier()

    weights_dir = None
    if world.is_main and export:
        weights_dir = models.save_pretrained(
            model, out_dir / "model",
            extra={"dataset": recipe.dataset, "recipe": recipe.name, "recipe_config": recipe.to_dict(),
                   "epochs": recipe.epochs, "steps": step, "command": command,
                   "final_train_loss": history[-1]["train"] if history else None},
        )
    if logger is not None:
        logger.event("end", epoch=recipe.epochs, step=step)
        logger.close()
    return TrainResult(out_dir, recipe.epochs, step, history, weights_dir, model)


def _flush(window: dict[str, torch.Tensor], n: int, sums: dict[str, float], step: int, epoch: int, out_dir: Path) -> dict[str, float]:
    """Mean of the last ``n`` steps' loss parts (one host sync), checked for NaN/Inf, added to the epoch sums."""
    values = {k: float(v) / n for k, v in window.items()}
    _raise_if_diverged(values, step, epoch, out_dir)
    for k, v in values.items():
        sums[k] += v * n
    return values


def _raise_if_diverged(values: dict[str, float], step: int, epoch: int, out_dir: Path) -> None:
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise TrainingDivergedError(
            f"loss became non-finite at step {step} (epoch {epoch + 1}): {bad}. The last good checkpoint "
            f"(end of epoch {epoch}) in {out_dir} is intact. Try a lower lr, amp=none, or check the data; "
            "then continue with --resume."
        )


@torch.no_grad()
def _evaluate(task: Any, loader: Any, step: int) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    count = 0
    for x, _ in loader:
        parts = task.eval_step(x, step)
        for k, v in parts.items():
            sums[k] += float(v) * x.shape[0]
        count += x.shape[0]
    return _mean(dict(sums), count)


def command_line() -> str:
    """The command that started this process, for provenance in logs and model cards."""
    program = "patchvae" if Path(sys.argv[0]).name in ("__main__.py", "patchvae") else Path(sys.argv[0]).name
    return shlex.join([program, *sys.argv[1:]])
