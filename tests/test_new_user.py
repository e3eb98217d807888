"""Issue #13, "tried as a new user would": the image-folder workflow, preprocessing that matches timm's and
``create_transform``, and the new-user list. Each silent-wrong case has a test that fails on the old behaviour."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_datasets import write_image
from PIL import Image
from safetensors import safe_open

from patchvae.cli import build_parser, log_level, main
from patchvae.data import DataConfig, create_transform
from patchvae.features import extract_features, iter_features, save_features
from patchvae.models import WeightsError, create

TINY_TRAIN = ["--image-size", "32", "--epochs", "1", "--set", "batch_size=4", "--threads", "1", "--workers", "0"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A class-per-folder directory without split sub-folders: 2 classes x 8 images of 50x40."""
    root = tmp_path_factory.mktemp("photos")
    for cls in ("cats", "dogs"):
        for i in range(8):
            write_image(root / cls / f"{i}.jpg", (50, 40))
    return root


@pytest.fixture(scope="module")
def folder_run(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "folder"
    assert main(["train", "folder_patchvae", "--data-dir", str(photos), "--val-fraction", "0.25", "--out", str(out),
                 "--no-images", *TINY_TRAIN]) == 0
    return out


# ----------------------------------------------------------------------------- image-folder workflow
def test_folder_recipes_exist_per_family():
    from patchvae.recipes import get_recipe, list_recipes

    assert {"folder_patchvae", "folder_beta_vae", "folder_bigan"} <= set(list_recipes("folder_*"))
    for name in list_recipes("folder_*"):
        assert get_recipe(name).dataset == "imagefolder"


def test_folder_run_config_names_what_was_run(folder_run, photos):
    """Before: only `--set dataset=imagefolder` on a cifar100 recipe, and the config said `cifar100_patchvae`."""
    cfg = json.loads((folder_run / "model" / "config.json").read_text())
    assert cfg["recipe"] == "folder_patchvae" and cfg["dataset"] == "imagefolder"
    assert cfg["data"]["data_dir"] == str(photos.resolve()) and cfg["data"]["val_fraction"] == 0.25
    assert cfg["overrides"]["image_size"] == 32 and cfg["overrides"]["batch_size"] == "4"
    assert cfg["data_config"]["input_size"] == [3, 32, 32]
    epochs = [json.loads(line) for line in (folder_run / "log.jsonl").read_text().splitlines() if '"epoch"' in line]
    assert any("eval" in e for e in epochs)  # the held-out fraction was evaluated


def test_any_split_names_flat_folders_and_beta_vae_at_a_chosen_size(tmp_path):
    for split, n in (("training", 8), ("validation", 4)):
        for cls in ("a", "b"):
            for i in range(n // 2):
                write_image(tmp_path / "data" / split / cls / f"{i}.png", (30, 70))
    out = tmp_path / "named"
    assert main(["train", "folder_beta_vae", "--data-dir", str(tmp_path / "data"), "--train-split", "training",
                 "--eval-split", "validation", "--out", str(out), "--no-images", *TINY_TRAIN]) == 0
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert cfg["data"]["train_split"] == "training" and cfg["data"]["eval_split"] == "validation"
    assert cfg["model_args"]["img_size"] == 32
    flat = tmp_path / "flat"
    for i in range(10):
        write_image(flat / f"{i}.png", (40, 40))
    assert main(["train", "folder_patchvae", "--data-dir", str(flat), "--val-fraction", "0.2", "--out",
                 str(tmp_path / "flat_run"), "--no-images", *TINY_TRAIN]) == 0


def test_missing_eval_split_is_an_error_not_a_silent_run_without_evaluation(photos, tmp_path, capsys):
    """Before: a warning, then a run with no eval loss and no PNGs."""
    assert main(["train", "folder_patchvae", "--data-dir", str(photos), "--out", str(tmp_path / "r"), *TINY_TRAIN]) == 1
    err = capsys.readouterr().err
    assert "no eval split 'val'" in err and "--eval-split" in err and "--val-fraction" in err
    assert not (tmp_path / "r" / "checkpoint.safetensors").exists()


def test_rerunning_into_an_existing_out_says_resume_or_new_out(folder_run, photos, capsys):
    """The README quick-start run again: a one-line error naming --resume and --out."""
    assert main(["train", "folder_patchvae", "--data-dir", str(photos), "--val-fraction", "0.25", "--out",
                 str(folder_run), *TINY_TRAIN]) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "another --out" in err


def test_preview_images_are_a_stratified_random_sample(tmp_path):
    """Before: the first 16 eval images, one class of a sorted folder."""
    from patchvae.recipes import get_recipe
    from patchvae.training.data import build_run_data
    from patchvae.training.distributed import World

    for cls in ("a", "b", "c"):
        for i in range(12):
            write_image(tmp_path / "val" / cls / f"{i}.png", (36, 36))
            write_image(tmp_path / "train" / cls / f"{i}.png", (36, 36))
    recipe = get_recipe("folder_patchvae").with_overrides({"image_size": 32, "batch_size": 4})
    data = build_run_data(recipe, tmp_path, World(), torch.device("cpu"), num_workers=0)
    first = next(iter(data.eval))[1][:16]
    assert first.unique().numel() == 2  # what the PNGs showed before: 12 of class a, 4 of class b
    images, labels = next(iter(data.preview))
    assert images.shape == (16, 3, 32, 32) and labels.unique().numel() == 3 and labels.bincount().min() >= 5
    again = next(iter(build_run_data(recipe, tmp_path, World(), torch.device("cpu"), num_workers=0).preview))[0]
    assert torch.equal(images, again)  # fixed across epochs and runs


def test_train_logs_progress_when_stderr_is_not_a_terminal(photos, tmp_path, caplog):
    """Before: tqdm disabled off a terminal and nothing else (nohup/SLURM saw nothing until an epoch ended)."""
    from patchvae.recipes import get_recipe
    from patchvae.training import train

    recipe = get_recipe("folder_patchvae").with_overrides({"image_size": 32, "batch_size": 4, "epochs": 1})
    with caplog.at_level(logging.INFO, logger="patchvae.training.trainer"):
        train(recipe, tmp_path / "r", data_dir=photos, val_fraction=0.25, log_every=1, num_workers=0,
              save_images=False, export=False, progress=False)
    steps = [r.getMessage() for r in caplog.records if "step" in r.getMessage()]
    assert len(steps) == 3 and "loss" in steps[0]


# ----------------------------------------------------------------------------- preprocessing
def _weights_model(chans: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create("patchvae_resnet9", in_chans=chans, num_parts=4, part_dim=4).eval()
    cfg = DataConfig((chans, 32, 32), (0.5,) * chans, (0.25,) * chans, crop_pct=0.875)
    model.data_config = cfg
    return model


@pytest.mark.parametrize("size", [(90, 60), (20, 33), (32, 32), (1, 1)])
def test_create_transform_extract_features_and_timm_give_the_same_tensors(size):
    """Before: RGB images into a 1-channel model differed between create_transform and extract_features."""
    import timm.data

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    models = {3: create("patchvae_resnet9.cifar10", pretrained=True), 1: create("patchvae_resnet9.fmnist", pretrained=True)}
    for chans, image in ((3, rgb), (1, rgb.convert("L")), (1, rgb), (3, rgb.convert("L"))):
        model = models[chans].eval()
        ours = create_transform(model)(image)
        assert ours.shape == (chans, 32, 32)
        if image.mode == ("RGB" if chans == 3 else "L"):  # timm converts no channels
            timm_tf = timm.data.create_transform(**timm.data.resolve_data_config(model=model))
            assert torch.equal(timm_tf(image), ours)
        direct = extract_features(model, image, layer="features", amp=None, progress=False)["features"]
        via = extract_features(model, ours[None], layer="features", amp=None, progress=False, preprocessed=True)["features"]
        assert torch.equal(direct, via), (chans, image.mode)


def test_create_transform_takes_timms_is_training_and_train_still_works():
    cfg = DataConfig((3, 32, 32), (0.5,) * 3, (0.5,) * 3, hflip=True)
    assert any("Flip" in type(t).__name__ for t in create_transform(cfg, is_training=True).transforms)
    assert not any("Flip" in type(t).__name__ for t in create_transform(cfg).transforms)
    with pytest.warns(FutureWarning, match=r"create_transform\(train=...\) is deprecated.*is_training"):
        old = create_transform(cfg, train=True)
    assert any("Flip" in type(t).__name__ for t in old.transforms)


def test_eval_and_finetune_use_the_weights_preprocessing_on_an_image_folder(photos):
    """Before: the dataset's normalisation (with a warning) and no way to use the weights'."""
    from patchvae.cli.evaluation import _load_data

    parser = build_parser()
    args = parser.parse_args(["eval", "patchvae_resnet9.cifar10", "--dataset", "imagefolder", "--data-dir", str(photos)])
    # the folder has no train/val split: point both at the folder's class folders via a two-split layout
    assert args.preprocessing == "weights"
    weights_cfg = create("patchvae_resnet9", pretrained=True).data_config
    for split in ("train", "val"):
        (photos.parent / "splits" / split).mkdir(parents=True, exist_ok=True)
        for cls in ("cats", "dogs"):
            link = photos.parent / "splits" / split / cls
            if not link.exists():
                link.symlink_to(photos / cls)
    args.data_dir = str(photos.parent / "splits")
    splits = _load_data(args)
    assert splits.data_config == weights_cfg
    x, _ = splits.test[0]
    assert x.shape == weights_cfg.input_size
    torch.testing.assert_close(x, create_transform(weights_cfg)(Image.open(splits.test.samples[0][0])))
    args = parser.parse_args(["eval", "patchvae_resnet9.cifar10", "--dataset", "imagefolder", "--data-dir", args.data_dir,
                              "--preprocessing", "dataset", "--image-size", "48"])
    assert _load_data(args).test[0][0].shape == (3, 48, 48)


def test_eval_and_finetune_read_any_split_names_of_an_image_folder(photos):
    """Before: an image folder had to have train/ and val/; now --train-split/--eval-split name any sub-folders."""
    from patchvae.cli.evaluation import _load_data

    root = photos.parent / "named_splits"
    for split in ("fit", "holdout"):
        for cls in ("cats", "dogs"):
            link = root / split / cls
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(photos / cls)
    parser = build_parser()
    args = parser.parse_args(["finetune", "random", "--dataset", "imagefolder", "--data-dir", str(root),
                              "--train-split", "fit", "--eval-split", "holdout", "--image-size", "32"])
    splits = _load_data(args)
    assert Path(splits.train.root).name == "fit" and Path(splits.test.root).name == "holdout"
    assert splits.num_classes == 2 and len(splits.train) == len(splits.test)
    args = parser.parse_args(["eval", "random", "--dataset", "imagefolder", "--data-dir", str(root), "--image-size", "32"])
    with pytest.raises(FileNotFoundError, match="named_splits/train .*--train-split and --eval-split"):  # defaults absent
        _load_data(args)


def test_epoch_pngs_are_enlarged_and_labelled(tmp_path):
    """Before: 32x32 tiles at their own size, no caption; now enlarged to >= 256 px with a title line."""
    from patchvae.data import CIFAR
    from patchvae.training.images import MIN_HEIGHT, save_reconstructions, save_visibility_maps

    x = torch.zeros(8, 3, 32, 32)
    path = save_reconstructions(tmp_path / "epoch_001_reconstructions.png", x, x, CIFAR)
    with Image.open(path) as png:
        scale = -(-MIN_HEIGHT // (2 * 33 + 1))  # 2 rows of 32 px tiles with 1 px padding, enlarged 4x
        assert (png.width, png.height) == ((8 * 33 + 1) * scale, (2 * 33 + 1) * scale + 16)
        assert png.getpixel((10, 30)) != (255, 255, 255)  # an enlarged tile below the title line
        assert len(png.crop((0, 0, png.width, 16)).getcolors(maxcolors=1 << 16)) > 1  # the title is drawn
    path = save_visibility_maps(tmp_path / "v.png", x[:2], torch.rand(2, 16, 4, 4), CIFAR)
    with Image.open(path) as png:
        assert png.height >= MIN_HEIGHT + 16


# ----------------------------------------------------------------------------- extraction
@pytest.fixture()
def damaged(tmp_path) -> Path:
    folder = tmp_path / "imgs"
    for i in range(3):
        write_image(folder / f"{i}.jpg", (40, 40))
    data = (folder / "1.jpg").read_bytes()
    (folder / "1.jpg").write_bytes(data[: len(data) // 3])  # a truncated JPEG
    return folder


def test_one_truncated_jpeg_can_be_skipped_and_is_reported(damaged, tmp_path, caplog):
    """Before: one bad file aborted the whole folder, with no way to skip it."""
    model = _weights_model()
    with pytest.raises(ValueError, match="cannot read image file .*1.jpg"):
        extract_features(model, damaged, progress=False)
    with caplog.at_level(logging.WARNING):
        feats = extract_features(model, damaged, progress=False, on_error="skip", batch_size=1)
    assert feats["pooled"].shape[0] == 2 and list(feats) == ["pooled"]  # still a dict of tensors
    assert [Path(f).name for f in feats.files] == ["0.jpg", "2.jpg"]
    assert [Path(name).name for name, _ in feats.skipped] == ["1.jpg"] and "truncated" in feats.skipped[0][1]
    assert "skipping" in caplog.text and "1.jpg" in caplog.text
    batches = list(iter_features(model, damaged, progress=False, on_error="skip", batch_size=1))
    assert sum(len(b.skipped) for b in batches) == 1
    out = save_features(model, damaged, tmp_path / "f.safetensors", on_error="skip", progress=False)
    with safe_open(str(out), "np") as f:
        meta = f.metadata()
    assert [Path(p).name for p, _ in json.loads(meta["skipped"])] == ["1.jpg"]
    with pytest.raises(ValueError, match="on_error must be one of"):
        extract_features(model, damaged, on_error="ignore")


def test_cli_skip_bad_files(damaged, tmp_path, capsys):
    weights = tmp_path / "w"
    from patchvae.models import save_pretrained

    save_pretrained(_weights_model(), weights)
    assert main(["extract", str(damaged), "--model", str(weights), "--out", str(tmp_path / "a.npy"), "--no-progress"]) == 1
    assert "1.jpg" in capsys.readouterr().err
    assert main(["extract", str(damaged), "--model", str(weights), "--out", str(tmp_path / "a.npy"), "--no-progress",
                 "--skip-bad-files"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable file(s)" in out and "1.jpg" in out
    assert (tmp_path / "a.skipped.txt").read_text().startswith(str(damaged / "1.jpg"))
    assert len((tmp_path / "a.files.txt").read_text().splitlines()) == 2


def test_metadata_records_the_actual_amp_and_the_full_name(tmp_path):
    """Before: metadata `amp: auto` and the name without its tag."""
    from patchvae._runtime import resolve_amp

    image = np.zeros((32, 32, 3), np.uint8)
    out = save_features("patchvae_resnet9", image, tmp_path / "a.safetensors", progress=False)
    with safe_open(str(out), "np") as f:
        meta = f.metadata()
    expected = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(resolve_amp("auto", torch.device("cpu")), "none")
    assert meta["amp"] == expected and meta["model"] == create("patchvae_resnet9", pretrained=True).pretrained_cfg.name
    assert "." in meta["model"]
    out = save_features("patchvae_resnet9", image, tmp_path / "b.safetensors", progress=False, amp=None)
    with safe_open(str(out), "np") as f:
        assert f.metadata()["amp"] == "none"
    assert extract_features("patchvae_resnet9", image, progress=False, amp=None).amp == "none"


def test_folder_features_return_their_file_names(damaged):
    (damaged / "1.jpg").unlink()
    feats = extract_features(_weights_model(), damaged, progress=False)
    assert isinstance(feats, dict) and [Path(f).name for f in feats.files] == ["0.jpg", "2.jpg"]
    assert extract_features(_weights_model(), np.zeros((2, 8, 8, 3), np.uint8), progress=False).files == [None, None]


def test_unit_range_float_tensors_are_refused_with_a_one_line_fix():
    """A deliberate, documented refusal: [0, 1] floats cannot be told from normalised ones (torch.rand is both)."""
    with pytest.raises(TypeError, match=r"ToTensor.*\(x \* 255\)\.round\(\)\.to\(torch\.uint8\)"):
        extract_features(_weights_model(), torch.rand(1, 3, 32, 32), progress=False)


def test_a_training_checkpoint_is_named_as_such(folder_run):
    """Before: "weights of another architecture"."""
    with pytest.raises(WeightsError, match=r"is a training checkpoint .* weights folder is .*model"):
        create("patchvae_resnet9", checkpoint_path=folder_run / "checkpoint.safetensors")
    create("patchvae_resnet9", checkpoint_path=folder_run / "model")  # what the message says works


# ----------------------------------------------------------------------------- CLI
def test_verbosity_flags():
    parser = build_parser()
    assert parser.parse_args(["-q", "list"]).quiet == 1
    args = parser.parse_args(["train", "fmnist_patchvae", "-v"])
    assert args.verbose == 1
    assert log_level(0, 0) == logging.INFO and log_level(1, 0) == logging.DEBUG
    assert log_level(0, 1) == logging.WARNING and log_level(0, 2) == logging.ERROR


def test_runtime_options_are_consistent_across_subcommands():
    """Before: --device defaults auto/None, --amp choices (bf16, fp16) vs (auto, bf16, fp16, none), --workers 4 on 2 cores."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("train", "eval", "finetune", "extract"):
        actions = {a.dest: a for a in sub.choices[name]._actions}
        assert actions["device"].default == "auto", name
        assert tuple(actions["amp"].choices) == ("auto", "bf16", "fp16", "none"), name
        assert "threads" in actions, name
    assert {a.dest: a for a in sub.choices["train"]._actions}["workers"].default == "auto"
    from patchvae.cli._common import resolve_workers

    assert 0 <= resolve_workers("auto") <= 4 and resolve_workers("2") == 2
    with pytest.raises(ValueError, match="--workers"):
        resolve_workers("-1")


def test_cli_errors_name_the_download_flag(tmp_path):
    from patchvae.data import get_dataset

    with pytest.raises(FileNotFoundError, match="--download"):
        get_dataset("cifar100", tmp_path / "none", "train", train_transform=False)
