"""The training loop shared by every family: epochs, checkpoints, resume, logs, images, export.

A run directory holds::

    checkpoint.safetensors   latest epoch (weights, optimiser, RNG, step, recipe), written atomically
    log.jsonl, tb/           every loss part and the temperature (JSON lines; TensorBoard if installed); for
                             models with parts, part health on the eval split every epoch (split "part_health":
                             active_parts, part_usage_entropy, mean_visibility: patchvae.evaluation.part_health)
    images/                  per-epoch reconstructions, part visibility maps, prior samples
    model/                   the final weights folder (model.safetensors + config.json), for create()/publish
    .patchvae.lock           held while a run trains into the directory (a second run is refused)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .. import models
from .._runtime import deterministic_mode, resolve_amp, resolve_device, retain_freed_memory
from ..evaluation.part_health import PartHealthAccumulator
from ..models._hub import CONFIG_FILENAME, WEIGHTS_FILENAME
from ..models.layers import check_images
from ..recipes import Recipe
from .._io import remove_stale_temp_files
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, non_finite_tensors, read_checkpoint_meta, save_checkpoint
from .data import build_run_data
from .distributed import World, broadcast_buffers, init_world
from .logs import RunLogger
from .runlock import run_lock
from .tasks import make_task

__all__ = ["TrainResult", "TrainingDivergedError", "train"]

log = logging.getLogger(__name__)

# Recipe fields that may change when resuming (everything else must match the checkpoint): the learning
# rates may, so that a diverged run can continue from its last good checkpoint with a lower one.
_RESUMABLE_CHANGES = frozenset({"epochs", "name", "description", "notes", "gemm_weight_grads", "lr", "disc_lr"})
# Run settings that change the training data (checked on resume like the recipe).
_RUN_DATA_KEYS = ("train_subset", "num_train", "steps_per_epoch")


_RECIPE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Recipe) if f.default is not dataclasses.MISSING}


class TrainingDivergedError(RuntimeError):
    """A loss, the eval loss or a weight became NaN/Inf. The message names the last good checkpoint, which is intact."""


@dataclass
class TrainResult:
    out_dir: Path
    epochs: int
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)  #: per-epoch mean losses (train and eval)
    weights_dir: Path | None = None
    model: torch.nn.Module | None = None  #: the trained model (every process holds the same weights)


def _check_resume(meta: dict[str, Any], recipe: Recipe, path: Path, run: dict[str, Any]) -> None:
    """Refuse to resume with a recipe or training data other than the checkpoint's; log the allowed changes."""
    # fields added to Recipe after the checkpoint was written read as their defaults, or as what the run did then
    saved, current = {**_RECIPE_DEFAULTS, **Recipe.LEGACY_VALUES, **meta["recipe"]}, recipe.to_dict()
    changed = sorted(k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise ValueError(f"cannot resume {path}: the recipe differs from the checkpoint's ({details}); use another --out")
    saved_run = meta.get("run")
    if saved_run is not None:
        flags = {"train_subset": "--train-subset", "num_train": "the training set size", "steps_per_epoch": "steps per epoch"}
        differ = [k for k in _RUN_DATA_KEYS if k in saved_run and saved_run[k] != run[k]]
        if differ:
            details = ", ".join(f"{flags[k]}: {saved_run[k]!r} -> {run[k]!r}" for k in differ)
            raise ValueError(f"cannot resume {path}: the training data differs from the checkpoint's ({details}); resume with "
                             f"the same data and --train-subset {saved_run.get('train_subset')}, or use another --out")
        if saved_run.get("eval_subset") != run["eval_subset"]:
            log.warning("resuming with --eval-subset %s (the checkpoint used %s): eval losses of earlier epochs are not comparable",
                        run["eval_subset"], saved_run.get("eval_subset"))
    if meta["step"] != meta["epoch"] * run["steps_per_epoch"]:
        raise ValueError(
            f"cannot resume {path}: it is at step {meta['step']} after {meta['epoch']} epoch(s), but this run has "
            f"{run['steps_per_epoch']} steps per epoch; resume with the checkpoint's data and --train-subset, or use another --out"
        )
    for k in sorted(_RESUMABLE_CHANGES & {"lr", "disc_lr"}):
        if saved.get(k) != current[k]:
            log.warning("resuming %s with %s %s (was %s)", path, k, current[k], saved.get(k))


class _DivergenceGuard:
    """Stops a run whose loss, eval loss or weights become NaN/Inf, naming the checkpoint that is still good."""

    def __init__(self, checkpoint_path: Path) -> None:
        self.checkpoint_path = checkpoint_path
        self.good: tuple[int, int] | None = None  #: (epoch, step) of the last checkpoint written or resumed from

    def _advice(self) -> str:
        if self.good is None:
            return ("No checkpoint was written yet, so there is nothing to resume: start the run again with a lower lr "
                    "(--set lr=...) or amp=none, or check the data.")
        epoch, step = self.good
        return (f"The last good checkpoint, {self.checkpoint_path} (end of epoch {epoch}, step {step}), is intact: "
                "continue from it with --resume and a lower lr (--set lr=...) or amp=none, or check the data.")

    def check_losses(self, values: dict[str, float], steps: list[dict[str, torch.Tensor]], step: int, epoch: int) -> None:
        """``values``: the window means of the steps ``step - len(steps) + 1 .. step`` (per-step parts in ``steps``)."""
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if not bad:
            return
        first = step - len(steps) + 1
        for i, parts in enumerate(steps):  # the exact step, not the end of the logging window
            if not all(bool(torch.isfinite(v).all()) for v in parts.values()):
                first += i
                break
        raise TrainingDivergedError(
            f"training diverged: the loss became non-finite at step {first} (epoch {epoch + 1}): {bad}. {self._advice()}"
        )

    def check_state(self, task: Any, step: int, epoch: int) -> None:
        """After an epoch's updates: every weight, buffer and optimiser state (the losses do not see the last update)."""
        bad = non_finite_tensors(task.modules, task.optimizers)
        if bad:
            raise TrainingDivergedError(
                f"training diverged: the update of step {step} (the last of epoch {epoch + 1}) made {len(bad)} weight/"
                f"optimiser tensor(s) non-finite (e.g. {', '.join(bad[:3])}). {self._advice()}"
            )

    def check_eval(self, summary: dict[str, Any], step: int, epoch: int) -> None:
        """Before a checkpoint: the eval loss."""
        bad = {k: v for k, v in summary.get("eval", {}).items() if isinstance(v, float) and not math.isfinite(v)}
        if bad:
            raise TrainingDivergedError(
                f"training diverged: the eval loss after step {step} (end of epoch {epoch + 1}) is non-finite: {bad}. "
                f"{self._advice()}"
            )


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
    eval_split: str | None = None,
    val_fraction: float | None = None,
    provenance: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``recipe`` into ``out_dir`` (see the module docstring for its layout).

    Launch with ``torchrun --nproc_per_node N`` for data-parallel training (the global batch is
    split across processes). With ``resume=True`` training continues from ``checkpoint.safetensors``;
    a single-process CPU run in ``deterministic`` mode then ends bit-identical to an uninterrupted one.
    Raises :class:`TrainingDivergedError` if a loss, the eval loss or a weight becomes NaN/Inf (no
    checkpoint is written from such a state; the last good one is kept and named). A run holds the lock
    of ``out_dir`` (:func:`patchvae.training.runlock.run_lock`): a second run into it is refused.

    ``eval_split`` / ``val_fraction``: what to evaluate on (:func:`patchvae.training.data.build_run_data`;
    a missing eval split is an error, never a silent run without evaluation). ``provenance`` (e.g. the
    CLI's recipe overrides) is recorded in the log and the weights' ``config.json`` with the data actually
    used. Without a progress bar (``progress=False``, or stderr not a terminal: nohup, SLURM) progress is
    logged every ``log_every`` steps.
    """
    for name, flag, value, low in (("log_every", "--log-every", log_every, 1), ("num_workers", "--workers", num_workers, 0),
                                   ("train_subset", "--train-subset", train_subset, 1),
                                   ("eval_subset", "--eval-subset", eval_subset, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{name} ({flag}) must be an int >= {low}, got {value!r}")
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
    if recipe.amp == "auto" and amp_dtype is None and device.type == "cpu":
        log.info("amp=auto: training in float32, since this CPU has no bf16 instructions (AVX512-BF16 or AMX) "
                 "and emulated bf16 is slower; --amp bf16 forces it")
    with deterministic_mode(deterministic), _claim(out_dir, world):
        return _run(recipe, out_dir, device, world, amp_dtype, data_dir=data_dir, resume=resume,
                    train_subset=train_subset, eval_subset=eval_subset, log_every=log_every, num_workers=num_workers,
                    save_images=save_images, export=export, progress=progress, command=command, download=download,
                    eval_split=eval_split, val_fraction=val_fraction, provenance=provenance)


@contextlib.contextmanager
def _claim(out_dir: Path, world: World) -> Iterator[None]:
    """The run directory's lock (main process), then the temporary files of killed writes removed."""
    if not world.is_main:
        yield
        return
    with run_lock(out_dir):
        for target in (out_dir / CHECKPOINT_NAME, out_dir / "model" / WEIGHTS_FILENAME, out_dir / "model" / CONFIG_FILENAME):
            remove_stale_temp_files(target)
        yield


def _run(
    recipe: Recipe, out_dir: Path, device: torch.device, world: World, amp_dtype: torch.dtype | None, *,
    data_dir: str | os.PathLike | None, resume: bool, train_subset: int | None, eval_subset: int | None,
    log_every: int, num_workers: int, save_images: bool, export: bool, progress: bool | None,
    command: str | None, download: bool, eval_split: str | None = None, val_fraction: float | None = None,
    provenance: dict[str, Any] | None = None,
) -> TrainResult:
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if checkpoint_path.exists() and not resume:
        raise FileExistsError(f"{out_dir} already holds a training run; pass --resume to continue it or choose another --out")
    if resume and not checkpoint_path.exists():
        log.warning("--resume: no checkpoint in %s yet, starting from scratch", out_dir)

    torch.manual_seed(recipe.seed)
    data = build_run_data(recipe, data_dir, world, device, train_subset=train_subset, eval_subset=eval_subset,
                          num_workers=num_workers, download=download, eval_split=eval_split, val_fraction=val_fraction)
    model = models.create(recipe.model, **dict(recipe.model_args)).to(device)
    model.data_config = data.data_config.with_channels(model.in_chans)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    task = make_task(model, recipe, device, world, amp_dtype, labelled=data.labelled)
    if recipe.compile != "none":
        task.compile(mode=None if recipe.compile == "default" else recipe.compile)
    torch.manual_seed(recipe.seed + 7919 * (world.rank + 1))  # per-process sampling noise

    start_epoch = step = 0
    history: list[dict[str, Any]] = []
    guard = _DivergenceGuard(checkpoint_path)
    run_info = {"train_subset": train_subset, "eval_subset": eval_subset, "num_train": data.num_train,
                "steps_per_epoch": len(data.train)}
    if resume and checkpoint_path.exists():
        _check_resume(read_checkpoint_meta(checkpoint_path), recipe, checkpoint_path, run_info)  # before loading
        fresh_lrs = {name: [g["lr"] for g in opt.param_groups] for name, opt in task.optimizers.items()}
        meta = load_checkpoint(checkpoint_path, task.modules, task.optimizers, map_location=device)
        for name, opt in task.optimizers.items():  # the recipe's learning rates (a resume may lower them)
            for group, lr in zip(opt.param_groups, fresh_lrs[name]):
                group["lr"] = lr
        start_epoch, step, history = meta["epoch"], meta["step"], meta["history"]
        guard.good = (start_epoch, step)
        log.info("resuming %s at epoch %d (step %d)", out_dir, start_epoch, step)
        if start_epoch > recipe.epochs:
            log.warning("%s is at epoch %d, past --epochs %d: nothing to train", checkpoint_path, start_epoch, recipe.epochs)
    epochs_done = max(start_epoch, recipe.epochs)  # what the exported weights have seen

    logger = RunLogger(out_dir) if world.is_main else None
    image_dir = out_dir / "images"
    fixed = None
    if data.preview is not None:  # a fixed seeded stratified sample of the eval images
        fixed = next(iter(data.preview))[0][:16]
    provenance = {**(provenance or {}), "data": data.info}
    if logger is not None:
        logger.event("start", recipe=recipe.to_dict(), epoch=start_epoch, step=step, world_size=world.size,
                     device=str(device), amp=str(amp_dtype), command=command, **provenance)
    show = world.is_main and (progress if progress is not None else sys.stderr.isatty())
    log_progress = world.is_main and not show  # nohup/SLURM: periodic log lines instead of a bar
    first = True
    for epoch in range(start_epoch, recipe.epochs):
        data.set_epoch(epoch)
        task.train(True)
        sums: dict[str, float] = defaultdict(float)
        window: dict[str, torch.Tensor] = {}
        window_steps: list[dict[str, torch.Tensor]] = []  # per step, to name the exact step of a divergence
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
            window_steps.append(parts)
            if step % log_every == 0:
                values = _flush(window, window_count, sums, step, epoch, guard, window_steps)
                window, window_steps, window_count = {}, [], 0
                values["temperature"] = task.schedule(step)
                if logger is not None:
                    logger.scalars("train", step, values, epoch=epoch)
                bar.set_postfix(loss=f"{values['loss']:.4g}")
                if log_progress:
                    log.info("epoch %d/%d step %d/%d: loss %.4g, %.0f img/s", epoch + 1, recipe.epochs, count,
                             len(data.train), values["loss"], count * recipe.batch_size / (time.perf_counter() - t0))
        if window_count:
            _flush(window, window_count, sums, step, epoch, guard, window_steps)
        guard.check_state(task, step, epoch)  # before anything evaluates, draws or saves the weights
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
                    health = PartHealthAccumulator(strict=False)  # filled by models with parts, from the same pass
                    summary["eval"] = _evaluate(task, data.eval, step, health)
                    if health.num_images:
                        part_stats = health.compute()
                        summary["part_health"] = {**part_stats.scalars(), "active": list(part_stats.active)}
                if save_images and fixed is not None:
                    image_dir.mkdir(parents=True, exist_ok=True)
                    task.save_images(image_dir, epoch + 1, fixed.to(device), model.data_config)
                task.train(True)
            guard.check_eval(summary, step, epoch)  # never checkpoint a diverged state
            history.append(summary)
            save_checkpoint(checkpoint_path, task.modules, task.optimizers,  # verified before it replaces the last one
                            {"epoch": epoch + 1, "step": step, "recipe": recipe.to_dict(), "history": history,
                             "run": run_info})
            guard.good = (epoch + 1, step)
            logger.event("epoch", **summary)
            if "part_health" in summary:  # also to TensorBoard: part_health/active_parts, ...
                logger.scalars("part_health", step, part_stats.scalars(), epoch=epoch + 1)
            log.info("epoch %d/%d: train loss %.4g, %.0f img/s", epoch + 1, recipe.epochs,
                     summary["train"].get("loss", float("nan")), summary["images_per_s"])
        if world.distributed:
            dist.barrier()

    weights_dir = None
    if world.is_main and export:
        weights_dir = models.save_pretrained(
            model, out_dir / "model",
            extra={"dataset": recipe.dataset, "recipe": recipe.name,
                   "recipe_config": {**recipe.to_dict(), "epochs": epochs_done}, "epochs": epochs_done, "steps": step,
                   "command": command, **provenance,
                   "final_train_loss": history[-1]["train"] if history else None},
        )
    if logger is not None:
        logger.event("end", epoch=epochs_done, step=step)
        logger.close()
    return TrainResult(out_dir, epochs_done, step, history, weights_dir, model)


def _flush(window: dict[str, torch.Tensor], n: int, sums: dict[str, float], step: int, epoch: int,
           guard: _DivergenceGuard, steps: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Mean of the last ``n`` steps' loss parts (one host sync), checked for NaN/Inf, added to the epoch sums."""
    values = {k: float(v) / n for k, v in window.items()}
    guard.check_losses(values, steps, step, epoch)
    for k, v in values.items():
        sums[k] += v * n
    return values


@torch.no_grad()
def _evaluate(task: Any, loader: Any, step: int, part_health: PartHealthAccumulator | None = None) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    count = 0
    for x, y in loader:
        parts = task.eval_step(x, step, part_health=part_health, labels=y)
        for k, v in parts.items():
            sums[k] += float(v) * x.shape[0]
        count += x.shape[0]
    return _mean(dict(sums), count)


def command_line() -> str:
    """The command that started this process, for provenance in logs and model cards."""
    program = "patchvae" if Path(sys.argv[0]).name in ("__main__.py", "patchvae") else Path(sys.argv[0]).name
    return shlex.join([program, *sys.argv[1:]])
