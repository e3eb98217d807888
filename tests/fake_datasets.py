"""Tiny fake datasets written in each official on-disk layout (shared by the data and recipe tests)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)
INDOOR_CLASSES = ("bedroom", "kitchen", "library")
RED = (200, 30, 90)
PLACES_IMAGES = Path("data/vision/torralba/deeplearning/images256")


def write_image(path: Path, size: tuple[int, int] = (48, 40), color: tuple[int, int, int] | None = None) -> None:
    """A random (or uniform ``color``) RGB image of ``size`` = (width, height); format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    pixels = np.full((h, w, 3), color, np.uint8) if color else RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def make_indoor67(root: Path) -> Path:
    """3 classes × 4 images: 2 listed in TrainImages.txt, 1 in TestImages.txt, 1 in neither (as in the real data)."""
    train, test = [], []
    for cls in INDOOR_CLASSES:
        names = [f"{cls}_0.jpg", f"{cls}_1.png", f"{cls}_2.jpg", f"{cls}_3.jpg"]
        for i, name in enumerate(names):
            color = RED if (cls, i) == ("kitchen", 1) else None
            write_image(root / "Images" / cls / name, size=(40 + 20 * i, 64), color=color)
        train += [f"{cls}/{names[0]}", f"{cls}/{names[1]}"]
        test.append(f"{cls}/{names[2]}")
    (root / "TrainImages.txt").write_text("\n".join(train) + "\n")
    (root / "TestImages.txt").write_text("\r\n".join(test) + "\r\n")  # the official files may have CRLF
    return root


def make_places205(root: Path) -> Path:
    """Labels deliberately not in folder order (abbey = 1, bedroom = 0) to show the csv labels are used."""
    rows: dict[str, list[str]] = {"train": [], "val": []}
    for folder, label in (("a/abbey", 1), ("b/bedroom", 0)):
        for i in range(3):
            rel = f"{folder}/{i:08d}.jpg"
            write_image(root / PLACES_IMAGES / rel, size=(72, 64))
            rows["train" if i < 2 else "val"].append(f"{'/' if i == 1 else ''}{rel} {label}")
    split_dir = root / "trainvalsplit_places205"
    split_dir.mkdir(parents=True)
    for split, lines in rows.items():
        (split_dir / f"{split}_places205.csv").write_text("\n".join(lines) + "\n")
    return root


def make_imagenet(root: Path, per_class: int = 3, size: tuple[int, int] = (60, 45)) -> Path:
    for split, count in (("train", per_class), ("val", 1)):
        for wnid in ("n01440764", "n01443537"):
            for i in range(count):
                write_image(root / split / wnid / f"{wnid}_{i}.JPEG", size=size)
    return root


def make_cifar100(parent: Path, sizes: tuple[int, int] = (10, 4)) -> tuple[Path, dict]:
    """``cifar-100-python/{train,test,meta}`` pickled as in the official release; returns (parent, data)."""
    folder = parent / "cifar-100-python"
    folder.mkdir(parents=True)
    data = {}
    for split, n in zip(("train", "test"), sizes):
        rows = RNG.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)  # R plane, G plane, B plane per row
        fine = RNG.integers(0, 100, n).tolist()
        data[split] = (rows, fine)
        entry = {"filenames": [f"img_{i}.png" for i in range(n)], "batch_label": f"{split} batch",
                 "fine_labels": fine, "coarse_labels": [f // 5 for f in fine], "data": rows}
        (folder / split).write_bytes(pickle.dumps(entry))
    meta = {"fine_label_names": [f"fine_{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return parent, data


def patch_cifar100_md5(folder: Path, monkeypatch) -> None:
    """torchvision's expected md5 sums replaced by those of the fake files (real files pass the real checks)."""
    import hashlib

    from torchvision.datasets import CIFAR100

    md5 = lambda p: hashlib.md5(p.read_bytes()).hexdigest()  # noqa: E731
    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5(folder / "train")]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5(folder / "test")]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": md5(folder / "meta")})
