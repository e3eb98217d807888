"""One LPVAE training step: patchvae's defaults vs a plain eager fp32 baseline of the same maths, in one run.

Model ``pixelvae_resnet_h1_small`` (Zhang et al. 2022 LPVAE h=1, CPU size), a batch of 64 CIFAR-sized
images on the 8-bit grid, one step = forward, −ELBO, backward, Adam. The two configurations compute the same
loss and the same update:

* baseline: NCHW, the textbook PixelCNN++ DMOL under autograd (``dmol_speed.reference_log_prob``), Adam's
  default per-tensor loop;
* patchvae: the tuned :class:`~patchvae.models.likelihoods.DiscretizedLogisticMixture` (hand-written
  backward), channels_last, fused Adam (the recipe defaults, ``amp="none"`` as the zhang2022 recipes).

Repetitions interleave the two (order rotating); the speed-up is the median of the paired ratios.

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
    ours = copy.deepcopy(base).to(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (args.batch, 3, 32, 32)).float() / 127.5 - 1
    x_cl = x.contiguous(memory_format=torch.channels_last)
    configs = {
        "baseline": (base, torch.optim.Adam(base.parameters(), 3e-4, foreach=False), baseline_loss, x),
        "patchvae": (ours, torch.optim.Adam(ours.parameters(), 3e-4, fused=True), library_loss, x_cl),
    }
    with torch.no_grad():  # the same maths: equal losses on the same weights and noise
        torch.manual_seed(1)
        a = baseline_loss(base, x)
        torch.manual_seed(1)
        b = library_loss(ours, x_cl)
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
        for name in order[rep % 2:] + order[:rep % 2]:
            times[name].append(step(name))
    ratios = [tb / to for tb, to in zip(times["baseline"], times["patchvae"])]
    result = {
        "model": "pixelvae_resnet_h1_small", "batch": args.batch, "threads": torch.get_num_threads(), "reps": args.reps,
        "loss_baseline": float(a), "loss_patchvae": float(b),
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "speedup_median": statistics.median(ratios), "speedup_range": [min(ratios), max(ratios)],
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
    }
    print(f"loss: baseline {float(a):.3f}, patchvae {float(b):.3f} (same weights and noise)")
    for k, v in result["median_s"].items():
        print(f"{k:9s} {v * 1000:8.1f} ms/step  ({args.batch / v:.0f} img/s)")
    print(f"speed-up {result['speedup_median']:.2f}x (paired ratios {min(ratios):.2f}-{max(ratios):.2f})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lpvae_step_cpu.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
