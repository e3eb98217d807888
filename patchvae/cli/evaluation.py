"""`patchvae` sub-commands: evaluation (paper §4 fine-tuning protocol and probes).

    patchvae finetune SOURCE --preset conv5 [--dataset fashion_mnist] [--protocol fashion_mnist] [--out r.json]
    patchvae eval SOURCE --probe all [--dataset fashion_mnist] [--out r.json]
    patchvae eval SOURCE --probe parts   # part health: active parts, P(visible), usage entropy
    patchvae eval SOURCE --probe bpd rate intrinsic_dim nonlinear --representation mean sample --seeds 3

SOURCE is a zoo model name, a weights folder, or a baseline: ``random`` (random φ of ``--arch``,
same freeze preset) or ``supervised`` (random φ, nothing frozen; fine-tuning only).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ._common import add_runtime_args, amp_arg, apply_threads

log = logging.getLogger(__name__)

_FREEZE_CHOICES = ("none", "conv1", "conv3", "conv5", "all")
#: patchvae.evaluation.REPRESENTATION_METRICS (kept here so that `patchvae --help` imports no torch)
_METRIC_PROBES = ("bpd", "rate", "conditional_entropy", "intrinsic_dim", "linear_svm", "linear_svm_fast", "logreg",
                  "nonlinear")


def _add_source_and_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="CHECKPOINT_OR_NAME",
                        help="zoo model name, weights folder (model.safetensors + config.json), 'random' or 'supervised'")
    parser.add_argument("--arch", default="patchvae_resnet9",
                        help="architecture whose φ the random/supervised baselines use (default: %(default)s)")
    parser.add_argument("--dataset", default=None,
                        help="fashion_mnist, cifar10, cifar100, indoor67, places205, imagenet or imagefolder (default: the "
                             "dataset the weights were trained on, else fashion_mnist)")
    parser.add_argument("--data-dir", default=None, help="where the dataset lives (default: the loader's search path)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input size for --dataset imagefolder with --preprocessing dataset (the paper datasets "
                             "have fixed sizes; default with weights: the weights' input size)")
    parser.add_argument("--train-split", default=None,
                        help="split to train the classifier/probe on (default: the dataset's; imagefolder: train)")
    parser.add_argument("--eval-split", default=None,
                        help="split to test on (default: the dataset's; imagefolder: val, or any sub-folder)")
    parser.add_argument("--preprocessing", choices=("weights", "dataset"), default="weights",
                        help="weights: the images are preprocessed as the weights were trained (model.data_config: "
                             "size, resize/crop, normalisation); dataset: the dataset's own preprocessing (baselines "
                             "always use the dataset's) (default: weights)")
    parser.add_argument("--limit-train", type=int, default=None, metavar="N",
                        help="random subset of N training images (quick runs)")
    parser.add_argument("--labels-per-class", type=int, default=None, metavar="N",
                        help="train the probe/classifier on N labelled images per class only: the class-balanced subset "
                             "a semi-supervised run (objective m2) with the same --seed labels (low-label protocol)")
    parser.add_argument("--limit-test", type=int, default=None, metavar="N", help="random subset of N test images (quick runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the head, baselines, data order and subsets (default: 0)")
    add_runtime_args(parser, amp=True, amp_default="none", workers=False)
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
    ft.add_argument("--head-init", choices=("authors", "pytorch"), default=None,
                    help="head init: authors = N(0, 0.01^2) weights, zero biases; pytorch = nn.Linear's default "
                         "(default: the protocol's: authors for the paper protocols, pytorch for fashion_mnist)")
    ft.add_argument("--bn-mode", choices=("authors", "ours"), default=None,
                    help="φ's BatchNorm: authors = no BN scale/shift trains, every BN layer in train mode; ours = "
                         "frozen units' BN in eval mode, trainable units' BN trained (default: the protocol's: "
                         "authors for the paper protocols, ours for fashion_mnist)")
    ft.set_defaults(func=_finetune_command)

    ev = subparsers.add_parser(
        "eval", help="probes on frozen φ, part health and the representation metrics (BPD, rate, ID, SVM/MLP probes)",
        description="Probe frozen φ: multinomial logistic regression and/or cosine kNN on globally average-pooled features; "
                    "part health; the representation metrics of patchvae.evaluation (test BPD, rate, conditional entropy, "
                    "intrinsic dimension, linear-SVM / logistic / nonlinear probes on a layer of the whole model).",
    )
    _add_source_and_data(ev)
    ev.add_argument("--probe", nargs="+", choices=("linear", "knn", "parts", *_METRIC_PROBES, "all"), default=["all"],
                    help="which probes: linear, knn (on pooled φ), parts (part health on the test split: active parts, "
                         "P(visible), usage entropy; models with parts only); the representation metrics (Zhang et al. "
                         "2022; patchvae.evaluation): bpd (test bits/dim, -ELBO; likelihood models), rate (E_x KL(q(z|x) "
                         "|| p(z)), nats and bits; VAEs), conditional_entropy, intrinsic_dim (PCA spectrum), linear_svm "
                         "(faithful SVC, linear kernel), linear_svm_fast (LinearSVC), logreg (torch), nonlinear (MLP-200) "
                         "on --layer/--representation; or all (what the model supports; the others skipped with a "
                         "note) (default: all)")
    ev.add_argument("--active-threshold", type=float, default=None, metavar="STD",
                    help="--probe parts: a part is active when the std of its P(visible) over test images x "
                         "locations exceeds this (default: 0.02)")
    ev.add_argument("--layer", default=None,
                    help="representation metrics: the layer (default: the model's latent, e.g. 'latent', PatchVAE's "
                         "'appearance')")
    ev.add_argument("--representation", nargs="+", choices=("mean", "sample", "embedding"), default=["mean"],
                    help="representation types for the linear_svm/logreg/nonlinear probes: mean (MAP mu), sample, "
                         "embedding ([mu, sigma]) (default: mean)")
    ev.add_argument("--seeds", type=int, default=1,
                    help="representation metrics: seeds --seed ... --seed+N-1 (bpd, probes); mean ± std (default: 1)")
    ev.add_argument("--test-samples", type=int, default=1, metavar="K",
                    help="--representation sample: posterior samples per test image, probabilities averaged "
                         "(nonlinear probe) (default: 1)")
    ev.add_argument("--id-threshold", type=float, default=1e-3,
                    help="intrinsic_dim: explained-variance ratio above which a component counts (default: 1e-3)")
    ev.add_argument("--iwae-k", type=int, default=None, metavar="K", help="bpd: also the IWAE-K bound")
    ev.add_argument("--probe-epochs", type=int, default=None,
                    help="nonlinear probe epochs (default: 100, the paper's)")
    ev.add_argument("--knn-k", type=int, default=20, help="neighbours of the kNN probe (default: 20)")
    ev.add_argument("--batch-size", type=int, default=256, help="feature extraction batch size (default: 256)")
    ev.set_defaults(func=_eval_command)


def _amp(args: argparse.Namespace) -> str | None:
    """``--amp`` for the evaluation functions: None (float32), "bf16" or "fp16" ("auto" resolved on --device)."""
    amp = amp_arg(args.amp)
    if amp == "auto":
        import torch

        from patchvae._runtime import resolve_amp, resolve_device

        dtype = resolve_amp("auto", resolve_device(args.device))
        amp = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype)  # type: ignore[arg-type]
    return amp


def _load_data(args: argparse.Namespace) -> Any:
    from patchvae.evaluation import classification_splits, limit_dataset

    apply_threads(args.threads)
    if args.dataset is None:
        args.dataset = _weights_dataset(args.source) or "fashion_mnist"
        log.info("dataset: %s (pass --dataset to choose another)", args.dataset)
    if args.dataset == "imagefolder" and args.data_dir is None:
        raise ValueError("--dataset imagefolder needs --data-dir DIR (a folder with class-per-folder splits: train/ and "
                         "val/, or others named by --train-split/--eval-split)")
    weights_cfg = _weights_data_config(args.source) if args.preprocessing == "weights" else None
    image_size = args.image_size
    if image_size is None and weights_cfg is not None and args.dataset == "imagefolder":
        image_size = weights_cfg.input_size[1]
    try:
        splits = classification_splits(args.dataset, args.data_dir, image_size=image_size,
                                       train_split=args.train_split, eval_split=args.eval_split)
    except FileNotFoundError as err:
        if args.dataset != "imagefolder":
            raise
        raise FileNotFoundError(f"{err} Name the folder's splits with --train-split and --eval-split.") from err
    if weights_cfg is not None:
        splits = _with_preprocessing(args, splits, weights_cfg)
    elif args.preprocessing == "weights" and args.source not in ("random", "supervised"):
        log.info("the preprocessing of %s is unknown: using the dataset's", args.source)
    train = limit_dataset(splits.train, args.limit_train, seed=args.seed)
    if getattr(args, "labels_per_class", None) is not None:
        train = _labelled_subset(args, train)
    test = limit_dataset(splits.test, args.limit_test, seed=args.seed + 1)
    return splits._replace(train=train, test=test)


def _labelled_subset(args: argparse.Namespace, train: Any) -> Any:
    """The --labels-per-class subset of the training split (the one ``objective="m2"`` runs label, same seed)."""
    from patchvae.data.subsets import balanced_label_indices, dataset_labels, take

    if args.limit_train is not None:
        raise ValueError("pass either --labels-per-class or --limit-train, not both")
    labels = dataset_labels(train)
    if labels is None:
        raise ValueError(f"--labels-per-class needs a training split that knows its labels; {type(train).__name__} does not")
    indices = balanced_label_indices(labels, args.labels_per_class, args.seed)
    log.info("training on %d labelled images (%d per class, seed %d)", len(indices), args.labels_per_class, args.seed)
    return take(train, indices)


def _weights_data_config(source: str) -> Any:
    """The preprocessing the weights of ``source`` were trained with (``model.data_config``), or None
    (baselines, or weights that carry none)."""
    import json
    from pathlib import Path

    from patchvae.data import DataConfig
    from patchvae.models import get_pretrained_cfg, is_model

    if source in ("random", "supervised"):
        return None
    folder = Path(source).expanduser()
    if folder.is_file():
        folder = folder.parent
    if (folder / "config.json").is_file():
        try:
            raw = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("data_config")
            return DataConfig.from_dict(raw) if isinstance(raw, dict) else None
        except (OSError, ValueError, AttributeError, TypeError):
            return None
    if is_model(source):
        return get_pretrained_cfg(source).data_config
    return None


def _with_preprocessing(args: argparse.Namespace, splits: Any, config: Any) -> Any:
    """``splits`` preprocessed with ``config`` (the weights'): on-disk datasets are re-read with its transform,
    in-memory ones (preprocessed by batch) only change their config. Channels follow the dataset's images."""
    from patchvae.data import create_transform, dataset_spec, get_dataset

    if config == splits.data_config:
        return splits
    log.info("preprocessing: the weights' (%s, mean %s, std %s); --preprocessing dataset uses the dataset's",
             "x".join(map(str, config.input_size[1:])), config.mean, config.std)
    spec = dataset_spec(args.dataset)
    if spec.in_memory:
        return splits._replace(data_config=config.with_channels(splits.data_config.channels))
    train = get_dataset(args.dataset, args.data_dir, spec.train_split, train_transform=True,
                        transform=create_transform(config, is_training=True))
    test = get_dataset(args.dataset, args.data_dir, spec.eval_split, train_transform=False,
                       transform=create_transform(config, is_training=False))
    return splits._replace(train=train, test=test, data_config=config)


def _weights_dataset(source: str) -> str | None:
    """The dataset a registered name or a weights folder was trained on (None for baselines and unknown sources)."""
    import json
    from pathlib import Path

    from patchvae.data import DATASETS
    from patchvae.models import get_pretrained_cfg, is_model

    dataset = None
    folder = Path(source)
    if (folder / "config.json").is_file():
        try:
            dataset = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("dataset")
        except (OSError, ValueError, AttributeError):
            dataset = None
    elif source not in ("random", "supervised") and is_model(source):
        dataset = get_pretrained_cfg(source).dataset
    return dataset if isinstance(dataset, str) and dataset in DATASETS else None


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


def _write(args: argparse.Namespace, command: str, results: list[Any], source: Any, **extra: Any) -> None:
    if not args.out:
        return
    from patchvae.evaluation import save_results

    path = save_results(
        args.out, results, command=command, argv=sys.argv[1:], source=args.source, backbone=source.name,
        dataset=args.dataset, limit_train=args.limit_train, limit_test=args.limit_test,
        labels_per_class=getattr(args, "labels_per_class", None), **extra,
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
        seed=args.seed, device=args.device, amp=_amp(args), eval_every=args.eval_every,
        head_init=args.head_init, bn_mode=args.bn_mode,
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
    chosen = [args.probe] if isinstance(args.probe, str) else list(args.probe)
    everything = "all" in chosen
    metrics = [m for m in _METRIC_PROBES if everything or m in chosen]
    splits = _load_data(args)
    probes = tuple(p for p in PROBES if everything or p in chosen)
    try:
        source = _resolve(args, splits)
    except (TypeError, ValueError) as err:  # a model without φ: only its representation metrics
        if any(p in chosen for p in PROBES) or not metrics:
            raise
        log.info("%s has no φ: no linear/knn probe (%s)", args.source, err)
        source, probes = argparse.Namespace(name=args.source), ()
    results: list[Any] = []
    if probes:
        results = run_probes(
            source, splits.train, splits.test, probes=probes, num_classes=splits.num_classes,
            data_config=splits.data_config, seed=args.seed, batch_size=args.batch_size, device=args.device,
            amp=_amp(args), knn_kwargs={"k": args.knn_k}, progress=not args.no_progress,
        )
        rows = [
            {"source": source.name, "dataset": args.dataset, "probe": r.probe, "top-1": r.top1, "top-5": r.top5,
             "seconds": round(r.elapsed_seconds + r.params.get("feature_seconds", 0.0))}
            for r in results
        ]
        print(format_table(rows, ["source", "dataset", "probe", "top-1", "top-5", "seconds"]))
    extra = {}
    if everything or "parts" in chosen:
        record = _part_health_probe(args, splits, source, required="parts" in chosen)
        if record is not None:  # its own key: "results" keeps the accuracy records (top1/top5) only
            extra["part_health"] = record
    if metrics:  # their own keys too: "metrics" (records) and "skipped" (what --probe all left out, and why)
        extra.update(_representation_metrics(args, splits, metrics, required=[m for m in metrics if m in chosen]))
    _write(args, "eval", results, source, **extra)
    return 0


def _full_model(source: str) -> Any:
    """The whole model behind an eval SOURCE (φ alone has no parts): None for the random baselines."""
    from pathlib import Path

    from patchvae import models
    from patchvae.evaluation import BASELINES

    if source in BASELINES:
        return None
    path = Path(source).expanduser()
    if path.exists():
        return models.from_pretrained(path.parent if path.is_file() else path)
    return models.create(source, pretrained=True)


def _part_health_probe(args: argparse.Namespace, splits: Any, source: Any, *, required: bool) -> dict[str, Any] | None:
    """`--probe parts`: part health of the model on the test split (its own preprocessing), printed; returns the
    record written under "part_health" in --out. With `--probe all`, models without part visibility are skipped."""
    import time

    import torch

    from patchvae._runtime import resolve_device
    from patchvae.evaluation import DEFAULT_ACTIVE_THRESHOLD, has_part_visibility, part_health

    model = _full_model(args.source)
    if model is None or not has_part_visibility(model):
        if required:
            what = "a random φ" if model is None else f"a {type(model).__name__}"
            raise ValueError(f"--probe parts needs a model with part visibility (e.g. a PatchVAE); {args.source} is {what}")
        log.info("%s has no part visibility: no part-health probe", args.source)
        return None
    first = splits.test[0]
    image = first[0] if isinstance(first, (tuple, list)) else first
    preprocessed = isinstance(image, torch.Tensor) and image.is_floating_point()  # a transformed dataset
    threshold = DEFAULT_ACTIVE_THRESHOLD if args.active_threshold is None else args.active_threshold
    t0 = time.perf_counter()
    health = part_health(
        model, splits.test, active_threshold=threshold, batch_size=args.batch_size, device=resolve_device(args.device),
        amp=_amp(args), preprocessed=preprocessed, progress=not args.no_progress,
    )
    seconds = time.perf_counter() - t0
    print(f"{source.name} on {args.dataset} test: {health.summary()}")
    return {**health.to_dict(), "elapsed_seconds": seconds}


def _representation_metrics(args: argparse.Namespace, splits: Any, metrics: list[str], *, required: list[str]) -> dict[str, Any]:
    """`--probe bpd rate ...`: the representation metrics of the whole model (patchvae.evaluation.run_metrics), printed;
    returns what --out gets under "metrics" and "skipped". Metrics named explicitly are required; `--probe all` skips
    the ones the model does not support, with a note."""
    import torch

    from patchvae._runtime import resolve_device
    from patchvae.evaluation import run_metrics

    model = _full_model(args.source)
    first = splits.test[0]
    image = first[0] if isinstance(first, (tuple, list)) else first
    preprocessed = isinstance(image, torch.Tensor) and image.is_floating_point()  # a transformed dataset
    report = run_metrics(
        model, splits.train, splits.test, metrics, required=required, layer=args.layer, modes=args.representation,
        seeds=args.seeds, seed=args.seed, test_samples=args.test_samples, id_threshold=args.id_threshold,
        iwae_k=args.iwae_k, probe_kwargs={"nonlinear": {"epochs": args.probe_epochs}} if args.probe_epochs else None,
        batch_size=args.batch_size, device=resolve_device(args.device), amp=_amp(args), preprocessed=preprocessed,
        progress=not args.no_progress, label=f"{args.source} on {args.dataset}: ",
    )
    for line in report.lines:
        print(line)
    out: dict[str, Any] = {"metrics": report.records} if report.records else {}
    if report.skipped:
        out["skipped"] = report.skipped
    return out
