"""Fine-tuning protocol fidelity (issue #9): the authors' classifier head init and BatchNorm handling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from patchvae.data import FASHION_MNIST, ImageTensorDataset
from patchvae.evaluation import PROTOCOLS, FinetuneConfig, build_classifier, finetune, get_protocol
from patchvae.evaluation.finetune import protocol_name
from patchvae.models import build_backbone

TINY = FinetuneConfig(epochs=1, batch_size=16, eval_batch_size=32, lr_step=1, seed=0)
AUTHORS = TINY.replace(head_init="authors", bn_mode="authors")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_images(n: int = 64, classes: int = 4, seed: int = 0, size: int = 28) -> ImageTensorDataset:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    noise = torch.randint(0, 96, (n, 1, size, size), generator=gen)
    return ImageTensorDataset((noise + (labels * 48).view(-1, 1, 1, 1)).clamp(0, 255).to(torch.uint8), labels)


def random_phi(seed: int = 0):
    torch.manual_seed(seed)
    phi = build_backbone("resnet9", 1)
    with torch.no_grad():  # non-default BN parameters and statistics, so "unchanged" is not "still at the defaults"
        for m in phi.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return phi


def _bn_layers(module: torch.nn.Module) -> dict[str, torch.nn.BatchNorm2d]:
    return {n: m for n, m in module.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}


# ----------------------------------------------------------------------------- protocols
def test_paper_protocols_default_to_the_authors_and_fashion_mnist_keeps_its_cards_settings():
    for name, config in PROTOCOLS.items():
        expected = ("pytorch", "ours") if name == "fashion_mnist" else ("authors", "authors")
        assert (config.head_init, config.bn_mode) == expected, name
    assert (FinetuneConfig().head_init, FinetuneConfig().bn_mode) == ("pytorch", "ours")
    assert protocol_name(get_protocol("paper_cifar100"), "paper_cifar100") == "paper_cifar100"
    assert protocol_name(get_protocol("paper_cifar100", bn_mode="ours"), "paper_cifar100") == "paper_cifar100-modified"
    assert protocol_name(get_protocol("fashion_mnist", head_init="authors"), "fashion_mnist") == "fashion_mnist-modified"
    with pytest.raises(ValueError, match="head_init"):
        FinetuneConfig(head_init="xavier")
    with pytest.raises(ValueError, match="bn_mode"):
        FinetuneConfig(bn_mode="frozen")


# ----------------------------------------------------------------------------- head init
def test_authors_head_init_statistics():
    torch.manual_seed(0)
    model = build_classifier(random_phi(), 10, img_size=32, freeze="conv5", head_init="authors")
    fc1, fc = model.head.fc1, model.fc
    assert fc1.weight.shape == (512, 128 * 4 * 4) and fc.weight.shape == (10, 512)
    for layer, tol in ((fc1, 0.005), (fc, 0.03)):  # 1M and 5k draws of N(0, 0.01²)
        w = layer.weight.detach().double()
        assert w.std().item() == pytest.approx(0.01, rel=tol)
        assert abs(w.mean().item()) < 4 * 0.01 / math.sqrt(w.numel())
        assert torch.count_nonzero(layer.bias) == 0
    # the tails of a normal, not a uniform: about 4.6% of draws beyond 2σ
    assert (fc1.weight.abs() > 0.02).float().mean().item() == pytest.approx(0.0455, abs=0.002)

    torch.manual_seed(0)
    default = build_classifier(random_phi(), 10, img_size=32, freeze="conv5", head_init="pytorch")
    bound = 1 / math.sqrt(2048)  # nn.Linear: U(±1/sqrt(fan_in)) for weights and biases
    assert default.head.fc1.weight.abs().max().item() <= bound
    assert default.head.fc1.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.005)
    assert torch.count_nonzero(default.head.fc1.bias) > 500
    with pytest.raises(ValueError, match="head_init"):
        build_classifier(random_phi(), 10, img_size=32, head_init="zeros")


def test_finetune_uses_the_configs_head_init():
    result = finetune(random_phi(), tiny_images(32), tiny_images(16, seed=1), num_classes=4, freeze="conv5",
                      config=AUTHORS.replace(lr=1e-12), data_config=FASHION_MNIST, progress=False)
    fc1 = result.model.head.fc1
    assert fc1.weight.std().item() == pytest.approx(0.01, rel=0.005) and fc1.bias.abs().max().item() < 1e-9
    assert result.config["head_init"] == "authors" and result.config["bn_mode"] == "authors"


# ----------------------------------------------------------------------------- BatchNorm
def test_authors_bn_mode_flags_and_modes():
    model = build_classifier(random_phi(), 4, img_size=32, freeze="conv3", bn_mode="authors")
    bns = _bn_layers(model.backbone)
    assert len(bns) == 10
    assert not any(p.requires_grad for m in bns.values() for p in m.parameters())  # every BN scale/shift, all units
    assert all(p.requires_grad for n, p in model.backbone.named_parameters() if n.startswith("layer2.") and ".conv" in n)
    assert not any(p.requires_grad for n, p in model.backbone.named_parameters() if n.startswith(("conv1.", "layer1.")))
    model.train()
    assert all(m.training for m in bns.values())  # frozen units' BN too
    model.eval()
    assert not any(m.training for m in bns.values())
    model.set_bn_mode("ours")  # back: trainable units' BN trains again, frozen units' BN in eval mode
    model.train()
    assert all(p.requires_grad for n, p in model.backbone.named_parameters() if n.startswith("layer2."))
    assert not model.backbone.bn1.training and model.backbone.layer2[0].bn1.training
    with pytest.raises(ValueError, match="bn_mode"):
        model.set_bn_mode("frozen")


def test_authors_bn_uses_batch_statistics_in_frozen_units():
    x = torch.randn(16, 1, 32, 32) * 2 + 0.5
    for mode in ("authors", "ours"):
        model = build_classifier(random_phi(), 4, img_size=32, freeze="conv3", bn_mode=mode).train()
        bn = model.backbone.bn1  # the stem BN: frozen by conv3
        seen = {}
        handle = bn.register_forward_hook(
            lambda _m, inp, out, seen=seen: seen.update(inp=inp[0].detach().clone(), out=out.detach().clone())
        )
        running = bn.running_mean.clone()
        model(x)
        handle.remove()
        if mode == "authors":  # normalised with the batch's own mean and variance
            batch = F.batch_norm(seen["inp"], None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
            torch.testing.assert_close(seen["out"], batch)
            assert not torch.equal(bn.running_mean, running), "running statistics drift in frozen units"
        else:  # ours: the frozen unit's running statistics, unchanged
            fixed = F.batch_norm(seen["inp"], running, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
            torch.testing.assert_close(seen["out"], fixed)
            assert torch.equal(bn.running_mean, running)


@pytest.mark.parametrize("preset", ["conv1", "conv3", "conv5"])
def test_authors_bn_leaves_affine_parameters_unchanged_after_training(preset):
    phi = random_phi()
    before = {k: v.clone() for k, v in phi.state_dict().items()}
    result = finetune(phi, tiny_images(), tiny_images(16, seed=1), num_classes=4, freeze=preset,
                      config=AUTHORS, data_config=FASHION_MNIST, progress=False)
    after = result.model.backbone.state_dict()
    bn_names = _bn_layers(phi)
    affine = [f"{n}.{p}" for n in bn_names for p in ("weight", "bias")]
    assert len(affine) == 20 and all(torch.equal(after[k], before[k]) for k in affine), "a BN scale/shift changed"
    running = [f"{n}.running_mean" for n in bn_names]
    assert all(not torch.equal(after[k], before[k]) for k in running), "running statistics drift in every unit"
    frozen = {"conv1": ("conv1.",), "conv3": ("conv1.", "layer1."), "conv5": ("conv1.", "layer1.", "layer2.")}[preset]
    convs = [k for k in before if k.endswith(".weight") and k[: -len(".weight")] not in bn_names]
    assert len(convs) == 10
    for k in convs:
        assert torch.equal(after[k], before[k]) == k.startswith(frozen), k
    model = result.model
    n_head = sum(p.numel() for p in (*model.head.parameters(), *model.fc.parameters()))
    n_convs = sum(p.numel() for n, p in model.backbone.named_parameters() if n in convs and not n.startswith(frozen))
    assert result.trainable_params == n_head + n_convs  # no BN parameter is trained


def test_authors_conv5_runs_phi_every_epoch_and_is_reproducible(caplog):
    import sys

    module = sys.modules["patchvae.evaluation.finetune"]
    train, test = tiny_images(48), tiny_images(16, seed=1)
    with caplog.at_level("INFO", logger=module.__name__):
        a = finetune(random_phi(), train, test, num_classes=4, freeze="conv5", config=AUTHORS.replace(epochs=2),
                     data_config=FASHION_MNIST, progress=False)
    assert "computing φ(x) once" not in caplog.text  # BN in train mode: φ(x) depends on the batch
    b = finetune(random_phi(), train, test, num_classes=4, freeze="conv5", config=AUTHORS.replace(epochs=2),
                 data_config=FASHION_MNIST, progress=False)
    assert (a.top1, a.top5) == (b.top1, b.top5) and [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


@pytest.mark.data
def test_cli_finetune_head_init_and_bn_mode(fashion_mnist, tmp_path):
    import json

    from patchvae.cli import main

    out = tmp_path / "ft.json"
    common = ["finetune", "random", "--preset", "conv3", "--limit-train", "64", "--limit-test", "32", "--epochs", "1",
              "--batch-size", "32", "--device", "cpu", "--no-progress", "--out", str(out)]
    assert main(common) == 0
    (res,) = json.loads(out.read_text())["results"]
    assert (res["config"]["head_init"], res["config"]["bn_mode"]) == ("pytorch", "ours")  # fashion_mnist's
    assert main([*common, "--head-init", "authors", "--bn-mode", "authors"]) == 0
    (res,) = json.loads(out.read_text())["results"]
    assert (res["config"]["head_init"], res["config"]["bn_mode"]) == ("authors", "authors")
    assert res["protocol"] == "fashion_mnist-modified"
