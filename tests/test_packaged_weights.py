"""The weights shipped in weights/: present, intact, loadable by name, trained, and their card's numbers reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import patchvae.models as zoo
from patchvae.data import BatchPreprocess
from patchvae.evaluation import is_likelihood_model
from patchvae.models._papers import get_paper
from patchvae.models._publish import model_card
from patchvae.models._weights import sha256sum

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
PACKAGED = sorted(n for n in zoo.list_pretrained() if zoo.get_pretrained_cfg(n).file)


def test_the_zoo_ships_cifar10_and_fashion_mnist_weights():
    assert {"patchvae_resnet9.cifar10", "beta_vae_resnet9_32.cifar10", "patchvae_resnet9.fmnist",
            "patchvae_resnet9.fmnist_lw", "beta_vae_resnet9_32.fmnist"} <= set(PACKAGED)
    # the first registered tag is the default for pretrained=True: the RGB weights trained on natural images
    # PatchVAE: the best RGB setting (β_vis 0.96 beats the paper's β_vis by 6 points at Conv5, docs/results.md)
    assert zoo.get_pretrained_cfg("patchvae_resnet9").tag == "cifar10_tuned"
    assert zoo.get_pretrained_cfg("beta_vae_resnet9_32").tag == "cifar10"
    assert zoo.get_pretrained_cfg("patchvae_resnet9.cifar10").model_args == {"in_chans": 3}


@pytest.mark.parametrize("name", [n for n in PACKAGED if n.startswith("patchvae_resnet9.cifar10")])
def test_cifar10_patchvae_card_reports_part_health(name):
    metrics = zoo.get_pretrained_cfg(name).metrics
    assert metrics["num_parts"] == 16 and 8 <= metrics["active_parts"] <= 16  # the bar: at least 8 of 16 alive
    assert 0 < metrics["mean_visibility"] < 1 and 0 < metrics["part_usage_entropy"] <= 2.7726  # log 16


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
    assert card == model_card(folder), f"the card of {name} is stale: run python docs/reproduce/refresh_cards.py"
    assert "license: mit" in card and get_paper(cfg.paper).bibtex in card  # the family's own source
    for value in cfg.metrics.values():
        assert f"| {value:g} |" in card, f"model card of {name} does not show {value}"
    assert cfg.command and cfg.eval_command and cfg.protocol and cfg.epochs


@pytest.fixture(scope="module")
def test_images(request):
    """256 test images of each dataset the packaged weights were trained on."""
    loaded = {}

    def images(dataset: str) -> torch.Tensor:
        if dataset not in loaded:
            fixture = {"fashion_mnist": "fashion_mnist_test", "cifar10": "cifar10_test"}[dataset]
            loaded[dataset] = request.getfixturevalue(fixture).images[:256]
        return loaded[dataset]

    return images


@pytest.mark.parametrize("name", PACKAGED)
def test_pretrained_loads_by_name_and_reconstructs(name, test_images):
    cfg = zoo.get_pretrained_cfg(name)
    model = zoo.create(name, pretrained=True).eval()
    assert model.pretrained_cfg.name == name
    assert sum(p.numel() for p in model.parameters()) == cfg.num_params
    random = zoo.create(cfg.architecture, **cfg.model_args).eval()

    x = BatchPreprocess(cfg.data_config)(test_images(cfg.dataset))
    assert x.shape[1:] == cfg.data_config.input_size
    if cfg.paper == "zhang2022" and is_likelihood_model(model):  # reconstruct() samples pixel by pixel: the −ELBO
        with torch.no_grad():
            nll = {k: (t.reconstruction_nll + t.kl).mean().item()
                   for k, t in (("trained", model.elbo_terms(x)), ("random", random.elbo_terms(x)))}
        assert nll["trained"] < 0.9 * nll["random"], nll
        return
    with torch.no_grad():
        recons = {"trained": model.reconstruct(x), "random": random.reconstruct(x)}
        # patch VAEs reconstruct the largest tiled region of the image (top left)
        errors = {k: (r - x[..., : r.shape[-2], : r.shape[-1]]).pow(2).mean().item() for k, r in recons.items()}
    # trained weights reconstruct held-out images; a random init of the same model does not. A β = 250 VAE
    # stores ~2 bits per image by design (Sixt's β-VAE): it only has to beat random init
    factor = 1.0 if cfg.metrics.get("rate_bits", 1e9) < 10 else 0.5
    assert errors["trained"] < factor * errors["random"], errors


@pytest.mark.parametrize("name", PACKAGED)
def test_weights_stored_in_a_smaller_dtype_say_so(name):
    from safetensors import safe_open

    cfg = zoo.get_pretrained_cfg(name)
    stored = json.loads((WEIGHTS / cfg.file).with_name("config.json").read_text()).get("storage_dtype", "float32")
    with safe_open(str(WEIGHTS / cfg.file), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()} - {"I64"}  # BatchNorm's step counters
    assert dtypes == {{"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[stored]}


@pytest.mark.parametrize("name", ["patchvae_resnet9.cifar10", "beta_vae_resnet9_32.cifar10"])
def test_float16_storage_keeps_every_layer_within_tolerance_on_test_images(name, test_images):
    """What float16 storage (weights/README.md) costs the CIFAR-10 ResNet-9 models, on real test images: the float32
    weights rounded to float16 move every representation layer by well under the tolerance the packaging enforces."""
    from patchvae.models._weights import STORAGE_TOLERANCE, cast_for_storage, storage_error

    cfg = zoo.get_pretrained_cfg(name)
    model = zoo.create(name, pretrained=True).eval()
    x = BatchPreprocess(cfg.data_config)(test_images(cfg.dataset))
    change = storage_error(model, cast_for_storage(model.state_dict(), "float16"), x)
    assert 0 < change < STORAGE_TOLERANCE / 2, change


def test_default_weights_through_timm_torch_hub_and_extract_features():
    import timm

    from patchvae import extract_features

    repo = Path(__file__).resolve().parents[1]
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    phi = zoo.create_backbone("patchvae_resnet9.cifar10_tuned", pretrained=True).eval()
    by_timm = timm.create_model("patchvae_resnet9", pretrained=True).eval()
    by_hub = torch.hub.load(str(repo), "patchvae_resnet9", source="local", pretrained=True).eval()
    assert by_hub.pretrained_cfg.name == "patchvae_resnet9.cifar10_tuned" and by_timm.pretrained_cfg["tag"] == "cifar10_tuned"
    inputs = BatchPreprocess(phi.data_config)(x)
    with torch.no_grad():
        torch.testing.assert_close(by_timm(inputs), phi(inputs), rtol=0, atol=0)
        torch.testing.assert_close(by_hub.encoder.backbone.forward_features(inputs), phi.forward_features(inputs), rtol=0, atol=0)
        pooled = phi.forward_features(inputs).mean((2, 3))
    # uint8 (N, 3, 32, 32) images: extract_features normalises them as the weights say
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
    assert out.reconstruction.shape == (8, 3, 32, 32) and out.visibility_probs.shape == (8, 16, 4, 4)
    assert out.appearance_mean.shape == (8, 16, 6) and out.patch_code.shape == (8, 96, 4, 4)
    assert namespace["gray"].encoder.backbone.conv1.in_channels == 1
    assert namespace["clf"].num_classes == 10


@pytest.mark.slow
def test_default_weights_card_conv5_number_reproduces(cifar10_train, cifar10_test):
    """Re-run the default weights' Conv5 fine-tuning on CIFAR-10 (JPEG copy) and compare with the card."""
    from patchvae.evaluation import finetune

    name = zoo.get_pretrained_cfg("patchvae_resnet9").name  # the default weights, patchvae_resnet9.cifar10_tuned
    cfg = zoo.get_pretrained_cfg(name)
    assert f"patchvae finetune {name}" in cfg.eval_command and "--preset conv5" in cfg.eval_command
    result = finetune(name, cifar10_train, cifar10_test, num_classes=10, freeze="conv5", config="cifar10", progress=False)
    assert abs(result.top1 - cfg.metrics["conv5_top1"]) < 1.0, (result.top1, cfg.metrics)
