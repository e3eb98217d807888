"""One LPVAE training step: patchvae's defaults vs a plain eager fp32 baseline of the same maths, in one run.

Model ``pixelvae_resnet_h1_small`` (Zhang et al. 2022 LPVAE h=1, CPU size), a batch of 64 CIFAR-sized
images on the 8-bit grid, one step = forward, −ELBO, backward, Adam. The two configurations compute the same
loss and the same update:

* baseline: NCHW, the textbook PixelCNN++ DMOL under autograd (``dmol_speed.reference_log_prob``), Adam's
  default per-tensor loop;
* patchvae_fp32: the tuned :class:`~patchvae.models.likelihoods.DiscretizedLogisticMixture` (hand-written
  backward), channels_last, fused Adam, float32;
* patchvae (the ``zhang2022_cifar10_*`` recipes' setting): the same under bf16 autocast, the DMOL parameters
  (the head's last conv) and the likelihood still in float32. The −ELBO of the same weights and noise is
  printed for each, to show the bf16 path computes the same loss.

Repetitions interleave the configurations (order rotating); speed-ups are medians of paired ratios against
the baseline. bf16 pays on CPUs with AMX (or a GPU); on AVX-512 BF16 without AMX it gains little.

    python benchmarks/lpvae_step.py --reps 10 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from dmol_speed import reference_log_prob  # noqa: E402

import patchvae.models as zoo  # noqa: E402
from patchvae.models.layers import gaussian_kl_per_image  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def baseline_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    post = model.encoder(x)
    z = post.mean + post.var.sqrt() * torch.randn_like(post.mean)
    params = model.decoder.params(x, z)
    nll = -reference_log_prob(params, x, model.likelihood.num_mixtures).flatten(1).sum(1)
    return (nll + gaussian_kl_per_image(post.mean, post.var)).mean()


def library_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return (out.reconstruction_nll + out.kl).mean()


def library_loss_bf16(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return library_loss(model, x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = zoo.create("pixelvae_resnet_h1_small").train()
    fp32 = copy.deepcopy(base).to(memory_format=torch.channels_last)
    ours = copy.deepcopy(base).to(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (args.batch, 3, 32, 32)).float() / 127.5 - 1
    x_cl = x.contiguous(memory_format=torch.channels_last)
    configs = {
        "baseline": (base, torch.optim.Adam(base.parameters(), 3e-4, foreach=False), baseline_loss, x),
        "patchvae_fp32": (fp32, torch.optim.Adam(fp32.parameters(), 3e-4, fused=True), library_loss, x_cl),
        "patchvae": (ours, torch.optim.Adam(ours.parameters(), 3e-4, fused=True), library_loss_bf16, x_cl),
    }
    losses = {}
    with torch.no_grad():  # the same maths: equal losses on the same weights and noise
        for name, (model, _, loss_fn, inp) in configs.items():
            torch.manual_seed(1)
            losses[name] = float(loss_fn(model, inp))
    times: dict[str, list[float]] = {k: [] for k in configs}

    def step(name: str) -> float:
        model, opt, loss_fn, inp = configs[name]
        t = time.perf_counter()
        loss = loss_fn(model, inp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    for name in configs:  # warm-up
        step(name)
    order = list(configs)
    for rep in range(args.reps):
        for name in order[rep % 3:] + order[:rep % 3]:
            times[name].append(step(name))
    speedups = {}
    for name in ("patchvae_fp32", "patchvae"):
        ratios = [tb / to for tb, to in zip(times["baseline"], times[name])]
        speedups[name] = {"median": statistics.median(ratios), "range": [min(ratios), max(ratios)]}
    result = {
        "model": "pixelvae_resnet_h1_small", "batch": args.batch, "threads": torch.get_num_threads(), "reps": args.reps,
        "loss": losses, "median_s": {k: statistics.median(v) for k, v in times.items()},
        "speedup_vs_baseline": speedups, "speedup_median": speedups["patchvae"]["median"],
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "amx": "amx_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else None,
    }
    print("loss (same weights and noise): " + ", ".join(f"{k} {v:.3f}" for k, v in losses.items()))
    for k, v in result["median_s"].items():
        print(f"{k:13s} {v * 1000:8.1f} ms/step  ({args.batch / v:.0f} img/s)")
    for k, v in speedups.items():
        print(f"{k}: {v['median']:.2f}x the baseline (paired ratios {v['range'][0]:.2f}-{v['range'][1]:.2f})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lpvae_step_cpu.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
