"""The representation metrics as one suite: what ``patchvae eval NAME --probe bpd rate ...`` runs.

    from patchvae.evaluation import REPRESENTATION_METRICS, metric_support, run_metrics
    report = run_metrics(model, train, test, ["rate", "intrinsic_dim", "nonlinear"], seeds=3)
    print("\\n".join(report.lines)); report.records   # JSON-ready dicts, one per result

:func:`metric_support` says which of :data:`REPRESENTATION_METRICS` a model supports, from the protocols alone
(``LikelihoodModel`` for ``bpd``, ``RateModel`` for ``rate``, a Gaussian latent layer for
``conditional_entropy``, any latent layer for ``intrinsic_dim`` and the probes, scikit-learn for
the ``linear_svm`` probes). :func:`run_metrics` runs the requested ones: the unsupported ones are
refused (``required=True``) or skipped with a note (what ``--probe all`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._metric_utils import default_latent_layer
from .information import conditional_entropy, has_rate, rate
from .intrinsic_dim import DEFAULT_ID_THRESHOLD, intrinsic_dimension
from .latent_probes import (
    REPRESENTATION_PROBES,
    representation_probes,
    sklearn_available,
)
from .likelihood import bpd, is_likelihood_model

__all__ = ["REPRESENTATION_METRICS", "MetricsReport", "metric_support", "run_metrics"]

#: every metric of the suite, in the order it runs
REPRESENTATION_METRICS: tuple[str, ...] = ("bpd", "rate", "conditional_entropy", "intrinsic_dim", *REPRESENTATION_PROBES)


@dataclass
class MetricsReport:
    """What :func:`run_metrics` computed: JSON-ready ``records``, ``skipped`` notes and printable ``lines``."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def metric_support(model: nn.Module | None, layer: str | None = None) -> dict[str, str | None]:
    """For each of :data:`REPRESENTATION_METRICS`: None if ``model`` supports it, else why not (one line)."""
    if model is None:
        return {m: "a random φ baseline has no encoder posterior or likelihood" for m in REPRESENTATION_METRICS}
    name = type(model).__name__
    out: dict[str, str | None] = {}
    out["bpd"] = None if is_likelihood_model(model) else f"{name} has no discrete likelihood (LikelihoodModel protocol)"
    out["rate"] = None if has_rate(model) else f"{name} has no rate(x) (RateModel protocol)"
    from ..models import Representable

    chosen, info = None, None
    if not isinstance(model, Representable):
        latent_reason: str | None = f"{name} exposes no representations (Representable protocol)"
    else:
        try:
            chosen = layer or default_latent_layer(model)
            info = model.representations().get(chosen)
            latent_reason = None if info is not None else f"{name} has no layer {chosen!r}"
        except ValueError as err:
            latent_reason = str(err).split(";")[0]
    gaussian = info is not None and info.stochastic and info.embedding_shape is not None
    out["conditional_entropy"] = latent_reason or (None if gaussian else f"{name}'s {chosen!r} is not a Gaussian posterior")
    out["intrinsic_dim"] = latent_reason
    for probe in REPRESENTATION_PROBES:
        needs_sklearn = probe.startswith("linear_svm") and not sklearn_available()
        out[probe] = latent_reason or ("scikit-learn is not installed: pip install 'patchvae[sklearn]'" if needs_sklearn else None)
    return out


def run_metrics(
    model: nn.Module | None,
    train: Any,
    test: Any,
    metrics: Sequence[str],
    *,
    required: bool | Sequence[str] = True,
    layer: str | None = None,
    modes: Sequence[str] = ("mean",),
    seeds: int = 1,
    seed: int = 0,
    test_samples: int = 1,
    id_threshold: float = DEFAULT_ID_THRESHOLD,
    iwae_k: int | None = None,
    probe_kwargs: dict[str, dict[str, Any]] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str | None = None,
    preprocessed: bool = False,
    progress: bool = False,
    label: str = "",
) -> MetricsReport:
    """Run ``metrics`` (names of :data:`REPRESENTATION_METRICS`) on ``model``: the dataset-level ones on ``test``, the probes
    trained on ``train`` and scored on ``test`` (labelled Datasets), once per representation mode in ``modes``.

    ``required``: True refuses any unsupported metric (ValueError naming why), False skips them all
    with a note in ``report.skipped``, a list makes only those names required. ``test_samples`` > 1
    (``"sample"`` mode) applies to the nonlinear probe; the others use one sample.
    """
    unknown = [m for m in metrics if m not in REPRESENTATION_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {REPRESENTATION_METRICS}")
    support = metric_support(model, layer)
    report = MetricsReport()
    todo = []
    for m in REPRESENTATION_METRICS:  # suite order
        if m not in metrics:
            continue
        must = required if isinstance(required, bool) else m in required
        if support[m] is not None:
            if must:
                raise ValueError(f"--probe {m}: {support[m]}")
            report.skipped.append({"metric": m, "reason": str(support[m])})
            report.lines.append(f"{label}skipped {m}: {support[m]}")
            continue
        todo.append(m)
    common = {"batch_size": batch_size, "device": device, "amp": amp, "preprocessed": preprocessed, "progress": progress}

    def add(result: Any) -> None:
        report.records.append(result.to_dict())
        report.lines.append(f"{label}{result.summary()}")

    if "bpd" in todo:
        add(bpd(model, test, seeds=seeds, seed=seed, iwae_k=iwae_k, **common))
    if "rate" in todo:
        add(rate(model, test, **common))
    if "conditional_entropy" in todo:
        add(conditional_entropy(model, test, layer=layer, **common))
    if "intrinsic_dim" in todo:
        add(intrinsic_dimension(model, test, layer=layer, threshold=id_threshold, seed=seed, **common))
    probes = [m for m in todo if m in REPRESENTATION_PROBES]
    for mode in dict.fromkeys(modes):
        k = test_samples if mode == "sample" else 1
        groups = [probes] if k == 1 else [[p for p in probes if p != "nonlinear"], [p for p in probes if p == "nonlinear"]]
        for group in groups:
            if not group:
                continue
            kk = k if group == ["nonlinear"] else 1
            for result in representation_probes(model, train, test, probes=group, layer=layer, mode=mode, seeds=seeds,
                                                seed=seed, test_samples=kk, probe_kwargs=probe_kwargs, **common):
                add(result)
    return report
