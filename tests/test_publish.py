"""Publishing: the exact folder (weights, config.json, model card) and its upload through HfApi."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from zoo_helpers import TINY, outputs, register_weights, single_thread, tiny_patchvae, weights_folder  # noqa: F401 (fixture)

import patchvae.models._hub as hub
from patchvae.cli import main
from patchvae.models import create, from_pretrained
from patchvae.models._publish import PAPER_BIBTEX, build_publish_folder, model_card, publish
from patchvae.models._weights import sha256sum

pytestmark = pytest.mark.usefixtures("single_thread", "isolated_zoo")  # tests register their own weights

PROVENANCE = dict(
    dataset="cifar100",
    recipe="cifar100_patchvae",
    command="patchvae train cifar100_patchvae --epochs 30",
    epochs=30,
    metrics={"top1_conv5": 41.2, "top1_conv1": 30.5},
    protocol="paper Table 1: φ conv1..conv5 frozen, FC 512 + FC 100 trained 30 epochs, CIFAR-100 test top-1 (%)",
)
CLI_PROVENANCE = [
    "--dataset", "cifar100", "--recipe", "cifar100_patchvae", "--command", "patchvae train cifar100_patchvae --epochs 30",
    "--epochs", "30", "--metric", "top1_conv5=41.2", "--metric", "top1_conv1=30.5",
    "--protocol", "paper Table 1: φ conv1..conv5 frozen, CIFAR-100 test top-1 (%)",
]
X = torch.randn(2, 3, 32, 32)


def _front_matter(card: str) -> dict[str, object]:
    match = re.match(r"---\n(.*?)\n---\n", card, re.S)
    assert match, "no YAML front matter"
    meta: dict[str, object] = {}
    key = None
    for line in match.group(1).splitlines():
        if line.startswith("- "):
            meta.setdefault(key, []).append(json.loads(line[2:]) if line[2:].startswith('"') else line[2:])
        else:
            key, _, value = line.partition(":")
            if value.strip():
                meta[key] = value.strip()
    return meta


def test_dry_run_folder_round_trips(tmp_path, capsys):
    model = tiny_patchvae(seed=30)
    local = weights_folder(tmp_path / "trained", model)
    out = tmp_path / "publish"
    rc = main(["publish", str(local), "--name", "patchvae_resnet9.cifar100", "--repo-id", "patchvae/patchvae_resnet9.cifar100",
               "--dry-run", str(out), *CLI_PROVENANCE])
    assert rc == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == (local / "model.safetensors").read_bytes()  # the exact bytes
    sha = sha256sum(out / "model.safetensors")
    assert f"sha256 {sha}" in printed and "nothing uploaded" in printed and 'hf_hub_id="patchvae/patchvae_resnet9.cifar100"' in printed

    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "patchvae_resnet9" and config["tag"] == "cifar100" and config["sha256"] == sha
    assert config["model_args"] == model.model_args and config["data_config"]["input_size"] == [3, 32, 32]
    assert config["epochs"] == 30 and config["metrics"] == {"top1_conv5": 41.2, "top1_conv1": 30.5}
    assert config["num_params"] == sum(p.numel() for p in model.parameters()) and config["citation"] == PAPER_BIBTEX

    card = (out / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["license"] == "mit" and meta["library_name"] == "patchvae"
    assert "patchvae" in meta["tags"] and meta["datasets"] == ["uoft-cs/cifar100"]
    for text in ("patchvae train cifar100_patchvae --epochs 30", "Epochs: 30", "| top1_conv5 | 41.2 |",
                 "Protocol: paper Table 1", "@inproceedings{gupta2020patchvae", "author={Kamal Gupta and Saurabh Singh and Abhinav Shrivastava}",
                 "arXiv:2004.03623", f"sha256 `{sha}`", 'create("patchvae_resnet9.cifar100", pretrained=True)'):
        assert text in card, text

    by_name = create("patchvae_resnet9.cifar100", pretrained=True, checkpoint_path=out)
    by_folder = from_pretrained(out)
    assert by_folder.pretrained_cfg.name == "patchvae_resnet9.cifar100" and by_folder.pretrained_cfg.epochs == 30
    for a, b, c in zip(outputs(by_name, X), outputs(by_folder, X), outputs(model, X)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_registered_weights_are_published_byte_for_byte(tmp_path, monkeypatch):
    model = tiny_patchvae(seed=31)
    root = tmp_path / "packaged"
    packaged = weights_folder(root / "patchvae_resnet9.reg", model)
    monkeypatch.setattr(hub, "packaged_weights_dir", lambda: root)
    register_weights(monkeypatch, "patchvae_resnet9", "reg", file="patchvae_resnet9.reg/model.safetensors",
                     sha256=sha256sum(packaged / "model.safetensors"), model_args=TINY, **PROVENANCE)
    name, out = build_publish_folder("patchvae_resnet9.reg", tmp_path / "out")
    assert name == "patchvae_resnet9.reg"
    assert sha256sum(out / "model.safetensors") == sha256sum(packaged / "model.safetensors")
    assert json.loads((out / "config.json").read_text())["recipe"] == "cifar100_patchvae"
    _, out2 = build_publish_folder("patchvae_resnet9", tmp_path / "out2")  # bare arch: its default weights
    assert (out2 / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    other = weights_folder(tmp_path / "other", tiny_patchvae(seed=32))
    with pytest.raises(ValueError, match="registered with sha256 .* publish them under a new tag"):
        build_publish_folder(other, tmp_path / "out3", name="patchvae_resnet9.reg", **PROVENANCE)
    assert not (tmp_path / "out3").exists()  # the refused weights leave no half-built folder


def test_upload_creates_the_repo_and_uploads_the_folder(tmp_path, monkeypatch, capsys):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, *, exist_ok=False, private=None, **kwargs):
            calls.append(("create_repo", repo_id, exist_ok, private))

        def upload_folder(self, *, repo_id, folder_path, commit_message=None, **kwargs):
            files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
            calls.append(("upload_folder", repo_id, sorted(files), commit_message))
            calls.append(("sha", __import__("hashlib").sha256(files["model.safetensors"]).hexdigest()))
            return SimpleNamespace(oid="f" * 40, commit_url=f"https://huggingface.co/{repo_id}/commit/{'f' * 40}")

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    local = weights_folder(tmp_path / "trained", tiny_patchvae(seed=33))
    rc = main(["publish", str(local), "--name", "patchvae_resnet9.up", "--repo-id", "org/patchvae-up", "--private", *CLI_PROVENANCE])
    assert rc == 0
    assert calls[:3] == [
        ("init", None),
        ("create_repo", "org/patchvae-up", True, True),
        ("upload_folder", "org/patchvae-up", ["README.md", "config.json", "model.safetensors"], calls[2][3]),
    ]
    assert calls[3] == ("sha", sha256sum(local / "model.safetensors"))
    printed = capsys.readouterr().out
    assert f"revision {'f' * 40}" in printed and f'hf_revision="{"f" * 40}"' in printed
    result = publish(local, "org/patchvae-up", name="patchvae_resnet9.up", api=FakeApi(), **PROVENANCE)
    assert result.commit == "f" * 40 and result.sha256 == sha256sum(local / "model.safetensors")


def test_authors_checkpoint_is_converted_to_safetensors(tmp_path):
    from test_legacy_authors import AuthorsPatchyVAE, authors_args, save_authors_checkpoint

    authors = AuthorsPatchyVAE(num_parts=2, hidden=2).eval()
    path = save_authors_checkpoint(tmp_path / "model_90.pt", authors, authors_args(num_parts=2, hidden_size=2))
    _, out = build_publish_folder(path, tmp_path / "out", name="patchvae_resnet9.authors_cifar100", **PROVENANCE)
    from safetensors.torch import load_file

    assert "encoder.visibility.weight" in load_file(str(out / "model.safetensors"))
    for a, b in zip(outputs(from_pretrained(out), X), outputs(create("patchvae_resnet9", checkpoint_path=path), X)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_publishing_refuses_incomplete_or_ambiguous_requests(tmp_path, capsys):
    local = weights_folder(tmp_path / "trained", tiny_patchvae(seed=34))
    with pytest.raises(ValueError, match=r"needs dataset, recipe, command, epochs, metrics, protocol.*--dataset, --recipe"):
        build_publish_folder(local, tmp_path / "a", name="patchvae_resnet9.x")
    with pytest.raises(ValueError, match="published weights need a tag"):
        build_publish_folder(local, tmp_path / "b", name="patchvae_resnet9", **PROVENANCE)
    with pytest.raises(ValueError, match="without a tagged config.json: name it with --name"):
        build_publish_folder(local, tmp_path / "c", **PROVENANCE)
    with pytest.raises(ValueError, match="holds 'patchvae_resnet9' weights, not 'beta_vae_resnet9_32'"):
        build_publish_folder(local, tmp_path / "d", name="beta_vae_resnet9_32.x", **PROVENANCE)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        build_publish_folder(local, tmp_path / "e", name="patchvae_resnet9.x", **{**PROVENANCE, "epochs": 0})
    with pytest.raises(ValueError, match="no pretrained weights yet"):
        build_publish_folder("patchvae_resnet9", tmp_path / "f")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        build_publish_folder(local, tmp_path / "g", name="patchvae_resnet9.x", **PROVENANCE)
    with pytest.raises(ValueError, match="repo_id must be 'ORG/REPO'"):
        publish(local, "no-org", name="patchvae_resnet9.x", dry_run=tmp_path / "h", **PROVENANCE)
    assert main(["publish", str(tmp_path / "missing"), "--repo-id", "o/r", "--dry-run", str(tmp_path / "i")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["publish", str(local), "--name", "patchvae_resnet9.x", "--repo-id", "o/r", "--dry-run", str(tmp_path / "j"),
                 *CLI_PROVENANCE, "--metric", "oops"]) == 1
    assert "--metric takes NAME=VALUE" in capsys.readouterr().err


def test_model_card_is_built_from_the_config_alone():
    config = {
        "architecture": "beta_vae_resnet9_64", "tag": "indoor67", "model_args": {"latent_dim": 96},
        "data_config": {"input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "resize_crop"},
        "num_params": 2547072, "sha256": "a" * 64, "license": "cc-by-4.0", "description": "β-VAE on Indoor67",
        **{**PROVENANCE, "dataset": "Indoor67"},
    }
    card = model_card(config)
    meta = _front_matter(card)
    assert meta["license"] == "cc-by-4.0" and meta["datasets"] == ["Indoor67"]
    assert "# beta_vae_resnet9_64.indoor67" in card and "Parameters: 2,547,072" in card and "64×64" in card


@pytest.mark.parametrize("arch, cite, layer, backbone", [
    ("patchvae_resnet9", "gupta2020patchvae", "pooled", True),
    ("sixt2018_patch_p3_i1", "sixt2018investigation", "dense", False),
    ("sixt2018_vae_32d", "sixt2018investigation", "latent", False),
    ("pixelvae_resnet_h1_small", "zhang2022improving", "latent", False),
])
def test_model_card_cites_the_familys_paper_and_shows_its_usage(arch, cite, layer, backbone, tmp_path):
    """Each family's card cites its own source and suggests a layer the model has; only φ families get create_backbone."""
    from patchvae.models import save_pretrained

    model = create(arch)
    save_pretrained(model, tmp_path / "src")
    _, folder = build_publish_folder(tmp_path / "src", tmp_path / "out", name=f"{arch}.mine", repo_id=None, **PROVENANCE)
    card, config = (folder / "README.md").read_text(), json.loads((folder / "config.json").read_text())
    assert cite in card and cite in config["citation"] and config["feature_layer"] == layer
    assert layer in model.representations()
    assert f'layer="{layer}"' in card and ("create_backbone" in card) == backbone
    if not backbone:
        assert "gupta2020patchvae" not in card and "visibility map and an appearance code" not in card


def test_float16_storage_halves_the_file_and_loads_within_tolerance(tmp_path, capsys):
    from safetensors import safe_open

    from patchvae.models._weights import STORAGE_TOLERANCE

    model = tiny_patchvae(seed=32)
    local = weights_folder(tmp_path / "trained", model)
    out = tmp_path / "publish"
    rc = main(["publish", str(local), "--name", "patchvae_resnet9.cifar100", "--repo-id", "patchvae/patchvae_resnet9.cifar100",
               "--dry-run", str(out), "--storage-dtype", "float16", *CLI_PROVENANCE])
    assert rc == 0
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"F16", "I64"}  # every float tensor in float16; BatchNorm's step counters stay integers
    size, full = (out / "model.safetensors").stat().st_size, (local / "model.safetensors").stat().st_size
    assert 0.45 * full < size < 0.55 * full
    config = json.loads((out / "config.json").read_text())
    assert config["storage_dtype"] == "float16" and 0 < config["storage_rel_change"] < STORAGE_TOLERANCE
    assert config["sha256"] == sha256sum(out / "model.safetensors")
    assert "stored in float16, loaded into the model's dtype" in (out / "README.md").read_text()

    loaded = from_pretrained(out)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    for a, b in zip(outputs(loaded, X), outputs(model, X)):  # float16 rounding of the weights, not more
        assert 0 < float((a - b).norm() / b.norm()) < STORAGE_TOLERANCE
    for key, value in loaded.state_dict().items():  # exactly the float16 values of the original weights
        if value.is_floating_point():
            torch.testing.assert_close(value, model.state_dict()[key].half().float(), rtol=0, atol=0)


def test_storage_dtype_refuses_overflow_and_too_large_changes(tmp_path, monkeypatch):
    import patchvae.models._publish as publishing

    model = tiny_patchvae(seed=33)
    with torch.no_grad():
        model.encoder.backbone.conv1.weight[0, 0, 0, 0] = 1e6
    local = weights_folder(tmp_path / "big", model)
    with pytest.raises(ValueError, match=r"1 tensor\(s\) overflow float16 \(e.g. encoder.backbone.conv1.weight; largest \|value\| 1e\+06\)"):
        build_publish_folder(local, tmp_path / "out", name="patchvae_resnet9.cifar100", storage_dtype="float16", **PROVENANCE)
    _, kept = build_publish_folder(local, tmp_path / "out32", name="patchvae_resnet9.cifar100", storage_dtype="float32", **PROVENANCE)
    assert json.loads((kept / "config.json").read_text())["storage_rel_change"] == 0.0

    local = weights_folder(tmp_path / "small", tiny_patchvae(seed=34))
    monkeypatch.setattr(publishing, "STORAGE_TOLERANCE", 1e-9)
    with pytest.raises(ValueError, match=r"storing patchvae_resnet9.cifar100 in bfloat16 changes its outputs by .* more than 1e-09"):
        build_publish_folder(local, tmp_path / "refused", name="patchvae_resnet9.cifar100", storage_dtype="bfloat16", **PROVENANCE)
    assert not (tmp_path / "refused").exists() and not (tmp_path / "out").exists()  # nothing half-built
    with pytest.raises(ValueError, match=r"unknown storage dtype 'int8': choose one of float32, float16, bfloat16"):
        build_publish_folder(local, tmp_path / "x", name="patchvae_resnet9.cifar100", storage_dtype="int8", **PROVENANCE)
