"""Part health (patchvae.evaluation.part_health): definitions, streaming, the shipped weights, trainer, cards, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from patchvae import extract_features
from patchvae.cli import main
from patchvae.data import BatchPreprocess
from patchvae.evaluation import (
    DEFAULT_ACTIVE_THRESHOLD,
    PartHealth,
    PartHealthAccumulator,
    has_part_visibility,
    part_health,
    part_health_card_metrics,
)
from patchvae.models import create, save_pretrained

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _f64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _synthetic() -> torch.Tensor:
    """(4 images, 3 parts, 2×2): part 0 constant, part 1 changes with the image, part 2 only with the location."""
    v = torch.zeros(4, 3, 2, 2, dtype=torch.float64)
    v[:, 0] = 0.25
    v[:, 1] = _f64([0.1, 0.3, 0.5, 0.7]).view(4, 1, 1)
    v[:, 2] = _f64([[0.0, 0.2], [0.4, 0.6]])
    return v


def _uint8_images(n: int, seed: int = 0, size: int = 28) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), generator=gen, dtype=torch.uint8)


# ----------------------------------------------------------------------------- definitions
def test_definitions_on_known_maps():
    v = _synthetic()
    acc = PartHealthAccumulator()
    acc.update(v)
    h = acc.compute()
    assert isinstance(h, PartHealth) and (h.num_parts, h.num_images, h.num_locations) == (3, 4, 16)
    torch.testing.assert_close(_f64(h.part_mean), v.mean((0, 2, 3)), rtol=0, atol=1e-15)
    torch.testing.assert_close(_f64(h.part_std), v.std((0, 2, 3)), rtol=0, atol=1e-15)  # Bessel, as torch.std
    torch.testing.assert_close(_f64(h.part_image_std), v.mean((2, 3)).std(0), rtol=0, atol=1e-15)
    assert h.part_image_std[2] == pytest.approx(0.0, abs=1e-15) and h.part_std[0] == pytest.approx(0.0, abs=1e-15)
    # part 0 never varies; part 1 varies with the image; part 2 with the location (same in every image)
    assert h.active == (1, 2) and h.active_parts == 2 and h.active_threshold == DEFAULT_ACTIVE_THRESHOLD == 0.02
    assert acc.compute(spread="images").active == (1,)
    assert acc.compute(active_threshold=0.3).active == ()
    usage = _f64([0.25, 0.4, 0.3]) / 0.95
    entropy = float(-(usage * usage.log()).sum())
    assert h.part_usage_entropy == pytest.approx(entropy, rel=1e-12)
    assert h.part_usage_entropy_fraction == pytest.approx(entropy / math.log(3), rel=1e-12)
    assert h.mean_visibility == pytest.approx(0.95 / 3, rel=1e-12)
    assert h.scalars() == {"active_parts": 2, "part_usage_entropy": h.part_usage_entropy,
                           "part_usage_entropy_fraction": h.part_usage_entropy_fraction,
                           "mean_visibility": h.mean_visibility}
    d = json.loads(json.dumps(h.to_dict()))
    assert d["active"] == [1, 2] and d["active_parts"] == 2 and len(d["part_std"]) == 3 and d["spread"] == "images_locations"
    assert h.summary().startswith("2/3 parts active") and "\n" not in h.summary()


def test_entropy_extremes():
    uniform = PartHealthAccumulator()
    uniform.update(torch.full((2, 4, 3, 3), 0.5))
    h = uniform.compute()
    assert h.part_usage_entropy == pytest.approx(math.log(4)) and h.part_usage_entropy_fraction == pytest.approx(1.0)
    assert h.active_parts == 0
    one = PartHealthAccumulator()
    v = torch.zeros(2, 4, 3, 3)
    v[:, 2] = 0.9
    one.update(v)
    assert one.compute().part_usage_entropy == 0.0 and one.compute().part_usage_entropy_fraction == 0.0
    nothing = PartHealthAccumulator()
    nothing.update(torch.zeros(1, 4, 2, 2))
    h = nothing.compute()
    assert (h.part_usage_entropy, h.mean_visibility, h.part_std) == (0.0, 0.0, (0.0,) * 4)  # one image: no spread


def test_streaming_is_batch_size_invariant():
    gen = torch.Generator().manual_seed(0)
    v = torch.rand(37, 5, 3, 4, generator=gen) ** 3
    whole = PartHealthAccumulator()
    whole.update(v)
    pieces = PartHealthAccumulator()
    for chunk in v.split([1, 10, 3, 23]):
        pieces.update(chunk)
    a, b = whole.compute(), pieces.compute()
    assert a.active == b.active and a.num_images == b.num_images == 37
    for name in ("part_mean", "part_std", "part_image_std"):
        torch.testing.assert_close(_f64(getattr(a, name)), _f64(getattr(b, name)), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(_f64(a.part_std), v.double().std((0, 2, 3)), rtol=1e-12, atol=1e-14)


def test_accumulator_validates():
    acc = PartHealthAccumulator()
    with pytest.raises(ValueError, match="no visibility maps"):
        acc.compute()
    with pytest.raises(ValueError, match=r"\(B, P, h, w\)"):
        acc.update(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        acc.update(torch.full((1, 2, 2, 2), 1.5))
    acc.update(torch.rand(1, 2, 2, 2))
    with pytest.raises(ValueError, match="3 parts after 2"):
        acc.update(torch.rand(1, 3, 2, 2))
    lenient = PartHealthAccumulator(strict=False)  # the trainer's: a diverged model's NaNs do not raise
    lenient.update(torch.full((2, 2, 2, 2), float("nan")))
    assert math.isnan(lenient.compute().mean_visibility) and lenient.compute().active == ()
    with pytest.raises(ValueError, match="spread"):
        acc.compute(spread="locations")
    with pytest.raises(ValueError, match="active_threshold"):
        acc.compute(active_threshold=-1)


# ----------------------------------------------------------------------------- models
def test_random_patchvae_matches_extract_features_and_is_deterministic():
    torch.manual_seed(0)
    model = create("patchvae_resnet9", in_chans=1, num_parts=6, part_dim=3)
    model.train()
    images = _uint8_images(50)
    health = part_health(model, images, batch_size=16)
    assert model.training, "the model's mode is restored"
    probs = extract_features(model, images, layer="visibility", amp=None, progress=False)["visibility"].double()
    assert probs.shape == (50, 6, 4, 4)
    torch.testing.assert_close(_f64(health.part_std), probs.std((0, 2, 3)), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(_f64(health.part_mean), probs.mean((0, 2, 3)), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(_f64(health.part_image_std), probs.mean((2, 3)).std(0), rtol=1e-9, atol=1e-12)
    assert health.mean_visibility == pytest.approx(float(probs.mean()), rel=1e-9)
    assert health.active == tuple(i for i, s in enumerate(probs.std((0, 2, 3)).tolist()) if s > 0.02)
    again = part_health(model, images, batch_size=50)
    assert again.active == health.active and again.num_images == 50
    torch.testing.assert_close(_f64(again.part_std), _f64(health.part_std), rtol=1e-4, atol=1e-6)
    assert part_health(model, images, batch_size=16) == health  # bit-identical with the same batching


def test_models_without_parts_get_a_clear_error():
    beta = create("beta_vae_resnet9_32", in_chans=1)
    assert has_part_visibility(create("patchvae_resnet9", in_chans=1)) and not has_part_visibility(beta)
    assert not has_part_visibility(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="part health needs part visibility: BetaVAE"):
        part_health(beta, _uint8_images(4))
    assert part_health_card_metrics(beta, _uint8_images(4), images="4 images") == ({}, "")


# ----------------------------------------------------------------------------- the shipped Fashion-MNIST weights
# docs/reproduce/visibility_stats.py's output on the first 1000 test images (std per part, 3 decimals)
SHIPPED = {
    "patchvae_resnet9.fmnist": ((6, 15), [0.017, 0.008, 0.008, 0.007, 0.008, 0.007, 0.147, 0.008, 0.007, 0.008, 0.008,
                                          0.008, 0.008, 0.008, 0.008, 0.107]),
    "patchvae_resnet9.fmnist_lw": ((0, 1, 3, 6, 15), [0.048, 0.025, 0.009, 0.022, 0.009, 0.009, 0.216, 0.008, 0.009,
                                                      0.008, 0.009, 0.009, 0.009, 0.008, 0.009, 0.031]),
}


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_weights_reproduce_visibility_stats(name, fashion_mnist_test):
    images = fashion_mnist_test.images[:1000]
    model = create(name, pretrained=True).eval()
    with torch.no_grad():  # what docs/reproduce/visibility_stats.py computes
        probs = model(BatchPreprocess(model.data_config)(images)).visibility_probs
    health = part_health(model, images)
    active, stds = SHIPPED[name]
    assert health.active == active and health.active_parts == len(active) and health.num_parts == 16
    assert [round(s, 3) for s in health.part_std] == stds
    assert health.active == tuple(i for i, s in enumerate(probs.std((0, 2, 3)).tolist()) if s > 0.02)
    torch.testing.assert_close(torch.tensor(health.part_std, dtype=torch.float32), probs.std((0, 2, 3)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor(health.part_mean, dtype=torch.float32), probs.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
    # the collapsed parts sit at the prior 1/16 with a spread of ~0.01 or less
    assert all(abs(health.part_mean[i] - 1 / 16) < 0.01 and health.part_std[i] < 0.01
               for i in range(16) if i not in active and i != 0)
    assert health.part_usage_entropy_fraction > 0.99  # usage is even: the collapsed parts all sit at the prior


@pytest.mark.data
def test_card_metrics_of_a_weights_folder(fashion_mnist_test, tmp_path):
    from patchvae.models._publish import build_publish_folder

    images = fashion_mnist_test.images[:1000]
    folder = ROOT / "weights" / "patchvae_resnet9.fmnist"
    metrics, note = part_health_card_metrics(folder, images, images="the first 1000 Fashion-MNIST test images")
    assert metrics["active_parts"] == 2 and metrics["num_parts"] == 16
    assert metrics["mean_visibility"] == pytest.approx(0.066, abs=5e-4)
    assert metrics["part_usage_entropy"] == pytest.approx(2.7627, abs=1e-4)
    assert "0.02" in note and "first 1000 Fashion-MNIST test images" in note
    beta = part_health_card_metrics(ROOT / "weights" / "beta_vae_resnet9_32.fmnist", images, images="x")
    assert beta == ({}, "")
    cfg = json.loads((folder / "config.json").read_text())
    _, out = build_publish_folder(folder, tmp_path / "card", name="patchvae_resnet9.fmnist",
                                  metrics={**cfg["metrics"], **metrics}, protocol=f"{cfg['protocol']} {note}")
    saved = json.loads((out / "config.json").read_text())
    assert saved["metrics"]["active_parts"] == 2 and saved["sha256"] == cfg["sha256"]
    assert "| active_parts | 2 |" in (out / "README.md").read_text()


# ----------------------------------------------------------------------------- trainer
def test_eval_pass_feeds_part_health_without_an_extra_forward():
    from patchvae.recipes import get_recipe
    from patchvae.training.distributed import World
    from patchvae.training.tasks import make_task
    from patchvae.training.trainer import _evaluate

    torch.manual_seed(0)
    recipe = get_recipe("fmnist_patchvae").with_overrides({"amp": "none"})
    model = create("patchvae_resnet9", in_chans=1)
    task = make_task(model, recipe, torch.device("cpu"), World(), None)
    task.train(False)
    batches = [(torch.randn(n, 1, 32, 32), torch.zeros(n)) for n in (8, 5)]
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    acc = PartHealthAccumulator()
    losses = _evaluate(task, batches, 0, acc)
    handle.remove()
    assert len(calls) == 2 and "loss" in losses and acc.num_images == 13
    expected = part_health(model, torch.cat([x for x, _ in batches]), preprocessed=True, batch_size=8)
    got = acc.compute()
    assert got.active == expected.active
    torch.testing.assert_close(_f64(got.part_std), _f64(expected.part_std), rtol=1e-6, atol=1e-9)

    beta = create("beta_vae_resnet9_32", in_chans=1)
    beta_task = make_task(beta, get_recipe("fmnist_beta_vae").with_overrides({"amp": "none"}), torch.device("cpu"), World(), None)
    beta_task.train(False)
    none = PartHealthAccumulator()
    _evaluate(beta_task, batches, 0, none)
    assert none.num_images == 0


@pytest.mark.data
def test_training_logs_part_health_every_epoch(tmp_path, fashion_mnist):
    from patchvae.recipes import get_recipe
    from patchvae.training import train

    recipe = get_recipe("fmnist_patchvae").with_overrides({"epochs": 2, "batch_size": 64, "amp": "none"})
    result = train(recipe, tmp_path, train_subset=128, eval_subset=64, save_images=False, export=False)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    logged = [r for r in records if r.get("split") == "part_health"]
    assert [r["epoch"] for r in logged] == [1, 2] and [r["step"] for r in logged] == [2, 4]
    keys = {"active_parts", "part_usage_entropy", "part_usage_entropy_fraction", "mean_visibility"}
    assert all(keys <= set(r) for r in logged)
    epochs = [r for r in records if r.get("event") == "epoch"]
    for record, summary, line in zip(epochs, result.history, logged):
        health = summary["part_health"]
        assert record["part_health"] == health and keys | {"active"} == set(health)
        assert health["active_parts"] == len(health["active"]) and 0 <= health["active_parts"] <= 16
        assert 0 < health["mean_visibility"] < 1 and 0 < health["part_usage_entropy_fraction"] <= 1
        assert all(line[k] == health[k] for k in keys)


# ----------------------------------------------------------------------------- CLI
@pytest.mark.data
def test_cli_eval_probe_parts(fashion_mnist, tmp_path, capsys):
    out = tmp_path / "parts.json"
    assert main(["eval", "patchvae_resnet9.fmnist", "--probe", "parts", "--limit-test", "300", "--device", "cpu",
                 "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    record = data["part_health"]
    assert data["results"] == [] and record["num_images"] == 300 and record["num_parts"] == 16
    assert record["active_parts"] == len(record["active"]) and record["active_threshold"] == 0.02
    assert f"{record['active_parts']}/16 parts active" in printed and "300 images" in printed

    torch.manual_seed(0)
    save_pretrained(create("patchvae_resnet9", in_chans=1), tmp_path / "pvae")
    save_pretrained(create("beta_vae_resnet9_32", in_chans=1), tmp_path / "beta")
    common = ["--limit-train", "100", "--limit-test", "50", "--device", "cpu", "--no-progress"]
    assert main(["eval", str(tmp_path / "pvae"), "--probe", "all", "--active-threshold", "0", *common, "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["probe"] for r in data["results"]] == ["linear", "knn"]
    assert data["part_health"]["active_threshold"] == 0.0 and data["part_health"]["num_images"] == 50
    assert main(["eval", str(tmp_path / "beta"), "--probe", "all", *common, "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["probe"] for r in data["results"]] == ["linear", "knn"] and "part_health" not in data  # no parts: skipped
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "beta"), "--probe", "parts", *common]) == 1
    assert "needs a model with part visibility" in capsys.readouterr().err
