"""CIFAR-10 from a class-per-folder copy (directory or zip), the decoded-image cache, stratified subsets,
the cifar10 recipes, and a few training steps on the shared JPEG copy (issue 9)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from patchvae.data import CIFAR, CIFAR10_CLASSES, data_config_for, decoded_cache_dir, get_dataset, load_cifar10
from patchvae.data.subsets import random_subset, subset_indices
from patchvae.evaluation import get_protocol
from patchvae.recipes import get_recipe, get_sweep

SHARED_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.zip"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PATCHVAE_CACHE_DIR", str(tmp_path / "cache"))


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _pixels(label: int, index: int) -> np.ndarray:
    """A 32x32 RGB image whose first pixel encodes (label, index), losslessly (PNG)."""
    img = np.random.default_rng(label * 100 + index).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    img[0, 0] = (label, index, 7)
    return img


def make_cifar10_zip(path: Path, per_class: dict[str, int], top: str = "") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for split, count in per_class.items():
            for label, cls in enumerate(CIFAR10_CLASSES):
                for i in range(count):
                    archive.writestr(f"{top}{split}/{cls}/{i:04d}.png", _png(_pixels(label, i)))
    return path


def make_cifar10_folder(root: Path, per_class: dict[str, int]) -> Path:
    for split, count in per_class.items():
        for label, cls in enumerate(CIFAR10_CLASSES):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (root / split / cls / f"{i:04d}.png").write_bytes(_png(_pixels(label, i)))
    return root


@pytest.mark.parametrize("top", ["", "cifar10/"])
def test_zip_copy_loads_in_label_order(tmp_path, top):
    archive = make_cifar10_zip(tmp_path / "c.zip", {"train": 3, "test": 2}, top=top)
    train, test = load_cifar10(archive, train=True), load_cifar10(archive, train=False)
    assert train.images.shape == (30, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (20, 3, 32, 32)
    assert train.classes == CIFAR10_CLASSES
    assert train.labels.tolist() == [label for label in range(10) for _ in range(3)]
    # the pixels are decoded exactly (PNG) and land with their own label
    assert torch.equal(train.images[:, 0, 0, 0], train.labels.to(torch.uint8))
    assert torch.equal(train.images[4].permute(1, 2, 0), torch.from_numpy(_pixels(1, 1)))


def test_folder_copy_equals_zip_copy(tmp_path):
    archive = make_cifar10_zip(tmp_path / "c.zip", {"train": 2, "test": 1})
    folder = make_cifar10_folder(tmp_path / "dir", {"train": 2, "test": 1})
    for train in (True, False):
        a, b = load_cifar10(archive, train=train), load_cifar10(folder, train=train)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_decoded_images_are_cached_and_invalidated(tmp_path, monkeypatch):
    archive = make_cifar10_zip(tmp_path / "c.zip", {"train": 2, "test": 1})
    first = load_cifar10(archive, train=True)
    cached = list(decoded_cache_dir().glob("cifar10-train-*.safetensors"))
    assert len(cached) == 1 and decoded_cache_dir() == tmp_path / "cache" / "decoded"
    import patchvae.data.cifar10 as module

    monkeypatch.setattr(module, "_decode", lambda *a: pytest.fail("decoded again although cached"))
    again = load_cifar10(archive, train=True)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    monkeypatch.undo()
    monkeypatch.setenv("PATCHVAE_CACHE_DIR", str(tmp_path / "cache"))
    make_cifar10_zip(archive, {"train": 3, "test": 1})  # the source changes: size and mtime differ
    os.utime(archive, ns=(1, 1))
    assert len(load_cifar10(archive, train=True)) == 30
    cached[0].write_bytes(b"garbage")  # a damaged cache entry is ignored, not trusted
    assert len(load_cifar10(archive, train=True)) == 30


def test_wrong_layouts_are_refused_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found at .*--download.*train/<class>/"):
        load_cifar10(tmp_path / "missing")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("train/cats/0.png", _png(_pixels(0, 0)))
        archive.writestr("test/cats/0.png", _png(_pixels(0, 0)))
    with pytest.raises(ValueError, match="ten CIFAR-10 class folders.*'imagefolder'"):
        load_cifar10(bad)
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w") as archive:
        for cls in CIFAR10_CLASSES:
            archive.writestr(f"train/{cls}/0.png", _png(np.zeros((40, 40, 3), np.uint8)))
    with pytest.raises(ValueError, match=r"is \(40, 40\) pixels; CIFAR-10 images are 32x32"):
        load_cifar10(big)


def test_registry_entry_uses_the_paper_preprocessing(tmp_path):
    archive = make_cifar10_zip(tmp_path / "c.zip", {"train": 1, "test": 1})
    assert data_config_for("cifar10") == CIFAR  # as CIFAR-100: ImageNet statistics, no flips
    assert len(get_dataset("cifar10", archive, "unsupervised", train_transform=True)) == 10
    assert len(get_dataset("cifar10", archive, "test", train_transform=False)) == 10


def test_subsets_are_random_stratified_and_seeded():
    labels = torch.arange(10).repeat_interleave(100)  # sorted by class, as a class-per-folder copy
    idx = subset_indices(1000, 50, seed=0, labels=labels)
    assert len(idx) == 50 and len(set(idx.tolist())) == 50 and idx.tolist() == sorted(idx.tolist())
    assert labels[idx].bincount().tolist() == [5] * 10
    assert torch.equal(idx, subset_indices(1000, 50, seed=0, labels=labels))
    assert not torch.equal(idx, subset_indices(1000, 50, seed=1, labels=labels))
    uneven = torch.tensor([0] * 70 + [1] * 20 + [2] * 10)
    assert uneven[subset_indices(100, 10, seed=0, labels=uneven)].bincount().tolist() == [7, 2, 1]
    with pytest.raises(ValueError, match="subset size must be an int >= 1"):
        subset_indices(10, 0, seed=0)


def test_random_subset_of_an_in_memory_dataset(tmp_path):
    ds = load_cifar10(make_cifar10_zip(tmp_path / "c.zip", {"train": 4, "test": 1}))
    sub = random_subset(ds, 20, seed=3)
    assert sub.labels.bincount().tolist() == [2] * 10
    assert random_subset(ds, None) is ds and random_subset(ds, 1000) is ds


def test_cifar10_recipes_and_protocol():
    recipe = get_recipe("cifar10_patchvae")
    assert (recipe.dataset, recipe.epochs, recipe.model, recipe.finetune_protocol) == ("cifar10", 90, "patchvae_resnet9", "cifar10")
    assert (recipe.lr, recipe.batch_size, recipe.betas) == (1e-4, 128, (0.5, 0.999))
    for row in ("patchvae_lw", "patchvae_gan", "patchvae_gan_lw", "beta_vae", "beta_vae_lw", "beta_vae_gan", "beta_vae_gan_lw", "bigan"):
        assert get_recipe(f"cifar10_{row}").dataset == "cifar10"
    assert get_recipe("cifar10_beta_vae_lw").objective_args == {"weighted": True}
    sweep = get_sweep("table3_num_parts_cifar10")
    assert [r.model_args["num_parts"] for r in sweep] == [4, 8, 16, 32, 64] and {r.epochs for r in sweep} == {15}
    assert get_protocol("cifar10").epochs == 15 and get_protocol("paper_cifar10").epochs == 90


@pytest.mark.skipif(not SHARED_ZIP.is_file(), reason="the shared CIFAR-10 JPEG copy is not beside the checkout")
def test_train_a_few_steps_on_the_shared_copy(tmp_path):
    """The acceptance command of issue 9, scaled to two steps: patchvae train cifar10_patchvae --data-dir <zip>."""
    import json

    from patchvae.cli import main

    out = tmp_path / "run"
    rc = main(["train", "cifar10_patchvae", "--data-dir", str(SHARED_ZIP), "--epochs", "1", "--train-subset", "256",
               "--eval-subset", "100", "--out", str(out), "--no-images"])
    assert rc in (0, None)
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    epoch = next(e for e in events if e.get("event") == "epoch")
    assert epoch["step"] == 2 and np.isfinite(epoch["train"]["loss"])
    assert (out / "model" / "model.safetensors").is_file()
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model_args"]["in_chans"] == 3
