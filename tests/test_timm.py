"""timm interop: the backbone families through timm's public registry API, in both import orders."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import timm
import torch
from zoo_helpers import TINY, register_weights, single_thread, subprocess_env, tiny_patchvae, weights_folder  # noqa: F401 (single_thread is a fixture)

import patchvae
import patchvae.models._hub as hub
from patchvae.models import ResNetTrunk, create, create_backbone
from patchvae.models._weights import sha256sum

REPO = Path(__file__).resolve().parents[1]
X = torch.randn(2, 3, 32, 32)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def folder(tmp_path):
    return weights_folder(tmp_path / "w", tiny_patchvae(seed=21))


def test_backbone_families_are_in_timms_registry():
    assert patchvae.__name__ == "patchvae"
    assert set(timm.list_models("patchvae_*")) == {"patchvae_resnet9", "patchvae_resnet18"}
    assert set(timm.list_models("beta_vae_*")) == {"beta_vae_resnet9_32", "beta_vae_resnet9_64", "beta_vae_resnet18_224"}
    assert set(timm.list_models("bigan_*")) == {"bigan_resnet9_32", "bigan_resnet9_64"}
    assert not timm.is_model("classifier_resnet9_32") and not timm.is_model("vaegan_discriminator")
    cfg = timm.models.get_pretrained_cfg("patchvae_resnet9")  # its default weights: CIFAR-10, RGB
    assert cfg.input_size == (3, 32, 32) and cfg.first_conv == "conv1" and cfg.num_classes == 0
    cfg = timm.models.get_pretrained_cfg("beta_vae_resnet9_64")  # no weights: the architecture's defaults
    assert cfg.input_size == (3, 64, 64) and cfg.first_conv == "conv1" and cfg.num_classes == 0


def test_timm_model_equals_create_backbone(folder):
    model = timm.create_model("patchvae_resnet9", pretrained=True, pretrained_cfg_overlay=dict(file=str(folder))).eval()
    reference = create_backbone("patchvae_resnet9", checkpoint_path=folder).eval()
    assert isinstance(model, ResNetTrunk) and model.num_classes == 0
    with torch.no_grad():
        torch.testing.assert_close(model(X), reference(X), rtol=0, atol=0)
        torch.testing.assert_close(model.forward_features(X), reference.forward_features(X), rtol=0, atol=0)
    assert isinstance(model.pretrained_cfg, dict) and model.patchvae_cfg.architecture == "patchvae_resnet9"
    data = timm.data.resolve_model_data_config(model)
    assert data["input_size"] == (3, 32, 32) and data["mean"] == (0.485, 0.456, 0.406)


def test_timm_features_only_num_classes_in_chans(folder):
    pyramid = timm.create_model("patchvae_resnet9", pretrained=True, features_only=True, out_indices=(1, 2),
                                pretrained_cfg_overlay=dict(file=str(folder))).eval()
    reference = create("patchvae_resnet9", checkpoint_path=folder, features_only=True, out_indices=(1, 2)).eval()
    with torch.no_grad():
        for a, b in zip(pyramid(X), reference(X)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert pyramid.feature_info.channels() == [64, 128]
    head = timm.create_model("patchvae_resnet9", pretrained=True, num_classes=5, global_pool="max", drop_rate=0.1,
                             pretrained_cfg_overlay=dict(file=str(folder)))
    assert head(X).shape == (2, 5) and head.drop_rate == 0.1 and head.global_pool.pool_type == "max"
    gray = timm.create_model("patchvae_resnet9", pretrained=True, in_chans=1, pretrained_cfg_overlay=dict(file=str(folder)))
    assert gray.conv1.weight.shape[1] == 1 and gray.pretrained_cfg["input_size"] == (1, 32, 32)
    fresh = timm.create_model("beta_vae_resnet9_64", num_classes=3)
    assert fresh(torch.randn(1, 3, 64, 64)).shape == (1, 3)


@pytest.mark.usefixtures("isolated_zoo")
def test_timm_pretrained_tag_and_default(monkeypatch, folder, tmp_path):
    root = tmp_path / "packaged"
    (root / "t").mkdir(parents=True)
    (root / "t" / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    monkeypatch.setattr(hub, "packaged_weights_dir", lambda: root)
    register_weights(monkeypatch, "patchvae_resnet9", "t", file="t/model.safetensors",
                     sha256=sha256sum(folder / "model.safetensors"), model_args=TINY)
    reference = create_backbone("patchvae_resnet9", checkpoint_path=folder).eval()
    for name in ("patchvae_resnet9.t", "patchvae_resnet9"):
        model = timm.create_model(name, pretrained=True).eval()
        with torch.no_grad():
            torch.testing.assert_close(model(X), reference(X), rtol=0, atol=0)
        assert model.pretrained_cfg["tag"] == "t"


def test_timm_arguments_that_make_no_sense_are_refused(folder):
    with pytest.raises(TypeError, match="does not support the timm argument.*drop_path_rate"):
        timm.create_model("patchvae_resnet9", drop_path_rate=0.1)
    with pytest.raises(ValueError, match="pretrained=False: pass pretrained=True"):
        timm.create_model("patchvae_resnet9", pretrained_cfg_overlay=dict(file=str(folder)))
    with pytest.raises(ValueError, match=r"\['hf_hub_id'\] in pretrained_cfg is not supported"):
        timm.create_model("patchvae_resnet9", pretrained=True, pretrained_cfg_overlay=dict(hf_hub_id="someone/else"))
    with pytest.raises(ValueError, match="no pretrained weights 'patchvae_resnet9.nope'"):
        timm.create_model("patchvae_resnet9.nope", pretrained=True)
    with pytest.raises(ValueError, match="classifier head, which features_only=True does not have"):
        timm.create_model("patchvae_resnet9", features_only=True, global_pool="max")
    with pytest.raises(TypeError, match="has no argument 'depth'"):
        timm.create_model("patchvae_resnet9", depth=3)


_SCRIPT = """
import sys
order, folder, root = sys.argv[1], sys.argv[2], sys.argv[3]
if order == "patchvae-first":
    import patchvae
    heavy = [m for m in ("torch", "torchvision", "timm") if m in sys.modules]
    assert not heavy, f"import patchvae imported {heavy}"
    import timm
else:
    import timm
    assert "patchvae_resnet9" not in timm.list_models()
    import patchvae
import torch
import patchvae.models as zoo
import patchvae.models._hub as hub
from patchvae.models import _registry
from patchvae.models._weights import sha256sum
from pathlib import Path

assert "patchvae_resnet9" in timm.list_models("patchvae*"), timm.list_models("patchvae*")
# default weights of patchvae_resnet9: a packaged file, registered for this process
hub.packaged_weights_dir = lambda: Path(root)
cfg = _registry.get_architecture_cfg("patchvae_resnet9").replace(
    tag="test", file="t/model.safetensors", sha256=sha256sum(Path(root) / "t" / "model.safetensors"),
    model_args=dict(num_parts=2, part_dim=2, decoder_width=8))
_registry._tag_cfgs["patchvae_resnet9"]["test"] = cfg
_registry._default_tags["patchvae_resnet9"] = "test"

x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
ours = zoo.create("patchvae_resnet9", pretrained=True, features_only=True).eval()
theirs = timm.create_model("patchvae_resnet9", pretrained=True, features_only=True).eval()
with torch.no_grad():
    pairs = list(zip(ours(x), theirs(x)))
assert len(pairs) == 3 and all(torch.equal(a, b) for a, b in pairs)
head = timm.create_model("patchvae_resnet9", pretrained=True, num_classes=7)
assert head(x).shape == (2, 7)
phi = timm.create_model("patchvae_resnet9", pretrained=True).eval()
with torch.no_grad():
    assert torch.equal(phi.forward_features(x), ours(x)[-1])
print("ok", order)
"""


@pytest.mark.parametrize("order", ["patchvae-first", "timm-first"])
def test_timm_interop_in_both_import_orders(order, folder, tmp_path):
    root = tmp_path / "packaged"
    (root / "t").mkdir(parents=True)
    (root / "t" / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), order, str(folder), str(root)],
        capture_output=True, text=True, cwd=REPO, timeout=300, env=subprocess_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith(f"ok {order}")
