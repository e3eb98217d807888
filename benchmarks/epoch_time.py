"""End-to-end Fashion-MNIST training epoch: ``patchvae.training`` vs a per-sample DataLoader + eager fp32 loop.

Baseline (what the authors' ``run.py`` does): ``torchvision.datasets.FashionMNIST`` with per-sample
``Pad(2) -> ToTensor -> Normalize`` transforms, a ``DataLoader`` (2 workers, batch 128, shuffled)
and an eager fp32 PatchVAE step. Ours: ``patchvae.training.train`` with the recipe defaults
(in-memory uint8 data with batched preprocessing, bf16 autocast where supported, channels_last).
Each configuration runs in its own process, the two alternating over ``--rounds``; the best epoch of
each is kept. Prints a table and writes ``benchmarks/results/epoch_time.json``.

    python benchmarks/epoch_time.py [--images 60000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from patchvae.data import find_fashion_mnist
from patchvae.losses import PatchVAEObjective, TemperatureSchedule
from patchvae.models import create
from patchvae.recipes import get_recipe
from patchvae.training import train

ROOT = Path(__file__).resolve().parents[1]


def torchvision_fashion_mnist(tmp: Path) -> datasets.FashionMNIST:
    """torchvision's dataset class over the local IDX files (it wants them uncompressed in FashionMNIST/raw)."""
    src = find_fashion_mnist()
    if src is None:
        raise SystemExit("Fashion-MNIST not found: apt-get install dataset-fashion-mnist")
    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in src.iterdir():
        if f.name.endswith(".gz"):
            with gzip.open(f) as g, open(raw / f.name[:-3], "wb") as out:
                shutil.copyfileobj(g, out)
    tf = transforms.Compose([transforms.Pad(2), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    return datasets.FashionMNIST(str(tmp), train=True, transform=tf, download=False)


def baseline_epoch(ds, images: int, batch: int) -> float:
    torch.manual_seed(0)
    loader = DataLoader(Subset(ds, range(images)), batch_size=batch, shuffle=True, num_workers=2, drop_last=True)
    model = create("patchvae_resnet9", in_chans=1).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.999))
    objective, schedule = PatchVAEObjective(), TemperatureSchedule()
    t0 = time.perf_counter()
    for step, (x, _) in enumerate(loader):
        loss = objective(model(x, schedule(step)), x).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    return time.perf_counter() - t0


def run_one(config: str, images: int, batch: int) -> dict[str, float]:
    """One configuration's epoch in this (fresh) process: {"seconds": train loop, "wall": incl. start-up}."""
    with tempfile.TemporaryDirectory() as tmp:
        if config == "baseline":
            return {"seconds": baseline_epoch(torchvision_fashion_mnist(Path(tmp)), images, batch)}
        recipe = get_recipe("fmnist_patchvae").with_overrides({"epochs": 1, "batch_size": batch})
        t0 = time.perf_counter()
        result = train(recipe, Path(tmp) / "run", train_subset=images, save_images=False, export=False,
                       progress=False, log_every=10**9)
        return {"seconds": result.history[-1]["seconds"], "wall": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (baseline, ours, ...); best kept")
    parser.add_argument("--only", choices=["baseline", "ours"], help="run one configuration (internal)")
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_one(args.only, args.images, args.batch)))
        return
    # each configuration in a fresh process (no heap, thread-pool or allocator state carried from one to
    # the other), alternating over --rounds so that a slow phase of the shared machine hits both
    best: dict[str, dict[str, float]] = {}
    for round_ in range(args.rounds):
        for config in ("baseline", "ours"):
            cmd = [sys.executable, __file__, "--images", str(args.images), "--batch", str(args.batch), "--only", config]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"  round {round_ + 1} {config}: {result}", file=sys.stderr, flush=True)
            if config not in best or result["seconds"] < best[config]["seconds"]:
                best[config] = result
    base_s = best["baseline"]["seconds"]
    steps = args.images // args.batch
    rows = {
        "per-sample DataLoader + eager fp32 (baseline)": {"seconds": base_s},
        "patchvae.training (train loop)": {"seconds": best["ours"]["seconds"]},
        "patchvae.training (incl. start-up, eval, checkpoint)": {"seconds": best["ours"]["wall"]},
    }
    print(f"\nFashion-MNIST epoch, {args.images} images, batch {args.batch}, {steps} steps, {os.cpu_count()} CPU threads, "
          f"best of {args.rounds} interleaved rounds")
    print(f"{'configuration':<54} {'seconds':>8} {'img/s':>8} {'x base':>7}")
    for name, r in rows.items():
        r["images_per_s"] = steps * args.batch / r["seconds"]
        r["speedup"] = base_s / r["seconds"]
        print(f"{name:<54} {r['seconds']:>8.1f} {r['images_per_s']:>8.0f} {r['speedup']:>7.2f}")
    out = ROOT / "benchmarks" / "results" / "epoch_time.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"images": args.images, "batch": args.batch, "rounds": args.rounds, "torch": torch.__version__,
                               "cpu_count": os.cpu_count(), "results": rows}, indent=2))
    print(f"\nwritten {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
