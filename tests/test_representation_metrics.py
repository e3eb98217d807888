"""Representation metrics of patchvae.evaluation (issue #10 item 5): BPD / IWAE, rate, conditional entropy,
intrinsic dimension, linear-SVM / logistic / nonlinear probes, representation types, and `patchvae eval`.

The likelihood metrics are tested on a test-only LikelihoodModel with a closed form (below), so they do
not depend on any zoo family implementing the protocol.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from zoo_helpers import TINY, single_thread  # noqa: F401 (fixture)

import patchvae.models as zoo
from patchvae.cli import main
from patchvae.data import DataConfig, ImageTensorDataset
from patchvae.evaluation import (
    REPRESENTATION_METRICS,
    IntrinsicDimension,
    PCASpectrumAccumulator,
    bpd,
    conditional_entropy,
    default_latent_layer,
    intrinsic_dimension,
    linear_svm_probe,
    log_mean_exp,
    metric_support,
    nonlinear_probe,
    pca_spectrum,
    rate,
    representation_probes,
    run_metrics,
    sklearn_available,
)
from patchvae.losses import gaussian_kl
from patchvae.models import (
    ELBOTerms,
    LikelihoodModel,
    RateModel,
    RepresentationInfo,
    save_pretrained,
)

ROOT = Path(__file__).resolve().parents[1]
LN2 = math.log(2.0)
needs_sklearn = pytest.mark.skipif(not sklearn_available(), reason="scikit-learn not installed (pip install '.[sklearn]')")

pytestmark = pytest.mark.usefixtures("single_thread")


# ----------------------------------------------------------------------------- test-only models
class FactorisedVAE(nn.Module):
    """A LikelihoodModel with a closed form, for tests only.

    p(x | z) = Π_i Cat(x_i; softmax(logits)) for every sub-pixel, independent of z, so log p(x) is exact;
    p(z) = N(0, I_d); q(z | x) = N(shift · mean(x) · 1, sigma² I). Hence −ELBO = −log p(x) + KL exactly (the
    single sample does not matter), and the importance weights are log p(x) + log p(z) − log q(z | x):
    constant (IWAE-k = ELBO for every k) when q = p (shift 0, sigma 1).
    """

    def __init__(self, logits: torch.Tensor | None = None, latent_dim: int = 2, shift: float = 0.0, sigma: float = 1.0,
                 size: tuple[int, int, int] = (1, 4, 4)) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(256) if logits is None else logits.clone(), requires_grad=False)
        self.latent_dim, self.shift, self.sigma = latent_dim, shift, sigma
        self.data_config = DataConfig(size, (0.5,), (0.5,))

    @staticmethod
    def values(x: torch.Tensor) -> torch.Tensor:
        return ((x.double() + 1) * 127.5).round().long().clamp(0, 255)

    def log_px(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.logits.double(), 0)[self.values(x)].flatten(1).sum(1)

    def posterior_mean(self, x: torch.Tensor) -> torch.Tensor:
        return (self.shift * x.double().flatten(1).mean(1, keepdim=True)).expand(-1, self.latent_dim)

    def rate(self, x: torch.Tensor) -> torch.Tensor:
        mu, var = self.posterior_mean(x), self.sigma**2
        return 0.5 * (mu.square() + var - math.log(var) - 1.0).sum(1)

    def elbo_terms(self, x: torch.Tensor) -> ELBOTerms:
        return ELBOTerms(reconstruction_nll=-self.log_px(x), kl=self.rate(x))

    def log_importance_weights(self, x: torch.Tensor, num_samples: int) -> torch.Tensor:
        mu = self.posterior_mean(x)[:, None]  # (B, 1, d)
        eps = torch.randn(x.shape[0], num_samples, self.latent_dim, dtype=torch.float64)
        z = mu + self.sigma * eps
        log_prior = (-0.5 * z.square() - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_q = (-0.5 * eps.square() - math.log(self.sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
        return self.log_px(x)[:, None] + log_prior - log_q


class SubspaceModel(nn.Module):
    """A Representable test model whose 'latent' μ lies in a 3-d subspace of R^10 (a fixed linear map of the image)."""

    def __init__(self, rank: int = 3, dim: int = 10, size: tuple[int, int, int] = (1, 4, 4)) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.down = nn.Parameter(torch.randn(math.prod(size), rank, generator=gen), requires_grad=False)
        self.up = nn.Parameter(torch.randn(rank, dim, generator=gen), requires_grad=False)
        self.dim = dim
        self.data_config = DataConfig(size, (0.5,), (0.5,))

    def representations(self, input_size=None):
        return {"latent": RepresentationInfo("latent", (self.dim,), "μ in a 3-d subspace", stochastic=True,
                                             embedding_shape=(2 * self.dim,))}

    def represent(self, x, names, mode="mean", noise=None):
        mu = x.flatten(1) @ self.down @ self.up
        sigma = torch.full_like(mu, 1.0)
        if mode == "sample":
            return {"latent": mu + sigma * noise(mu, "normal")}
        if mode == "embedding":
            return {"latent": torch.cat([mu, sigma], dim=-1)}
        return {"latent": mu}


def uint8_images(n: int, size=(1, 4, 4), seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def as_unit(images: torch.Tensor) -> torch.Tensor:
    return images.double() / 127.5 - 1.0


def test_the_test_models_implement_the_protocols():
    assert isinstance(FactorisedVAE(), LikelihoodModel) and isinstance(FactorisedVAE(), RateModel)
    assert not isinstance(SubspaceModel(), RateModel)


# ----------------------------------------------------------------------------- BPD and IWAE
def test_bpd_of_a_uniform_likelihood_is_exactly_8_bits_per_dim():
    model = FactorisedVAE()  # every value 1/256, q = p: zero KL
    result = bpd(model, uint8_images(10), seeds=2, iwae_k=5, batch_size=4)
    assert result.bpd == pytest.approx(8.0, abs=1e-12) and result.bpd_std == 0.0
    assert result.reconstruction_bpd == pytest.approx(8.0, abs=1e-12) and result.kl_bpd == 0.0
    assert result.iwae_bpd == pytest.approx(8.0, abs=1e-12) and result.iwae_k == 5
    assert (result.num_images, result.num_dims, result.seeds) == (10, 16, (0, 1))
    assert "8.0000" in result.summary()
    record = json.loads(json.dumps(result.to_dict()))
    assert record["metric"] == "bpd" and record["bpd_per_seed"] == [pytest.approx(8.0)] * 2


def test_bpd_is_the_closed_form_negative_elbo_in_both_readings():
    logits = torch.randn(256, generator=torch.Generator().manual_seed(3))
    model = FactorisedVAE(logits, latent_dim=3, shift=2.0, sigma=0.5)
    images = uint8_images(40, seed=1)
    x = as_unit(images)
    nll, kl = -model.log_px(x), model.rate(x)
    result = bpd(model, images, batch_size=16)  # float32 preprocessing: μ(x) to ~1e-7
    assert result.bpd == pytest.approx(float((nll + kl).mean()) / (16 * LN2), rel=1e-7)
    assert result.reconstruction_bpd == pytest.approx(float(nll.mean()) / (16 * LN2), rel=1e-12)  # Sixt reading (a)
    assert result.kl_bpd == pytest.approx(float(kl.mean()) / (16 * LN2), rel=1e-6) and result.kl_bpd > 0.01
    assert result.bpd == pytest.approx(result.reconstruction_bpd + result.kl_bpd)
    # preprocessed tensors give the same numbers
    assert bpd(model, x.float(), preprocessed=True).bpd == pytest.approx(result.bpd, rel=1e-6)


def test_iwae_is_a_tighter_bound_and_equals_the_elbo_for_k1_in_expectation():
    logits = torch.randn(256, generator=torch.Generator().manual_seed(4))
    model = FactorisedVAE(logits, latent_dim=2, shift=2.0, sigma=0.5)
    images = uint8_images(3000, seed=2)
    true_bpd = float(-model.log_px(as_unit(images)).mean()) / (16 * LN2)
    elbo = bpd(model, images, batch_size=1000, iwae_k=1).bpd
    k1 = bpd(model, images, batch_size=1000, iwae_k=1, seeds=2)
    k50 = bpd(model, images, batch_size=1000, iwae_k=50, iwae_chunk=16)
    gap = elbo - true_bpd
    assert gap > 0.04  # the KL: the ELBO is a loose bound here
    assert k1.iwae_bpd == pytest.approx(elbo, abs=0.1 * gap)  # E[log w] = ELBO: equal up to Monte Carlo error
    assert len(k1.iwae_bpd_per_seed) == 2 and k1.iwae_bpd_std > 0
    assert true_bpd <= k50.iwae_bpd < elbo - 0.5 * gap  # IWAE-50 is much tighter, still an upper bound on -log p


def test_iwae_equals_the_elbo_exactly_when_the_importance_weights_are_deterministic():
    logits = torch.randn(256, generator=torch.Generator().manual_seed(5))
    model = FactorisedVAE(logits, shift=0.0, sigma=1.0)  # q(z|x) = p(z) = p(z|x): every weight is log p(x)
    images = uint8_images(12)
    for k in (1, 7):
        result = bpd(model, images, iwae_k=k, iwae_chunk=3)
        assert result.iwae_bpd == pytest.approx(result.bpd, rel=1e-12, abs=0)


def test_log_mean_exp_is_stable():
    big = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0]])
    assert torch.allclose(log_mean_exp(big), torch.tensor([1000.0, -1000.0], dtype=torch.float64))
    assert log_mean_exp(torch.tensor([0.0, math.log(3.0)])) == pytest.approx(math.log(2.0))


def test_bpd_refuses_models_without_a_likelihood_and_inputs_outside_the_unit_range():
    with pytest.raises(ValueError, match="LikelihoodModel protocol") as err:
        bpd(zoo.create("beta_vae_resnet9_32", latent_dim=4), torch.zeros(1, 3, 32, 32), preprocessed=True)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        bpd(FactorisedVAE(), torch.full((2, 1, 4, 4), 3.0), preprocessed=True)


# ----------------------------------------------------------------------------- rate and conditional entropy
def test_rate_equals_the_analytic_kl_of_the_beta_vae():
    model = zoo.create("beta_vae_resnet9_32").eval()
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    result = rate(model, x, preprocessed=True, batch_size=4, keep_per_image=True)
    with torch.no_grad():
        post = model.encode(x)
    expected = torch.stack([gaussian_kl(post.mean[i:i + 1], post.var[i:i + 1]) for i in range(6)]).double()
    assert torch.allclose(result.per_image, expected, rtol=1e-5)
    assert result.nats == pytest.approx(float(expected.mean()), rel=1e-5)
    assert result.bits == pytest.approx(result.nats / LN2)
    assert result.bits_per_pixel == pytest.approx(result.bits / (32 * 32))  # Sixt's M/#pixel: spatial pixels
    assert result.bits_per_dim == pytest.approx(result.bits / (3 * 32 * 32))
    assert result.num_images == 6 and result.input_size == (3, 32, 32)
    record = result.to_dict()
    assert record["metric"] == "rate" and "per_image" not in record and json.dumps(record)
    # raw uint8 images go through the weights' own preprocessing
    assert rate(model, torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)).num_images == 3


def test_rate_works_for_every_rate_model_and_refuses_the_others():
    torch.manual_seed(0)
    pvae = zoo.create("patchvae_resnet9", **TINY).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = pvae.rate(x).double().mean()
    assert rate(pvae, x, preprocessed=True).nats == pytest.approx(float(expected), rel=1e-6)
    for model in (zoo.create("classifier_resnet9_32"), SubspaceModel()):
        with pytest.raises(ValueError, match="RateModel protocol") as err:
            rate(model, x, preprocessed=True)
        assert "\n" not in str(err.value) and type(model).__name__ in str(err.value)


def test_conditional_entropy_of_the_gaussian_latent():
    model = zoo.create("beta_vae_resnet9_32", latent_dim=8).eval()
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        var = model.encode(x).var.double()
    expected = (0.5 * torch.log(2 * math.pi * math.e * var)).sum(1).mean()
    result = conditional_entropy(model, x, preprocessed=True)
    assert result.nats == pytest.approx(float(expected), rel=1e-5, abs=1e-5)
    assert (result.layer, result.latent_dim, result.num_images) == ("latent", 8, 5)
    assert result.bits == pytest.approx(result.nats / LN2)
    # PatchVAE: the Gaussian part appearances
    pvae = zoo.create("patchvae_resnet9", **TINY).eval()
    assert default_latent_layer(pvae) == "appearance"
    assert conditional_entropy(pvae, x, preprocessed=True).latent_dim == TINY["num_parts"] * TINY["part_dim"]
    with pytest.raises(ValueError, match="no latent layer"):
        conditional_entropy(zoo.create("classifier_resnet9_32"), x, preprocessed=True)


# ----------------------------------------------------------------------------- intrinsic dimension
def test_intrinsic_dimension_of_features_in_a_3d_subspace_is_3(tmp_path):
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(500, 3, generator=gen) @ torch.randn(3, 20, generator=gen) + 5.0
    result = pca_spectrum(features)
    assert result.intrinsic_dimension == 3 and result.feature_dim == 20 and result.num_images == 500
    assert len(result.eigenvalues) == 20 and sum(result.explained_variance_ratio) == pytest.approx(1.0)
    assert list(result.eigenvalues) == sorted(result.eigenvalues, reverse=True)
    assert result.threshold == 1e-3 and result.with_threshold(0.0) >= 3
    # streaming in uneven batches gives the same spectrum
    acc = PCASpectrumAccumulator()
    for chunk in features.split(37):
        acc.update(chunk)
    streamed = acc.compute()
    assert torch.allclose(torch.tensor(streamed.eigenvalues), torch.tensor(result.eigenvalues), rtol=1e-9, atol=1e-9)
    # saved spectrum, re-readable
    saved = json.loads(result.save(tmp_path / "spectrum.json").read_text())
    assert saved["intrinsic_dimension"] == 3 and len(saved["explained_variance_ratio"]) == 20
    assert IntrinsicDimension(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k != "metric"}) == result


def test_intrinsic_dimension_through_a_model_and_its_layers():
    images = uint8_images(200)
    result = intrinsic_dimension(SubspaceModel(), images)
    assert (result.intrinsic_dimension, result.layer, result.mode, result.feature_dim) == (3, "latent", "mean", 10)
    assert "intrinsic dimension" in result.summary()
    assert intrinsic_dimension(SubspaceModel(), images, mode="sample").intrinsic_dimension == 10  # isotropic noise
    assert intrinsic_dimension(SubspaceModel(), images, threshold=0.5).intrinsic_dimension <= 1
    beta = zoo.create("beta_vae_resnet9_32", latent_dim=4).eval()
    assert intrinsic_dimension(beta, torch.randn(8, 3, 32, 32), preprocessed=True).feature_dim == 4
    pooled = beta.representations()["pooled"].shape[0]
    assert intrinsic_dimension(beta, torch.randn(8, 3, 32, 32), preprocessed=True, layer="pooled").feature_dim == pooled


# ----------------------------------------------------------------------------- probes
def _separable(n_per_class: int = 50, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    features = torch.randn(labels.numel(), 8, generator=gen) * 0.3
    features[torch.arange(labels.numel()), labels] += 4.0
    return features, labels


@needs_sklearn
@pytest.mark.parametrize("fast", [False, True])
def test_linear_svm_reaches_100_percent_on_separable_features(fast):
    (x, y), (xt, yt) = _separable(seed=0), _separable(seed=1)
    result = linear_svm_probe(x, y, xt, yt, fast=fast)
    assert result.top1 == 100.0 and result.probe == ("linear_svm_fast" if fast else "linear_svm")
    assert result.params["converged"] and "sklearn" in result.params["implementation"]


def test_nonlinear_probe_reaches_100_percent_and_is_seeded():
    (x, y), (xt, yt) = _separable(seed=0), _separable(seed=1)
    a = nonlinear_probe(x, y, xt, yt, epochs=30, seed=0)
    assert a.top1 == 100.0 and a.probe == "nonlinear"
    assert "Dropout(0.1)-BatchNorm1d(200)" in a.params["architecture"]
    before = torch.random.get_rng_state()
    b = nonlinear_probe(x, y, [xt, xt + 0.01], yt, epochs=30, seed=0)
    assert torch.equal(before, torch.random.get_rng_state())  # the global generator is untouched
    assert b.top1 == 100.0 and b.params["test_samples"] == 2
    assert nonlinear_probe(x, y, xt, yt, epochs=3, seed=0).params == nonlinear_probe(x, y, xt, yt, epochs=3, seed=0).params


def _labelled(model_size=(1, 4, 4), n=120, seed=0):
    """Images whose label is the SubspaceModel μ's argmax over its first 3 dims: linearly readable from μ."""
    images = uint8_images(n, model_size, seed)
    with torch.no_grad():
        mu = SubspaceModel().represent(images.float() / 127.5 - 1, ["latent"])["latent"]
    return ImageTensorDataset(images, mu[:, :3].argmax(1))


def test_representation_probes_on_each_representation_type():
    model, train, test = SubspaceModel(), _labelled(seed=0), _labelled(seed=1)
    probes = ("logreg", "nonlinear", *(("linear_svm", "linear_svm_fast") if sklearn_available() else ()))
    kwargs = {"nonlinear": {"epochs": 40}}
    results = representation_probes(model, train, test, probes=probes, mode="mean", probe_kwargs=kwargs)
    assert [r.probe for r in results] == list(probes)
    assert all(r.feature_dim == 10 and r.layer == "latent" and r.num_train == 120 for r in results)
    by = {r.probe: r for r in results}
    assert by["logreg"].top1 >= 95.0 and by["nonlinear"].top1 >= 90.0
    emb = representation_probes(model, train, test, probes=("logreg",), mode="embedding")
    assert emb[0].feature_dim == 20 and emb[0].mode == "embedding"
    sampled = representation_probes(model, train, test, probes=("nonlinear",), mode="sample", test_samples=3, seeds=2,
                                    probe_kwargs={"nonlinear": {"epochs": 5}})
    (s,) = sampled
    assert s.test_samples == 3 and s.seeds == (0, 1) and len(s.top1_per_seed) == 2 and s.top1_std >= 0
    record = json.loads(json.dumps(s.to_dict()))
    assert record["metric"] == "probe" and record["mode"] == "sample"
    with pytest.raises(ValueError, match="only the 'nonlinear' probe"):
        representation_probes(model, train, test, probes=("logreg",), mode="sample", test_samples=2)
    with pytest.raises(ValueError, match="unknown probe"):
        representation_probes(model, train, test, probes=("svm",))


def test_metric_support_and_the_suite_skip_what_a_model_lacks():
    support = metric_support(zoo.create("classifier_resnet9_32"))
    assert set(support) == set(REPRESENTATION_METRICS) and all(v is not None for v in support.values())
    beta_support = metric_support(zoo.create("beta_vae_resnet9_32", latent_dim=4))
    assert beta_support["bpd"] is not None and beta_support["rate"] is None and beta_support["intrinsic_dim"] is None
    assert metric_support(FactorisedVAE())["bpd"] is None
    report = run_metrics(SubspaceModel(), _labelled(seed=0), _labelled(seed=1), ["bpd", "rate", "intrinsic_dim"],
                         required=False)
    assert [r["metric"] for r in report.records] == ["intrinsic_dim"]
    assert [s["metric"] for s in report.skipped] == ["bpd", "rate"] and report.lines[0].startswith("skipped bpd")
    with pytest.raises(ValueError, match="--probe rate: SubspaceModel has no rate"):
        run_metrics(SubspaceModel(), None, _labelled(), ["rate"])


# ----------------------------------------------------------------------------- CLI
def test_cli_metric_names_match_the_library():
    from patchvae.cli import evaluation as cli

    assert cli._METRIC_PROBES == REPRESENTATION_METRICS


@pytest.mark.data
def test_cli_eval_representation_metrics(fashion_mnist, tmp_path, capsys):
    torch.manual_seed(0)
    save_pretrained(zoo.create("beta_vae_resnet9_32", in_chans=1, latent_dim=8), tmp_path / "beta")
    out = tmp_path / "m.json"
    common = ["--limit-train", "200", "--limit-test", "100", "--device", "cpu", "--no-progress", "--out", str(out)]
    assert main(["eval", str(tmp_path / "beta"), "--probe", "rate", "intrinsic_dim", "logreg", "nonlinear",
                 "--representation", "mean", "embedding", "--probe-epochs", "2", "--seeds", "2", *common]) == 0
    data = json.loads(out.read_text())
    assert data["results"] == []  # no φ probe asked for
    metrics = data["metrics"]
    assert [m["metric"] for m in metrics] == ["rate", "intrinsic_dim", "probe", "probe", "probe", "probe"]
    assert metrics[0]["num_images"] == 100 and metrics[0]["bits"] == pytest.approx(metrics[0]["nats"] / LN2)
    assert len(metrics[1]["explained_variance_ratio"]) == 8 and metrics[1]["layer"] == "latent"
    assert [(m["probe"], m["mode"], m["feature_dim"]) for m in metrics[2:]] == [
        ("logreg", "mean", 8), ("nonlinear", "mean", 8), ("logreg", "embedding", 16), ("nonlinear", "embedding", 16)]
    assert all(len(m["top1_per_seed"]) == 2 for m in metrics[2:])
    printed = capsys.readouterr().out
    assert "rate E_x KL" in printed and "intrinsic dimension" in printed
    # explicit but unsupported: a one-line error; --probe all skips it with a note
    assert main(["eval", str(tmp_path / "beta"), "--probe", "bpd", *common]) == 1
    assert "--probe bpd: BetaVAE has no discrete likelihood" in capsys.readouterr().err
    assert main(["eval", "random", "--probe", "rate", *common]) == 1


# ----------------------------------------------------------------------------- the protocol, not families
def test_metric_code_names_no_family():
    families = {name for name in zoo.__all__ if isinstance(getattr(zoo, name), type)
                and issubclass(getattr(zoo, name), torch.nn.Module)}
    assert {"PatchVAE", "BetaVAE", "BiGAN", "Classifier", "ResNetTrunk"} <= families
    folder = ROOT / "patchvae" / "evaluation"
    files = ["_metric_utils.py", "likelihood.py", "information.py", "intrinsic_dim.py", "latent_probes.py",
             "representation_suite.py"]
    for name in files:
        tree = ast.parse((folder / name).read_text(encoding="utf-8"))
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
        assert not used & families, f"{name} names {sorted(used & families)}"
