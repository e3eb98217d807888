"""Evaluation protocol (paper §4): fine-tuning with freeze presets, lr schedule, top-k, probes, baselines, CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from patchvae.cli import main
from patchvae.data import FASHION_MNIST, ImageTensorDataset
from patchvae.evaluation import (
    FinetuneConfig,
    build_classifier,
    classification_splits,
    finetune,
    get_protocol,
    knn_classify,
    knn_probe,
    limit_dataset,
    linear_probe,
    resolve_backbone,
    top_k_accuracy,
)
from patchvae.models import ResNetTrunk, build_backbone, create, save_pretrained

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny batches gain nothing from a second thread, and OpenMP threads spinning against the other
    processes of a shared 2-core machine made these tests ~50x slower: run them on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = FinetuneConfig(epochs=1, batch_size=16, eval_batch_size=32, lr_step=1, seed=0)


def tiny_images(n: int = 64, classes: int = 4, seed: int = 0, size: int = 28) -> ImageTensorDataset:
    """Random uint8 images (n, 1, size, size) whose mean brightness depends on the label (learnable)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    noise = torch.randint(0, 96, (n, 1, size, size), generator=gen)
    images = (noise + (labels * 48).view(-1, 1, 1, 1)).clamp(0, 255).to(torch.uint8)
    return ImageTensorDataset(images, labels)


def random_phi(seed: int = 0, in_chans: int = 1) -> ResNetTrunk:
    torch.manual_seed(seed)
    phi = build_backbone("resnet9", in_chans)
    with torch.no_grad():  # non-default BN statistics, so "unchanged" is not "still at the defaults"
        for m in phi.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return phi


# ----------------------------------------------------------------------------- top-k accuracy
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), c=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_top_k_accuracy_matches_manual_count(n, c, seed):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, c, generator=gen)
    targets = torch.randint(0, c, (n,), generator=gen)
    ks = (1, 2, 5, 20)
    manual = []
    for k in ks:
        hits = 0
        for row, target in zip(scores.tolist(), targets.tolist()):
            rank = sum(1 for v in row if v > row[target])  # classes scored strictly higher than the target
            hits += rank < k
        manual.append(100.0 * hits / n)
    assert top_k_accuracy(scores, targets, ks) == pytest.approx(manual)


def test_top_k_accuracy_small_example():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    targets = torch.tensor([1, 1, 0, 2])  # top-1 hit, 2nd, 3rd, 3rd
    assert top_k_accuracy(scores, targets, (1, 2, 3)) == (25.0, 50.0, 100.0)
    with pytest.raises(ValueError):
        top_k_accuracy(scores, targets[:3])


# ----------------------------------------------------------------------------- protocols and lr schedule
def test_paper_protocols_and_step_schedule():
    cifar = get_protocol("paper_cifar100")
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.momentum, cifar.weight_decay) == (90, 128, 1e-2, 0.9, 1e-4)
    lrs = [cifar.lr_at(e) for e in range(cifar.epochs)]
    assert lrs[0] == lrs[29] == 1e-2
    assert lrs[30] == pytest.approx(1e-3) and lrs[59] == pytest.approx(1e-3)
    assert lrs[60] == pytest.approx(1e-4) and lrs[89] == pytest.approx(1e-4)
    assert get_protocol("paper_places205").epochs == 5 and get_protocol("paper_imagenet").epochs == 30
    fm = get_protocol("fashion_mnist")
    assert [fm.lr_at(e) for e in (0, 3, 4, 7, 8, 11)] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4, 1e-4])
    assert fm.epochs == 12 and get_protocol("fashion_mnist", seed=3).seed == 3
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("cifar")
    with pytest.raises(ValueError):
        FinetuneConfig(epochs=0)


def test_finetune_divides_lr_by_ten_at_each_step():
    config = TINY.replace(epochs=3, lr_step=1, eval_every=1)
    result = finetune(random_phi(), tiny_images(32), tiny_images(16, seed=1), num_classes=4, freeze="conv5",
                      config=config, data_config=FASHION_MNIST, progress=False)
    assert [h["lr"] for h in result.history] == pytest.approx([1e-2, 1e-3, 1e-4])  # the optimizer's rate
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert all("test_top1" in h for h in result.history) and result.history[-1]["test_top1"] == result.top1


# ----------------------------------------------------------------------------- freezing
def _phi_state(model_or_phi: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model_or_phi.state_dict().items() if k.startswith(prefix)}


@pytest.mark.parametrize(("preset", "frozen", "trainable"), [
    ("conv1", ("conv1.", "bn1."), ("layer1.", "layer2.")),
    ("conv3", ("conv1.", "bn1.", "layer1."), ("layer2.",)),
    ("conv5", ("conv1.", "bn1.", "layer1.", "layer2."), ()),
])
def test_finetune_honours_freeze_preset(preset, frozen, trainable):
    phi = random_phi()
    before = _phi_state(phi)
    result = finetune(phi, tiny_images(), tiny_images(16, seed=1), num_classes=4, freeze=preset,
                      config=TINY, data_config=FASHION_MNIST, progress=False)
    after = result.model.backbone.state_dict()
    assert all(torch.equal(phi.state_dict()[k], v) for k, v in before.items()), "the caller's φ was modified"
    for key, value in before.items():
        if key.startswith(frozen):  # weights and BN running statistics (incl. num_batches_tracked)
            assert torch.equal(after[key], value), f"{preset}: frozen {key} changed"
    for prefix in trainable:
        weights = [k for k in before if k.startswith(prefix) and k.endswith("conv1.weight")]
        stats = [k for k in before if k.startswith(prefix) and k.endswith("running_mean")]
        assert weights and stats
        assert all(not torch.equal(after[k], before[k]) for k in weights), f"{preset}: trainable {prefix} did not train"
        assert all(not torch.equal(after[k], before[k]) for k in stats), f"{preset}: BN stats of {prefix} did not move"
    model = result.model
    n_head = sum(p.numel() for p in (*model.head.parameters(), *model.fc.parameters()))
    n_phi_trainable = sum(p.numel() for n, p in model.backbone.named_parameters() if n.startswith(trainable))
    assert result.trainable_params == n_head + n_phi_trainable
    assert result.freeze == preset


# ----------------------------------------------------------------------------- reproducibility
def test_same_seed_same_numbers():
    train, test = tiny_images(48), tiny_images(16, seed=1)
    config = TINY.replace(epochs=2)
    runs = [finetune(random_phi(), train, test, num_classes=4, freeze="conv1", config=config,
                     data_config=FASHION_MNIST, progress=False) for _ in range(2)]
    other = finetune(random_phi(), train, test, num_classes=4, freeze="conv1", config=config.replace(seed=1),
                     data_config=FASHION_MNIST, progress=False)
    a, b = runs
    assert (a.top1, a.top5) == (b.top1, b.top5)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["train_loss"] for h in other.history] != [h["train_loss"] for h in a.history]


def test_conv5_computes_phi_once_with_identical_results(monkeypatch, caplog):
    import sys

    module = sys.modules["patchvae.evaluation.finetune"]
    train, test = tiny_images(48), tiny_images(16, seed=1)
    config = TINY.replace(epochs=2)
    with caplog.at_level("INFO", logger=module.__name__):
        cached = finetune(random_phi(), train, test, num_classes=4, freeze="conv5", config=config,
                          data_config=FASHION_MNIST, progress=False)
    assert "computing φ(x) once" in caplog.text
    monkeypatch.setattr(module, "_CACHE_LIMIT_BYTES", 0)  # force φ to run every epoch
    caplog.clear()
    with caplog.at_level("INFO", logger=module.__name__):
        every_epoch = finetune(random_phi(), train, test, num_classes=4, freeze="conv5", config=config,
                               data_config=FASHION_MNIST, progress=False)
    assert "computing φ(x) once" not in caplog.text
    assert (cached.top1, cached.top5) == (every_epoch.top1, every_epoch.top5)
    torch.testing.assert_close([h["train_loss"] for h in cached.history], [h["train_loss"] for h in every_epoch.history])
    a, b = cached.model.state_dict(), every_epoch.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    # with random flips φ(x) changes every epoch: no caching
    caplog.clear()
    with caplog.at_level("INFO", logger=module.__name__):
        finetune(random_phi(), train, test, num_classes=4, freeze="conv5", config=config,
                 data_config=dataclasses.replace(FASHION_MNIST, hflip=True), progress=False)
    assert "computing φ(x) once" not in caplog.text


def test_finetune_leaves_global_rng_alone():
    phi = random_phi()
    state = torch.get_rng_state()
    finetune(phi, tiny_images(32), tiny_images(16, seed=1), num_classes=4, freeze="conv5", config=TINY,
             data_config=FASHION_MNIST, progress=False)
    assert torch.equal(torch.get_rng_state(), state)


def test_generic_dataset_path_is_reproducible_and_bf16_runs():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4
    images = torch.randn(40, 1, 32, 32, generator=gen) + labels.view(-1, 1, 1, 1).float()
    train, test = TensorDataset(images[:32], labels[:32]), TensorDataset(images[32:], labels[32:])
    runs = [finetune(random_phi(), train, test, num_classes=4, freeze="conv3", config=TINY.replace(epochs=2), progress=False)
            for _ in range(2)]
    a, b = runs
    assert (a.top1, a.top5) == (b.top1, b.top5)
    assert [(h["train_loss"], h["train_top1"]) for h in a.history] == [(h["train_loss"], h["train_top1"]) for h in b.history]
    assert a.num_test == 8 and a.data_config is None and len(a.history) == 2
    bf16 = finetune(random_phi(), train, test, num_classes=4, freeze="conv3", config=TINY.replace(amp="bf16"),
                    progress=False)
    assert math.isfinite(bf16.history[0]["train_loss"]) and 0 <= bf16.top1 <= 100


# ----------------------------------------------------------------------------- probes
def test_linear_probe_separates_linearly_separable_features():
    gen = torch.Generator().manual_seed(0)
    true_w = torch.randn(5, 24, generator=gen)
    x = torch.randn(4000, 24, generator=gen) * 3 + 1  # not standardised: the probe must do it
    logits = x @ true_w.T
    top2 = logits.topk(2, dim=1).values
    keep = (top2[:, 0] - top2[:, 1]) > 3.0  # a margin: strictly linearly separable
    x, y = x[keep], logits[keep].argmax(1)
    result = linear_probe(x[:1500], y[:1500], x[1500:], y[1500:], num_classes=5)
    assert result.top1 >= 99.5 and result.top5 == 100.0
    assert result.params["l2"] in (1e-6, 1e-5, 1e-4, 1e-3) and len(result.params["held_out_top1"]) == 6
    assert result.to_dict()["probe"] == "linear"
    json.dumps(result.to_dict())
    # random labels are not learnable: the probe must not be able to cheat
    shuffled = y[torch.randperm(len(y), generator=gen)]
    chance = linear_probe(x[:1500], shuffled[:1500], x[1500:], shuffled[1500:], num_classes=5)
    assert chance.top1 < 40.0


def test_knn_probe_on_separated_clusters():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 32, generator=gen) * 5
    labels = torch.arange(600) % 6
    feats = centres[labels] + 0.3 * torch.randn(600, 32, generator=gen)
    result = knn_probe(feats[:500], labels[:500], feats[500:], labels[500:], num_classes=6)
    assert result.top1 == 100.0 and result.params["k"] == 20
    scrambled = knn_probe(feats[:500], labels[:500][torch.randperm(500, generator=gen)], feats[500:], labels[500:])
    assert scrambled.top1 < 50.0


def test_knn_votes_are_similarity_weighted():
    # one neighbour of class 0 at cosine 1.0, two of class 1 at cosine 0.6: a plain majority says 1
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2])
    scores = knn_classify(train, labels, torch.tensor([[1.0, 0.0]]), num_classes=3, k=3, center=False)
    assert scores.argmax(1).item() == 0
    expected = torch.tensor([[math.exp(1 / 0.07), 2 * math.exp(0.6 / 0.07), 0.0]])
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=0)


# ----------------------------------------------------------------------------- backbone sources and baselines
def test_random_and_supervised_baselines():
    rand = resolve_backbone("random", arch="patchvae_resnet9", in_chans=1, img_size=32, seed=0)
    again = resolve_backbone("random", arch="patchvae_resnet9", in_chans=1, img_size=32, seed=0)
    other = resolve_backbone("random", arch="patchvae_resnet9", in_chans=1, img_size=32, seed=1)
    assert isinstance(rand.backbone, ResNetTrunk) and rand.backbone.in_chans == 1 and rand.kind == "random"
    assert rand.data_config.input_size == (1, 32, 32)
    assert torch.equal(rand.backbone.conv1.weight, again.backbone.conv1.weight)
    assert not torch.equal(rand.backbone.conv1.weight, other.backbone.conv1.weight)
    assert rand.freeze_for("conv3") == "conv3"
    sup = resolve_backbone("supervised", in_chans=1, seed=0)
    assert sup.freeze_for("conv5") == "none" and torch.equal(sup.backbone.conv1.weight, rand.backbone.conv1.weight)
    assert resolve_backbone("random", arch="resnet18", in_chans=3).backbone.num_features == 512

    train, test = tiny_images(32), tiny_images(16, seed=1)
    common = {"num_classes": 4, "freeze": "conv5", "config": TINY, "data_config": FASHION_MNIST, "progress": False}
    r = finetune("random", train, test, **common)
    s = finetune("supervised", train, test, **common)
    assert r.freeze == "conv5" and r.backbone == "random:patchvae_resnet9"
    assert not any(p.requires_grad for p in r.model.backbone.parameters())
    assert s.freeze == "none" and all(p.requires_grad for p in s.model.parameters())
    assert s.trainable_params == sum(p.numel() for p in s.model.parameters())
    with pytest.raises(ValueError, match="neither a weights folder"):
        resolve_backbone("no_such_model")


def test_backbone_from_weights_folder(tmp_path):
    torch.manual_seed(3)
    model = create("patchvae_resnet9", in_chans=1)
    save_pretrained(model, tmp_path / "w")
    for path in (tmp_path / "w", tmp_path / "w" / "model.safetensors"):
        source = resolve_backbone(path)
        assert source.kind == "folder" and source.backbone.in_chans == 1
        assert source.data_config == model.data_config
        expected = model.backbone.state_dict()
        got = source.backbone.state_dict()
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
    clf = build_classifier(source.backbone, 10, img_size=32, freeze="conv3")
    assert all(torch.equal(clf.backbone.state_dict()[k], v) for k, v in expected.items())
    assert clf.frozen_units == 3


# ----------------------------------------------------------------------------- datasets and CLI
def test_classification_splits_and_limits(fashion_mnist):
    train, test, num_classes, data_config = classification_splits("fashion_mnist")
    assert (len(train), len(test), num_classes, data_config) == (60_000, 10_000, 10, FASHION_MNIST)
    a, b = limit_dataset(train, 100, seed=0), limit_dataset(train, 100, seed=0)
    assert len(a) == 100 and torch.equal(a.labels, b.labels) and torch.equal(a.images, b.images)
    with pytest.raises(ValueError, match="unknown dataset"):
        classification_splits("mnist-9")


def test_cli_finetune_and_eval_smoke(fashion_mnist, tmp_path, capsys):
    out = tmp_path / "ft.json"
    rc = main(["finetune", "random", "--preset", "conv5", "--limit-train", "256", "--limit-test", "128",
               "--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    (res,) = data["results"]
    assert data["dataset"] == "fashion_mnist" and res["freeze"] == "conv5"
    assert (res["num_train"], res["num_test"], res["num_classes"]) == (256, 128, 10)
    assert res["config"]["epochs"] == 1 and res["protocol"] == "fashion_mnist-modified"
    assert 0 <= res["top1"] <= res["top5"] <= 100 and len(res["history"]) == 1
    assert "conv5" in capsys.readouterr().out

    torch.manual_seed(0)
    save_pretrained(create("patchvae_resnet9", in_chans=1), tmp_path / "w")
    out = tmp_path / "probe.json"
    rc = main(["eval", str(tmp_path / "w"), "--probe", "all", "--limit-train", "300", "--limit-test", "100",
               "--device", "cpu", "--no-progress", "--out", str(out)])
    assert rc == 0
    results = json.loads(out.read_text())["results"]
    assert [r["probe"] for r in results] == ["linear", "knn"]
    assert all(10.0 < r["top1"] <= 100 and r["num_train"] == 300 for r in results)  # better than chance
    assert main(["eval", "supervised", "--limit-train", "10", "--no-progress"]) == 1
