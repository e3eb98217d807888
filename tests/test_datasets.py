"""Dataset loaders and the named registry, on tiny fake datasets written in each official on-disk format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from patchvae.data import (
    CIFAR,
    DATASETS,
    FASHION_MNIST,
    IMAGENET_NORMALIZATION,
    BatchPreprocess,
    ImageTensorDataset,
    data_config_for,
    dataset_spec,
    find_fashion_mnist,
    get_dataset,
    load_cifar100,
    load_indoor67,
    load_places205,
)

from fake_datasets import INDOOR_CLASSES, PLACES_IMAGES, RED, make_cifar100, make_imagenet, make_indoor67, make_places205, patch_cifar100_md5, write_image

MEAN, STD = (torch.tensor(v).view(3, 1, 1) for v in IMAGENET_NORMALIZATION)
_write_image = write_image


def _normalized(color: tuple[int, int, int]) -> torch.Tensor:
    return ((torch.tensor(color, dtype=torch.float32).view(3, 1, 1) / 255) - MEAN) / STD


# ----------------------------------------------------------------------------------------------- registry


def test_registry_lists_the_paper_datasets_and_rejects_unknown_names():
    assert set(DATASETS) == {"fashion_mnist", "mnist", "svhn", "cifar10", "cifar100", "indoor67", "places205", "imagenet", "imagefolder"}
    assert {n: DATASETS[n].num_classes for n in DATASETS} == {
        "fashion_mnist": 10, "mnist": 10, "svhn": 10, "cifar10": 10, "cifar100": 100, "indoor67": 67, "places205": 205, "imagenet": 1000, "imagefolder": None,
    }
    assert DATASETS["indoor67"].splits == ("unsupervised", "train", "test")
    assert DATASETS["places205"].eval_split == DATASETS["imagenet"].eval_split == "val"
    for call in (lambda: get_dataset("usps", "/nowhere", "train", train_transform=False),
                 lambda: data_config_for("usps"), lambda: dataset_spec("usps")):
        with pytest.raises(ValueError, match="unknown dataset 'usps'.*cifar100.*indoor67.*places205.*imagenet"):
            call()


@pytest.mark.parametrize(
    "name, size, hflip",
    [("cifar100", 32, False), ("indoor67", 64, True), ("places205", 64, True), ("imagenet", 224, True)],
)
def test_paper_preprocessing(name, size, hflip):
    cfg = data_config_for(name)
    assert cfg.input_size == (3, size, size)
    assert (cfg.mean, cfg.std) == IMAGENET_NORMALIZATION
    assert cfg.resize_mode == "resize_crop" and cfg.hflip is hflip
    assert data_config_for(name, image_size=48).input_size == (3, 48, 48)


def test_fashion_mnist_and_imagefolder_configs():
    assert data_config_for("fashion_mnist") == FASHION_MNIST
    assert data_config_for("cifar100") == CIFAR
    with pytest.raises(ValueError, match="image_size"):
        data_config_for("imagefolder")
    cfg = data_config_for("imagefolder", image_size=96)
    assert cfg.input_size == (3, 96, 96) and cfg.hflip and (cfg.mean, cfg.std) == IMAGENET_NORMALIZATION


def test_unknown_split_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"'validation'.*\('unsupervised', 'train', 'test'\)"):
        get_dataset("indoor67", tmp_path, "validation", train_transform=False)
    with pytest.raises(ValueError, match="unknown Places205 split"):
        load_places205(tmp_path, "test")


# ----------------------------------------------------------------------------------------------- Indoor67



@pytest.fixture
def indoor67(tmp_path) -> Path:
    return make_indoor67(tmp_path / "indoor67")


def _relpaths(ds) -> set[str]:
    return {ds.relpath(i) for i in range(len(ds))}


def test_indoor67_splits_follow_the_paper(indoor67):
    unsup, train, test = (load_indoor67(indoor67, s) for s in ("unsupervised", "train", "test"))
    assert (len(unsup), len(train), len(test)) == (9, 6, 3)
    everything = {f"{c}/{c}_{i}.{'png' if i == 1 else 'jpg'}" for c in INDOOR_CLASSES for i in range(4)}
    assert _relpaths(unsup) == everything - _relpaths(test)  # all minus test, including unlisted images
    assert _relpaths(train) < _relpaths(unsup)
    assert _relpaths(test) == {f"{c}/{c}_2.jpg" for c in INDOOR_CLASSES}
    for ds in (unsup, train, test):
        assert ds.classes == INDOOR_CLASSES
        for i in range(len(ds)):  # label = index of the image's folder, the same in every split
            assert ds.classes[ds.targets[i]] == ds.relpath(i).split("/")[0]


def test_indoor67_items_are_normalised_64px(indoor67):
    ds = get_dataset("indoor67", indoor67, "train", train_transform=False)
    shapes = set()
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == torch.float32 and isinstance(y, int)
        shapes.add(tuple(x.shape))
    assert shapes == {(3, 64, 64)}  # from 40x64 ... 60x64 originals
    red = [i for i in range(len(ds)) if ds.relpath(i) == "kitchen/kitchen_1.png"][0]
    x, y = ds[red]
    assert ds.classes[y] == "kitchen"
    torch.testing.assert_close(x, _normalized(RED).expand(3, 64, 64), atol=1e-5, rtol=0)
    batch, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert batch.shape == (4, 3, 64, 64) and labels.dtype == torch.int64


def test_flips_only_in_training_transforms(indoor67):
    train_ds = get_dataset("indoor67", indoor67, "test", train_transform=True)
    eval_ds = get_dataset("indoor67", indoor67, "test", train_transform=False)
    reference = eval_ds[0][0]
    assert not torch.equal(reference, reference.flip(-1))
    for _ in range(5):
        assert torch.equal(eval_ds[0][0], reference)
    seen = {"plain": 0, "flipped": 0}
    for _ in range(24):
        x = train_ds[0][0]
        if torch.equal(x, reference):
            seen["plain"] += 1
        else:
            torch.testing.assert_close(x, reference.flip(-1), atol=0, rtol=0)
            seen["flipped"] += 1
    assert seen["plain"] > 0 and seen["flipped"] > 0


def test_indoor67_missing_files_are_named(indoor67, tmp_path):
    (indoor67 / "TrainImages.txt").unlink()
    with pytest.raises(FileNotFoundError, match=f"TrainImages.txt.*{indoor67 / 'TrainImages.txt'}.*indoor.html"):
        load_indoor67(indoor67, "train")
    assert len(load_indoor67(indoor67, "unsupervised")) == 9  # needs only TestImages.txt
    (indoor67 / "TestImages.txt").unlink()
    for split in ("unsupervised", "test"):
        with pytest.raises(FileNotFoundError, match="TestImages.txt"):
            load_indoor67(indoor67, split)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'elsewhere' / 'Images'}.*indoorCVPR_09.tar"):
        get_dataset("indoor67", tmp_path / "elsewhere", "test", train_transform=False)


def test_indoor67_listed_but_absent_image_is_an_error(indoor67):
    (indoor67 / "Images" / "library" / "library_2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="1 image.*TestImages.txt.*library/library_2.jpg"):
        load_indoor67(indoor67, "unsupervised")


def test_default_root_comes_from_the_environment(indoor67, monkeypatch):
    monkeypatch.setenv("PATCHVAE_DATA_DIR", str(indoor67.parent))
    assert len(get_dataset("indoor67", None, "test", train_transform=False)) == 3


# ---------------------------------------------------------------------------------------------- Places205



@pytest.fixture
def places205(tmp_path) -> Path:
    return make_places205(tmp_path / "places")


def test_places205_splits_and_labels(places205):
    unsup = get_dataset("places205", places205, "unsupervised", train_transform=True)
    train = get_dataset("places205", places205, "train", train_transform=False)
    val = get_dataset("places205", places205, "val", train_transform=False)
    assert (len(unsup), len(train), len(val)) == (4, 4, 2)
    assert _relpaths(unsup) == _relpaths(train)
    assert train.classes == ("b/bedroom", "a/abbey")
    for ds in (train, val):
        for i in range(len(ds)):
            assert ds.targets[i] == (1 if ds.relpath(i).startswith("a/abbey/") else 0)
    x, y = val[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y == 1


def test_places205_errors(places205):
    split_dir = places205 / "trainvalsplit_places205"
    (split_dir / "val_places205.csv").unlink()
    with pytest.raises(FileNotFoundError, match=f"val_places205.csv.*{split_dir / 'val_places205.csv'}"):
        load_places205(places205, "val")
    with pytest.raises(FileNotFoundError, match=f"{places205.parent / PLACES_IMAGES}.*imagesPlaces205_resize"):
        load_places205(places205.parent, "train")  # root one level too high
    (split_dir / "val_places205.csv").write_text("a/abbey/00000002.jpg 1\na/abbey/00000000.jpg\n")
    with pytest.raises(ValueError, match=r"val_places205.csv:2: expected '<path> <label>'"):
        load_places205(places205, "val")
    (split_dir / "val_places205.csv").write_text("a/abbey/00000002.jpg 205\n")
    with pytest.raises(ValueError, match=r"label 205 is outside \[0, 205\)"):
        load_places205(places205, "val")
    (split_dir / "val_places205.csv").write_text("abbey/00000002.jpg 1\n")
    with pytest.raises(FileNotFoundError, match="first image listed"):
        load_places205(places205, "val")


# ---------------------------------------------------------------------------------- ImageNet / ImageFolder


@pytest.fixture
def imagenet(tmp_path) -> Path:
    return make_imagenet(tmp_path / "imagenet")


def test_imagenet_folders(imagenet):
    train = get_dataset("imagenet", imagenet, "train", train_transform=True)
    unsup = get_dataset("imagenet", imagenet, "unsupervised", train_transform=True)
    val = get_dataset("imagenet", imagenet, "val", train_transform=False)
    assert (len(train), len(unsup), len(val)) == (6, 6, 2)
    assert unsup.samples == train.samples
    assert val.classes == train.classes == ["n01440764", "n01443537"]
    assert [Path(p).parent.name for p, _ in val.samples] == [val.classes[y] for _, y in val.samples]
    x, y = val[1]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and y == 1


def test_imagenet_errors(imagenet):
    with pytest.raises(ValueError, match="unknown split 'test'"):
        get_dataset("imagenet", imagenet, "test", train_transform=False)
    _write_image(imagenet / "val" / "n99999999" / "x.JPEG")
    with pytest.raises(ValueError, match=r"class folders.*differ.*\['n99999999'\]"):
        get_dataset("imagenet", imagenet, "val", train_transform=False)
    for path in sorted((imagenet / "val").rglob("*"), key=lambda p: -len(p.parts)):
        path.unlink() if path.is_file() else path.rmdir()
    _write_image(imagenet / "val" / "ILSVRC2012_val_00000001.JPEG")  # unsorted, as in the official tar
    with pytest.raises(FileNotFoundError, match="no class sub-directories.*torchvision.datasets.ImageNet"):
        get_dataset("imagenet", imagenet, "val", train_transform=False)
    with pytest.raises(FileNotFoundError, match=f"{imagenet.parent / 'train'}.*ILSVRC2012_img_train.tar"):
        get_dataset("imagenet", imagenet.parent, "train", train_transform=False)


def test_imagefolder_any_split_and_size(imagenet):
    ds = get_dataset("imagefolder", imagenet, "val", train_transform=False, image_size=32)
    assert len(ds) == 2 and ds[0][0].shape == (3, 32, 32)
    flat = get_dataset("imagefolder", imagenet / "train", None, train_transform=False, image_size=16)
    assert len(flat) == 6 and flat[5][0].shape == (3, 16, 16) and flat[5][1] == 1
    with pytest.raises(ValueError, match="image_size"):
        get_dataset("imagefolder", imagenet, "train", train_transform=False)
    with pytest.raises(FileNotFoundError, match=str(imagenet / "test")):
        get_dataset("imagefolder", imagenet, "test", train_transform=False, image_size=32)
    custom = get_dataset("imagefolder", imagenet, "train", train_transform=False, transform=lambda im: im.size)
    assert custom[0] == ((60, 45), 0)


# ---------------------------------------------------------------------------------------------- CIFAR-100


@pytest.fixture
def cifar100(tmp_path) -> tuple[Path, dict]:
    return make_cifar100(tmp_path / "cifar")


@pytest.fixture
def patched_md5(cifar100, monkeypatch):
    patch_cifar100_md5(cifar100[0] / "cifar-100-python", monkeypatch)
    return cifar100


def test_cifar100_in_memory(patched_md5):
    root, data = patched_md5
    for split, ds in (("train", load_cifar100(root, train=True)), ("test", load_cifar100(root, train=False))):
        rows, fine = data[split]
        assert isinstance(ds, ImageTensorDataset)
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(rows), 3, 32, 32)
        assert torch.equal(ds.images, torch.from_numpy(rows).view(-1, 3, 32, 32))  # channel planes kept apart
        assert ds.labels.tolist() == fine
        assert ds.classes[7] == "fine_7" and len(ds.classes) == 100
    # the registry: "unsupervised" is the training set; root may also be the cifar-100-python folder itself
    unsup = get_dataset("cifar100", root / "cifar-100-python", "unsupervised", train_transform=True)
    assert torch.equal(unsup.images, load_cifar100(root).images)
    assert len(get_dataset("cifar100", root, "test", train_transform=False)) == 4
    with pytest.raises(ValueError, match="BatchPreprocess"):
        get_dataset("cifar100", root, "train", train_transform=True, transform=lambda x: x)


def test_cifar100_batch_preprocessing_is_paper_normalisation_without_flips(patched_md5):
    ds = load_cifar100(patched_md5[0])
    cfg = data_config_for("cifar100")
    expected = (ds.images.float() / 255 - MEAN) / STD
    for train in (False, True):
        out = BatchPreprocess(cfg, train=train)(ds.images, torch.Generator().manual_seed(1))
        assert out.shape == (10, 3, 32, 32) and out.dtype == torch.float32
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_cifar100_missing_or_corrupt(cifar100, tmp_path):
    root, _ = cifar100
    with pytest.raises(FileNotFoundError, match=f"train, test, meta in {tmp_path / 'none' / 'cifar-100-python'}.*download=True"):
        get_dataset("cifar100", tmp_path / "none", "train", train_transform=False)
    with pytest.raises(RuntimeError, match="md5 check"):  # the fake files do not match torchvision's sums
        load_cifar100(root)


# ------------------------------------------------------------------------------------------ Fashion-MNIST


def test_fashion_mnist_through_the_registry():
    if find_fashion_mnist() is None:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    ds = get_dataset("fashion_mnist", None, "test", train_transform=False)
    assert isinstance(ds, ImageTensorDataset) and ds.images.shape == (10_000, 1, 28, 28)
    assert ds.labels.bincount().tolist() == [1000] * 10
