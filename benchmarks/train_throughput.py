"""Training-step throughput of PatchVAE-ResNet9 (32×32, batch 128): fast paths vs a plain eager fp32 baseline.

Each configuration runs in its own subprocess (clean peak-memory numbers), all in one invocation so
the ratios compare like with like. Prints a table and writes ``benchmarks/results/train_throughput.json``.

    python benchmarks/train_throughput.py                 # CPU
    python benchmarks/train_throughput.py --device cuda   # GPU (adds CUDA-graph / compile variants)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# the baseline is a plain PyTorch loop in a plain process: float32, NCHW, torch.optim.Adam with its default
# (per-tensor) update, glibc's default heap. "heap": the trainer's retain_freed_memory() (CPU only).
# "gemm": the recipe's gemm_weight_grads (bf16 on CPU only).
BASELINE = {"amp": "none", "channels_last": False, "compile": False, "fused_optimizer": False, "heap": False,
            "gemm": False}
DEFAULT = {"amp": "bf16", "channels_last": True, "compile": False, "heap": True, "gemm": True}
CPU_CONFIGS = {
    "eager fp32 (baseline)": BASELINE,
    "baseline + retained heap": {**BASELINE, "heap": True},
    "fp32 + channels_last + fused Adam + heap": {**DEFAULT, "amp": "none"},
    "bf16 autocast": {**BASELINE, "amp": "bf16"},
    "bf16 + channels_last + fused Adam": {**DEFAULT, "heap": False, "gemm": False},
    "bf16 + channels_last + fused Adam + heap": {**DEFAULT, "gemm": False},
    "bf16 + channels_last + fused Adam + heap + GEMM grads (default)": DEFAULT,
    "default + compile": {**DEFAULT, "compile": True},
}
GPU_CONFIGS = {
    "eager fp32 (baseline)": BASELINE,
    "bf16 + channels_last + fused Adam (default)": DEFAULT,
    "default + compile": {**DEFAULT, "compile": True},
    "default + compile (cudagraphs)": {**DEFAULT, "compile": "reduce-overhead"},
}


def run_one(cfg: dict, device: str, batch: int, steps: int, warmup: int, in_chans: int, repeats: int = 3) -> dict:
    """Time ``steps`` optimiser steps of the trainer's own step function (after ``warmup``), best of ``repeats``."""
    import torch

    from patchvae.models import create
    from patchvae.recipes import get_recipe
    from patchvae.training.distributed import World
    from patchvae.training.tasks import make_task
    from patchvae._runtime import resolve_amp, retain_freed_memory

    torch.manual_seed(0)
    dev = torch.device(device)
    if cfg["heap"] and dev.type == "cpu":
        assert retain_freed_memory(), "retain_freed_memory() had no effect here (not glibc?)"
    recipe = get_recipe("cifar100_patchvae").with_overrides(
        {"amp": cfg["amp"], "channels_last": cfg["channels_last"], "batch_size": batch, "model_args": {"in_chans": in_chans},
         "fused_optimizer": cfg.get("fused_optimizer", True), "gemm_weight_grads": cfg["gemm"]}
    )
    model = create(recipe.model, **recipe.model_args).to(dev)
    model.check_inputs = False
    if cfg["channels_last"]:
        model.to(memory_format=torch.channels_last)
    task = make_task(model, recipe, dev, World(), resolve_amp(recipe.amp, dev))
    if cfg["compile"]:
        mode = cfg["compile"] if isinstance(cfg["compile"], str) else None
        task.compile(mode=mode)
    x = torch.rand(batch, in_chans, 32, 32, device=dev) * 2 - 1
    if cfg["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t_compile = time.perf_counter()
    for i in range(warmup):
        task.train_step(x, i)
    sync()
    warm_s = time.perf_counter() - t_compile
    # best of ``repeats`` timed windows: the machine's noise only ever slows a window down
    elapsed = float("inf")
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for r in range(repeats):
        t0 = time.perf_counter()
        for i in range(steps):
            parts = task.train_step(x, warmup + r * steps + i)
        float(parts["loss"])
        sync()
        elapsed = min(elapsed, time.perf_counter() - t0)
    out = {"images_per_s": batch * steps / elapsed, "step_ms": 1000 * elapsed / steps, "warmup_s": warm_s,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "page_faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / (repeats * steps)}
    if dev.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--in-chans", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed windows of --steps steps; the best is reported")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over all configurations")
    parser.add_argument("--only", help="run one named configuration (internal)")
    args = parser.parse_args()
    configs = GPU_CONFIGS if args.device.startswith("cuda") else CPU_CONFIGS
    if args.only:
        print(json.dumps(run_one(configs[args.only], args.device, args.batch, args.steps, args.warmup, args.in_chans, args.repeats)))
        return
    import torch

    # configurations interleaved over --rounds (a shared machine's slow phases hit all of them), best round kept
    rows: dict[str, dict] = {}
    for round_ in range(args.rounds):
        for name in configs:
            cmd = [sys.executable, __file__, "--device", args.device, "--batch", str(args.batch), "--steps",
                   str(args.steps), "--warmup", str(args.warmup), "--in-chans", str(args.in_chans), "--repeats",
                   str(args.repeats), "--only", name]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if proc.returncode:
                result = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
            else:
                result = json.loads(proc.stdout.strip().splitlines()[-1])
            if name not in rows or result.get("images_per_s", 0) > rows[name].get("images_per_s", 0):
                rows[name] = result
            print(f"  round {round_ + 1} {name}: {result}", file=sys.stderr, flush=True)
    base = rows[next(iter(configs))].get("images_per_s")
    print(f"\nPatchVAE-ResNet9 training step, 32x32x{args.in_chans}, batch {args.batch}, device {args.device}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPU threads")
    print(f"{'configuration':<64} {'img/s':>8} {'x base':>7} {'ms/step':>8} {'peak RSS MB':>12} {'faults/step':>12}")
    for name, r in rows.items():
        if "error" in r:
            print(f"{name:<64} error: {r['error']}")
            continue
        print(f"{name:<64} {r['images_per_s']:>8.0f} {r['images_per_s'] / base:>7.2f} {r['step_ms']:>8.1f} "
              f"{r['peak_rss_mb']:>12.0f} {r.get('page_faults_per_step', float('nan')):>12.0f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"train_throughput_{args.device.split(':')[0]}.json"
    out.write_text(json.dumps({"device": args.device, "batch": args.batch, "in_chans": args.in_chans,
                               "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
                               "cpu_count": os.cpu_count(), "results": rows}, indent=2))
    print(f"\nwritten {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
