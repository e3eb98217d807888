"""``patchvae train`` and ``patchvae recipes``."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ._common import add_runtime_args

log = logging.getLogger(__name__)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a recipe (unsupervised pretraining)",
        description="Train a named recipe ('patchvae recipes' lists them). Launch with "
        "'torchrun --nproc_per_node N -m patchvae train ...' for multi-process training.",
    )
    p.add_argument("recipe", help="recipe name, e.g. fmnist_patchvae, or folder_patchvae / folder_beta_vae for your own images")
    p.add_argument("--data-dir", help="dataset root (default: the dataset's standard locations); for the folder_* recipes "
                                      "any class-per-folder or flat folder of images, with or without split sub-folders")
    p.add_argument("--download", action="store_true",
                   help="download the dataset if it is missing (Fashion-MNIST, CIFAR-10 and CIFAR-100 only)")
    p.add_argument("--train-split", metavar="NAME",
                   help="training split: a sub-folder of --data-dir for image folders (default: the recipe's, 'train'; "
                        "an image folder without train/ trains on the folder itself)")
    p.add_argument("--eval-split", metavar="NAME", help="evaluation split (default: the dataset's, 'val' for image folders)")
    p.add_argument("--val-fraction", type=float, metavar="F",
                   help="evaluate on a seeded, class-stratified held-out fraction F of the training split instead of an "
                        "eval split (0: train without evaluation)")
    p.add_argument("--image-size", type=int, metavar="N",
                   help="input side (images are resized and centre-cropped to N×N; default: the recipe's)")
    p.add_argument("--out", help="run directory (default: runs/RECIPE)")
    p.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "none"], help="autocast dtype (default: the recipe's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any recipe field, e.g. --set lr=2e-4 --set objective_args.beta_vis=5")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--train-subset", type=int, metavar="N",
                   help="train on a seeded random class-stratified subset of N images (quick runs)")
    p.add_argument("--eval-subset", type=int, metavar="N", help="evaluate on a seeded random class-stratified subset of N images")
    p.add_argument("--log-every", type=int, default=50, help="steps between log lines (default 50)")
    add_runtime_args(p, amp=False)
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (bitwise-reproducible resume)")
    p.add_argument("--no-images", action="store_true", help="skip the per-epoch PNGs")
    p.set_defaults(func=_train)

    r = subparsers.add_parser("recipes", help="list the training recipes and sweeps")
    r.add_argument("pattern", nargs="?", default="*", help="glob on recipe names (default: all)")
    r.add_argument("--show", metavar="NAME", help="print one recipe as JSON")
    r.set_defaults(func=_recipes)


def _train(args: argparse.Namespace) -> int:
    from ..recipes import get_recipe
    from ..training import train
    from ..training.trainer import command_line
    from ._common import apply_threads, resolve_workers

    recipe = get_recipe(args.recipe)
    changes: dict[str, Any] = {k: v for k, v in {"epochs": args.epochs, "seed": args.seed, "amp": args.amp,
                                                 "split": args.train_split}.items() if v is not None}
    if args.image_size is not None:
        changes["image_size"] = args.image_size
        if "img_size" in recipe.model_args:  # fixed-size models (β-VAE, BiGAN) are built for the input size
            changes["model_args.img_size"] = args.image_size
    overrides = {**changes, **dict(item.partition("=")[::2] for item in args.overrides)}
    recipe = recipe.with_overrides(changes).with_overrides(args.overrides)
    if recipe.dataset == "imagefolder" and args.data_dir is None:
        raise ValueError(f"recipe {recipe.name} trains on an image folder: pass --data-dir DIR")
    apply_threads(args.threads)
    provenance = {"base_recipe": args.recipe, "overrides": overrides} if overrides else {"base_recipe": args.recipe}
    result = train(
        recipe, args.out or f"runs/{recipe.name}", data_dir=args.data_dir, resume=args.resume, device=args.device,
        train_subset=args.train_subset, eval_subset=args.eval_subset, log_every=args.log_every,
        num_workers=resolve_workers(args.workers), deterministic=args.deterministic, save_images=not args.no_images,
        command=command_line(), download=args.download, eval_split=args.eval_split, val_fraction=args.val_fraction,
        provenance=provenance,
    )
    if result.weights_dir is not None:
        last = result.history[-1] if result.history else {}
        print(f"trained {recipe.name}: {result.epochs} epochs, {result.steps} steps; final train loss "
              f"{last.get('train', {}).get('loss', float('nan')):.4g}; weights in {result.weights_dir}")
    return 0


def _recipes(args: argparse.Namespace) -> int:
    from ..recipes import get_recipe, get_sweep, list_recipes, list_sweeps

    if args.show:
        print(json.dumps(get_recipe(args.show).to_dict(), indent=2, ensure_ascii=False))
        return 0
    names = list_recipes(args.pattern)
    width = max((len(n) for n in names), default=10)
    print(f"{'recipe':<{width}}  {'model':<22} {'dataset':<13} {'epochs':>6}  paper")
    for name in names:
        r = get_recipe(name)
        print(f"{name:<{width}}  {r.model:<22} {r.dataset:<13} {r.epochs:>6}  {r.paper_ref}")
    sweeps = list_sweeps(args.pattern) if args.pattern != "*" else list_sweeps()
    if sweeps:
        print("\nsweeps (ablations of paper Tables 3-6, and our follow-ups):")
        for sweep in sweeps:
            print(f"  {sweep}: {', '.join(r.name for r in get_sweep(sweep))}")
    return 0
