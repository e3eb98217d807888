"""The weights shipped in weights/: present, intact, loadable by name, trained, and their card's numbers reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import patchvae.models as zoo
from patchvae.data import BatchPreprocess
from patchvae.models._weights import sha256sum

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
PACKAGED = sorted(n for n in zoo.list_pretrained() if zoo.get_pretrained_cfg(n).file)


def test_the_zoo_ships_fashion_mnist_weights():
    assert {"patchvae_resnet9.fmnist", "patchvae_resnet9.fmnist_lw", "beta_vae_resnet9_32.fmnist"} <= set(PACKAGED)
    # the first registered tag is the default for pretrained=True
    assert zoo.get_pretrained_cfg("patchvae_resnet9").tag == "fmnist"


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_folder_is_complete_and_intact(name):
    cfg = zoo.get_pretrained_cfg(name)
    path = WEIGHTS / cfg.file
    assert path.is_file(), f"{cfg.file} is registered but missing from weights/"
    assert sha256sum(path) == cfg.sha256
    folder = json.loads((path.parent / "config.json").read_text())
    assert folder["sha256"] == cfg.sha256 and folder["metrics"] == dict(cfg.metrics)
    assert folder["description"] == cfg.description and folder["command"] == cfg.command
    card = (path.parent / "README.md").read_text()
    assert "license: mit" in card and "@inproceedings" in card
    for value in cfg.metrics.values():
        assert f"| {value:g} |" in card, f"model card of {name} does not show {value}"
    assert cfg.command and cfg.eval_command and cfg.protocol and cfg.epochs


@pytest.mark.parametrize("name", PACKAGED)
def test_pretrained_loads_by_name_and_reconstructs(name, fashion_mnist_test):
    cfg = zoo.get_pretrained_cfg(name)
    model = zoo.create(name, pretrained=True).eval()
    assert model.pretrained_cfg.name == name
    assert sum(p.numel() for p in model.parameters()) == cfg.num_params
    random = zoo.create(cfg.architecture, **cfg.model_args).eval()

    x = BatchPreprocess(cfg.data_config)(fashion_mnist_test.images[:256])
    assert x.shape[1:] == cfg.data_config.input_size
    with torch.no_grad():
        errors = {k: (m(x).reconstruction - x).pow(2).mean().item() for k, m in {"trained": model, "random": random}.items()}
    # trained weights reconstruct held-out images; a random init of the same model does not
    assert errors["trained"] < 0.25 * errors["random"], errors


def test_default_weights_through_timm_torch_hub_and_extract_features():
    import timm

    from patchvae import extract_features

    repo = Path(__file__).resolve().parents[1]
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    phi = zoo.create_backbone("patchvae_resnet9.fmnist", pretrained=True).eval()
    by_timm = timm.create_model("patchvae_resnet9", pretrained=True).eval()
    by_hub = torch.hub.load(str(repo), "patchvae_resnet9", source="local", pretrained=True).eval()
    assert by_hub.pretrained_cfg.name == "patchvae_resnet9.fmnist" and by_timm.pretrained_cfg["tag"] == "fmnist"
    inputs = BatchPreprocess(phi.data_config)(x)
    with torch.no_grad():
        torch.testing.assert_close(by_timm(inputs), phi(inputs), rtol=0, atol=0)
        torch.testing.assert_close(by_hub.encoder.backbone.forward_features(inputs), phi.forward_features(inputs), rtol=0, atol=0)
        pooled = phi.forward_features(inputs).mean((2, 3))
    # uint8 (N, 1, 28, 28) images: extract_features pads them to 32×32 and normalises as the weights say
    feats = extract_features("patchvae_resnet9", x, amp=None)
    torch.testing.assert_close(torch.as_tensor(feats["pooled"]), pooled, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.data
def test_model_card_conv5_number_reproduces(fashion_mnist, fashion_mnist_test):
    """Re-run the card's Conv5 fine-tuning (φ frozen: features computed once, ~1-2 min) and compare."""
    from patchvae.evaluation import finetune

    name = "patchvae_resnet9.fmnist"
    cfg = zoo.get_pretrained_cfg(name)
    assert f"patchvae finetune {name}" in cfg.eval_command
    result = finetune(name, fashion_mnist, fashion_mnist_test, num_classes=10, freeze="conv5",
                      config="fashion_mnist", progress=False)
    # one point of slack: thread count and BLAS order change the last digits of float32 SGD
    assert abs(result.top1 - cfg.metrics["conv5_top1"]) < 1.0, (result.top1, cfg.metrics)


def test_readme_usage_example_runs_as_written():
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    out = namespace["out"]
    assert out.reconstruction.shape == (8, 1, 32, 32) and out.visibility_probs.shape == (8, 16, 4, 4)
    assert out.appearance_mean.shape == (8, 16, 6) and out.patch_code.shape == (8, 96, 4, 4)
    assert namespace["rgb"].encoder.backbone.conv1.in_channels == 3
    assert namespace["clf"].num_classes == 10
