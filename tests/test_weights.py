"""Weight files: every loading error names the file and the fix, and nothing is ever loaded partially."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from safetensors.torch import save_file
from zoo_helpers import (  # noqa: F401 (single_thread is a fixture)
    TINY,
    assert_state_equal,
    outputs,
    register_weights,
    single_thread,
    snapshot,
    tiny_patchvae,
    weights_folder,
)

from patchvae.models import WeightsError, create, load_weights
from patchvae.models import _hub
from patchvae.models._weights import sha256sum

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def folder(tmp_path):
    """A valid weights folder of a tiny PatchVAE (seed 1)."""
    return weights_folder(tmp_path / "good", tiny_patchvae(seed=1))


@pytest.fixture
def target():
    """The model a bad file is loaded into (seed 2: different from the folder's weights)."""
    return tiny_patchvae(seed=2)


def _fails_cleanly(model, path, error, pattern, **kwargs):
    """``load_weights`` raises ``error`` matching ``pattern`` (which names the file) and leaves ``model`` as it was."""
    before = snapshot(model)
    with pytest.raises(error, match=pattern) as info:
        load_weights(model, path, **kwargs)
    assert_state_equal(model, before)
    return str(info.value)


def test_good_folder_loads_exactly(folder, target):
    x = torch.randn(2, 3, 32, 32)
    reference = create("patchvae_resnet9", checkpoint_path=folder)
    load_weights(target, folder)
    for a, b in zip(outputs(target, x), outputs(reference, x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    config = json.loads((folder / "config.json").read_text())
    assert config["sha256"] == sha256sum(folder / "model.safetensors")
    assert config["architecture"] == "patchvae_resnet9" and config["model_args"]["num_parts"] == 2


def test_sha256_mismatch(folder, target):
    config = json.loads((folder / "config.json").read_text())
    config["sha256"] = "0" * 64
    (folder / "config.json").write_text(json.dumps(config))
    path = re.escape(str(folder / "model.safetensors"))
    message = _fails_cleanly(target, folder, WeightsError, f"sha256 of {path} is [0-9a-f]{{64}}, expected 0{{64}}")
    assert "download it again" in message
    with pytest.raises(WeightsError, match="sha256"):
        create("patchvae_resnet9", checkpoint_path=folder)


def test_damaged_bytes_are_caught_by_the_recorded_sha256(folder, target):
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the tensor data: still parses, wrong values
    weights.write_bytes(bytes(data))
    _fails_cleanly(target, folder, WeightsError, "sha256 of .* the file is damaged")


def test_damaged_header(tmp_path, folder, target):
    bad = tmp_path / "bad.safetensors"
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[8:40] = b"#" * 32  # the JSON header
    bad.write_bytes(bytes(data))
    message = _fails_cleanly(target, bad, WeightsError, f"cannot read {re.escape(str(bad))} as safetensors")
    assert "truncated or damaged" in message and "download it again" in message


@pytest.mark.parametrize("keep", [0.5, 0.999, 6])
def test_truncated_file(tmp_path, folder, target, keep):
    bad = tmp_path / "truncated.safetensors"
    data = (folder / "model.safetensors").read_bytes()
    bad.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    _fails_cleanly(target, bad, WeightsError, f"cannot read {re.escape(str(bad))} as safetensors .*truncated or damaged")
    # in a folder, the recorded sha256 catches it first
    shutil.copy(bad, folder / "model.safetensors")
    _fails_cleanly(target, folder, WeightsError, "sha256 of")


def test_wrong_architecture_file(tmp_path, target):
    beta = weights_folder(tmp_path / "beta", create("beta_vae_resnet9_32"))
    message = _fails_cleanly(target, beta / "model.safetensors", WeightsError, "does not fit PatchVAE: .* missing .* unexpected")
    assert "missing (e.g. encoder.visibility.weight" in message and "another architecture" in message
    with pytest.raises(WeightsError, match=r"holds weights of 'beta_vae_resnet9_32', not 'patchvae_resnet9'.*create\('beta_vae_resnet9_32'"):
        create("patchvae_resnet9", checkpoint_path=beta)


def test_wrong_configuration_file(tmp_path, target):
    other = weights_folder(tmp_path / "n4", tiny_patchvae(num_parts=4))
    message = _fails_cleanly(target, other / "model.safetensors", WeightsError, "shape/dtype mismatches")
    assert "encoder.visibility.weight: file (4, 128, 3, 3) vs model (2, 128, 3, 3)" in message
    # create() itself reads num_parts from config.json, and explicit arguments that contradict it fail
    assert create("patchvae_resnet9", checkpoint_path=other).num_parts == 4
    with pytest.raises(WeightsError, match="shape/dtype mismatches"):
        create("patchvae_resnet9", checkpoint_path=other, num_parts=2)


def test_pickled_module_is_refused(tmp_path, target):
    bad = tmp_path / "whole_model.pt"
    torch.save(tiny_patchvae(), bad)  # pickles the classes, not only tensors
    message = _fails_cleanly(target, bad, WeightsError, f"{re.escape(str(bad))} contains pickled Python objects")
    assert "weights_only=True" in message and "state_dict()" in message


def test_pickle_named_safetensors_is_refused(tmp_path, target):
    bad = tmp_path / "model.safetensors"
    torch.save(tiny_patchvae().state_dict(), bad)
    _fails_cleanly(target, bad, WeightsError, "is a PyTorch pickle checkpoint .*not safetensors.* .pt suffix")


def test_published_weights_must_be_safetensors(monkeypatch, tmp_path):
    packaged = tmp_path / "packaged"
    (packaged / "x").mkdir(parents=True)
    torch.save(tiny_patchvae().state_dict(), packaged / "x" / "model.pt")
    monkeypatch.setattr(_hub, "packaged_weights_dir", lambda: packaged)
    register_weights(monkeypatch, "patchvae_resnet9", "pt", file="x/model.pt", model_args=TINY)
    with pytest.raises(WeightsError, match="published weights must be safetensors"):
        create("patchvae_resnet9.pt", pretrained=True)


def test_non_finite_weights(tmp_path, target):
    state = tiny_patchvae().state_dict()
    state["encoder.visibility.bias"] = torch.full_like(state["encoder.visibility.bias"], float("nan"))
    bad = tmp_path / "nan.safetensors"
    save_file(state, str(bad))
    _fails_cleanly(target, bad, WeightsError, f"{re.escape(str(bad))} has NaN/Inf values .*encoder.visibility.bias")


def test_dtype_kind_mismatch(tmp_path, target):
    state = tiny_patchvae().state_dict()
    state["encoder.visibility.weight"] = state["encoder.visibility.weight"].to(torch.int32)
    bad = tmp_path / "int.safetensors"
    save_file(state, str(bad))
    _fails_cleanly(target, bad, WeightsError, "file dtype torch.int32 vs model torch.float32")


def test_damaged_legacy_checkpoint(tmp_path, target):
    good = tmp_path / "good.pt"
    torch.save(tiny_patchvae(seed=1).state_dict(), good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[:1000])
    _fails_cleanly(target, bad, WeightsError, f"cannot read {re.escape(str(bad))} as a PyTorch checkpoint .*truncated or damaged")
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": torch.tensor(3), "note": "no weights"}, empty)
    _fails_cleanly(target, empty, WeightsError, "holds no state dict")


def test_legacy_containers_and_prefixes(tmp_path, target):
    source = tiny_patchvae(seed=5)
    wrapped = {f"module._orig_mod.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "ddp_compiled.pth"
    torch.save({"state_dict": wrapped, "epoch": 3}, path)
    load_weights(target, path)
    assert_state_equal(target, snapshot(source))


def test_unknown_suffix_and_missing_files(tmp_path, target):
    odd = tmp_path / "weights.npz"
    odd.write_bytes(b"1234")
    _fails_cleanly(target, odd, WeightsError, r"unknown weights format '.npz'; expected .safetensors")
    _fails_cleanly(target, tmp_path / "missing.safetensors", FileNotFoundError, "does not exist")
    _fails_cleanly(target, tmp_path, FileNotFoundError, "folder without model.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create("patchvae_resnet9", checkpoint_path=tmp_path / "nope.safetensors")


def test_folder_of_another_tag(folder):
    config = json.loads((folder / "config.json").read_text())
    config["tag"] = "cifar100"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"holds the weights patchvae_resnet9.cifar100, not patchvae_resnet9.places205"):
        create("patchvae_resnet9.places205", checkpoint_path=folder)
    assert create("patchvae_resnet9.cifar100", checkpoint_path=folder).pretrained_cfg.name == "patchvae_resnet9.cifar100"
    assert create("patchvae_resnet9", checkpoint_path=folder).pretrained_cfg.tag == "cifar100"


def test_damaged_config_json(folder):
    (folder / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match="config.json is not valid JSON"):
        create("patchvae_resnet9", checkpoint_path=folder)
    (folder / "config.json").write_text(json.dumps({"tag": "x"}))
    with pytest.raises(WeightsError, match="no 'architecture' entry"):
        create("patchvae_resnet9", checkpoint_path=folder)
