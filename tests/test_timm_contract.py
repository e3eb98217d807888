"""timm's model contract over every architecture patchvae registers in timm, and timm's view of our configs.

The same kinds of checks as timm's own model tests (forward, backward, configs with ``device``/``dtype``,
forward_features/forward_head, features_only + feature_info, forward_intermediates, pruning,
reset_classifier, in_chans, test-time pooling, TorchScript / torch.export / ONNX), written for our
models: φ is fully convolutional, so the real-tensor checks use small images (32×32) and only the
``meta``-device checks run at each config's own input size.
"""

from __future__ import annotations

import copy
import inspect
import math

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from timm.layers import apply_test_time_pool
from timm.models._features import FeatureGetterNet
from zoo_helpers import single_thread  # noqa: F401 (fixture)

import patchvae.models as zoo
from patchvae.data import FASHION_MNIST, DataConfig, create_transform
from patchvae.models._registry import get_architecture_cfg
from patchvae.models._timm import timm_architectures

pytestmark = pytest.mark.usefixtures("single_thread")

ARCHS = timm_architectures()  # every architecture patchvae registers in timm
TAGGED = [name for name in zoo.list_pretrained() if name.split(".")[0] in ARCHS]
WITH_WEIGHTS = [arch for arch in ARCHS if zoo.get_pretrained_cfg(arch).has_weights]
SIDE = 32  # real-tensor checks: φ is fully convolutional, small images exercise every layer


def _chans(name: str) -> int:
    return timm.models.get_pretrained_cfg(name).input_size[0]


def _images(name: str, batch: int = 2, side: int = SIDE, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, _chans(name), side, side, generator=gen)


def _trainable_grads_missing(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


# --------------------------------------------------------------------------- registry and configs
def test_every_family_is_registered_with_its_weights():
    assert set(ARCHS) == set(timm.list_models(["patchvae_*", "beta_vae_*", "bigan_*"]))
    assert len(ARCHS) == 7 and TAGGED, (ARCHS, TAGGED)
    for name in TAGGED:
        assert timm.models.get_pretrained_cfg(name).has_weights, name


@pytest.mark.parametrize("name", ARCHS + TAGGED)
def test_default_cfg_describes_the_model(name):
    """On ``meta`` (nothing allocated): the registered cfg, the model's cfg and the model agree, at the cfg's size."""
    registered = timm.models.get_pretrained_cfg(name)
    model = timm.create_model(name, device="meta", dtype=torch.float32).eval()
    cfg = model.default_cfg
    assert cfg is model.pretrained_cfg and model.in_chans == cfg["input_size"][0] == registered.input_size[0]
    for key in ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode", "pool_size", "first_conv", "classifier"):
        assert cfg[key] == getattr(registered, key), key
    if "." not in name:  # a bare name is its default weights (timm's convention), pretrained or not
        assert cfg.get("tag", "") == zoo.get_pretrained_cfg(name).tag
    state = model.state_dict()
    assert f"{cfg['first_conv']}.weight" in state
    assert model.num_classes == 0 and model.num_features > 0 and model.head_hidden_size > 0

    x = torch.randn(1, *cfg["input_size"], device="meta")
    features = model.forward_features(x)
    assert tuple(features.shape[2:]) == cfg["pool_size"] and features.shape[1] == model.num_features
    pooled = model.forward_head(features, pre_logits=True)
    assert pooled.shape == (1, model.head_hidden_size) == tuple(model(x).shape)
    model.reset_classifier(0, "")
    assert tuple(model(x).shape) == (1, model.num_features, *cfg["pool_size"])
    unpooled = timm.create_model(name, num_classes=0, global_pool="", device="meta", dtype=torch.float32)
    assert tuple(unpooled(x).shape) == (1, model.num_features, *cfg["pool_size"])
    with pytest.raises(TypeError):
        timm.create_model(name, device="meta", not_a_model_arg=1)


@pytest.mark.parametrize("name", ARCHS)
def test_device_and_dtype_arguments(name):
    on_meta = timm.create_model(name, device="meta", dtype=torch.float64, num_classes=3)
    tensors = dict(on_meta.named_parameters()) | dict(on_meta.named_buffers())
    assert all(t.device.type == "meta" for t in tensors.values())
    assert all(t.dtype == torch.float64 for t in tensors.values() if t.is_floating_point())
    # a new head gets the trunk's device and dtype; freezing survives head changes
    on_meta.reset_classifier(0)
    on_meta.reset_classifier(2)
    assert {(p.device.type, p.dtype) for p in on_meta.get_classifier().parameters()} == {("meta", torch.float64)}
    on_meta.requires_grad_(False)
    on_meta.reset_classifier(0)
    on_meta.reset_classifier(0, "")
    assert not [n for n, p in on_meta.named_parameters() if p.requires_grad]
    # after a forward pass, converting the dtype converts the output
    model = timm.create_model(name, num_classes=3).eval()
    model(_images(name, 1))
    model.to(torch.bfloat16)
    assert model(_images(name, 1).bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("name", sorted(zoo.list_models()))
def test_create_takes_device_and_dtype(name):
    model = zoo.create(name, device="meta", dtype=torch.bfloat16)
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    assert all(t.device.type == "meta" for t in tensors.values())
    assert all(t.dtype == torch.bfloat16 for t in tensors.values() if t.is_floating_point())
    # and timm reads the preprocessing of every model patchvae.models.create* makes
    resolved = timm.data.resolve_data_config(model=model)
    assert resolved == {k: v for k, v in model.data_config.to_timm().items() if k in resolved}


def test_create_device_dtype_with_weights_and_errors():
    name = TAGGED[0]
    reference = zoo.create(name, pretrained=True).eval()
    doubled = zoo.create(name, pretrained=True, dtype=torch.float64).eval()
    assert doubled.encoder.backbone.conv1.weight.dtype == torch.float64
    for a, b in zip(reference.state_dict().values(), doubled.state_dict().values()):
        torch.testing.assert_close(a.double() if a.is_floating_point() else a, b, rtol=0, atol=0)
    assert zoo.create_backbone(name, pretrained=True, device="meta").conv1.weight.device.type == "meta"
    with pytest.raises(TypeError, match="floating-point torch.dtype"):
        zoo.create(name, dtype=torch.int64)
    with pytest.raises(TypeError, match="floating-point torch.dtype"):
        zoo.create(name, dtype="float16")


@pytest.mark.parametrize("name", TAGGED + WITH_WEIGHTS)
def test_pretrained_state_dict_loads_into_a_fresh_model(name):
    """timm's ``create_model(name)`` (and with the cfg's in_chans) builds what the weights of ``name`` need."""
    trained = timm.create_model(name, pretrained=True).eval()
    state = trained.state_dict()
    for kwargs in ({}, {"in_chans": _chans(name)}):
        fresh = timm.create_model(name, pretrained=False, **kwargs)
        fresh.load_state_dict(state, strict=True)
        fresh.eval()
        with torch.no_grad():
            torch.testing.assert_close(fresh(_images(name)), trained(_images(name)), rtol=0, atol=0)
    other = 3 if _chans(name) == 1 else 1  # weights adapted to the other channel count, with a new head
    adapted = timm.create_model(name, pretrained=True, in_chans=other, num_classes=5).eval()
    assert adapted.pretrained_cfg["input_size"][0] == other
    assert adapted(torch.randn(1, other, SIDE, SIDE)).shape == (1, 5)
    assert len(timm.create_model(name, pretrained=True, features_only=True)(_images(name))) == 3


# --------------------------------------------------------------------------- forward, backward, head
@pytest.mark.parametrize("name", ARCHS)
def test_forward_backward_and_grad_checkpointing(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=42).train()
    x = _images(name)
    out = model(x)
    assert out.shape == (2, 42) and not out.isnan().any()
    out.mean().backward()
    assert not _trainable_grads_missing(model)
    features = timm.create_model(name).train()
    out = features(x)
    assert out.shape == (2, features.num_features)
    model.eval()
    with torch.no_grad():
        expected = model(x)
        model.set_grad_checkpointing(True)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ARCHS)
def test_forward_features_head_and_reset_classifier(name):
    model = timm.create_model(name, num_classes=4).eval()
    assert inspect.signature(model.reset_classifier).parameters["global_pool"].default is None
    x = _images(name)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, model.num_features, SIDE // model.stride, SIDE // model.stride)
        torch.testing.assert_close(model.forward_head(features), model(x), rtol=0, atol=0)
        pre = model.forward_head(features, pre_logits=True)
        assert pre.shape == (2, model.head_hidden_size)
        model.reset_classifier(0)  # keeps the pooling: pooled features are the pre-logits
        assert model.num_classes == 0
        torch.testing.assert_close(model(x), pre, rtol=0, atol=0)
        for pool, mult in (("max", 1), ("catavgmax", 2), ("avg", 1)):
            model.reset_classifier(7, pool)
            assert model.global_pool.pool_type == pool and model.head_hidden_size == mult * model.num_features
            assert model.forward_head(features, pre_logits=True).shape == (2, model.head_hidden_size)
            assert model(x).shape == (2, 7)
        model.reset_classifier(0, "catavgmax")
        assert model(x).shape == (2, model.head_hidden_size)  # the pre-logits width, with concat pooling
        with_pool = timm.create_model(name, global_pool="catavgmax")
        assert with_pool.head_hidden_size == 2 * with_pool.num_features


@pytest.mark.parametrize("name", ARCHS)
def test_in_chans(name):
    for chans in (1, 3, 4):
        model = timm.create_model(name, in_chans=chans, num_classes=2).eval()
        assert model.in_chans == chans == model.conv1.weight.shape[1] == model.pretrained_cfg["input_size"][0]
        assert len(model.pretrained_cfg["mean"]) == chans
        with torch.no_grad():
            assert model(torch.randn(1, chans, SIDE, SIDE)).shape == (1, 2)


@pytest.mark.parametrize("name", ARCHS)
def test_test_time_pooling(name):
    """timm's TestTimePoolHead needs ``pool_size``; at the cfg's own size it is the model itself."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=5).eval()
    cfg = model.pretrained_cfg
    chans, height, width = cfg["input_size"]
    x = torch.randn(1, chans, height, width)
    with torch.no_grad():
        expected = model(x)
        pooled, used = apply_test_time_pool(copy.deepcopy(model), {"input_size": (chans, height + 32, width + 32)})
        assert used and pooled.original_pool == cfg["pool_size"]
        torch.testing.assert_close(pooled.eval()(x), expected, rtol=1e-4, atol=1e-5)
        assert pooled(torch.randn(1, chans, height + 32, width + 32)).shape == (1, 5)


# --------------------------------------------------------------------------- feature pyramids
@pytest.mark.parametrize("name", ARCHS)
def test_features_only_and_feature_info(name):
    model = timm.create_model(name, features_only=True).eval()
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    assert len(channels) >= 3 and reductions[:3] == [2, 4, 8]
    with torch.no_grad():
        maps = model(_images(name, 1))
    assert [m.shape[1] for m in maps] == channels
    assert [m.shape[2:] for m in maps] == [(math.ceil(SIDE / r),) * 2 for r in reductions]
    some = timm.create_model(name, features_only=True, out_indices=(1, -1))
    assert some.feature_info.reduction() == [4, reductions[-1]]
    # timm's getter wrapper (forward_intermediates + prune_intermediate_layers) gives the same levels
    getter = timm.create_model(name, features_only=True, feature_cls="getter", out_indices=(0, 2)).eval()
    assert isinstance(getter, FeatureGetterNet) and getter.feature_info.channels() == [channels[0], channels[2]]
    with torch.no_grad():
        assert [m.shape for m in getter(_images(name, 1))] == [maps[0].shape, maps[2].shape]
    with pytest.raises(TypeError, match="feature_cls"):
        timm.create_model(name, features_only=True, feature_cls="fx")


@pytest.mark.parametrize("name", ARCHS)
def test_forward_intermediates(name):
    model = timm.create_model(name).eval()
    info = model.feature_info
    x = _images(name)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x, output_fmt="NCHW")
        assert len(maps) == len(info) >= 3
        for level, out in zip(info, maps):
            assert out.shape == (2, level["num_chs"], SIDE // level["reduction"], SIDE // level["reduction"])
        torch.testing.assert_close(final, model.forward_features(x), rtol=0, atol=0)
        _, normed = model.forward_intermediates(x, norm=True)  # φ has no final norm: the same maps
        for a, b in zip(maps, normed):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert len(model.forward_intermediates(x, indices=2, intermediates_only=True)) == 2  # the last two
        for i in range(len(info)):
            last, (tap,) = model.forward_intermediates(x, indices=[i], stop_early=True)
            torch.testing.assert_close(tap, maps[i], rtol=0, atol=0)
            if i > 0:
                torch.testing.assert_close(last, maps[i], rtol=0, atol=0)
        model.set_grad_checkpointing(True)
        torch.testing.assert_close(model.forward_intermediates(x)[0], final, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NHWC")


@pytest.mark.parametrize("name", ARCHS)
def test_prune_intermediate_layers(name):
    model = timm.create_model(name, num_classes=3).eval()
    x = _images(name)
    with torch.no_grad():
        expected = model(x)
        taps = model.forward_intermediates(x, intermediates_only=True)
        kept = copy.deepcopy(model)
        kept.prune_intermediate_layers([len(taps) - 1], prune_head=False)
        torch.testing.assert_close(kept(x), expected, rtol=0, atol=0)  # nothing after the last level to drop
    for i in range(len(taps)):
        pruned = copy.deepcopy(model)
        indices = pruned.prune_intermediate_layers([i])
        with torch.no_grad():
            (tap,) = pruned.forward_intermediates(x, indices=indices, intermediates_only=True)
            torch.testing.assert_close(tap, taps[i], rtol=0, atol=0)
            torch.testing.assert_close(pruned.forward_features(x), taps[i], rtol=0, atol=0)
        assert pruned.num_classes == 0 and pruned.num_features == pruned.head_hidden_size == tap.shape[1]
        pruned.reset_classifier(7, "avg")
        assert pruned.head_hidden_size == model.feature_info[i]["num_chs"]
        pruned.train()
        out = pruned(x)
        assert out.shape == (2, 7)
        (out.sum() + sum(t.sum() for t in pruned.forward_intermediates(x, indices=indices, intermediates_only=True))).backward()
        assert not _trainable_grads_missing(pruned), f"pruned to level {i}: parameters without gradient"


# --------------------------------------------------------------------------- TorchScript, torch.export, ONNX
@pytest.mark.filterwarnings("ignore:The TorchScript type system:UserWarning")  # raised for torch.fx's GraphModule
@pytest.mark.parametrize("name", ARCHS)
def test_torchscript(name):
    model = timm.create_model(name, num_classes=3).eval()
    x = _images(name)
    with torch.no_grad(), pytest.warns(FutureWarning, match="deprecated"):
        scripted = torch.jit.script(model)
        traced_then_scripted = torch.jit.script(torch.fx.symbolic_trace(model))
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(scripted(x), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(traced_then_scripted(x), expected, rtol=1e-5, atol=1e-6)
    pruned = copy.deepcopy(model)
    pruned.prune_intermediate_layers([1])
    with pytest.warns(FutureWarning, match="deprecated"):
        scripted = torch.jit.script(pruned)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), pruned(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["patchvae_resnet9", "patchvae_resnet18"])  # one per φ
def test_torch_export(name):
    model = timm.create_model(name, num_classes=3).eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (_images(name),), dynamic_shapes=({0: batch},))
    for size in (1, 3):
        x = _images(name, size, seed=size)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-6)


def test_onnx_export_output_parity(tmp_path):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    name = TAGGED[0]
    model = zoo.create_backbone(name, pretrained=True).eval()
    with pytest.raises(ValueError, match="eval mode"):
        zoo.export_onnx(copy.deepcopy(model).train(), tmp_path / "nope.onnx")
    path = zoo.export_onnx(model, tmp_path / "phi.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    for size in (1, 5):  # the batch dimension is dynamic
        x = _images(name, size, seed=size)
        (out,) = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(out, model(x).numpy(), rtol=1e-4, atol=1e-5)
    # a whole VAE in eval mode: its output NamedTuple becomes named outputs
    vae = zoo.create(name, pretrained=True).eval()
    session = ort.InferenceSession(str(zoo.export_onnx(vae, tmp_path / "vae.onnx")), providers=["CPUExecutionProvider"])
    x = _images(name, 3, seed=7)
    with torch.no_grad():
        expected = vae(x)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": x.numpy()})))
    assert list(got) == list(expected._fields)
    for field in ("reconstruction", "features"):
        np.testing.assert_allclose(got[field], getattr(expected, field).numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="returns dict"):
        zoo.export_onnx(_DictModel().eval(), tmp_path / "dict.onnx", example_input=x)


class _DictModel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": x}


# --------------------------------------------------------------------------- timm's view of our preprocessing
def _zoo_data_configs() -> dict[str, DataConfig]:
    cfgs = {}
    for arch in zoo.list_models():
        cfgs.setdefault(repr(get_architecture_cfg(arch).data_config), get_architecture_cfg(arch).data_config)
    for name in zoo.list_pretrained():
        cfg = zoo.get_pretrained_cfg(name).data_config
        cfgs.setdefault(repr(cfg), cfg)
    return {f"{c.input_size}-{c.resize_mode}-{c.crop_pct}": c for c in cfgs.values()}


DATA_CONFIGS = {
    **_zoo_data_configs(),
    # what a user may configure: timm's usual crop_pct, a non-square input
    "crop_pct-0.875": DataConfig((3, 32, 32), (0.5,) * 3, (0.5,) * 3, crop_pct=0.875),
    "non-square": DataConfig((3, 24, 40), (0.5,) * 3, (0.25,) * 3, interpolation="bicubic"),
}


def _photo(size: tuple[int, int], chans: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], chans), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if chans == 1 else pixels, "L" if chans == 1 else "RGB")


@pytest.mark.parametrize("key", sorted(DATA_CONFIGS))
def test_timm_transform_is_our_preprocessing(key):
    """timm's eval transform, resolved from our cfg, gives our tensors for images smaller, larger and at the size."""
    cfg = DATA_CONFIGS[key]
    chans, height, width = cfg.input_size
    resolved = timm.data.resolve_data_config(pretrained_cfg=cfg.to_timm())
    theirs = timm.data.create_transform(**resolved)
    ours = create_transform(cfg)
    native = (cfg.scale_size or cfg.input_size[1:])[0]
    sizes = [(width, height), (native, native), (native // 2 + 3, native // 2), (2 * width + 5, height + 9), (1, 1)]
    for seed, size in enumerate(sizes):
        image = _photo(size, chans, seed)
        torch.testing.assert_close(ours(image), theirs(image), rtol=0, atol=1e-6, msg=f"{key} on a {size} image")


@pytest.mark.parametrize("key", sorted(DATA_CONFIGS))
def test_batched_preprocessing_has_the_same_geometry(key):
    """BatchPreprocess (training, extract_features) resizes and crops as create_transform; only the
    resampling differs (torch on tensors vs PIL), by a fraction of a grey level."""
    from patchvae.data import BatchPreprocess

    cfg = DATA_CONFIGS[key]
    chans, height, width = cfg.input_size
    for seed, size in enumerate([(width, height), (2 * width + 5, height + 9), (width // 2 + 3, height // 2)]):
        image = _photo(size, chans, seed)
        ours = create_transform(cfg)(image)
        batched = BatchPreprocess(cfg)(torch.from_numpy(np.array(image)).reshape(size[1], size[0], chans).permute(2, 0, 1)[None])
        assert batched.shape == (1, *ours.shape)
        # smooth content so that resampling differences stay small: compare on a blurred copy
        blur = torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        error = (blur(batched) - blur(ours[None])).abs().mean().item() * min(cfg.std)
        assert error < 0.01, f"{key} on a {size} image: mean |difference| {error:.4f} (a misplaced crop: ~0.08)"


FMNIST_TAGGED = next(n for n in TAGGED if n.endswith(".fmnist"))


def test_fashion_mnist_weights_preprocessing_through_timm():
    """The packaged weights: timm resolves a 28×28 image to the 32×32 black-bordered input they were trained on."""
    name = FMNIST_TAGGED
    model = timm.create_model(name, pretrained=True)
    assert model.data_config == FASHION_MNIST and model.pretrained_cfg["crop_pct"] == 32 / 28
    image = _photo((28, 28), 1, 0)
    x = timm.data.create_transform(**timm.data.resolve_data_config(model=model))(image)
    pixels = torch.from_numpy(np.array(image)).float().div(255)
    expected = torch.nn.functional.pad(pixels, (2, 2, 2, 2)).sub(0.5).div(0.5)[None]
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(create_transform(zoo.create_backbone(name, pretrained=True))(image), expected, rtol=0, atol=1e-6)
    # weights folders from before crop_pct ("pad", no resize) keep their meaning
    legacy = DataConfig.from_dict({k: v for k, v in FASHION_MNIST.to_dict().items() if k != "crop_pct"})
    assert legacy.scale_size is None and create_transform(legacy)(_photo((20, 40), 1, 1)).shape == (1, 32, 32)


def test_resolve_data_config_of_created_models():
    name = FMNIST_TAGGED
    for model in (zoo.create(name, pretrained=True), zoo.create_backbone(name, pretrained=True),
                  zoo.create(name, pretrained=True, features_only=True)):
        resolved = timm.data.resolve_data_config(model=model)
        assert resolved["input_size"] == (1, 32, 32) and resolved["crop_pct"] == 32 / 28
    rgb = zoo.create(name, pretrained=True, in_chans=3)  # the model's own input, after adapting the weights
    assert timm.data.resolve_data_config(model=rgb)["input_size"] == (3, 32, 32) == rgb.data_config.input_size
    assert rgb.pretrained_cfg.name == name and rgb.pretrained_cfg.get("file") == zoo.get_pretrained_cfg(name).file
