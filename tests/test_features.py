"""extract_features: one uint8 pipeline for every input type, documented layers and shapes, batch-size
invariance, sampling, streaming to disk, the CLI, and a fuzz test over odd inputs."""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset, TensorDataset
from zoo_helpers import TINY, randomize_batchnorm, single_thread, tiny_patchvae, weights_folder  # noqa: F401 (fixture)

import patchvae
import patchvae._extract.inputs as extract_inputs
from patchvae.cli import main
from patchvae.data import BatchPreprocess, DataConfig, create_transform
from patchvae.features import available_layers, extract_features, iter_features, list_image_files, save_features
from patchvae.models import PatchVAE, create, create_backbone

pytestmark = pytest.mark.usefixtures("single_thread")

PATCH_LAYERS = ["stem", "layer1", "layer2", "features", "pooled", "visibility", "visibility_logits", "appearance", "appearance_var", "patch_code"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize_batchnorm(create("patchvae_resnet9", **TINY)).eval()


@pytest.fixture(scope="module")
def rgb():
    """Five 30x40 RGB images (uint8 NHWC), resized + centre-cropped to 32x32 by the CIFAR preprocessing."""
    return np.random.default_rng(0).integers(0, 256, size=(5, 30, 40, 3), dtype=np.uint8)


def _extract(model, inputs, **kwargs):
    kwargs.setdefault("layer", PATCH_LAYERS)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("amp", None)  # exact float32, to compare with the model's own outputs
    return extract_features(model, inputs, **kwargs)


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class ImagesDataset(Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], i  # (image, label)


# ----------------------------------------------------------------------------- one pipeline
def test_every_input_type_gives_bit_identical_features(model, rgb, tmp_path):
    folder = tmp_path / "imgs"
    (folder / "nested").mkdir(parents=True)
    paths = []
    for i, image in enumerate(rgb):
        path = folder / ("nested" if i % 2 else "") / f"{i:02d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    tensor = torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous()
    reference = _extract(model, tensor, batch_size=3)
    assert reference["pooled"].shape == (5, 128)
    variants = {
        "list of (C, H, W) tensors": list(tensor),
        "list of PIL images": [Image.fromarray(a) for a in rgb],
        "numpy (N, H, W, C)": rgb,
        "list of numpy (H, W, C)": list(rgb),
        "list of paths": [str(p) for p in paths],
        "Dataset": ImagesDataset([Image.fromarray(a) for a in rgb]),
        "TensorDataset": TensorDataset(tensor, torch.arange(5)),
        "DataLoader": DataLoader(TensorDataset(tensor, torch.arange(5)), batch_size=2),
    }
    for name, inputs in variants.items():
        _assert_identical(_extract(model, inputs, batch_size=3), reference)
    # a folder is read in sorted path order (list_image_files)
    order = [paths.index(p) for p in list_image_files(folder)]
    by_folder = _extract(model, folder, batch_size=3)
    _assert_identical(by_folder, {k: v[order] for k, v in reference.items()})


def test_gray_and_alpha_images_go_through_the_same_pipeline(model):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(24, 20), dtype=np.uint8)
    rgba = rng.integers(0, 256, size=(24, 20, 4), dtype=np.uint8)
    reference_gray = _extract(model, torch.from_numpy(gray)[None])  # (1, H, W) tensor, expanded to RGB
    for inputs in (gray, gray[..., None], Image.fromarray(gray), [Image.fromarray(gray).convert("LA")]):
        _assert_identical(_extract(model, inputs), reference_gray)
    assert not torch.equal(reference_gray["pooled"], _extract(model, np.ascontiguousarray(gray.T))["pooled"])
    reference_rgba = _extract(model, rgba[..., :3])  # alpha dropped
    for inputs in (rgba, Image.fromarray(rgba), torch.from_numpy(rgba).permute(2, 0, 1)):
        _assert_identical(_extract(model, inputs), reference_rgba)


def test_images_of_different_sizes_in_one_call(model):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in ((32, 32), (17, 50), (64, 48), (5, 7))]
    together = _extract(model, images, batch_size=4)
    for i, image in enumerate(images):
        alone = _extract(model, image)
        for key in together:
            torch.testing.assert_close(together[key][i : i + 1], alone[key], rtol=1e-4, atol=1e-5)


def test_preprocessing_is_the_weights_own(model):
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    normalised = BatchPreprocess(model.data_config)(x)
    torch.testing.assert_close(normalised[:, 0].mean(), ((x[:, 0].float() / 255 - 0.485) / 0.229).mean())  # ImageNet stats
    _assert_identical(_extract(model, normalised, preprocessed=True), _extract(model, x))


def test_batch_size_does_not_change_results(model, rgb):
    reference = _extract(model, rgb, batch_size=64)
    for batch_size in (1, 2, 4):
        out = _extract(model, rgb, batch_size=batch_size)
        for key in reference:
            torch.testing.assert_close(out[key], reference[key], rtol=1e-4, atol=1e-5, msg=key)


# ----------------------------------------------------------------------------- layers and shapes
def _models():
    torch.manual_seed(0)
    return {
        "patchvae": create("patchvae_resnet9", **TINY),
        "patchvae_resnet18": create("patchvae_resnet18", **TINY),
        "beta_vae": create("beta_vae_resnet9_32", latent_dim=8),
        "bigan": create("bigan_resnet9_32", latent_dim=8),
        "classifier": create("classifier_resnet9_32", num_classes=5),
        "backbone": create_backbone("patchvae_resnet9", **TINY),
    }


EXPECTED_SHAPES = {  # documented per-image shapes at each model's data_config input size
    "patchvae": {"stem": (64, 16, 16), "layer1": (64, 8, 8), "layer2": (128, 4, 4), "features": (128, 4, 4), "pooled": (128,),
                 "visibility": (2, 4, 4), "visibility_logits": (2, 4, 4), "appearance": (2, 2), "appearance_var": (2, 2), "patch_code": (4, 4, 4)},
    "patchvae_resnet18": {"stem": (64, 112, 112), "layer1": (64, 56, 56), "layer2": (128, 28, 28), "layer3": (256, 14, 14),
                          "layer4": (512, 7, 7), "features": (512, 7, 7), "pooled": (512,), "visibility": (2, 7, 7),
                          "visibility_logits": (2, 7, 7), "appearance": (2, 2), "appearance_var": (2, 2), "patch_code": (4, 7, 7)},
    "beta_vae": {"stem": (64, 16, 16), "layer1": (64, 8, 8), "layer2": (128, 4, 4), "features": (128, 4, 4), "pooled": (128,), "latent": (8,), "latent_var": (8,)},
    "bigan": {"stem": (64, 16, 16), "layer1": (64, 8, 8), "layer2": (128, 4, 4), "features": (128, 4, 4), "pooled": (128,), "latent": (8,)},
    "classifier": {"stem": (64, 16, 16), "layer1": (64, 8, 8), "layer2": (128, 4, 4), "features": (128, 4, 4), "pooled": (128,), "pre_logits": (512,), "logits": (5,)},
    "backbone": {"stem": (64, 16, 16), "layer1": (64, 8, 8), "layer2": (128, 4, 4), "features": (128, 4, 4), "pooled": (128,)},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_SHAPES))
def test_every_layer_has_its_documented_shape_and_meaning(kind):
    model = _models()[kind].eval()
    assert available_layers(model) == list(EXPECTED_SHAPES[kind])
    images = np.random.default_rng(3).integers(0, 256, size=(2, 40, 40, 3), dtype=np.uint8)
    out = _extract(model, images, layer=available_layers(model))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == EXPECTED_SHAPES[kind]
    assert all(v.shape[0] == 2 and v.dtype == torch.float32 for v in out.values())
    torch.testing.assert_close(out["pooled"], out["features"].mean((2, 3)))
    torch.testing.assert_close(out["features"], out[model.stage_names[-1] if kind == "backbone" else model.backbone.stage_names[-1]])
    # extraction preprocesses as create_transform(model) (PIL resize, as timm) and runs channels_last
    x = torch.stack([create_transform(model)(Image.fromarray(image)) for image in images])
    close = functools.partial(torch.testing.assert_close, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        if kind.startswith("patchvae"):
            ref = model(x)
            torch.testing.assert_close(out["visibility"], torch.sigmoid(out["visibility_logits"]))
            close(out["appearance"], ref.appearance_mean)
            close(out["patch_code"], ref.patch_code)  # the model's eval-mode ẑ
        elif kind == "beta_vae":
            close(out["latent"], model(x).latent_mean)
        elif kind == "bigan":
            close(out["latent"], model.encode(x).latent)
        elif kind == "classifier":
            close(out["logits"], model(x))
        else:
            close(out["pooled"], model(x))


def test_default_precision_is_bf16_autocast_where_the_cpu_has_it(model, rgb):
    from patchvae._runtime import cpu_has_native_bf16

    fast = extract_features(model, rgb, layer=["pooled", "appearance"], progress=False)  # amp="auto"
    exact = extract_features(model, rgb, layer=["pooled", "appearance"], progress=False, amp=None)
    bf16 = extract_features(model, rgb, layer=["pooled", "appearance"], progress=False, amp="bf16")
    for key in exact:
        assert fast[key].dtype == torch.float32
        assert torch.nn.functional.cosine_similarity(fast[key].flatten(1), exact[key].flatten(1)).min() > 0.99
        if cpu_has_native_bf16():
            torch.testing.assert_close(fast[key], bf16[key], rtol=0, atol=0)
            assert not torch.equal(fast[key], exact[key])
        else:
            torch.testing.assert_close(fast[key], exact[key], rtol=0, atol=0)


def test_every_layer_is_documented():
    """The layer table of docs/api.md (linked from extract_features' docstring) names every layer."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    assert "docs/api.md" in extract_features.__doc__
    for layer in {name for shapes in EXPECTED_SHAPES.values() for name in shapes}:
        assert f"`{layer}`" in doc, layer


def test_unknown_layers_and_modes(model):
    with pytest.raises(ValueError, match=r"PatchVAE has no layer 'visibilty'. Did you mean 'visibility'\?"):
        _extract(model, np.zeros((8, 8), np.uint8), layer="visibilty")
    with pytest.raises(ValueError, match="has no layer 'latent'"):
        _extract(model, np.zeros((8, 8), np.uint8), layer=["pooled", "latent"])
    with pytest.raises(TypeError, match="non-empty list of names"):
        _extract(model, np.zeros((8, 8), np.uint8), layer=[])
    with pytest.raises(ValueError, match="mode must be one of"):
        _extract(model, np.zeros((8, 8), np.uint8), mode="median")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        _extract(model, np.zeros((8, 8), np.uint8), batch_size=0)
    with pytest.raises(ValueError, match="has no layer 'nope'"):
        iter_features(model, np.zeros((8, 8), np.uint8), layer="nope")  # checked at call time, not at the first batch


# ----------------------------------------------------------------------------- sampling
def test_sample_mode_is_seeded_per_image(model, rgb):
    layers = ["appearance", "patch_code", "visibility"]
    mean = _extract(model, rgb, layer=layers)
    a = _extract(model, rgb, layer=layers, mode="sample", seed=1, batch_size=2)
    b = _extract(model, rgb, layer=layers, mode="sample", seed=1, batch_size=5)
    c = _extract(model, rgb, layer=layers, mode="sample", seed=2, batch_size=2)
    for key in layers:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)  # batch size does not change samples
    assert not torch.allclose(a["appearance"], c["appearance"]) and not torch.allclose(a["appearance"], mean["appearance"])
    torch.testing.assert_close(a["visibility"], mean["visibility"])  # probabilities: not sampled
    # ẑ = z_app ⊗ z_vis with z_vis ∈ {0, 1}: each part's code is its sampled appearance or zero
    code = a["patch_code"].view(5, 2, 2, 4, 4)
    on = torch.isclose(code, a["appearance"][..., None, None].expand_as(code)).all(2)
    off = (code == 0).all(2)
    assert bool((on | off).all()) and bool(on.any()) and bool(off.any())


def test_beta_vae_sample_mode():
    model = create("beta_vae_resnet9_32", latent_dim=8).eval()
    images = np.random.default_rng(4).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    mean = _extract(model, images, layer=["latent", "latent_var"])
    sample = _extract(model, images, layer=["latent"], mode="sample", seed=0)
    z = (sample["latent"] - mean["latent"]) / mean["latent_var"].sqrt()  # standardised noise
    assert z.abs().max() < 6 and z.std() > 0.5


# ----------------------------------------------------------------------------- model handling
def test_model_state_is_restored_and_eval_is_used(rgb):
    model = tiny_patchvae(seed=5).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _extract(model, rgb)
    assert model.training  # restored
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BN running stats untouched: eval mode was used
    eval_out = _extract(model.eval(), rgb)
    model.train()
    _assert_identical(_extract(model, rgb), eval_out)


@pytest.mark.usefixtures("isolated_zoo")
def test_models_without_preprocessing_and_names_without_weights(rgb, tmp_path):
    raw = PatchVAE(**TINY).eval()
    with pytest.raises(ValueError, match="has no data_config .*preprocessed=True"):
        _extract(raw, rgb)
    x = torch.randn(2, 3, 32, 32)
    assert _extract(raw, x, preprocessed=True)["pooled"].shape == (2, 128)
    raw.data_config = DataConfig((3, 16, 16), (0.5,) * 3, (0.5,) * 3)
    assert _extract(raw, rgb)["visibility"].shape == (5, 2, 2, 2)
    with pytest.raises(ValueError, match=r"'patchvae_resnet9' has no pretrained weights .*checkpoint_path"):
        extract_features("patchvae_resnet9", rgb)
    model = tiny_patchvae(seed=6)
    folder = weights_folder(tmp_path / "w", model)
    _assert_identical(_extract(str(folder), rgb), _extract(model, rgb))
    with pytest.raises(TypeError, match="Representable protocol.*got Discriminator"):
        _extract(create("vaegan_discriminator"), rgb)
    with pytest.raises(TypeError, match="features_only"):
        _extract(create("patchvae_resnet9", features_only=True, **TINY), rgb)


def test_raw_float_tensors_need_preprocessed(model):
    with pytest.raises(TypeError, match=r"dtype torch.float32; raw images are uint8 .*preprocessed=True.*\(x \* 255\)"):
        _extract(model, torch.rand(2, 3, 32, 32))
    with pytest.raises(TypeError, match="preprocessed=True is for normalised float tensors; PIL images are raw"):
        _extract(model, Image.new("RGB", (8, 8)), preprocessed=True)
    with pytest.raises(ValueError, match=r"expected 3 input channel\(s\), got 1"):
        _extract(model, torch.randn(2, 1, 32, 32), preprocessed=True)
    with pytest.raises(ValueError, match="not a positive multiple of the network stride 8"):
        _extract(model, torch.randn(2, 3, 30, 32), preprocessed=True)
    with pytest.raises(TypeError, match="numpy image must be uint8"):
        _extract(model, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(3, 32, 32\) is not \(H, W, C\).*np.transpose"):
        _extract(model, np.zeros((3, 32, 32), np.uint8))


# ----------------------------------------------------------------------------- folders, streaming, files
@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    (root / "b" / "deep").mkdir(parents=True)
    rng = np.random.default_rng(7)
    names = ["a.png", "b/deep/c.JPG", "b/x.bmp", "z.PNG", "b/d.tif"]
    for name in names:
        Image.fromarray(rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)).save(root / name)
    (root / "notes.txt").write_text("not an image")
    (root / "b" / "model.safetensors").write_bytes(b"not an image either")
    return root


def test_folders_are_read_recursively_in_sorted_order(folder):
    files = [p.relative_to(folder).as_posix() for p in list_image_files(folder)]
    assert files == ["a.png", "b/d.tif", "b/deep/c.JPG", "b/x.bmp", "z.PNG"]
    batches = list(iter_features(tiny_patchvae(), folder, batch_size=2, progress=False))
    assert [b.start for b in batches] == [0, 2, 4]
    assert [n for b in batches for n in b.names] == [str(folder / f) for f in files]


def test_folders_are_streamed_not_loaded(folder, monkeypatch):
    reads = []
    real = extract_inputs.read_image_file
    monkeypatch.setattr(extract_inputs, "read_image_file", lambda path: reads.append(path) or real(path))
    batches = iter_features(tiny_patchvae(), folder, batch_size=2, progress=False)
    first = next(batches)
    assert first.features["pooled"].shape == (2, 128) and len(reads) == 2  # only the first batch was read
    batches.close()


def test_bad_paths(folder, model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _extract(model, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        _extract(model, tmp_path / "empty")
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match=re.escape(f"cannot read image file {folder / 'broken.png'}")):
        _extract(model, folder)
    with pytest.raises(ValueError, match="no images to extract"):
        _extract(model, [])


def test_save_features_streams_to_npy_and_safetensors(folder, tmp_path):
    model = tiny_patchvae(seed=8)
    expected = _extract(model, folder, layer=["pooled", "visibility"], batch_size=2, amp="auto")  # the default precision
    out = save_features(model, folder, tmp_path / "out" / "f.safetensors", layer=["pooled", "visibility"], batch_size=2, progress=False)
    _assert_identical(load_file(str(out)), expected)
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["files"]) == [str(p) for p in list_image_files(folder)]
    assert meta["model"] == "patchvae_resnet9" and json.loads(meta["layers"]) == ["pooled", "visibility"]
    npy = save_features(model, folder, tmp_path / "f.npy", layer="visibility", batch_size=2, progress=False)
    assert torch.equal(torch.from_numpy(np.load(npy)), expected["visibility"])
    assert (tmp_path / "f.files.txt").read_text().splitlines() == [str(p) for p in list_image_files(folder)]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_features(model, folder, npy, layer="visibility")
    with pytest.raises(ValueError, match="a .npy file holds one array"):
        save_features(model, folder, tmp_path / "g.npy", layer=["pooled", "visibility"])
    with pytest.raises(ValueError, match="must end in .npy or .safetensors"):
        save_features(model, folder, tmp_path / "g.pt")


def test_save_features_leaves_nothing_behind_on_error(folder, tmp_path):
    (folder / "y.png").write_bytes(b"broken")  # sorted after the good ones: fails mid-way
    out = tmp_path / "out" / "f.safetensors"
    with pytest.raises(ValueError, match="cannot read image file"):
        save_features(tiny_patchvae(), folder, out, batch_size=2, progress=False)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_cli_extract_and_list(folder, tmp_path, capsys):
    model = tiny_patchvae(seed=9)
    weights = weights_folder(tmp_path / "w", model)
    out = tmp_path / "feats.safetensors"
    rc = main(["extract", str(folder), "--model", str(weights), "--out", str(out), "--layer", "pooled", "appearance",
               "--batch-size", "2", "--no-progress"])
    assert rc == 0
    assert f"wrote {out}: pooled (5, 128), appearance (5, 2, 2)" in capsys.readouterr().out
    _assert_identical(load_file(str(out)), _extract(model, folder, layer=["pooled", "appearance"], batch_size=2, amp="auto"))
    exact = tmp_path / "exact.safetensors"
    assert main(["extract", str(folder), "--model", str(weights), "--out", str(exact), "--layer", "pooled",
                 "--batch-size", "2", "--no-progress", "--amp", "none"]) == 0
    _assert_identical(load_file(str(exact)), _extract(model, folder, layer=["pooled"], batch_size=2))
    rc = main(["extract", str(folder / "a.png"), str(folder / "b"), "--model", "patchvae_resnet9", "--checkpoint",
               str(weights), "--out", str(tmp_path / "two.npy"), "--no-progress"])
    assert rc == 0 and np.load(tmp_path / "two.npy").shape == (4, 128)
    assert main(["extract", str(folder), "--model", str(weights), "--out", str(out), "--no-progress"]) == 1
    assert "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert main(["extract", str(tmp_path / "nope"), "--model", str(weights), "--out", str(tmp_path / "n.npy")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in patchvae.models.list_models())
    assert main(["list", "nothing*"]) == 1


# ----------------------------------------------------------------------------- fuzz
@pytest.fixture(scope="module")
def fuzz_model():
    torch.manual_seed(0)
    model = create("patchvae_resnet9", num_parts=2, part_dim=2, decoder_width=8).eval()
    model.data_config = DataConfig((3, 16, 16), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))  # tiny images: fast
    return model


RAW_DTYPES = [np.uint8] * 9 + [np.float32, np.int16, np.bool_, np.uint16]  # mostly valid, some not
SIDES = [0] + list(range(1, 22))  # an empty side now and then
CHANNELS = [1, 1, 2, 3, 3, 3, 3, 4, 4, 0, 5, 6]


@st.composite
def image_item(draw):
    """(image, valid) for one raw image of a random kind, shape and dtype."""
    kind = draw(st.sampled_from(["tensor", "tensor", "numpy_hwc", "numpy_hwc", "numpy_hw", "pil", "pil", "object"]))
    h, w = draw(st.sampled_from(SIDES)), draw(st.sampled_from(SIDES))
    c = draw(st.sampled_from(CHANNELS))
    dtype = draw(st.sampled_from(RAW_DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "object":
        return draw(st.sampled_from([None, 3, 2.5, "not/a/file.png", b"bytes", {"image": 1}, [[1, 2]]])), False
    array = (rng.random((h, w, c)) * 255).astype(dtype)
    if kind == "tensor":
        tensor = torch.from_numpy(array.copy()).permute(2, 0, 1) if dtype != np.uint16 else torch.zeros(c, h, w, dtype=torch.int32)
        return tensor, dtype == np.uint8 and 1 <= c <= 4 and h > 0 and w > 0
    if kind == "numpy_hw":
        return (rng.random((h, w)) * 255).astype(dtype), dtype == np.uint8 and h > 0 and w > 0
    if kind == "numpy_hwc":
        return array, dtype == np.uint8 and 1 <= c <= 4 and h > 0 and w > 0
    # PIL: every mode PIL makes from arrays
    h, w = max(h, 1), max(w, 1)
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "LA", "1", "P", "I;16", "I", "F", "CMYK", "YCbCr", "RGB", "L"]))
    base = Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8))
    if mode == "I;16":
        image = Image.fromarray((rng.random((h, w)) * 65535).astype(np.uint16))
    elif mode == "F":
        image = Image.fromarray(rng.random((h, w)).astype(np.float32))
    else:
        image = base.convert(mode)
    return image, mode not in ("I", "F")


@st.composite
def inputs_and_oracle(draw):
    """(inputs, preprocessed, expected N or None if a documented exception must be raised, spatial (H, W) or None)."""
    form = draw(st.sampled_from(["single", "single", "list", "list", "batch_tensor", "batch_numpy", "preprocessed", "empty"]))
    if form == "empty":
        return draw(st.sampled_from([[], (), np.zeros((0, 4, 4, 3), np.uint8), torch.zeros(0, 3, 8, 8, dtype=torch.uint8)])), False, None, None
    if form == "single":
        item, valid = draw(image_item())
        return item, False, (1 if valid else None), None
    if form == "list":
        items = draw(st.lists(image_item(), min_size=1, max_size=4))
        valid = all(v for _, v in items)
        return [i for i, _ in items], False, (len(items) if valid else None), None
    n, h, w, c = draw(st.sampled_from([0, 1, 2, 3, 3])), draw(st.sampled_from(SIDES)), draw(st.sampled_from(SIDES)), draw(st.sampled_from(CHANNELS))
    floats = form == "preprocessed"
    dtype = draw(st.sampled_from([torch.float32] * 4 + [torch.float64, torch.uint8] if floats else [torch.uint8] * 4 + [torch.float32, torch.int64, torch.bool]))
    if form == "preprocessed":
        h, w = draw(st.sampled_from([8, 16, 24, 8, 16, 12, 0])), draw(st.sampled_from([8, 16, 24, 12]))
        c = draw(st.sampled_from([3, 3, 3, 1, 4]))
        x = torch.randn(n, c, h, w).to(dtype) if dtype != torch.uint8 else torch.zeros(n, c, h, w, dtype=dtype)
        if draw(st.integers(0, 5)) == 0 and x.numel() and x.is_floating_point():
            x[0, 0, 0, 0] = float("nan")
        valid = x.is_floating_point() and n > 0 and c == 3 and h > 0 and h % 8 == 0 and w % 8 == 0 and bool(torch.isfinite(x).all())
        return x, True, (n if valid else None), (h, w)
    x = torch.randint(0, 256, (n, c, h, w)).to(dtype)
    valid = dtype == torch.uint8 and n > 0 and 1 <= c <= 4 and h > 0 and w > 0
    if form == "batch_numpy":
        return x.permute(0, 2, 3, 1).numpy(), False, (n if valid else None), None
    return x, False, (n if valid else None), None


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=inputs_and_oracle(), layer_subset=st.sets(st.sampled_from(PATCH_LAYERS), min_size=1, max_size=4), batch_size=st.integers(1, 3))
def test_fuzz_only_documented_errors_and_exact_shapes(fuzz_model, case, layer_subset, batch_size):
    inputs, preprocessed, expected, spatial = case
    layers = sorted(layer_subset)
    try:
        out = extract_features(fuzz_model, inputs, layer=layers, batch_size=batch_size, progress=False, preprocessed=preprocessed)
    except (TypeError, ValueError, FileNotFoundError) as err:
        event(f"refused: {type(err).__name__}")
        assert expected is None, f"valid input raised {type(err).__name__}: {err}"
        assert len(str(err)) > 20  # says what is wrong
        return
    event("accepted")
    assert expected is not None, f"invalid input accepted: {type(inputs).__name__}"
    h, w = spatial or fuzz_model.data_config.input_size[1:]
    shapes = {
        "stem": (64, h // 2, w // 2), "layer1": (64, h // 4, w // 4), "layer2": (128, h // 8, w // 8),
        "features": (128, h // 8, w // 8), "pooled": (128,), "visibility": (2, h // 8, w // 8),
        "visibility_logits": (2, h // 8, w // 8), "appearance": (2, 2), "appearance_var": (2, 2), "patch_code": (4, h // 8, w // 8),
    }
    assert sorted(out) == layers
    for name in layers:
        assert tuple(out[name].shape) == (expected, *shapes[name]), name
        assert out[name].dtype == torch.float32 and bool(torch.isfinite(out[name]).all())
