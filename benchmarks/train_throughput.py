"""Training-step throughput of PatchVAE-ResNet9 (32×32, batch 128): fast paths vs a plain eager fp32 baseline.

Each configuration lives in its own worker process (its own allocator settings and clean peak-memory
numbers). The workers run in lockstep: window after window, every configuration times ``--steps``
steps in turn, so a slow phase of a shared machine hits all of them alike. A configuration's ratio to
the baseline is the median over windows of the baseline's window time over its own, from adjacent
windows. Prints a table and writes ``benchmarks/results/train_throughput_<device>.json``.

    python benchmarks/train_throughput.py                 # CPU
    python benchmarks/train_throughput.py --device cuda   # GPU (adds CUDA-graph / compile variants)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
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
#: the trainer's bf16 fast path; recipes run it with ``amp: auto`` where the CPU has bf16 instructions (float32 elsewhere)
BF16_FAST = {"amp": "bf16", "channels_last": True, "compile": False, "heap": True, "gemm": True}
FP32_FAST = {**BF16_FAST, "amp": "none"}
CPU_CONFIGS = {
    "eager fp32 (baseline)": BASELINE,
    "baseline + retained heap": {**BASELINE, "heap": True},
    "fp32 + channels_last + fused Adam + heap": FP32_FAST,
    "bf16 autocast": {**BASELINE, "amp": "bf16"},
    "bf16 + channels_last + fused Adam": {**BF16_FAST, "heap": False, "gemm": False},
    "bf16 + channels_last + fused Adam + heap": {**BF16_FAST, "gemm": False},
    "bf16 + channels_last + fused Adam + heap + GEMM grads": BF16_FAST,
    "bf16 fast path + compile": {**BF16_FAST, "compile": True},
}
GPU_CONFIGS = {
    "eager fp32 (baseline)": BASELINE,
    "bf16 + channels_last + fused Adam": BF16_FAST,
    "bf16 fast path + compile": {**BF16_FAST, "compile": True},
    "bf16 fast path + compile (cudagraphs)": {**BF16_FAST, "compile": "reduce-overhead"},
}


def default_config(configs: dict[str, dict], device: str) -> str | None:
    """The row the trainer's defaults (``amp: auto``) run on this machine: the bf16 fast path where ``auto``
    resolves to bf16, the float32 fast path where this CPU only emulates bf16 (None: no row, e.g. fp16 GPUs)."""
    import torch

    from patchvae._runtime import resolve_amp

    fast = BF16_FAST if resolve_amp("auto", torch.device(device)) == torch.bfloat16 else FP32_FAST
    return next((name for name, cfg in configs.items() if cfg == fast), None)


def serve(cfg: dict, device: str, batch: int, warmup: int, in_chans: int) -> None:
    """Worker: build the trainer's step for ``cfg``, warm up, then time ``N`` steps per stdin line ``N``."""
    import torch

    from patchvae._runtime import resolve_amp, retain_freed_memory
    from patchvae.models import create
    from patchvae.recipes import get_recipe
    from patchvae.training.distributed import World
    from patchvae.training.tasks import make_task

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
        task.compile(mode=cfg["compile"] if isinstance(cfg["compile"], str) else None)
    x = torch.rand(batch, in_chans, 32, 32, device=dev) * 2 - 1
    if cfg["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    step = 0
    for step in range(warmup):
        task.train_step(x, step)
    sync()
    print(json.dumps({"warmup_s": time.perf_counter() - t0}), flush=True)
    faults = timed_steps = 0
    for line in sys.stdin:
        n = int(line)
        f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        for _ in range(n):
            step += 1
            parts = task.train_step(x, step)
        float(parts["loss"])
        sync()
        seconds = time.perf_counter() - t0
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        timed_steps += n
        stats = {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                 "page_faults_per_step": faults / timed_steps}
        if dev.type == "cuda":
            stats["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        print(json.dumps(stats), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=15, help="timed windows per configuration, in lockstep")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--in-chans", type=int, default=3)
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # worker mode (internal)
    args = parser.parse_args()
    configs = GPU_CONFIGS if args.device.startswith("cuda") else CPU_CONFIGS
    if args.serve:
        serve(configs[args.serve], args.device, args.batch, args.warmup, args.in_chans)
        return
    import torch

    workers: dict[str, subprocess.Popen] = {}
    info: dict[str, dict] = {}
    for name in configs:  # started one at a time: warm-up (and compilation) is not timed against the others
        cmd = [sys.executable, __file__, "--device", args.device, "--batch", str(args.batch), "--warmup",
               str(args.warmup), "--in-chans", str(args.in_chans), "--serve", name]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        line = proc.stdout.readline()
        if not line:
            info[name] = {"error": f"worker exited with {proc.wait()}"}
            continue
        workers[name], info[name] = proc, json.loads(line)
    times: dict[str, list[float]] = {name: [] for name in workers}
    names = list(workers)
    for window in range(args.windows):
        order = names[window % len(names):] + names[:window % len(names)]  # rotate who goes first
        for name in order:
            workers[name].stdin.write(f"{args.steps}\n")
            workers[name].stdin.flush()
            stats = json.loads(workers[name].stdout.readline())
            times[name].append(stats.pop("seconds"))
            info[name].update(stats)
        print(f"  window {window + 1}: " + ", ".join(f"{n}: {args.batch * args.steps / times[n][-1]:.0f}" for n in names),
              file=sys.stderr, flush=True)
    for proc in workers.values():
        proc.stdin.close()
        proc.wait()

    base_name = next(iter(configs))
    default_name = default_config(configs, args.device)
    rows: dict[str, dict] = {}
    for name in configs:
        if name not in times:
            rows[name] = info[name]
            continue
        t = times[name]
        ratios = [b / c for b, c in zip(times[base_name], t)]
        rows[name] = {**info[name], "images_per_s": args.batch * args.steps / statistics.median(t),
                      "step_ms": 1000 * statistics.median(t) / args.steps, "speedup": statistics.median(ratios),
                      "speedup_min": min(ratios), "speedup_max": max(ratios), "window_seconds": t}
    print(f"\nPatchVAE-ResNet9 training step, 32x32x{args.in_chans}, batch {args.batch}, device {args.device}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPU threads; medians of {args.windows} lockstep windows "
          f"of {args.steps} steps")
    print(f"{'configuration':<64} {'img/s':>7} {'x base':>7} {'(range)':>11} {'ms/step':>8} {'peak RSS MB':>11} "
          f"{'faults/step':>11}")
    for name, r in rows.items():
        if "error" in r:
            print(f"{name:<64} error: {r['error']}")
            continue
        spread = f"{r['speedup_min']:.2f}-{r['speedup_max']:.2f}"
        label = f"{name} (default here)" if name == default_name else name
        print(f"{label:<64} {r['images_per_s']:>7.0f} {r['speedup']:>7.2f} {spread:>11} {r['step_ms']:>8.1f} "
              f"{r['peak_rss_mb']:>11.0f} {r['page_faults_per_step']:>11.0f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"train_throughput_{args.device.split(':')[0]}.json"
    out.write_text(json.dumps({"device": args.device, "batch": args.batch, "in_chans": args.in_chans, "steps": args.steps,
                               "windows": args.windows, "torch": torch.__version__,
                               "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                               "default_here": default_name, "results": rows}, indent=2))
    print(f"\nwritten {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
