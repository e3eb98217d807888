"""``patchvae train`` and ``patchvae recipes``."""

from __future__ import annotations

import argparse
import json


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a recipe (unsupervised pretraining)",
        description="Train a named recipe ('patchvae recipes' lists them). Launch with "
        "'torchrun --nproc_per_node N -m patchvae train ...' for multi-process training.",
    )
    p.add_argument("recipe", help="recipe name, e.g. fmnist_patchvae")
    p.add_argument("--data-dir", help="dataset root (default: the dataset's standard locations)")
    p.add_argument("--download", action="store_true",
                   help="download the dataset if it is missing (Fashion-MNIST and CIFAR-100 only)")
    p.add_argument("--out", help="run directory (default: runs/RECIPE)")
    p.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "none"], help="autocast dtype (default: the recipe's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any recipe field, e.g. --set lr=2e-4 --set objective_args.beta_vis=5")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--train-subset", type=int, help="train on the first N images only (quick runs)")
    p.add_argument("--eval-subset", type=int, help="evaluate on the first N test images only")
    p.add_argument("--log-every", type=int, default=50, help="steps between log lines (default 50)")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers for on-disk datasets")
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

    recipe = get_recipe(args.recipe)
    changes = {k: v for k, v in {"epochs": args.epochs, "seed": args.seed, "amp": args.amp}.items() if v is not None}
    recipe = recipe.with_overrides(changes).with_overrides(args.overrides)
    result = train(
        recipe, args.out or f"runs/{recipe.name}", data_dir=args.data_dir, resume=args.resume, device=args.device,
        train_subset=args.train_subset, eval_subset=args.eval_subset, log_every=args.log_every,
        num_workers=args.workers, deterministic=args.deterministic, save_images=not args.no_images,
        command=command_line(), download=args.download,
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
        print("\nsweeps (ablations of paper Tables 3-6):")
        for sweep in sweeps:
            print(f"  {sweep}: {', '.join(r.name for r in get_sweep(sweep))}")
    return 0
