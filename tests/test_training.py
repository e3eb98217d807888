"""The trainer: outputs, exact resume (also after SIGKILL), DDP with torchrun, NaN stop, GAN families."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from patchvae.models import from_pretrained
from patchvae.recipes import get_recipe
from patchvae.training import TrainingDivergedError, train
from patchvae.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.data
ROOT = Path(__file__).resolve().parents[1]


def _recipe(name: str = "fmnist_patchvae", **changes):
    return get_recipe(name).with_overrides({"epochs": 2, "batch_size": 64, **changes})


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_writes_checkpoint_logs_images_and_weights(tmp_path, fashion_mnist):
    result = train(_recipe(), tmp_path, train_subset=256, eval_subset=128, log_every=2)
    assert result.steps == 8 and len(result.history) == 2
    assert (tmp_path / "checkpoint.safetensors").is_file()
    for epoch in (1, 2):
        for kind in ("reconstructions", "visibility", "samples"):
            assert (tmp_path / "images" / f"epoch_{epoch:03d}_{kind}.png").stat().st_size > 1000
    train_logs = [r for r in _records(tmp_path / "log.jsonl") if r.get("split") == "train"]
    assert len(train_logs) == 4
    assert {"loss", "reconstruction", "kl_appearance", "kl_visibility", "temperature"} <= set(train_logs[0])
    epochs = [r for r in _records(tmp_path / "log.jsonl") if r.get("event") == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2] and "loss" in epochs[0]["eval"]
    assert any((tmp_path / "tb").iterdir())
    # the exported weights folder loads back into an identical model
    loaded = from_pretrained(tmp_path / "model").eval()
    x = torch.randn(2, 1, 32, 32)
    model = result.model.eval()
    torch.testing.assert_close(loaded(x).reconstruction, model(x).reconstruction)
    assert loaded.data_config.resize_mode == "pad" and loaded.data_config.mean == (0.5,)


def test_refuses_to_overwrite_a_run(tmp_path, fashion_mnist):
    train(_recipe(epochs=1), tmp_path, train_subset=128, save_images=False, export=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(_recipe(epochs=1), tmp_path, train_subset=128)
    with pytest.raises(ValueError, match="recipe differs"):  # lr may change on resume (after a divergence), the rest not
        train(_recipe(epochs=2, weight_decay=1e-3), tmp_path, train_subset=128, resume=True)


def test_resume_is_bitwise_exact(tmp_path, fashion_mnist):
    kw = dict(train_subset=256, eval_subset=64, deterministic=True, log_every=1)
    full = train(_recipe(epochs=3), tmp_path / "full", **kw)
    train(_recipe(epochs=1), tmp_path / "split", **kw)
    resumed = train(_recipe(epochs=3), tmp_path / "split", resume=True, **kw)
    assert resumed.steps == full.steps == 12
    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _wait_for(path: Path, predicate, timeout: float = 900.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and predicate(path.read_text()):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{path} never satisfied the condition")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path, fashion_mnist):
    args = ["train", "fmnist_patchvae", "--epochs", "3", "--train-subset", "512", "--eval-subset", "64",
            "--set", "batch_size=32", "--log-every", "1", "--deterministic", "--no-images"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # same threads in every run
    cmd = [sys.executable, "-m", "patchvae", *args]
    subprocess.run([*cmd, "--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "killed" / "log.jsonl"
    # kill in the middle of epoch 2 (index 1), after the epoch-1 checkpoint was written
    _wait_for(log, lambda text: sum('"epoch": 1, ' in line and '"split"' in line for line in text.splitlines()) >= 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    meta = load_checkpoint(tmp_path / "killed" / "checkpoint.safetensors", {}, {})
    assert meta["epoch"] == 1  # the checkpoint of the finished epoch survived the kill
    assert not (tmp_path / "killed" / "model").exists()
    subprocess.run([*cmd, "--out", str(tmp_path / "killed"), "--resume"], check=True, env=env, capture_output=True)
    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_torchrun_two_processes_end_with_identical_weights(tmp_path, fashion_mnist):
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*launcher, "--standalone", "--nproc_per_node", "2", str(ROOT / "tests/scripts/ddp_worker.py"), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert r0.keys() == r1.keys() and all(torch.equal(r0[k], r1[k]) for k in r0)
    steps = [r["step"] for r in _records(tmp_path / "log.jsonl") if r.get("split") == "train"]
    assert steps[-1] == 8  # 512 images, 256 per rank, batches of 64 / 2 ranks = 32 -> 8 steps


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, fashion_mnist, monkeypatch):
    from patchvae.training import tasks

    original = tasks.VAETask.train_step

    def poisoned(self, x, step):
        parts = original(self, x, step)
        if step >= 5:
            parts["loss"] = parts["loss"] * float("nan")
        return parts

    monkeypatch.setattr(tasks.VAETask, "train_step", poisoned)
    with pytest.raises(TrainingDivergedError, match="non-finite at step 6 .*end of epoch 1.*intact"):
        train(_recipe(epochs=3), tmp_path, train_subset=256, log_every=1, save_images=False)
    meta = load_checkpoint(tmp_path / "checkpoint.safetensors", {}, {})
    assert meta["epoch"] == 1 and meta["step"] == 4


@pytest.mark.parametrize("name", ["fmnist_patchvae_gan_lw", "fmnist_beta_vae_gan", "fmnist_bigan"])
def test_adversarial_families_train(tmp_path, fashion_mnist, name):
    result = train(_recipe(name, epochs=1), tmp_path, train_subset=128, eval_subset=64, log_every=1)
    last = result.history[-1]["train"]
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())
    assert "d_loss" in last
    state = load_file(tmp_path / "checkpoint.safetensors")
    assert any(k.startswith(("discriminator.", "model.discriminator.")) for k in state)
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_read_events_returns_one_kind_in_order_and_skips_a_cut_line(tmp_path):
    from patchvae.training.logs import RunLogger, read_events

    assert read_events(tmp_path / "no_run", "epoch") == []
    logger = RunLogger(tmp_path, tensorboard=False)
    logger.event("epoch", epoch=1, eval={"loss": 2.0})
    logger.scalars("train", 5, {"loss": 1.5})
    logger.event("end", epoch=1)
    logger.event("epoch", epoch=2, eval={"loss": 1.0})
    logger.close()
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"event": "epoch", "epo')  # a process killed mid-write
    events = read_events(tmp_path, "epoch")
    assert [(e["epoch"], e["eval"]["loss"]) for e in events] == [(1, 2.0), (2, 1.0)]
    assert [e["epoch"] for e in read_events(tmp_path, "end")] == [1]


@pytest.mark.parametrize("native_bf16", [False, True])
def test_auto_amp_trains_in_float32_without_bf16_instructions_and_says_so(tmp_path, fashion_mnist, monkeypatch, caplog,
                                                                          native_bf16):
    import patchvae._runtime as runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native_bf16)
    with caplog.at_level("INFO", logger="patchvae.training.trainer"):
        train(_recipe(epochs=1, amp="auto"), tmp_path, train_subset=64, eval_subset=64, save_images=False, export=False)
    start = next(r for r in _records(tmp_path / "log.jsonl") if r.get("event") == "start")
    assert start["amp"] == ("torch.bfloat16" if native_bf16 else "None")  # str(dtype) of the autocast, "None": float32
    assert ("training in float32, since this CPU has no bf16 instructions" in caplog.text) is not native_bf16
