"""Sixt 2018 Tables 2-4 (b) analogue on CIFAR-10 (JPEG copy): M, cross entropy, linear classification, BN-layer probes.

    python docs/reproduce/sixt2018_tables.py --data-dir ../shared/data/cifar10-jpeg.zip --runs /work/runs \\
        --out docs/results/sixt2018_cifar10.json

Models: the weights folders ``<runs>/sx_<p{p}_i{i} | vae_{d}d | betavae_{d}d>/model`` (made by
``patchvae train sixt2018_cifar10_<...>``), or ``--packaged`` for the shipped ``sixt2018_*.cifar10`` weights.
Protocol (the thesis's, scaled down and stated):

* Tables 2-3: :func:`patchvae.evaluation.patch_metrics` over ``--patches`` seeded random test patches.
* Table 4: μ of each model's representation (the patch VAEs' dense stride-1 map, valid borders; the
  global VAEs' latent) for a seeded class-stratified subset of ``--train`` training images and the whole
  test split, as float16 feature stores; :func:`patchvae.evaluation.sgd_linear_probe` (plain SGD lr 0.01,
  batch 100, early stopping on 5,000 held-out training images, at most 100 epochs) on each, on PIXEL,
  and on ALL (every patch map + every global latent, concatenated). CHANCE = the majority class.
* Fig. 12: the same probe on every BN layer (and the latent) of VAE_256d.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import time
from pathlib import Path

import torch

import patchvae.models as zoo
from patchvae.data import load_cifar10
from patchvae.data.subsets import random_subset
from patchvae.evaluation import FeatureStore, chance_accuracy, patch_metrics, sgd_linear_probe

PATCH = ["p3_i1", "p9_i1", "p9_i3", "p15_i1", "p15_i3", "p15_i5"]
GLOBAL = ["vae_32d", "vae_256d", "vae_4096d", "betavae_32d"]


def _label(run: str) -> str:
    if run.startswith("p"):
        p, i = run[1:].split("_i")
        return f"{p}|{i}"
    kind, dim = run.split("_")
    return ("VAE_" if kind == "vae" else "β-VAE_") + dim


def _model(args: argparse.Namespace, run: str) -> torch.nn.Module | None:
    arch = f"sixt2018_patch_{run}" if run.startswith("p") else f"sixt2018_vae_{run.split('_')[1]}"
    if args.packaged:
        tag = "cifar10" if not run.startswith("betavae") else "cifar10_beta250"
        name = f"{arch}.{tag}"
        return zoo.create(name, pretrained=True).eval() if name in zoo.list_pretrained() else None
    folder = Path(args.runs) / f"sx_{run}" / "model"
    return zoo.create(arch, checkpoint_path=folder).eval() if folder.is_dir() else None


def _preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) -> v/127.5 - 1, exactly the models' ToTensor + Normalize(0.5, 0.5)."""
    return (images.float().div(255.0) - 0.5) / 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--packaged", action="store_true", help="evaluate the shipped sixt2018_*.cifar10 weights")
    ap.add_argument("--out", default="docs/results/sixt2018_cifar10.json")
    ap.add_argument("--features", default="/tmp/sixt2018_features", help="folder for the float16 feature stores")
    ap.add_argument("--train", type=int, default=15000, help="training images for the probes (5,000 of them held out)")
    ap.add_argument("--patches", type=int, default=50000, help="test patches for Tables 2-3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-probes", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    train_ds = random_subset(load_cifar10(args.data_dir, train=True), args.train, args.seed)
    test_ds = load_cifar10(args.data_dir, train=False)
    train_x, test_x = _preprocess(train_ds.images), _preprocess(test_ds.images)
    train_y, test_y = train_ds.labels, test_ds.labels
    feats = Path(args.features)
    feats.mkdir(parents=True, exist_ok=True)
    results: dict = {"protocol": {"train_images": len(train_ds), "val_images": 5000, "test_images": len(test_ds),
                                  "test_patches": args.patches, "seed": args.seed, "data": str(args.data_dir)},
                     "table2_3": {}, "table4": {}, "fig12": {}, "timings_s": {}}
    stores: dict[str, tuple[FeatureStore, FeatureStore]] = {}
    for run in PATCH + GLOBAL:
        model = _model(args, run)
        if model is None:
            logging.warning("no weights for %s: skipped", run)
            continue
        label = _label(run)
        t0 = time.perf_counter()
        if run.startswith("p"):
            m = patch_metrics(model, test_x, num_patches=args.patches, seed=args.seed, preprocessed=True)
            results["table2_3"][label] = m.to_dict()
            logging.info("%s: %s", label, m.summary())
        else:
            from patchvae.evaluation import rate

            r = rate(model, test_x, preprocessed=True)
            results["table2_3"][label] = {**r.to_dict(), "rate_bits_per_4096": r.bits / 4096}
            logging.info("%s: %s", label, r.summary())
        results["timings_s"][f"{label} metrics"] = time.perf_counter() - t0
        if args.skip_probes:
            continue
        layer = "dense" if run.startswith("p") else "latent"
        t0 = time.perf_counter()
        stores[label] = (FeatureStore.write(model, train_x, feats / f"{run}_train.npy", layer=layer, preprocessed=True),
                         FeatureStore.write(model, test_x, feats / f"{run}_test.npy", layer=layer, preprocessed=True))
        results["timings_s"][f"{label} features"] = time.perf_counter() - t0
        if run == "vae_256d":  # Fig. 12: every BN layer of the global VAE
            for bn in ["bn1", "bn2", "bn3", "bn4", "fc", "latent"]:
                tr = FeatureStore.write(model, train_x, feats / f"{run}_{bn}_train.npy", layer=bn, preprocessed=True)
                te = FeatureStore.write(model, test_x, feats / f"{run}_{bn}_test.npy", layer=bn, preprocessed=True)
                res = sgd_linear_probe([tr], train_y, [te], test_y, seed=args.seed)
                results["fig12"][bn] = res.to_dict()
                logging.info("VAE_256d %s: %.2f %%", bn, res.top1)
    if not args.skip_probes:
        px_tr, px_te = train_x.flatten(1), test_x.flatten(1)
        for label, (tr, te) in [("PIXEL", (px_tr, px_te)), *stores.items()]:
            t0 = time.perf_counter()
            res = sgd_linear_probe([tr], train_y, [te], test_y, seed=args.seed)
            results["table4"][label] = res.to_dict()
            results["timings_s"][f"{label} probe"] = time.perf_counter() - t0
            logging.info("%s: %.2f %% (%d features)", label, res.top1, res.params["feature_dim"])
        for name, keys in [("ALL (patch maps)", [k for k in stores if "|" in k]), ("ALL", list(stores))]:
            if not keys:
                continue
            t0 = time.perf_counter()
            res = sgd_linear_probe([stores[k][0] for k in keys], train_y, [stores[k][1] for k in keys], test_y, seed=args.seed)
            results["table4"][name] = {**res.to_dict(), "members": keys}
            results["timings_s"][f"{name} probe"] = time.perf_counter() - t0
            logging.info("%s: %.2f %% (%d features)", name, res.top1, res.params["feature_dim"])
        results["table4"]["CHANCE"] = {"top1": chance_accuracy(train_y, test_y)}
    results["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    results["feature_store_gb"] = sum(f.stat().st_size for f in feats.glob("*.npy")) / 2**30
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    logging.info("wrote %s (peak RSS %.2f GB)", out, results["peak_rss_gb"])
    if not args.packaged:
        shutil.rmtree(feats, ignore_errors=True)


if __name__ == "__main__":
    main()
