"""`patchvae` sub-commands of the model zoo: ``list``, ``extract``, ``publish``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ._common import add_runtime_args

__all__ = ["add_commands"]


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this module's sub-commands."""
    p = subparsers.add_parser(
        "list", help="list the models and their pretrained weights",
        description="List the architectures of the zoo (patchvae.models.list_models) and their weights (ARCH.TAG).",
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'patchvae_*' (default: all)")
    p.add_argument("--pretrained", action="store_true", help="list only weights (ARCH.TAG), with their data and metrics")
    p.set_defaults(func=_cmd_list)

    p = subparsers.add_parser(
        "extract", help="extract features of images to a .npy/.safetensors file",
        description=(
            "Stream the features of image files/folders through a zoo model to a file, with the weights' own "
            "preprocessing. Folders are read recursively in sorted path order; the list of files is stored in the "
            "output (.safetensors metadata 'files', or OUT_STEM.files.txt next to a .npy)."
        ),
    )
    p.add_argument("inputs", nargs="+", help="image files and/or folders")
    p.add_argument("--model", required=True, help="registered ARCH[.TAG] with weights, or a weights folder")
    p.add_argument("--checkpoint", help="weights to load into --model ARCH instead (safetensors, folder, legacy/authors' .pt)")
    p.add_argument("--out", required=True, type=Path, help="output file: .npy (one layer) or .safetensors (any layers)")
    p.add_argument("--layer", nargs="+", default=["pooled"], help="layer name(s) (default: pooled; see patchvae.features)")
    p.add_argument("--mode", choices=("mean", "sample", "embedding"), default="mean",
                   help="posterior means, samples, or the [mean, std] embedding of Gaussian latents (default: mean)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seed of --mode sample")
    # amp default auto: extraction is inference only (~3x faster on bf16 CPUs); the output records the precision used
    add_runtime_args(p, amp=True, amp_default="auto", workers=False)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--skip-bad-files", action="store_true",
                   help="skip image files that cannot be read (e.g. truncated JPEGs) instead of stopping; they are "
                        "logged and listed in the output (.safetensors metadata 'skipped', or OUT_STEM.skipped.txt)")
    p.set_defaults(func=_cmd_extract)

    p = subparsers.add_parser(
        "publish", help="build a weights folder with its model card and upload it to the Hugging Face Hub",
        description=(
            "Build model.safetensors + config.json + README.md (model card) for NAME and upload the folder with "
            "huggingface_hub (create_repo + upload_folder). NAME is a registered ARCH.TAG with weights, or a local "
            "weights folder or checkpoint together with --name ARCH.TAG. Provenance flags override the registry / "
            "config.json; dataset, recipe, command, epochs, metrics and protocol are required."
        ),
    )
    p.add_argument("source", metavar="NAME", help="ARCH.TAG, or a local weights folder / checkpoint file")
    p.add_argument("--repo-id", required=True, help="ORG/REPO on the Hugging Face Hub")
    p.add_argument("--name", help="ARCH.TAG of local weights")
    p.add_argument("--dry-run", metavar="DIR", type=Path, help="write the folder to DIR and upload nothing")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--commit-message", help="commit message of the upload")
    p.add_argument("--dataset", help="training data, e.g. cifar100")
    p.add_argument("--recipe", help="training recipe name")
    p.add_argument("--command", dest="train_command", help="the exact training command")
    p.add_argument("--epochs", type=int, help="training epochs")
    p.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE", help="an evaluation result (repeatable)")
    p.add_argument("--protocol", help="how the metrics were measured")
    p.add_argument("--eval-command", help="the command(s) that reproduce the metrics (shown in the model card)")
    p.add_argument("--license", help="license of the weights (default: mit)")
    p.add_argument("--description", help="one-line description for the model card")
    p.add_argument("--storage-dtype", choices=("float32", "float16", "bfloat16"),
                   help="store the weights in this dtype (default: as they are); float16 halves the file, and is refused "
                        "if it moves any representation layer by more than 1%% (relative) on a seeded input batch")
    p.set_defaults(func=_cmd_publish)

    p = subparsers.add_parser(
        "figures", help="draw a model's figures (reconstructions, part visibility, part crops, L_w masks) as PNGs",
        description=(
            "Draw the figures of patchvae.visualize.save_figures for a model on the test split of a dataset: "
            "reconstructions of the first images, and for part models their visibility maps, the paper's Figure 3 "
            "analogue (for each active part, the 16 test crops where it is most visible) and L_w masks."
        ),
    )
    p.add_argument("model", metavar="NAME", help="registered ARCH[.TAG] with weights, or a weights folder")
    p.add_argument("--dataset", default=None, help="dataset name (default: the weights' own, e.g. cifar10)")
    p.add_argument("--data-dir", help="dataset root (folder or zip; default: the dataset's standard locations)")
    p.add_argument("--images", type=int, default=2000, help="test images searched for part crops (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random image subset")
    p.add_argument("--all-parts", action="store_true", help="crops for every part, not only the active ones")
    p.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default: figures/)")
    p.add_argument("--prefix", default="", help="file name prefix (default: the model name)")
    p.set_defaults(func=_cmd_figures)

    p = subparsers.add_parser(
        "similarity", help="patch-code similarity maps of a dense patch model (Sixt 2018 §7.2) as a PNG",
        description=(
            "Encode the query patch (centred at --position of the query image) and every patch of the other images "
            "with a model's dense map of patch codes (sixt2018_patch_*), and draw the L2-distance maps "
            "(patchvae.visualize.similarity_grid; bright = similar). Images: FILES (the first is the query), or a "
            "seeded random sample of a dataset's test split with the query at --query."
        ),
    )
    p.add_argument("model", metavar="NAME", help="registered ARCH[.TAG] with weights, or a weights folder")
    p.add_argument("files", nargs="*", type=Path, help="image files of the model's input size (the first is the query)")
    p.add_argument("--dataset", default=None, help="dataset name when no FILES are given (default: the weights' own)")
    p.add_argument("--data-dir", help="dataset root (folder or zip)")
    p.add_argument("--images", type=int, default=8, help="test images to compare when no FILES are given (default 8)")
    p.add_argument("--query", type=int, default=0, help="which of those images holds the query patch (default 0)")
    p.add_argument("--position", type=int, nargs=2, metavar=("ROW", "COL"), help="the query patch centre (default: the image centre)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random image sample")
    p.add_argument("--layer", default="dense", help="the dense map layer (default: dense)")
    p.add_argument("--out", type=Path, default=Path("similarity.png"), help="output PNG (default: similarity.png)")
    p.set_defaults(func=_cmd_similarity)


# --------------------------------------------------------------------------- list
def _cmd_list(args: argparse.Namespace) -> int:
    from ..models import get_pretrained_cfg, list_models, list_pretrained
    from ..models._registry import get_architecture_cfg

    if args.pretrained:
        names = list_pretrained(args.pattern)
        for name in names:
            cfg = get_pretrained_cfg(name)
            metrics = ", ".join(f"{k}={v:g}" for k, v in cfg.metrics.items())
            print(f"{name:40s} {cfg.dataset or '-':16s} {metrics}")
        if not names:
            print(f"no pretrained weights match {args.pattern!r} yet (architectures: patchvae list)")
        return 0
    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}; patchvae list shows every architecture")
        return 1
    for name in names:
        tags = list_pretrained(f"{name}.*")
        default = get_pretrained_cfg(name).name if tags else None
        weights = ", ".join(t + (" (default)" if t == default else "") for t in tags) or "no pretrained weights yet"
        print(f"{name:24s} {get_architecture_cfg(name).description or '':60s} {weights}")
    return 0


# --------------------------------------------------------------------------- extract
def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    if path.suffix == ".npy":
        import numpy as np

        return {"array": tuple(np.load(path, mmap_mode="r").shape)}
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        order = json.loads((f.metadata() or {}).get("layers", "[]")) or list(f.keys())
        return {k: tuple(f.get_slice(k).get_shape()) for k in order}


def _skipped(path: Path) -> list[tuple[str, str]]:
    """The files ``save_features`` skipped, as recorded next to / inside ``path``."""
    if path.suffix == ".npy":
        listing = path.with_name(path.stem + ".skipped.txt")
        if not listing.is_file():
            return []
        return [tuple(line.split("\t", 1)) for line in listing.read_text(encoding="utf-8").splitlines() if line]  # type: ignore[misc]
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        return [tuple(pair) for pair in json.loads((f.metadata() or {}).get("skipped", "[]"))]


def _cmd_extract(args: argparse.Namespace) -> int:
    from .._runtime import resolve_device
    from ..features import save_features
    from ._common import amp_arg, apply_threads

    apply_threads(args.threads)
    model: Any = args.model
    if args.checkpoint is not None:
        from ..models import create

        model = create(args.model, checkpoint_path=args.checkpoint)
    out = save_features(
        model,
        list(args.inputs),
        args.out,
        layer=args.layer,
        mode=args.mode,
        batch_size=args.batch_size,
        device=resolve_device(args.device),
        progress=not args.no_progress,
        seed=args.seed,
        amp=amp_arg(args.amp),
        overwrite=args.overwrite,
        on_error="skip" if args.skip_bad_files else "raise",
    )
    shapes = ", ".join(f"{k} {tuple(v)}" for k, v in _shapes(out).items())
    print(f"wrote {out}: {shapes}")
    skipped = _skipped(out)
    if skipped:
        print(f"skipped {len(skipped)} unreadable file(s): " + "; ".join(f"{name} ({reason})" for name, reason in skipped))
    return 0


# --------------------------------------------------------------------------- publish
def _metrics(items: list[str]) -> dict[str, float] | None:
    if not items:
        return None
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise ValueError(f"--metric takes NAME=VALUE with a number, got {item!r}")
    return out


def _cmd_publish(args: argparse.Namespace) -> int:
    from ..models._publish import publish, registry_snippet

    result = publish(
        args.source,
        args.repo_id,
        name=args.name,
        dry_run=args.dry_run,
        private=True if args.private else None,
        commit_message=args.commit_message,
        dataset=args.dataset,
        recipe=args.recipe,
        command=args.train_command,
        epochs=args.epochs,
        metrics=_metrics(args.metric),
        protocol=args.protocol,
        eval_command=args.eval_command,
        license=args.license,
        description=args.description,
        storage_dtype=args.storage_dtype,
    )
    if args.dry_run is not None:
        files = sorted(p.name for p in result.folder.iterdir())
        print(f"dry run: wrote {result.name} to {result.folder} ({', '.join(files)}); nothing uploaded")
    else:
        print(f"uploaded {result.name} to {result.url} (revision {result.commit})")
    print(f"sha256 {result.sha256}")
    print("registry entry:\n" + registry_snippet(result))
    print(json.dumps({"name": result.name, "repo_id": result.repo_id, "revision": result.commit, "sha256": result.sha256}))
    return 0


# --------------------------------------------------------------------------- figures
def _cmd_figures(args: argparse.Namespace) -> int:
    from ..data import get_dataset
    from ..data.subsets import random_subset
    from ..features import _resolve_model
    from ..visualize import save_figures

    if args.images < 1:
        raise ValueError(f"--images must be >= 1, got {args.images}")
    model, _ = _resolve_model(args.model)
    dataset = args.dataset or getattr(getattr(model, "pretrained_cfg", None), "dataset", None)
    if not dataset:
        raise ValueError(f"{args.model} does not say which data it was trained on: pass --dataset (e.g. cifar10)")
    from ..data import dataset_spec

    split = dataset_spec(dataset).eval_split
    test = random_subset(get_dataset(dataset, args.data_dir, split, train_transform=False), args.images, args.seed)
    images = getattr(test, "images", None)
    if images is None:
        raise ValueError(f"patchvae figures reads in-memory datasets (fashion_mnist, cifar10, cifar100), not {dataset!r}")
    prefix = args.prefix or str(args.model).replace("/", "_")
    written = save_figures(model, images, args.out, prefix=prefix, parts="all" if args.all_parts else "active")
    for figure, path in written.items():
        print(f"{figure}: {path}")
    return 0


# --------------------------------------------------------------------------- similarity
def _cmd_similarity(args: argparse.Namespace) -> int:
    import torch
    from torchvision.utils import save_image

    from .._extract.inputs import read_image_file
    from ..data import dataset_spec, get_dataset
    from ..data.subsets import random_subset
    from ..features import _resolve_model
    from ..visualize import similarity_grid

    model, _ = _resolve_model(args.model)
    model = model.eval()
    if args.files:
        images = [read_image_file(Path(f)) for f in args.files]
        shapes = {tuple(t.shape) for t in images}
        if len(shapes) > 1:
            raise ValueError(f"the image files have different sizes {sorted(shapes)}: crop or resize them to one size")
        batch, query = torch.stack(images), 0
    else:
        if args.images < 1 or not 0 <= args.query < args.images:
            raise ValueError(f"need --images >= 1 and 0 <= --query < --images, got {args.images} and {args.query}")
        dataset = args.dataset or getattr(getattr(model, "pretrained_cfg", None), "dataset", None)
        if not dataset:
            raise ValueError(f"{args.model} does not say which data it was trained on: pass --dataset or image FILES")
        test = random_subset(get_dataset(dataset, args.data_dir, dataset_spec(dataset).eval_split, train_transform=False),
                             args.images, args.seed, stratify=False)
        batch = getattr(test, "images", None)
        if batch is None:
            raise ValueError(f"patchvae similarity reads in-memory datasets (cifar10, ...), not {dataset!r}; pass image FILES")
        query = args.query
    position = tuple(args.position) if args.position else (batch.shape[-2] // 2, batch.shape[-1] // 2)
    grid = similarity_grid(model, batch[query], position, batch, layer=args.layer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, args.out)
    print(f"similarity: {args.out}")
    return 0
