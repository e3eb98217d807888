"""Fault injection (issue #14): tampered checkpoints, divergence, disk full, concurrent runs, SIGKILL during a
checkpoint write, untrusted weights folders, CLI errors, publishing, and a fuzz of ``create()``.

Every case of the issue's list has a test here that fails on the code before the fix. Training runs use a
fake Fashion-MNIST (16 distinct images, tiled to the official sizes) and a few steps; crashes are caught
by running the risky resumes in a subprocess with faulthandler.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from zoo_helpers import TINY, single_thread, subprocess_env, tiny_patchvae, weights_folder  # noqa: F401 (single_thread: a fixture)

from patchvae.cli import main
from patchvae.models import WeightsError, create, load_weights
from patchvae.recipes import get_recipe
from patchvae.training import TrainingDivergedError, train
from patchvae.training.checkpoint import load_checkpoint, read_checkpoint_meta
from patchvae.training.runlock import LOCK_NAME, RunLockedError

pytestmark = pytest.mark.usefixtures("single_thread")
ROOT = Path(__file__).resolve().parents[1]
META = "patchvae_trainer_state"
#: 128 training images in batches of 64: 2 steps per epoch
RUN = dict(train_subset=128, eval_subset=64, save_images=False, log_every=1, num_workers=0)
#: a small PatchVAE (ResNet-9 φ, 2 parts, a narrow decoder), float32
MODEL_ARGS = {"in_chans": 1, **TINY}
CLI_RUN = ["--train-subset", "128", "--eval-subset", "64", "--no-images", "--log-every", "1", "--workers", "0",
           "--set", "batch_size=64", "--amp", "none", *[f"--set=model_args.{k}={v}" for k, v in TINY.items()]]


def _recipe(**changes):
    return get_recipe("fmnist_patchvae").with_overrides(
        {"epochs": 1, "batch_size": 64, "amp": "none", "model_args": MODEL_ARGS, **changes})


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.tobytes())


@pytest.fixture(scope="session")
def fm_dir(tmp_path_factory) -> Path:
    """A fake Fashion-MNIST root (official file names and sizes; 16 random images tiled, so it compresses)."""
    root = tmp_path_factory.mktemp("fake_fmnist")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (16, 28, 28), dtype=np.uint8)
    for prefix, n in (("train", 60_000), ("t10k", 10_000)):
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", 0x0803, np.tile(base, (n // 16, 1, 1)))
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", 0x0801, np.tile(np.arange(16, dtype=np.uint8) % 10, n // 16))
    return root


@pytest.fixture(scope="module")
def base_run(fm_dir, tmp_path_factory) -> Path:
    """A run directory after one epoch (2 Adam steps): checkpoint.safetensors with optimiser state."""
    out = tmp_path_factory.mktemp("base_run")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(_recipe(), out, data_dir=fm_dir, export=False, **RUN)
    finally:
        torch.set_num_threads(before)
    return out


def _copy_run(base: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(base / "checkpoint.safetensors", out / "checkpoint.safetensors")
    return out


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()[META])
    return load_file(path), meta


def _one_error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"patchvae {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------- tampered checkpoints
def _largest(tensors: dict[str, torch.Tensor]) -> str:
    keys = [k for k in tensors if k.startswith("optimizer.model.state.") and k.endswith(".exp_avg")]
    return max(keys, key=lambda k: tensors[k].numel()).rsplit(".", 1)[0]  # optimizer.model.state.<i>


def _set(key_of, value_of):
    def mutate(t, m):
        key = key_of(t)
        t[key] = value_of(t[key] if key in t else None)
    return mutate


def _meta(change):
    def mutate(t, m):
        change(m)
    return mutate


def _group(change):
    return _meta(lambda m: change(m["optimizers"]["model"]["param_groups"][0]))


def _pop(key_of):
    def mutate(t, m):
        del t[key_of(t)]
    return mutate


#: name -> (mutation of (tensors, meta) or of the file's bytes, pattern of the CheckpointError)
TAMPERED = {
    # the segfault: Adam moments of the largest parameter replaced by 1-element tensors
    "adam moments of 1 element": (lambda t, m: [t.update({f"{_largest(t)}.{k}": torch.zeros(1)}) for k in ("exp_avg", "exp_avg_sq")],
                                  r"exp_avg(_sq)? has shape \(1,\) and dtype torch.float32, but its parameter has shape"),
    # the silent out-of-bounds run: a small shape mismatch
    "adam moment one row short": (_set(lambda t: f"{_largest(t)}.exp_avg", lambda v: v[:-1].clone()), r"exp_avg has shape"),
    "adam moment transposed": (_set(lambda t: f"{_largest(t)}.exp_avg_sq", lambda v: v.flatten(1).t().contiguous()), r"exp_avg_sq has shape"),
    "adam moment float64": (_set(lambda t: f"{_largest(t)}.exp_avg", lambda v: v.double()), r"dtype torch.float64, but its parameter"),
    "adam moment float16": (_set(lambda t: f"{_largest(t)}.exp_avg_sq", lambda v: v.half()), r"dtype torch.float16"),
    "adam moment int64": (_set(lambda t: f"{_largest(t)}.exp_avg_sq", lambda v: v.long()), r"dtype torch.int64"),
    "adam moment NaN": (_set(lambda t: f"{_largest(t)}.exp_avg", lambda v: torch.full_like(v, float("nan"))), r"exp_avg holds NaN/Inf"),
    "adam moment missing": (_pop(lambda t: f"{_largest(t)}.exp_avg_sq"), r"lacks exp_avg_sq"),
    "adam state unknown key": (_set(lambda t: "optimizer.model.state.0.max_exp_avg_sq", lambda v: torch.zeros(64, 1, 7, 7)),
                               r"unknown state 'max_exp_avg_sq'"),
    "adam state of no parameter": (_set(lambda t: "optimizer.model.state.9999.exp_avg", lambda v: torch.zeros(1)), r"names no parameter"),
    "adam state index not a number": (_set(lambda t: "optimizer.model.state.x.exp_avg", lambda v: torch.zeros(1)), r"names no parameter"),
    "step counter negative": (_set(lambda t: "optimizer.model.state.0.step", lambda v: torch.tensor(-1.0)), r"step is -1; .*step counter"),
    "step counter fractional": (_set(lambda t: "optimizer.model.state.0.step", lambda v: torch.tensor(1.5)), r"step is 1.5"),
    "step counter beyond the run": (_set(lambda t: "optimizer.model.state.0.step", lambda v: torch.tensor(1e9)), r"step is 1e\+09"),
    "step counter a vector": (_set(lambda t: "optimizer.model.state.0.step", lambda v: torch.zeros(5)), r"step is shape \(5,\)"),
    "step counter NaN": (_set(lambda t: "optimizer.model.state.0.step", lambda v: torch.tensor(float("nan"))), r"step is nan"),
    "non-tensor optimiser state": (_meta(lambda m: m["optimizers"]["model"].update(scalars={"0": {"step": 3}})),
                                   r"non-tensor per-parameter state"),
    "extra parameter group": (_meta(lambda m: m["optimizers"]["model"]["param_groups"].append({"params": []})),
                              r"2 parameter group\(s\), the model 1"),
    "parameter list changed": (_group(lambda g: g.update(params=g["params"][:-1])), r"lists other parameters"),
    "parameter list of bools": (_group(lambda g: g.update(params=[True] + g["params"][1:])), r"lists other parameters"),
    "group lr a string": (_group(lambda g: g.update(lr="abc")), r"lr='abc'"),
    "group betas changed": (_group(lambda g: g.update(betas=[0.9, 2.0])), r"other settings than the run: betas"),
    "group fused flag a string": (_group(lambda g: g.update(fused="yes")), r"fused='yes', expected true, false or null"),
    "group amsgrad as int": (_group(lambda g: g.update(amsgrad=0)), r"other settings than the run: amsgrad"),
    "group unknown setting": (_group(lambda g: g.update(evil=1)), r"unknown settings \['evil'\]"),
    "no state for the optimiser": (_meta(lambda m: m["optimizers"].clear()), r"no state for optimizer 'model'"),
    "optimiser state not an object": (_meta(lambda m: m["optimizers"].update(model=[1, 2])), r"not an object with 'param_groups'"),
    "metadata without epoch": (_meta(lambda m: m.pop("epoch")), r"lacks 'epoch'"),
    "metadata without step and history": (_meta(lambda m: [m.pop("step"), m.pop("history")]), r"lacks 'step', 'history'"),
    "metadata without optimizers": (_meta(lambda m: m.pop("optimizers")), r"lacks 'optimizers'"),
    "metadata step a string": (_meta(lambda m: m.update(step="2")), r"step='2', expected an int"),
    "metadata epoch a bool": (_meta(lambda m: m.update(epoch=True)), r"epoch=True, expected an int"),
    "metadata epoch negative": (_meta(lambda m: m.update(epoch=-1)), r"counters are impossible"),
    "metadata recipe a list": (_meta(lambda m: m.update(recipe=[])), r"recipe=\[\], expected an object"),
    "history shorter than epochs": (_meta(lambda m: m.update(history=[])), r"history has 0 entries for epoch 1"),
    "history disagrees with step": (_meta(lambda m: m["history"][-1].update(step=7)), r"history ends at step 7"),
    "model tensor of another shape": (_set(lambda t: "model.encoder.visibility.weight", lambda v: v[:1].clone()), r"does not fit PatchVAE"),
    # issue item 3: finite in float64, Inf once copied into the float32 model
    "model tensor float64 1e300": (_set(lambda t: "model.encoder.visibility.bias", lambda v: torch.full(v.shape, 1e300, dtype=torch.float64)),
                                   r"\[model\] has NaN/Inf values .*encoder.visibility.bias"),
    "rng state cut": (_set(lambda t: "rng.cpu", lambda v: v[:100].clone()), r"rng.cpu has shape \(100,\)"),
    "rng state missing": (_pop(lambda t: "rng.cpu"), r"has no rng.cpu"),
    "tensor of nothing": (_set(lambda t: "evil.weight", lambda v: torch.zeros(3)), r"belong to nothing in this run"),
    # whole-file damage
    "truncated to half": (lambda data: data[: len(data) // 2], r"truncated or damaged"),
    "truncated to 6 bytes": (lambda data: data[:6], r"truncated or damaged"),
    "header garbage": (lambda data: data[:8] + b"#" * 32 + data[40:], r"truncated or damaged"),
    "metadata not JSON": ("not json", r"trainer state is not valid JSON"),
    "metadata a list": ("[1, 2]", r"trainer state is a list"),
    "no trainer state": (None, r"has no patchvae trainer state"),
}

_WORKER = textwrap.dedent(r'''
    import faulthandler, functools, json, sys
    faulthandler.enable()
    import torch
    torch.set_num_threads(1)
    from patchvae.data import registry
    registry.load_fashion_mnist = functools.lru_cache(maxsize=None)(registry.load_fashion_mnist)  # read the data once
    from patchvae.recipes import get_recipe
    from patchvae.training import train

    fm_dir, cases = sys.argv[1], json.loads(sys.argv[2])
    recipe = get_recipe("fmnist_patchvae").with_overrides({"epochs": 3, "batch_size": 64, "amp": "none",
                                                           "model_args": json.loads(sys.argv[3])})
    for name, out in cases:
        print(json.dumps({"case": name, "started": True}), flush=True)
        path = out + "/checkpoint.safetensors"
        before = open(path, "rb").read()
        try:
            result = train(recipe, out, data_dir=fm_dir, resume=True, train_subset=128, eval_subset=64,
                           save_images=False, export=False, num_workers=0)
            outcome = {"type": None, "message": f"trained to step {result.steps}"}
        except Exception as err:  # noqa: BLE001 - every outcome is reported to the test
            outcome = {"type": type(err).__name__, "message": str(err), "mro": [c.__name__ for c in type(err).__mro__]}
        outcome.update(case=name, unchanged=open(path, "rb").read() == before)
        print(json.dumps(outcome), flush=True)
''')


def test_tampered_checkpoints_are_refused_without_crash(base_run, fm_dir, tmp_path):
    """Issue items 1, 3, 6: each mutation gives one CheckpointError naming the file and the fix; nothing crashes
    (fused Adam does not check its state: a wrong size is read and written out of bounds) or trains on."""
    tensors, meta = _read(base_run / "checkpoint.safetensors")
    raw = (base_run / "checkpoint.safetensors").read_bytes()
    cases = []
    for i, (name, (mutation, _)) in enumerate(TAMPERED.items()):
        out = tmp_path / f"case{i:02d}"
        out.mkdir()
        path = out / "checkpoint.safetensors"
        if callable(mutation) and mutation.__code__.co_argcount == 1:  # bytes
            path.write_bytes(mutation(raw))
        elif mutation is None or isinstance(mutation, str):
            save_file(tensors, str(path), metadata={"format": "pt"} if mutation is None else {META: mutation})
        else:
            t, m = {k: v.clone() for k, v in tensors.items()}, json.loads(json.dumps(meta))
            mutation(t, m)
            save_file(t, str(path), metadata={META: json.dumps(m)})
        cases.append((name, str(out)))
    env = {**subprocess_env(), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", _WORKER, str(fm_dir), json.dumps(cases), json.dumps(MODEL_ARGS)],
                          check=False, env=env, capture_output=True, text=True, timeout=600)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    started = [r["case"] for r in results if r.get("started")]
    assert proc.returncode == 0, f"the resume of {started[-1] if started else '?'!r} crashed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    outcomes = {r["case"]: r for r in results if not r.get("started")}
    assert list(outcomes) == list(TAMPERED)
    for (name, out), (_, pattern) in zip(cases, TAMPERED.values()):
        r = outcomes[name]
        assert r["type"] == "CheckpointError", f"{name}: {r}"
        assert re.search(pattern, r["message"]), f"{name}: {r['message']!r} does not match {pattern!r}"
        assert out in r["message"] and "Fix:" in r["message"] and "\n" not in r["message"], f"{name}: {r['message']}"
        assert r["unchanged"], f"{name}: the checkpoint was rewritten"


def test_intact_checkpoint_loads_with_the_runs_implementation_flags(base_run, tmp_path):
    meta = read_checkpoint_meta(base_run / "checkpoint.safetensors")
    assert meta["epoch"] == 1 and meta["step"] == 2 and meta["run"]["train_subset"] == 128
    assert meta["run"]["steps_per_epoch"] == 2
    assert load_checkpoint(base_run / "checkpoint.safetensors", {}, {})["step"] == 2  # metadata only
    # fused/foreach say how the update runs on this device, not what it is: they follow the run, not the file
    tensors, meta = _read(base_run / "checkpoint.safetensors")
    meta["optimizers"]["model"]["param_groups"][0]["fused"] = False
    save_file(tensors, str(tmp_path / "ck.safetensors"), metadata={META: json.dumps(meta)})
    model = create("patchvae_resnet9", **MODEL_ARGS)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.999), fused=True)
    load_checkpoint(tmp_path / "ck.safetensors", {"model": model}, {"model": optimizer})
    assert optimizer.param_groups[0]["fused"] is True
    assert all(float(s["step"]) == 2 for s in optimizer.state.values())


def test_resume_checks_the_training_data(base_run, fm_dir, tmp_path):
    """Issue item 7: --resume accepted a different --train-subset (another data set under the same steps)."""
    out = _copy_run(base_run, tmp_path / "run")
    with pytest.raises(ValueError, match=r"training data differs .*--train-subset: 128 -> 256"):
        train(_recipe(epochs=2), out, data_dir=fm_dir, resume=True, **{**RUN, "train_subset": 256})
    _, meta = _read(out / "checkpoint.safetensors")
    meta.pop("run")  # a checkpoint without the record still has its step counter checked
    tensors = load_file(out / "checkpoint.safetensors")
    save_file(tensors, str(out / "checkpoint.safetensors"), metadata={META: json.dumps(meta)})
    with pytest.raises(ValueError, match=r"at step 2 after 1 epoch\(s\), but this run has 4 steps per epoch"):
        train(_recipe(epochs=2), out, data_dir=fm_dir, resume=True, **{**RUN, "train_subset": 256})


# ----------------------------------------------------------------------------- divergence
def test_divergence_in_the_first_epoch_names_no_checkpoint(fm_dir, tmp_path, capsys):
    """Issue item 2: a run diverging in epoch 1 was told to resume from an epoch-0 checkpoint that does not exist;
    the epoch-1 checkpoint was written from NaN weights (the last update of the epoch was never checked)."""
    out = tmp_path / "run"
    full_size = [a for a in CLI_RUN if not a.startswith("--set=model_args.")]  # the model, lr and 2 steps per epoch
    rc = main(["train", "fmnist_patchvae", "--data-dir", str(fm_dir), "--out", str(out), "--epochs", "2",
               "--set", "lr=0.1", *full_size])
    line = _one_error_line(capsys.readouterr().err, "train")
    assert rc == 1 and "training diverged" in line and "No checkpoint was written yet" in line
    assert re.search(r"(non-finite at step [12] \(epoch 1\)|update of step 2 \(the last of epoch 1\))", line)
    assert not (out / "checkpoint.safetensors").exists() and not list(out.glob(".*.tmp"))


def test_diverging_run_keeps_the_last_good_checkpoint_and_resumes_with_a_lower_lr(base_run, fm_dir, tmp_path, capsys):
    """Issue item 2: a diverged epoch's checkpoint held non-finite tensors, was called good, and --resume always
    failed; the message must name the intact checkpoint, and --resume with a lower lr must work."""
    out = _copy_run(base_run, tmp_path / "run")
    good = (out / "checkpoint.safetensors").read_bytes()
    args = ["train", "fmnist_patchvae", "--data-dir", str(fm_dir), "--out", str(out), "--resume", *CLI_RUN]
    rc = main([*args, "--epochs", "4", "--set", "lr=1e20"])
    line = _one_error_line(capsys.readouterr().err, "train")
    assert rc == 1 and "training diverged" in line
    assert f"{out / 'checkpoint.safetensors'} (end of epoch 1, step 2), is intact" in line and "--resume" in line
    assert (out / "checkpoint.safetensors").read_bytes() == good  # not replaced by a diverged state
    assert main([*args, "--epochs", "2", "--set", "lr=5e-5"]) == 0
    meta = read_checkpoint_meta(out / "checkpoint.safetensors")
    assert meta["epoch"] == 2 and meta["step"] == 4 and meta["recipe"]["lr"] == 5e-5
    assert json.loads((out / "model" / "config.json").read_text())["epochs"] == 2


def test_divergence_reports_the_true_step(base_run, fm_dir, tmp_path, monkeypatch):
    """Issue item 2: the step reported was the end of the logging window (15 instead of 3)."""
    from patchvae.training import tasks

    original = tasks.VAETask.train_step

    def poisoned(self, x, step):
        parts = original(self, x, step)
        if step >= 2:  # the loss of the 3rd step (the first of epoch 2)
            parts["loss"] = parts["loss"] * float("nan")
        return parts

    monkeypatch.setattr(tasks.VAETask, "train_step", poisoned)
    out = _copy_run(base_run, tmp_path / "run")
    with pytest.raises(TrainingDivergedError, match=r"non-finite at step 3 \(epoch 2\).*end of epoch 1, step 2\), is intact"):
        train(_recipe(epochs=3), out, data_dir=fm_dir, resume=True, **{**RUN, "log_every": 50})


def test_last_update_and_eval_loss_are_checked_before_a_checkpoint(base_run, fm_dir, tmp_path, monkeypatch):
    """Issue item 2: only the training loss was checked; the epoch's last update and the eval loss were not."""
    from patchvae.training import tasks

    original_step, original_eval = tasks.VAETask.train_step, tasks.VAETask.eval_step

    def last_update_poisons(self, x, step):
        parts = original_step(self, x, step)
        if step == 3:  # the last step of epoch 2: its loss is finite, the update is not
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return parts

    out = _copy_run(base_run, tmp_path / "a")
    good = (out / "checkpoint.safetensors").read_bytes()
    monkeypatch.setattr(tasks.VAETask, "train_step", last_update_poisons)
    with pytest.raises(TrainingDivergedError, match=r"update of step 4 \(the last of epoch 2\) made \d+ weight/optimiser"):
        train(_recipe(epochs=2), out, data_dir=fm_dir, resume=True, **RUN)
    assert (out / "checkpoint.safetensors").read_bytes() == good
    monkeypatch.setattr(tasks.VAETask, "train_step", original_step)

    def nan_eval(self, x, step, *args, **kwargs):
        parts = original_eval(self, x, step, *args, **kwargs)
        return {**parts, "loss": parts["loss"] * float("nan")}

    monkeypatch.setattr(tasks.VAETask, "eval_step", nan_eval)
    with pytest.raises(TrainingDivergedError, match=r"eval loss after step 4 \(end of epoch 2\) is non-finite"):
        train(_recipe(epochs=2), out, data_dir=fm_dir, resume=True, **RUN)
    assert (out / "checkpoint.safetensors").read_bytes() == good


# ----------------------------------------------------------------------------- disk full, CLI errors
def test_disk_full_is_one_line_and_keeps_the_checkpoint(base_run, fm_dir, tmp_path, monkeypatch, capsys):
    """Issue item 6: a full disk gave a traceback (safetensors reports ENOSPC as SafetensorError)."""
    import safetensors.torch
    from safetensors import SafetensorError

    real = safetensors.torch.save_file

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 4096)  # a part was written before the disk filled up
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')

    out = _copy_run(base_run, tmp_path / "run")
    good = (out / "checkpoint.safetensors").read_bytes()
    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    args = ["train", "fmnist_patchvae", "--data-dir", str(fm_dir), "--out", str(out), "--resume", "--epochs", "2", *CLI_RUN]
    assert main(args) == 1
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "[Errno 28] No space left on device while writing" in line
    assert (out / "checkpoint.safetensors").read_bytes() == good and not list(out.glob(".*.tmp"))
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    assert main(args) == 0  # space freed: the run continues from the intact checkpoint
    assert read_checkpoint_meta(out / "checkpoint.safetensors")["epoch"] == 2


def _decompression_bomb(path: Path) -> Path:
    """A 100 000 x 100 000 PNG of a few bytes: PIL refuses it as a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_cli_user_errors_are_one_line(base_run, fm_dir, tmp_path, monkeypatch, capsys):
    """Issue item 6: tracebacks for a truncated checkpoint on --resume, --eval-subset 0, --log-every 0, a
    decompression-bomb PNG, checkpoint metadata with missing keys; and -vv shows the traceback."""
    train_args = ["train", "fmnist_patchvae", "--data-dir", str(fm_dir), *CLI_RUN]

    def fails(args, pattern, command="train"):
        assert main(args) == 1
        line = _one_error_line(capsys.readouterr().err, command)
        assert re.search(pattern, line), line
        return line

    truncated = _copy_run(base_run, tmp_path / "truncated")
    data = (truncated / "checkpoint.safetensors").read_bytes()
    (truncated / "checkpoint.safetensors").write_bytes(data[: len(data) // 3])
    fails([*train_args, "--out", str(truncated), "--resume", "--epochs", "2"], r"not a valid training checkpoint: .*truncated or damaged")

    missing = _copy_run(base_run, tmp_path / "missing_keys")
    tensors, meta = _read(missing / "checkpoint.safetensors")
    save_file(tensors, str(missing / "checkpoint.safetensors"), metadata={META: json.dumps({"recipe": meta["recipe"]})})
    fails([*train_args, "--out", str(missing), "--resume", "--epochs", "2"], r"lacks 'epoch', 'step', 'history', 'optimizers'")

    fails([*train_args, "--out", str(tmp_path / "e0"), "--eval-subset", "0"], r"eval_subset \(--eval-subset\) must be an int >= 1")
    fails([*train_args, "--out", str(tmp_path / "l0"), "--log-every", "0"], r"log_every \(--log-every\) must be an int >= 1")
    with pytest.raises(ValueError, match="log-every"):
        main(["-vv", *train_args, "--out", str(tmp_path / "l0"), "--log-every", "0"])

    folder = weights_folder(tmp_path / "w", tiny_patchvae())
    bomb = _decompression_bomb(tmp_path / "bomb.png")
    fails(["extract", str(bomb), "--model", "patchvae_resnet9", "--checkpoint", str(folder), "--out", str(tmp_path / "f.npy"),
           "--no-progress", "--amp", "none"], r"(decompression bomb|exceeds limit)", command="extract")


def test_wrong_data_dir_does_not_fall_back_to_another_copy(fm_dir, tmp_path, monkeypatch, capsys):
    """Issue item 7: a --data-dir without the files silently used $PATCHVAE_FASHION_MNIST / the system copy."""
    from patchvae.data import find_fashion_mnist, load_fashion_mnist

    monkeypatch.setenv("PATCHVAE_FASHION_MNIST", str(fm_dir))
    assert find_fashion_mnist() == fm_dir  # without a root: the environment variable
    assert find_fashion_mnist(tmp_path) is None
    with pytest.raises(FileNotFoundError, match=rf"not found in {re.escape(str(tmp_path))} .*Fix --data-dir"):
        load_fashion_mnist(tmp_path)
    assert main(["train", "fmnist_patchvae", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), *CLI_RUN]) == 1
    assert "Fashion-MNIST not found in" in _one_error_line(capsys.readouterr().err, "train")


# ----------------------------------------------------------------------------- runs: lock, SIGKILL, temp files, modes
_KILLABLE = textwrap.dedent(r'''
    import os, sys, time
    import safetensors.torch as st
    from patchvae.cli import main

    marker, real, calls = sys.argv[1], st.save_file, [0]

    def write_then_hang(tensors, filename, metadata=None):
        calls[0] += 1
        real(tensors, filename, metadata=metadata)
        if calls[0] == 2:  # the checkpoint of epoch 2: half written, then wait for SIGKILL
            with open(filename, "r+b") as f:
                f.truncate(os.path.getsize(filename) // 2)
            open(marker, "w").write(str(os.getpid()))
            time.sleep(600)

    st.save_file = write_then_hang
    sys.exit(main(sys.argv[2:]))
''')


def test_concurrent_run_is_refused_and_sigkill_during_a_checkpoint_write_resumes(fm_dir, tmp_path, capsys):
    """Issue item 7: two runs into one --out both 'succeeded'; a SIGKILL left ~19 MB temp files that --resume never
    removed; weights were written with mode 0600. A lock left by the killed run must not block the resume."""
    out, marker = tmp_path / "run", tmp_path / "writing"
    args = ["train", "fmnist_patchvae", "--data-dir", str(fm_dir), "--out", str(out), "--epochs", "3", *CLI_RUN]
    env = {**subprocess_env(), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(marker), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert marker.exists(), f"the run never reached its second checkpoint: {proc.stderr.read()[-2000:] if proc.poll() is not None else 'timeout'}"
        # a second run into the same directory, while the first one writes its checkpoint
        with pytest.raises(RunLockedError, match=rf"{re.escape(str(out))} is in use by another training run \(pid {proc.pid} "):
            train(_recipe(epochs=3), out, data_dir=fm_dir, resume=True, **RUN)
        assert main([*args, "--resume"]) == 1
        assert "in use by another training run" in _one_error_line(capsys.readouterr().err, "train")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    temps = list(out.glob(".checkpoint.safetensors.*.tmp"))
    assert temps and (out / LOCK_NAME).exists()  # what the kill left behind: a half-written temp file, the lock file
    assert read_checkpoint_meta(out / "checkpoint.safetensors")["epoch"] == 1  # the last checkpoint is intact

    old_umask = os.umask(0o022)
    try:
        assert main([*args, "--resume"]) == 0  # the stale lock is taken over
    finally:
        os.umask(old_umask)
    assert not any(t.exists() for t in temps) and not (out / LOCK_NAME).exists()
    assert read_checkpoint_meta(out / "checkpoint.safetensors")["epoch"] == 3
    for written in (out / "checkpoint.safetensors", out / "model" / "model.safetensors", out / "model" / "config.json"):
        assert stat.S_IMODE(written.stat().st_mode) == 0o644, written


def test_resuming_with_fewer_epochs_keeps_the_exported_epochs(base_run, fm_dir, tmp_path, caplog):
    """Issue item 7: resuming a 2-epoch run with --epochs 1 exported its weights as a 1-epoch model."""
    out = _copy_run(base_run, tmp_path / "run")
    train(_recipe(epochs=2), out, data_dir=fm_dir, resume=True, **RUN)
    result = train(_recipe(epochs=1), out, data_dir=fm_dir, resume=True, **RUN)
    config = json.loads((out / "model" / "config.json").read_text())
    assert result.epochs == 2 and config["epochs"] == 2 and config["recipe_config"]["epochs"] == 2 and config["steps"] == 4
    assert "past --epochs 1: nothing to train" in caplog.text


# ----------------------------------------------------------------------------- untrusted weights folders
@pytest.fixture
def folder(tmp_path):
    return weights_folder(tmp_path / "good", tiny_patchvae(seed=1))


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_float64_values_are_checked_in_the_model_dtype(tmp_path):
    """Issue item 3: a float64 tensor holding 1e300 passed the finiteness check and loaded as Inf into float32."""
    model = tiny_patchvae(seed=3)
    state = model.state_dict()
    state["encoder.visibility.bias"] = torch.full(state["encoder.visibility.bias"].shape, 1e300, dtype=torch.float64)
    save_file(state, str(tmp_path / "big.safetensors"))
    before = model.encoder.visibility.bias.clone()
    with pytest.raises(WeightsError, match=r"NaN/Inf values .*encoder.visibility.bias"):
        load_weights(model, tmp_path / "big.safetensors")
    assert torch.equal(model.encoder.visibility.bias, before)


def test_load_weights_is_strict_about_in_chans(tmp_path):
    """Issue item 5: a 5-channel input conv was silently truncated and rescaled into a 3-channel model."""
    classifier = create("classifier_resnet9_32")  # only an input conv: nothing else stopped the truncation
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    five_classifier = weights_folder(tmp_path / "c5", create("classifier_resnet9_32", in_chans=5))
    for adapt in (False, True):
        with pytest.raises(WeightsError, match=r"(holds weights for 5-channel images|cannot adapt .* from 5 to 3)"):
            load_weights(classifier, five_classifier, adapt_in_chans=adapt)
    assert all(torch.equal(v, classifier.state_dict()[k]) for k, v in before.items())
    five = weights_folder(tmp_path / "five", tiny_patchvae(seed=4, in_chans=5))
    target = tiny_patchvae(seed=5)
    with pytest.raises(WeightsError, match=r"holds weights for 5-channel images, the model takes 3.*adapt_in_chans=True"):
        load_weights(target, five)
    with pytest.raises(WeightsError, match=r"cannot adapt .* from 5 to 3 input channels: only 1-channel"):
        load_weights(target, five, adapt_in_chans=True)
    with pytest.raises(WeightsError, match=r"cannot adapt .* from 5 to 3"):
        create("patchvae_resnet9", checkpoint_path=five, in_chans=3)
    gray = weights_folder(tmp_path / "gray", tiny_patchvae(seed=6, in_chans=1))
    with pytest.raises(WeightsError, match=r"1-channel images, the model takes 3"):
        load_weights(target, gray)
    load_weights(target, gray, adapt_in_chans=True)  # the documented adaptation, on request
    assert target.encoder.backbone.conv1.weight.shape[1] == 3


def test_checkpoint_path_clears_published_provenance(tmp_path):
    """Issue item 5: create('patchvae_resnet9.fmnist', checkpoint_path=<other>) kept the published sha256 and metrics."""
    published = create("patchvae_resnet9.fmnist", pretrained=True).pretrained_cfg
    assert published.sha256 and published.metrics
    other = tmp_path / "other.safetensors"
    save_file(create("patchvae_resnet9", in_chans=1).state_dict(), str(other))
    model = create("patchvae_resnet9.fmnist", checkpoint_path=other)
    cfg = model.pretrained_cfg
    assert cfg.name == "patchvae_resnet9.fmnist" and cfg.model_args == published.model_args
    assert cfg.sha256 is None and cfg.metrics == {} and cfg.file is None and cfg.hf_hub_id is None
    assert cfg.command is None and cfg.epochs is None and cfg.protocol is None


def test_untrusted_config_json_is_validated_before_building(folder, monkeypatch):
    """Issue item 5: config.json built the model before any shape check (+1.9 GB for one field) and allowed a
    19 GB input size; "sha256": 123 raised AttributeError."""
    from patchvae.models.patchvae import PatchVAE

    devices = []
    original_init = PatchVAE.__init__

    @functools.wraps(original_init)  # keeps the signature that create() checks arguments against
    def recording_init(self, *args, **kwargs):
        devices.append(torch.empty(0).device.type)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(PatchVAE, "__init__", recording_init)
    config = json.loads((folder / "config.json").read_text())
    _edit_config(folder, model_args={**config["model_args"], "decoder_width": 60_000})
    with pytest.raises(WeightsError, match=r"does not fit PatchVAE"):
        create("patchvae_resnet9", checkpoint_path=folder)
    assert devices == ["meta"]  # only the shape check ran: nothing of 60 000 channels was allocated

    cases = {
        "model_args": ({**config["model_args"], "decoder_width": 10**7}, r"'model_args.decoder_width' is 10000000, expected an int of at most"),
        "data_config": ({**config["data_config"], "input_size": [3, 80_000, 80_000]}, r"'data_config.input_size' .* H, W <= 4096"),
        "sha256": (123, r"'sha256' is 123, expected 64 hexadecimal digits"),
        "architecture": (["patchvae_resnet9"], r"'architecture' is \['patchvae_resnet9'\]"),
        "tag": ('x"); import os; ("', r"'tag' is .*expected a tag name"),
        "epochs": ("many", r"'epochs' is 'many', expected an int >= 0"),
        "metrics": ({"top1": "high"}, r"'metrics' is .*expected an object of numbers"),
        "storage_dtype": ("float8", r"'storage_dtype' is 'float8', expected one of float32, float16, bfloat16"),
        "storage_rel_change": (-1, r"'storage_rel_change' is -1, expected a number >= 0"),
    }
    for key, (value, pattern) in cases.items():
        (folder / "config.json").write_text(json.dumps({**config, key: value}))
        with pytest.raises(WeightsError, match=pattern):
            create("patchvae_resnet9", checkpoint_path=folder)
    (folder / "config.json").write_text(json.dumps({**config, "model_args": {**config["model_args"], "bogus": 1}}))
    with pytest.raises(WeightsError, match=r"name arguments PatchVAE does not have \(bogus\)"):
        create("patchvae_resnet9", checkpoint_path=folder)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"the sha256 given for .* is 123"):
        load_weights(tiny_patchvae(), folder, sha256=123)
    (folder / "config.json").write_bytes(b" " * (5 << 20))
    with pytest.raises(WeightsError, match="not a patchvae config.json"):
        create("patchvae_resnet9", checkpoint_path=folder)


# ----------------------------------------------------------------------------- publishing
@pytest.mark.usefixtures("isolated_zoo")
def test_publish_validates_ids_and_escapes_the_card(tmp_path, capsys):
    """Issue item 7: repo ids and tags landed unescaped in the card's code and the registry snippet, and --license
    could add YAML front-matter keys."""
    from patchvae.models._publish import build_publish_folder, publish, registry_snippet

    local = weights_folder(tmp_path / "trained", tiny_patchvae(seed=7))
    provenance = dict(dataset="cifar100", recipe="r", command="patchvae train r ```\nrm -rf /", epochs=1,
                      metrics={"top1 | injected": 1.0}, protocol="p\n---\nlicense: evil")
    base = ["publish", str(local), "--name", "patchvae_resnet9.ok", "--dataset", "cifar100", "--recipe", "r",
            "--command", "c", "--epochs", "1", "--metric", "top1=1", "--protocol", "p"]
    for repo_id in ('org/x"); import os; ("', "org/a b", "org//x", "-org/x", "org/x--y", "org/x.git"):
        assert main([*base, f"--repo-id={repo_id}", "--dry-run", str(tmp_path / "d")]) == 1
        assert "repo_id must be 'ORG/REPO'" in _one_error_line(capsys.readouterr().err, "publish")
    for license in ("mit\nevil: true", "mit # x", "a" * 80):
        with pytest.raises(ValueError, match="SPDX licence id"):
            build_publish_folder(local, tmp_path / "l", name="patchvae_resnet9.ok", license=license, **provenance)
    with pytest.raises(ValueError, match="a weights tag has letters, digits"):
        build_publish_folder(local, tmp_path / "t", name='patchvae_resnet9.x"y', **provenance)

    result = publish(local, "org/repo.v1", name="patchvae_resnet9.ok", dry_run=tmp_path / "out", license="apache-2.0", **provenance)
    card = (tmp_path / "out" / "README.md").read_text()
    front = card.split("---\n")[1]
    assert "license: apache-2.0\n" in front and "evil" not in front
    assert 'snapshot_download("org/repo.v1")' in card
    assert "````bash\npatchvae train r ```\nrm -rf /\n````" in card  # a longer fence than any run of backticks inside
    assert "| top1 \\| injected | 1 |" in card and "Protocol: p --- license: evil" in card
    assert 'hf_hub_id="org/repo.v1"' in registry_snippet(result)


# ----------------------------------------------------------------------------- create() fuzz
def test_create_keyword_fuzz(tmp_path):
    """create() with arbitrary keyword values raises only its documented errors (or builds a model)."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    gray = weights_folder(tmp_path / "gray", tiny_patchvae(seed=8, in_chans=1))
    beta = weights_folder(tmp_path / "beta", create("beta_vae_resnet9_32"))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes((gray / "model.safetensors").read_bytes()[:5000])
    paths = [gray, gray / "model.safetensors", beta, truncated, tmp_path / "missing.safetensors", tmp_path, str(gray), 3]
    values = st.one_of(st.none(), st.booleans(), st.integers(-3, 24), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=4), st.lists(st.integers(-6, 6), max_size=3), st.tuples(st.integers(-6, 6)))
    keys = ["pretrained", "in_chans", "num_classes", "features_only", "out_indices", "num_parts", "part_dim",
            "decoder_width", "hard", "backbone", "local_files_only", "latent_dim", "img_size", "bogus"]
    kwargs = st.dictionaries(st.sampled_from(keys), values, max_size=4)
    names = st.sampled_from(["patchvae_resnet9", "beta_vae_resnet9_32", "classifier_resnet9_32", "bigan_resnet9_32",
                             "patchvae_resnet9.fmnist", "patchvae_resnet9.nope", "nope", ""])

    @hypothesis.settings(max_examples=80, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(name=names, kw=kwargs, path=st.one_of(st.none(), st.sampled_from(paths)))
    def check(name, kw, path):
        if path is not None:
            kw = {**kw, "checkpoint_path": path}
        try:
            model = create(name, **kw)
        except (ValueError, TypeError, WeightsError, FileNotFoundError) as err:
            assert str(err), type(err)
        else:
            assert isinstance(model, torch.nn.Module)

    check()
