"""Probes on any representation of any zoo model: the linear SVM and the nonlinear probe of Zhang et al. 2022.

    from patchvae.evaluation import representation_probes
    results = representation_probes("beta_vae_resnet9_32.fmnist", train, test,
                                    probes=("linear_svm_fast", "nonlinear"), mode="mean", seeds=3)
    for r in results:
        print(r.summary())   # nonlinear on 'latent' (mean): top-1 85.12 ± 0.21 % over 3 seeds ...

The features are the model's own representations (``patchvae.extract_features(model, data, layer=...,
mode=...)``, flattened per image), of a labelled train and test split. Probes (spec
``sixt_zhang.md`` §2.9, §3.4, §6.6), each labelled in its results:

* ``"linear_svm"``: the faithful linear probe of Zhang et al.: scikit-learn ``SVC(kernel="linear")``
  with its defaults (C = 1, one-vs-one inside, no feature scaling), fitted on every training
  feature. Its cost grows faster than linearly (about 9 min for 50k CIFAR-like features on 2 cores,
  §4.3). Needs scikit-learn (``pip install 'patchvae[sklearn]'``).
* ``"linear_svm_fast"``: ``LinearSVC`` (liblinear: squared hinge, one-vs-rest, C = 1) on features
  standardised with the training mean and std, ``max_iter`` 10,000 — the CPU-fast option of §2.9
  (seconds at 50k, about the same accuracy). Needs scikit-learn.
* ``"logreg"``: the package's torch multinomial logistic regression
  (:func:`patchvae.evaluation.linear_probe`: standardised features, L-BFGS, L2 chosen on a held-out
  10%): no scikit-learn needed.
* ``"nonlinear"``: Zhang et al.'s nonlinear probe, "a two-layer linear net with hidden size 200 and
  ReLU activation, the BatchNorm and dropout (with rate 0.1)": Linear(d, 200) → ReLU → Dropout(0.1)
  → BatchNorm1d(200) → Linear(200, C), log-softmax + NLL, Adam lr 1e-3, 100 epochs, mini-batches
  of 100 (shuffled per epoch), raw (unscaled) features, evaluated in eval mode (§6.6; the authors'
  code has p = 0 by a typo, the paper's 0.1 is used).

**Representation types** (Z Table 1): ``mode="mean"`` (MAP μ), ``"embedding"`` ([μ, σ], twice the
dimension) or ``"sample"`` (z ~ q(z | x): the probe is trained on one sample per training image,
drawn once; at test time ``test_samples`` = K samples per image are drawn and the nonlinear
probe's class probabilities are averaged before the argmax, as the paper writes;
``average="log_probs"`` averages log-probabilities as the authors' code does). K > 1 needs a
probabilistic probe (``nonlinear``).

**Seeds** (§2.9 "3 random seeds", §6.6): ``seeds = n`` re-runs each probe with seeds ``seed`` ...
``seed + n − 1`` (the nonlinear probe's initialisation, dropout and batch order; logreg's held-out
split; LinearSVC's; in ``"sample"`` mode also the posterior draws of both splits) and reports the
mean ± sample standard deviation of the test accuracy. The faithful SVC is deterministic given the
features, so its spread is 0 except in ``"sample"`` mode. Re-training the VAE per seed (the other
reading of the paper) is a training-level loop, outside this function.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._metric_utils import (
    check_seeds,
    default_latent_layer,
    labels_of,
    mean_std,
    resolve_model,
)
from .linear_probe import linear_probe
from .metrics import top_k_accuracy
from .results import ProbeResult

__all__ = [
    "REPRESENTATION_PROBES",
    "RepresentationProbeResult",
    "linear_svm_probe",
    "nonlinear_probe",
    "representation_probes",
    "sklearn_available",
]

#: the probes :func:`representation_probes` runs (see the module docstring)
REPRESENTATION_PROBES = ("linear_svm", "linear_svm_fast", "logreg", "nonlinear")
_SKLEARN_PROBES = ("linear_svm", "linear_svm_fast")
_SAMPLE_SEED_STRIDE = 1_000  # test draw k of seed s uses feature seed s + (k + 1) * stride (train: s)


def sklearn_available() -> bool:
    """Whether scikit-learn is installed (the ``linear_svm`` probes need it: ``pip install 'patchvae[sklearn]'``)."""
    try:
        return importlib.util.find_spec("sklearn") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False


def _require_sklearn(probe: str) -> None:
    if not sklearn_available():
        raise ImportError(
            f"the {probe!r} probe needs scikit-learn: pip install 'patchvae[sklearn]' (or use probe 'logreg', "
            "the torch logistic regression)"
        )


def _full_scores(scores: Any, classes: Any, num_rows: int, num_classes: int) -> torch.Tensor:
    """sklearn decision scores over the classes seen in training -> (M, num_classes), unseen classes lowest."""
    s = torch.as_tensor(scores, dtype=torch.float64)
    if s.ndim == 1:  # binary: the score of classes[1]
        s = torch.stack([-s, s], dim=1)
    out = torch.full((num_rows, num_classes), -math.inf, dtype=torch.float64)
    out[:, torch.as_tensor(classes, dtype=torch.long)] = s
    return out


def linear_svm_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    fast: bool = False,
    C: float = 1.0,
    max_iter: int = 10_000,
    seed: int = 0,
) -> ProbeResult:
    """Linear SVM probe on features (N, D) / (M, D): ``SVC(kernel="linear")`` (``probe="linear_svm"``, faithful,
    raw features) or, with ``fast=True``, ``LinearSVC`` on standardised features (``probe="linear_svm_fast"``).

    Top-5 ranks the classes by the SVM's one-vs-rest decision values. Needs scikit-learn.
    """
    name = "linear_svm_fast" if fast else "linear_svm"
    _require_sklearn(name)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import SVC, LinearSVC

    start = time.perf_counter()
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    x_train = train_features.detach().double().flatten(1)
    x_test = test_features.detach().double().flatten(1)
    if fast:
        mean = x_train.mean(0, keepdim=True)
        std = x_train.std(0, unbiased=False, keepdim=True).clamp_min(1e-6)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
        clf = LinearSVC(C=C, loss="squared_hinge", dual="auto", max_iter=max_iter, random_state=seed)
    else:
        clf = SVC(kernel="linear", C=C)
    y_train = train_labels.detach().long().numpy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(x_train.numpy(), y_train)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    scores = _full_scores(clf.decision_function(x_test.numpy()), clf.classes_, x_test.shape[0], num_classes)
    top1, top5 = top_k_accuracy(scores, test_labels.long(), (1, 5))
    params: dict[str, Any] = {"C": C, "converged": converged, "seed": seed}
    if fast:
        params.update(implementation="sklearn.svm.LinearSVC (liblinear, squared hinge, one-vs-rest)",
                      standardized=True, max_iter=max_iter)
    else:
        params.update(implementation="sklearn.svm.SVC(kernel='linear') (libsvm, one-vs-one)", standardized=False,
                      support_vectors=int(clf.n_support_.sum()))
    return ProbeResult(
        probe=name, top1=top1, top5=top5, params=params, num_train=x_train.shape[0], num_test=x_test.shape[0],
        num_classes=num_classes, elapsed_seconds=time.perf_counter() - start,
    )


class _MLP200(nn.Sequential):
    """Zhang et al.'s nonlinear probe: Linear(d, h) → ReLU → Dropout(p) → BatchNorm1d(h) → Linear(h, C)."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 200, dropout: float = 0.1) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.BatchNorm1d(hidden),
            nn.Linear(hidden, num_classes),
        )


def nonlinear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor | Sequence[torch.Tensor],
    test_labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    hidden: int = 200,
    dropout: float = 0.1,
    epochs: int = 100,
    batch_size: int = 100,
    lr: float = 1e-3,
    seed: int = 0,
    average: str = "probs",
) -> ProbeResult:
    """Zhang et al.'s nonlinear probe (see the module docstring) on features (N, D) / (M, D).

    ``test_features`` may be a list of K tensors (M, D), K posterior samples of the test images: the
    class probabilities (``average="probs"``) or log-probabilities (``"log_probs"``) are averaged over them.
    Training is seeded by ``seed`` (initialisation, dropout, batch order) and leaves torch's global
    generator as it was.
    """
    if average not in ("probs", "log_probs"):
        raise ValueError(f"average must be 'probs' or 'log_probs', got {average!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("hidden", hidden)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    views = [test_features] if isinstance(test_features, torch.Tensor) else list(test_features)
    if not views:
        raise ValueError("no test features")
    start = time.perf_counter()
    x = train_features.detach().float().flatten(1)
    y = train_labels.detach().long()
    num_classes = num_classes or int(max(y.max(), test_labels.max())) + 1
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the nonlinear probe needs at least 2 training samples (BatchNorm), got {n}")
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        net = _MLP200(x.shape[1], num_classes, hidden, dropout)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        net.train()
        last_loss = float("nan")
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            total, count = 0.0, 0
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                if idx.numel() < 2:  # BatchNorm cannot train on one sample: skip a last batch of one
                    continue
                loss = F.nll_loss(F.log_softmax(net(x[idx]), dim=1), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.numel()
                count += idx.numel()
            last_loss = total / max(count, 1)
    net.eval()
    with torch.no_grad():
        logps = [F.log_softmax(net(v.detach().float().flatten(1)), dim=1).double() for v in views]
        stacked = torch.stack(logps)
        scores = stacked.logsumexp(0) - math.log(len(views)) if average == "probs" else stacked.mean(0)
    top1, top5 = top_k_accuracy(scores, test_labels.long(), (1, 5))
    return ProbeResult(
        probe="nonlinear", top1=top1, top5=top5,
        params={"architecture": f"Linear({x.shape[1]},{hidden})-ReLU-Dropout({dropout})-BatchNorm1d({hidden})-"
                                f"Linear({hidden},{num_classes})",
                "epochs": epochs, "batch_size": batch_size, "optimizer": "Adam", "lr": lr, "seed": seed,
                "test_samples": len(views), "average": average, "final_train_loss": last_loss},
        num_train=n, num_test=views[0].shape[0], num_classes=num_classes, elapsed_seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class RepresentationProbeResult:
    """A probe on a model's representation, over seeds: mean ± sample std of the test accuracy (percent)."""

    probe: str  #: "linear_svm", "linear_svm_fast", "logreg" or "nonlinear"
    layer: str
    mode: str  #: "mean" (MAP), "sample" or "embedding"
    top1: float
    top1_std: float
    top1_per_seed: tuple[float, ...]
    top5: float
    top5_std: float
    top5_per_seed: tuple[float, ...]
    seeds: tuple[int, ...]
    test_samples: int  #: posterior samples per test image ("sample" mode)
    feature_dim: int
    num_train: int
    num_test: int
    num_classes: int
    params: dict[str, Any]  #: the probe's settings (of the first seed)
    elapsed_seconds: float  #: probe fits, all seeds
    feature_seconds: float  #: feature extraction, all seeds

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (``metric`` = "probe")."""
        out: dict[str, Any] = {"metric": "probe"}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def summary(self) -> str:
        k = f", {self.test_samples} test samples" if self.mode == "sample" else ""
        return (
            f"{self.probe} on {self.layer!r} ({self.mode}{k}, {self.feature_dim} dims): top-1 {self.top1:.2f} ± "
            f"{self.top1_std:.2f} % over {len(self.seeds)} seed(s); {self.num_train} train / {self.num_test} test"
        )


def _extract(model: nn.Module, data: Any, layer: str, mode: str, seed: int, common: dict[str, Any]) -> torch.Tensor:
    from ..features import extract_features

    return extract_features(model, data, layer=layer, mode=mode, seed=seed, **common)[layer].flatten(1)


def _run_probe(probe: str, train_x: torch.Tensor, train_y: torch.Tensor, test_views: list[torch.Tensor],
               test_y: torch.Tensor, num_classes: int, seed: int, kwargs: dict[str, Any]) -> ProbeResult:
    if probe == "nonlinear":
        return nonlinear_probe(train_x, train_y, test_views, test_y, num_classes=num_classes, seed=seed, **kwargs)
    if len(test_views) > 1:
        raise ValueError(f"test_samples > 1 averages class probabilities: only the 'nonlinear' probe has them, not {probe!r}")
    if probe == "logreg":
        result = linear_probe(train_x, train_y, test_views[0], test_y, num_classes=num_classes, seed=seed, **kwargs)
        result.probe = "logreg"
        result.params["implementation"] = "torch multinomial logistic regression (L-BFGS, standardised, L2 on 10% held out)"
        return result
    return linear_svm_probe(train_x, train_y, test_views[0], test_y, num_classes=num_classes,
                            fast=probe == "linear_svm_fast", seed=seed, **kwargs)


def representation_probes(
    model: nn.Module | str | os.PathLike,
    train: Any,
    test: Any,
    *,
    probes: Sequence[str] = ("linear_svm", "nonlinear"),
    layer: str | None = None,
    mode: str = "mean",
    seeds: int = 1,
    seed: int = 0,
    test_samples: int = 1,
    num_classes: int | None = None,
    labels: tuple[torch.Tensor, torch.Tensor] | None = None,
    probe_kwargs: dict[str, dict[str, Any]] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str | None = None,
    preprocessed: bool = False,
    progress: bool = False,
) -> list[RepresentationProbeResult]:
    """Probe ``model``'s representation ``layer`` (``mode``) with each of ``probes`` (see the module docstring).

    Args:
        model: any zoo model (the :class:`~patchvae.models.Representable` protocol), a zoo name with
            weights or a weights folder.
        train, test: labelled data: Datasets of (image, label) (anything :func:`patchvae.extract_features`
            takes when ``labels`` = (train_labels, test_labels) is given).
        probes: any of :data:`REPRESENTATION_PROBES`; the features are extracted once and shared.
        layer: default the model's latent (``"latent"``, else its first stochastic layer with a
            distribution embedding, e.g. PatchVAE's ``"appearance"``); features are flattened per image.
        mode: ``"mean"``, ``"sample"`` or ``"embedding"`` (Z Table 1's representation types).
        seeds, seed: the probes run with seeds ``seed`` ... ``seed + seeds − 1``; mean ± std reported.
        test_samples: posterior samples per test image in ``"sample"`` mode (probabilities averaged;
            ``nonlinear`` only when > 1).
        probe_kwargs: extra arguments per probe name, e.g. ``{"nonlinear": {"epochs": 20}}``.
        amp: autocast for the feature extraction (default None: float32).

    Raises:
        ValueError: an unknown probe or mode, ``test_samples > 1`` outside ``"sample"`` mode.
        ImportError: a ``linear_svm`` probe without scikit-learn.
    """
    from ..models._protocol import MODES

    unknown = [p for p in probes if p not in REPRESENTATION_PROBES]
    if unknown or not probes:
        raise ValueError(f"unknown probe(s) {unknown}; choose from {REPRESENTATION_PROBES}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_seeds(seeds)
    if isinstance(test_samples, bool) or not isinstance(test_samples, int) or test_samples < 1:
        raise ValueError(f"test_samples must be an int >= 1, got {test_samples!r}")
    if test_samples > 1 and mode != "sample":
        raise ValueError(f"test_samples > 1 draws posterior samples: use mode='sample' (got mode={mode!r})")
    if test_samples > 1 and any(p != "nonlinear" for p in probes):
        raise ValueError("test_samples > 1 averages class probabilities: only the 'nonlinear' probe has them")
    for p in probes:
        if p in _SKLEARN_PROBES:
            _require_sklearn(p)
    probes = list(dict.fromkeys(probes))
    model = resolve_model(model)
    layer = layer or default_latent_layer(model)
    train_y, test_y = labels if labels is not None else (labels_of(train), labels_of(test))
    train_y, test_y = torch.as_tensor(train_y).long(), torch.as_tensor(test_y).long()
    num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
    common = {"batch_size": batch_size, "device": device, "progress": progress, "preprocessed": preprocessed, "amp": amp}
    seed_list = tuple(seed + i for i in range(seeds))
    per_probe: dict[str, list[ProbeResult]] = {p: [] for p in probes}
    feature_seconds = 0.0
    fixed: tuple[torch.Tensor, list[torch.Tensor]] | None = None
    for s in seed_list:
        t0 = time.perf_counter()
        if mode == "sample":  # new posterior draws for every seed; train and test draws independent
            train_x = _extract(model, train, layer, mode, s, common)
            views = [_extract(model, test, layer, mode, s + (k + 1) * _SAMPLE_SEED_STRIDE, common) for k in range(test_samples)]
        else:
            if fixed is None:
                fixed = (_extract(model, train, layer, mode, 0, common), [_extract(model, test, layer, mode, 0, common)])
            train_x, views = fixed
        feature_seconds += time.perf_counter() - t0
        if train_x.shape[0] != train_y.shape[0] or views[0].shape[0] != test_y.shape[0]:
            raise ValueError(
                f"{train_x.shape[0]}/{views[0].shape[0]} train/test images but {train_y.shape[0]}/{test_y.shape[0]} labels"
            )
        for p in probes:
            per_probe[p].append(_run_probe(p, train_x, train_y, views, test_y, num_classes, s,
                                           dict((probe_kwargs or {}).get(p, {}))))
    out = []
    for p, runs in per_probe.items():
        top1s, top5s = [r.top1 for r in runs], [r.top5 for r in runs]
        (m1, s1), (m5, s5) = mean_std(top1s), mean_std(top5s)
        out.append(RepresentationProbeResult(
            probe=p, layer=layer, mode=mode, top1=m1, top1_std=s1, top1_per_seed=tuple(top1s), top5=m5, top5_std=s5,
            top5_per_seed=tuple(top5s), seeds=seed_list, test_samples=test_samples, feature_dim=int(train_x.shape[1]),
            num_train=runs[0].num_train, num_test=runs[0].num_test, num_classes=num_classes, params=runs[0].params,
            elapsed_seconds=sum(r.elapsed_seconds for r in runs), feature_seconds=feature_seconds,
        ))
    return out
