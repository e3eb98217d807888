"""Resolution of pretrained weights (checkpoint_path -> packaged -> Hugging Face Hub -> error) and torch.hub."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
from zoo_helpers import (  # noqa: F401 (single_thread is a fixture)
    TINY,
    outputs,
    register_weights,
    single_thread,
    subprocess_env,
    tiny_patchvae,
    weights_folder,
)

import patchvae.models._hub as hub
from patchvae.models import WeightsError, create
from patchvae.models._weights import sha256sum

REPO = Path(__file__).resolve().parents[1]
REVISION = "0123456789abcdef0123456789abcdef01234567"
X = torch.randn(2, 3, 32, 32)

pytestmark = pytest.mark.usefixtures("single_thread", "isolated_zoo")  # tests register their own weights


@pytest.fixture
def published(tmp_path, monkeypatch):
    """Three different weights of ``patchvae_resnet9.test``: packaged, on the 'Hub', and a local checkpoint."""
    packaged_root = tmp_path / "packaged"
    models = {"packaged": tiny_patchvae(seed=10), "hub": tiny_patchvae(seed=11), "local": tiny_patchvae(seed=12)}
    packaged = weights_folder(packaged_root / "patchvae_resnet9.test", models["packaged"])
    hub_file = weights_folder(tmp_path / "hub", models["hub"]) / "model.safetensors"
    local = weights_folder(tmp_path / "local", models["local"])
    monkeypatch.setattr(hub, "packaged_weights_dir", lambda: packaged_root)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls: list[dict] = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append({"repo_id": repo_id, "filename": filename, **kwargs})
        return str(hub_file)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    register_weights(
        monkeypatch, "patchvae_resnet9", "test", file="patchvae_resnet9.test/model.safetensors",
        sha256=sha256sum(packaged / "model.safetensors"), hf_hub_id="patchvae/patchvae_resnet9.test",
        hf_revision=REVISION, model_args=TINY,
    )
    return {"models": models, "packaged": packaged, "hub_file": hub_file, "local": local, "calls": calls, "root": packaged_root}


def _same(model, reference):
    for a, b in zip(outputs(model, X), outputs(reference, X)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_explicit_checkpoint_path_comes_first(published):
    model = create("patchvae_resnet9.test", pretrained=True, checkpoint_path=published["local"])
    _same(model, published["models"]["local"])
    assert published["calls"] == []


def test_packaged_weights_come_before_the_hub(published):
    model = create("patchvae_resnet9.test", pretrained=True)
    _same(model, published["models"]["packaged"])
    _same(create("patchvae_resnet9", pretrained=True), published["models"]["packaged"])  # bare arch: default tag
    assert published["calls"] == []
    assert model.pretrained_cfg.name == "patchvae_resnet9.test" and model.num_parts == 2


def test_hub_download_at_the_pinned_revision_with_cache_dir(published, tmp_path, monkeypatch):
    shutil.rmtree(published["root"])  # not shipped in this installation
    monkeypatch.setattr(hub, "packaged_weights_dir", lambda: None)
    register_weights(monkeypatch, "patchvae_resnet9", "test", file=None, sha256=sha256sum(published["hub_file"]),
                     hf_hub_id="patchvae/patchvae_resnet9.test", hf_revision=REVISION, model_args=TINY)
    model = create("patchvae_resnet9.test", pretrained=True, cache_dir=tmp_path / "cache")
    _same(model, published["models"]["hub"])
    (call,) = published["calls"]
    assert (call["repo_id"], call["filename"], call["revision"]) == ("patchvae/patchvae_resnet9.test", "model.safetensors", REVISION)
    assert call["cache_dir"] == str(tmp_path / "cache") and call["local_files_only"] is False
    create("patchvae_resnet9.test", pretrained=True, local_files_only=True)
    assert published["calls"][-1]["local_files_only"] is True and published["calls"][-1]["cache_dir"] is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read when called, even after huggingface_hub was imported
    create("patchvae_resnet9.test", pretrained=True)
    assert published["calls"][-1]["local_files_only"] is True


def test_hub_file_with_another_sha256_is_refused(published, monkeypatch):
    monkeypatch.setattr(hub, "packaged_weights_dir", lambda: None)
    with pytest.raises(WeightsError, match=f"sha256 of {published['hub_file']} is"):
        create("patchvae_resnet9.test", pretrained=True)  # the registered sha256 is the packaged file's


def test_offline_miss_says_how_to_get_the_weights(published, monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "packaged_weights_dir", lambda: None)

    def offline(repo_id, filename, **kwargs):
        raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache and outgoing traffic has been disabled.")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as info:
        create("patchvae_resnet9.test", pretrained=True, cache_dir=tmp_path / "c")
    message = str(info.value)
    for part in ("offline mode is on (HF_HUB_OFFLINE=1", f"patchvae/patchvae_resnet9.test@{REVISION}/model.safetensors",
                 f"cache_dir={tmp_path / 'c'}", f"hf download patchvae/patchvae_resnet9.test model.safetensors --revision {REVISION}",
                 "checkpoint_path="):
        assert part in message, part
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(WeightsError, match="could not be reached"):
        create("patchvae_resnet9.test", pretrained=True)


def test_missing_hub_repository(published, monkeypatch):
    monkeypatch.setattr(hub, "packaged_weights_dir", lambda: None)

    class Missing(RepositoryNotFoundError):
        def __init__(self) -> None:  # no HTTP response needed
            Exception.__init__(self, "404 Client Error: Repository Not Found")

    def missing(repo_id, filename, **kwargs):
        raise Missing()

    monkeypatch.setattr("huggingface_hub.hf_hub_download", missing)
    with pytest.raises(WeightsError, match=r"has no patchvae/patchvae_resnet9.test@\w+/model.safetensors .*does not exist \(or is private\): upgrade patchvae"):
        create("patchvae_resnet9.test", pretrained=True)


def test_no_packaged_file_and_no_hub_mirror(monkeypatch):
    monkeypatch.setattr(hub, "packaged_weights_dir", lambda: None)
    register_weights(monkeypatch, "patchvae_resnet9", "only_packaged", file="nowhere/model.safetensors")
    with pytest.raises(WeightsError, match="not in this installation and have no Hub mirror.*checkpoint_path"):
        create("patchvae_resnet9.only_packaged", pretrained=True)


def test_real_hf_cache_offline(tmp_path, monkeypatch):
    """No mock: huggingface_hub finds the pinned revision in a (hand-made) cache with HF_HUB_OFFLINE=1."""
    model = tiny_patchvae(seed=13)
    source = weights_folder(tmp_path / "w", model) / "model.safetensors"
    snapshot = tmp_path / "cache" / "models--patchvae--offline-test" / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    shutil.copy(source, snapshot / "model.safetensors")
    monkeypatch.setattr(hub, "packaged_weights_dir", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    register_weights(monkeypatch, "patchvae_resnet9", "offline", sha256=sha256sum(source),
                     hf_hub_id="patchvae/offline-test", hf_revision=REVISION, model_args=TINY)
    _same(create("patchvae_resnet9.offline", pretrained=True, cache_dir=tmp_path / "cache"), model)
    with pytest.raises(WeightsError, match="offline mode is on .* not in the local cache"):
        create("patchvae_resnet9.offline", pretrained=True, cache_dir=tmp_path / "empty-cache")


def test_packaged_weights_dir_of_a_checkout():
    assert hub.packaged_weights_dir() == REPO / "weights"


# ----------------------------------------------------------------------------- torch.hub
def _hub_list_and_help(monkeypatch):
    """torch.hub.list/help on this checkout: with source="local" where torch supports it, else through
    torch.hub's own code with its GitHub cache pointed at the checkout."""
    if "source" in inspect.signature(torch.hub.list).parameters:
        return torch.hub.list(str(REPO), source="local"), torch.hub.help(str(REPO), "patchvae_resnet9", source="local")
    monkeypatch.setattr(torch.hub, "_get_cache_or_reload", lambda *args, **kwargs: str(REPO))
    return torch.hub.list("owner/patchvae"), torch.hub.help("owner/patchvae", "patchvae_resnet9")


def test_torch_hub_lists_every_architecture_with_a_docstring(monkeypatch):
    from patchvae.models import list_models

    entrypoints, doc = _hub_list_and_help(monkeypatch)
    assert sorted(entrypoints) == list_models()
    assert "ResNet-9" in doc and "pretrained" in doc and "tag" in doc
    hubconf = torch.hub._import_module("hubconf", str(REPO / "hubconf.py"))
    assert hubconf.dependencies == ["torch", "torchvision", "timm", "safetensors", "huggingface_hub"]


def test_torch_hub_load_local(published):
    fresh = torch.hub.load(str(REPO), "patchvae_resnet9", source="local", pretrained=False, num_parts=3)
    assert fresh.num_parts == 3
    model = torch.hub.load(str(REPO), "patchvae_resnet9", source="local", pretrained=True, tag="test")
    _same(model, published["models"]["packaged"])
    model = torch.hub.load(str(REPO), "patchvae_resnet9", source="local", pretrained=True, checkpoint_path=published["local"])
    _same(model, published["models"]["local"])


def test_hubconf_imports_only_the_models():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import hubconf; "
        "print(sorted(m for m in sys.modules if m.startswith('patchvae')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, check=True, cwd="/", env=subprocess_env())
    loaded = eval(out.stdout)  # noqa: S307 - our own subprocess's list of module names
    assert "patchvae.models.patchvae" in loaded
    unneeded = [m for m in loaded if m.startswith(("patchvae.features", "patchvae.cli", "patchvae.losses", "patchvae.models._publish", "patchvae.training", "patchvae.recipes"))]
    assert unneeded == []
