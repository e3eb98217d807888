"""Evaluation protocol of PatchVAE (paper §4): fine-tune the Table 5 classifier on φ, and probes.

    from patchvae.evaluation import classification_splits, finetune, get_protocol, run_probes

    train, test, num_classes, data_config = classification_splits("fashion_mnist")
    result = finetune("weights/my_patchvae", train, test, num_classes=num_classes, freeze="conv5",
                      config=get_protocol("fashion_mnist"), data_config=data_config)
    probes = run_probes("weights/my_patchvae", train, test, data_config=data_config)

Baselines go through the same code: ``finetune("random", ...)`` (random φ, same freeze preset) and
``finetune("supervised", ...)`` (random φ, nothing frozen).
"""

from .backbone_source import BASELINES, BackboneSource, backbone_arch, resolve_backbone
from .config import PROTOCOLS, FinetuneConfig, get_protocol, list_protocols
from .datasets import (
    PROTOCOL_OF,
    ClassificationSplits,
    classification_splits,
    default_protocol,
    limit_dataset,
    list_datasets,
)
from .features import pooled_features
from .finetune import build_classifier, evaluate_classifier, finetune
from .knn_probe import knn_classify, knn_probe
from .linear_probe import fit_logistic_regression, linear_probe
from .metrics import top_k_accuracy, top_k_correct
from .probes import PROBES, run_probes
from .results import FinetuneResult, ProbeResult, save_results

__all__ = [
    "BASELINES",
    "PROTOCOL_OF",
    "PROBES",
    "PROTOCOLS",
    "BackboneSource",
    "ClassificationSplits",
    "FinetuneConfig",
    "FinetuneResult",
    "ProbeResult",
    "backbone_arch",
    "build_classifier",
    "classification_splits",
    "default_protocol",
    "evaluate_classifier",
    "finetune",
    "fit_logistic_regression",
    "get_protocol",
    "knn_classify",
    "knn_probe",
    "limit_dataset",
    "linear_probe",
    "list_datasets",
    "list_protocols",
    "pooled_features",
    "resolve_backbone",
    "run_probes",
    "save_results",
    "top_k_accuracy",
    "top_k_correct",
]
