"""`patchvae` sub-commands: evaluation (paper §4 fine-tuning protocol and probes).

    patchvae finetune SOURCE --preset conv5 [--dataset fashion_mnist] [--protocol fashion_mnist] [--out r.json]
    patchvae eval SOURCE --probe all [--dataset fashion_mnist] [--out r.json]

SOURCE is a zoo model name, a weights folder, or a baseline: ``random`` (random φ of ``--arch``,
same freeze preset) or ``supervised`` (random φ, nothing frozen; fine-tuning only).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

_FREEZE_CHOICES = ("none", "conv1", "conv3", "conv5", "all")


def _add_source_and_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="CHECKPOINT_OR_NAME",
                        help="zoo model name, weights folder (model.safetensors + config.json), 'random' or 'supervised'")
    parser.add_argument("--arch", default="patchvae_resnet9",
                        help="architecture whose φ the random/supervised baselines use (default: %(default)s)")
    parser.add_argument("--dataset", default="fashion_mnist",
                        help="fashion_mnist, cifar100, indoor67, places205, imagenet or imagefolder (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="where the dataset lives (default: the loader's search path)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input size for --dataset imagefolder (the paper datasets have fixed sizes)")
    parser.add_argument("--limit-train", type=int, default=None, metavar="N",
                        help="random subset of N training images (quick runs)")
    parser.add_argument("--limit-test", type=int, default=None, metavar="N", help="random subset of N test images (quick runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the head, baselines, data order and subsets (default: 0)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    parser.add_argument("--amp", choices=("bf16", "fp16"), default=None, help="mixed precision autocast")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (torch.set_num_threads); 1 is fastest on a machine shared with other jobs")
    parser.add_argument("--out", default=None, metavar="FILE.json", help="write the results as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``finetune`` and ``eval``."""
    ft = subparsers.add_parser(
        "finetune", help="fine-tune the Table 5 classifier on φ (paper §4 protocol)",
        description="Fine-tune φ + FC 512 + FC classes with a freeze preset (paper Table 1 columns) "
                    "and report test top-1/top-5.",
    )
    _add_source_and_data(ft)
    ft.add_argument("--preset", nargs="+", default=["conv5"], choices=_FREEZE_CHOICES,
                    help="freeze preset(s): conv1 / conv3 / conv5 = paper Table 1 columns, "
                         "none = nothing frozen (default: conv5)")
    ft.add_argument("--protocol", default=None,
                    help="training protocol: fashion_mnist, paper_cifar100, paper_indoor67, paper_places205, "
                         "paper_imagenet (default: the dataset's)")
    ft.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    ft.add_argument("--lr-step", type=int, default=None, help="override the protocol's lr step (epochs)")
    ft.add_argument("--lr", type=float, default=None, help="override the initial learning rate")
    ft.add_argument("--batch-size", type=int, default=None, help="override the batch size")
    ft.add_argument("--eval-every", type=int, default=None, help="also report test accuracy every N epochs")
    ft.set_defaults(func=_finetune_command)

    ev = subparsers.add_parser(
        "eval", help="linear / kNN probes on frozen, pooled φ features",
        description="Probe frozen φ: multinomial logistic regression and/or cosine kNN on globally average-pooled features.",
    )
    _add_source_and_data(ev)
    ev.add_argument("--probe", choices=("linear", "knn", "all"), default="all", help="which probe (default: all)")
    ev.add_argument("--knn-k", type=int, default=20, help="neighbours of the kNN probe (default: 20)")
    ev.add_argument("--batch-size", type=int, default=256, help="feature extraction batch size (default: 256)")
    ev.set_defaults(func=_eval_command)


def _load_data(args: argparse.Namespace) -> Any:
    import torch

    from patchvae.evaluation import classification_splits, limit_dataset

    if args.threads:
        torch.set_num_threads(args.threads)

    splits = classification_splits(args.dataset, args.data_dir, image_size=args.image_size)
    train = limit_dataset(splits.train, args.limit_train, seed=args.seed)
    test = limit_dataset(splits.test, args.limit_test, seed=args.seed + 1)
    return splits._replace(train=train, test=test)


def _resolve(args: argparse.Namespace, splits: Any) -> Any:
    from patchvae.evaluation import resolve_backbone

    cfg = splits.data_config
    return resolve_backbone(args.source, arch=args.arch, in_chans=cfg.channels, img_size=cfg.input_size[1], seed=args.seed)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Plain-text table of ``rows`` (dicts) restricted to ``columns``; floats with 2 decimals."""

    def cell(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    cells = [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _write(args: argparse.Namespace, command: str, results: list[Any], source: Any) -> None:
    if not args.out:
        return
    from patchvae.evaluation import save_results

    path = save_results(
        args.out, results, command=command, argv=sys.argv[1:], source=args.source, backbone=source.name,
        dataset=args.dataset, limit_train=args.limit_train, limit_test=args.limit_test,
    )
    log.info("wrote %s", path)


def _finetune_command(args: argparse.Namespace) -> int:
    from patchvae.evaluation import default_protocol, finetune, get_protocol

    if args.source == "supervised" and args.preset != ["none"]:
        log.info("supervised baseline: every layer trains; running it once with preset 'none'")
        args.preset = ["none"]
    splits = _load_data(args)
    protocol = args.protocol or default_protocol(args.dataset)
    config = get_protocol(
        protocol, epochs=args.epochs, lr_step=args.lr_step, lr=args.lr, batch_size=args.batch_size,
        seed=args.seed, device=args.device, amp=args.amp, eval_every=args.eval_every,
    )
    source = _resolve(args, splits)
    results = []
    for preset in dict.fromkeys(args.preset):  # unique, in order
        results.append(finetune(
            source, splits.train, splits.test, num_classes=splits.num_classes, freeze=preset, config=config,
            data_config=splits.data_config, protocol=protocol, progress=not args.no_progress,
        ))
    rows = [
        {"source": source.name, "dataset": args.dataset, "protocol": r.protocol, "freeze": r.freeze,
         "epochs": r.config["epochs"], "top-1": r.top1, "top-5": r.top5, "seconds": round(r.elapsed_seconds)}
        for r in results
    ]
    print(format_table(rows, ["source", "dataset", "protocol", "freeze", "epochs", "top-1", "top-5", "seconds"]))
    _write(args, "finetune", results, source)
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    from patchvae.evaluation import PROBES, run_probes

    if args.source == "supervised":
        raise ValueError("'supervised' is a fine-tuning baseline (patchvae finetune supervised); probe 'random' instead")
    splits = _load_data(args)
    source = _resolve(args, splits)
    probes = PROBES if args.probe == "all" else (args.probe,)
    results = run_probes(
        source, splits.train, splits.test, probes=probes, num_classes=splits.num_classes,
        data_config=splits.data_config, seed=args.seed, batch_size=args.batch_size, device=args.device,
        amp=args.amp, knn_kwargs={"k": args.knn_k}, progress=not args.no_progress,
    )
    rows = [
        {"source": source.name, "dataset": args.dataset, "probe": r.probe, "top-1": r.top1, "top-5": r.top5,
         "seconds": round(r.elapsed_seconds + r.params.get("feature_seconds", 0.0))}
        for r in results
    ]
    print(format_table(rows, ["source", "dataset", "probe", "top-1", "top-5", "seconds"]))
    _write(args, "eval", results, source)
    return 0
