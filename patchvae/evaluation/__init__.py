"""Evaluation protocol of PatchVAE (paper §4): fine-tune the Table 5 classifier on φ, and probes.

    from patchvae.evaluation import classification_splits, finetune, get_protocol, run_probes

    train, test, num_classes, data_config = classification_splits("fashion_mnist")
    result = finetune("weights/my_patchvae", train, test, num_classes=num_classes, freeze="conv5",
                      config=get_protocol("fashion_mnist"), data_config=data_config)
    probes = run_probes("weights/my_patchvae", train, test, data_config=data_config)
    health = part_health("weights/my_patchvae", test)  # active parts, P(visible), usage entropy
    rate("weights/my_vae", test); intrinsic_dimension(...); representation_probes(...); bpd(...)  # Zhang 2022 metrics

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
from .part_health import (
    DEFAULT_ACTIVE_THRESHOLD,
    PartHealth,
    PartHealthAccumulator,
    has_part_visibility,
    part_health,
    part_health_card_metrics,
)
from .probes import PROBES, run_probes
from .results import FinetuneResult, ProbeResult, save_results
from .likelihood import BPDResult, bpd, is_likelihood_model, log_mean_exp
from .information import ConditionalEntropyResult, RateResult, conditional_entropy, has_rate, rate
from .intrinsic_dim import (
    DEFAULT_ID_THRESHOLD,
    IntrinsicDimension,
    PCASpectrumAccumulator,
    intrinsic_dimension,
    pca_spectrum,
)
from .latent_probes import (
    REPRESENTATION_PROBES,
    RepresentationProbeResult,
    linear_svm_probe,
    nonlinear_probe,
    representation_probes,
    sklearn_available,
)
from .representation_suite import REPRESENTATION_METRICS, MetricsReport, metric_support, run_metrics
from ._metric_utils import default_latent_layer
from .dense_probe import FeatureStore, PatchMetrics, chance_accuracy, patch_metrics, sgd_linear_probe

__all__ = [
    "FeatureStore",
    "PatchMetrics",
    "chance_accuracy",
    "patch_metrics",
    "sgd_linear_probe",
    "BASELINES",
    "DEFAULT_ACTIVE_THRESHOLD",
    "DEFAULT_ID_THRESHOLD",
    "REPRESENTATION_METRICS",
    "REPRESENTATION_PROBES",
    "MetricsReport",
    "metric_support",
    "run_metrics",
    "BPDResult",
    "ConditionalEntropyResult",
    "IntrinsicDimension",
    "PCASpectrumAccumulator",
    "RateResult",
    "RepresentationProbeResult",
    "bpd",
    "conditional_entropy",
    "default_latent_layer",
    "has_rate",
    "intrinsic_dimension",
    "is_likelihood_model",
    "linear_svm_probe",
    "log_mean_exp",
    "nonlinear_probe",
    "pca_spectrum",
    "rate",
    "representation_probes",
    "sklearn_available",
    "PROTOCOL_OF",
    "PROBES",
    "PROTOCOLS",
    "BackboneSource",
    "ClassificationSplits",
    "FinetuneConfig",
    "FinetuneResult",
    "PartHealth",
    "PartHealthAccumulator",
    "ProbeResult",
    "backbone_arch",
    "build_classifier",
    "classification_splits",
    "default_protocol",
    "evaluate_classifier",
    "finetune",
    "fit_logistic_regression",
    "get_protocol",
    "has_part_visibility",
    "knn_classify",
    "knn_probe",
    "limit_dataset",
    "linear_probe",
    "list_datasets",
    "list_protocols",
    "part_health",
    "part_health_card_metrics",
    "pooled_features",
    "resolve_backbone",
    "run_probes",
    "save_results",
    "top_k_accuracy",
    "top_k_correct",
]
