"""Model registry and builder: names and tags, entrypoints, create/create_backbone options, components, in_chans."""

from __future__ import annotations

import pytest
import torch
from timm.models import FeatureListNet
from zoo_helpers import (  # noqa: F401 (single_thread is a fixture)
    TINY,
    randomize_batchnorm,
    register_weights,
    single_thread,
    tiny_patchvae,
    weights_folder,
)

from patchvae.models import (
    BetaVAE,
    BiGAN,
    Classifier,
    Discriminator,
    GlobalVAE,
    M2VAE,
    PatchVAE,
    PixelVAE,
    ResNetTrunk,
    SixtPatchVAE,
    WeightsError,
    create,
    create_backbone,
    from_pretrained,
    get_pretrained_cfg,
    is_model,
    list_models,
    list_pretrained,
    register_model,
)
from patchvae.models import _registry

ARCHITECTURES = {
    "patchvae_resnet9": PatchVAE,
    "patchvae_resnet18": PatchVAE,
    "beta_vae_resnet9_32": BetaVAE,
    "beta_vae_resnet9_64": BetaVAE,
    "beta_vae_resnet18_224": BetaVAE,
    "bigan_resnet9_32": BiGAN,
    "bigan_resnet9_64": BiGAN,
    "vaegan_discriminator": Discriminator,
    "classifier_resnet9_32": Classifier,
    "classifier_resnet9_64": Classifier,
    "classifier_resnet18_224": Classifier,
    **{f"pixelvae_{arch}_{head}{size}": PixelVAE for arch in ("mlp", "resnet") for head in ("h0", "h1", "h2", "full")
       for size in ("", "_small")},
    **{f"sixt2018_patch_p{p}_i{i}": SixtPatchVAE for p, i in ((3, 1), (9, 1), (9, 3), (15, 1), (15, 3), (15, 5))},
    **{f"sixt2018_vae_{d}d": GlobalVAE for d in (32, 256, 4096)},
    **{f"m2_{arch}_{dec}{size}": M2VAE for arch in ("mlp", "conv") for dec in ("m2", "lpvae_h1", "lpvae_h2")
       for size in ("", "_small")},
}

pytestmark = pytest.mark.usefixtures("single_thread", "isolated_zoo")  # tests register their own weights


# ----------------------------------------------------------------------------- names
def test_list_models_is_every_architecture_sorted():
    assert list_models() == sorted(ARCHITECTURES)
    assert list_models("patchvae_*") == ["patchvae_resnet18", "patchvae_resnet9"]
    assert list_models("*resnet18*") == ["beta_vae_resnet18_224", "classifier_resnet18_224", "patchvae_resnet18"]
    assert list_models("nothing*") == []
    assert list_pretrained() == list_models(pretrained=True)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_has_an_entrypoint(name):
    entrypoint = _registry.model_entrypoint(name)
    assert entrypoint.__name__ == name and entrypoint.__doc__
    assert is_model(name) and is_model(f"{name}.anytag")
    cfg = get_pretrained_cfg(name)  # no weights yet: the architecture's defaults
    assert cfg.architecture == name and cfg.data_config is not None


@pytest.mark.parametrize("name", ["patchvae_resnet9", "beta_vae_resnet9_32", "bigan_resnet9_32", "vaegan_discriminator", "classifier_resnet9_32"])
def test_create_builds_the_architecture_and_records_its_arguments(name):
    model = create(name)
    assert type(model) is ARCHITECTURES[name]
    assert model.pretrained_cfg.architecture == name
    rebuilt = type(model)(**model.model_args)  # model_args are the exact constructor arguments
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    assert model.data_config.input_size[0] == model.model_args.get("in_chans", 3)


def test_unknown_names_suggest_the_closest():
    with pytest.raises(ValueError, match=r"unknown model 'patchvae_resnet8'. Did you mean .*'patchvae_resnet9'"):
        create("patchvae_resnet8")
    with pytest.raises(ValueError, match=r"unknown model 'betavae_resnet9_32'.*'beta_vae_resnet9_32'"):
        get_pretrained_cfg("betavae_resnet9_32")
    with pytest.raises(ValueError, match=r"no pretrained weights 'patchvae_resnet18.cifar10'.*Weights of 'patchvae_resnet18': none"):
        create("patchvae_resnet18.cifar10", pretrained=True)
    with pytest.raises(TypeError, match="non-empty string"):
        create("")
    with pytest.raises(TypeError, match="non-empty string"):
        create(None)


def test_unknown_tag_lists_the_known_ones(monkeypatch):
    register_weights(monkeypatch, "patchvae_resnet9", "cifar100", file="x/model.safetensors")
    with pytest.raises(ValueError, match=r"Did you mean 'patchvae_resnet9.cifar100'.*Weights of 'patchvae_resnet9': \['patchvae_resnet9.cifar100'\]"):
        get_pretrained_cfg("patchvae_resnet9.cifar10")


def test_duplicate_registration_is_refused():
    def patchvae_resnet9(pretrained=False, **kwargs):  # same name as the real entrypoint
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="already registered.*pick another name"):
        register_model(patchvae_resnet9)
    assert _registry.model_entrypoint("patchvae_resnet9").__module__ == "patchvae.models.patchvae"


def test_bare_arch_means_its_default_weights(monkeypatch):
    register_weights(monkeypatch, "patchvae_resnet9", "first", file="a/model.safetensors")
    register_weights(monkeypatch, "patchvae_resnet9", "second", file="b/model.safetensors")
    assert get_pretrained_cfg("patchvae_resnet9").tag == "first"
    assert get_pretrained_cfg("patchvae_resnet9.second").file == "b/model.safetensors"
    assert list_pretrained("patchvae_resnet9.*") == ["patchvae_resnet9.first", "patchvae_resnet9.second"]
    assert "patchvae_resnet9.first" in list_models(pretrained=True)


def test_tag_without_weights_is_rejected_at_registration(monkeypatch):
    import types

    from patchvae.models import PretrainedCfg

    module = types.ModuleType("fake_zoo_module")
    module.default_cfgs = {"fake_arch_for_test.tag": PretrainedCfg()}
    monkeypatch.setitem(__import__("sys").modules, "fake_zoo_module", module)

    def fake_arch_for_test(pretrained=False, **kwargs):
        return None

    fake_arch_for_test.__module__ = "fake_zoo_module"
    with pytest.raises(ValueError, match="has a tag but no weights"):
        register_model(fake_arch_for_test)
    assert not is_model("fake_arch_for_test")


# ----------------------------------------------------------------------------- create() options
def test_pretrained_without_weights_says_what_to_do():
    with pytest.raises(WeightsError, match=r"has no pretrained weights; see patchvae.models.list_pretrained\(\) or pass checkpoint_path"):
        create("patchvae_resnet9", pretrained=True)


def test_bad_arguments_are_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"no argument 'num_part' \(did you mean 'num_parts'\?\)"):
        create("patchvae_resnet9", num_part=4)
    with pytest.raises(TypeError, match="pretrained must be True or False"):
        create("patchvae_resnet9", "cifar100")
    with pytest.raises(ValueError, match="out_indices .* needs features_only=True"):
        create("patchvae_resnet9", out_indices=(1,))
    with pytest.raises(ValueError, match="have no classifier: drop num_classes"):
        create("patchvae_resnet9", features_only=True, num_classes=3)
    with pytest.raises(ValueError, match=r"not valid feature levels .* \[0, 2\]"):
        create("patchvae_resnet9", features_only=True, out_indices=(3,))
    with pytest.raises(ValueError, match="num_classes must be an int >= 0"):
        create("patchvae_resnet9", num_classes=-1)


def test_overrides_reach_the_constructor():
    model = create("patchvae_resnet9", num_parts=4, part_dim=3, hard=True)
    assert (model.num_parts, model.part_dim, model.hard) == (4, 3, True)
    assert model.model_args == {"num_parts": 4, "part_dim": 3, "backbone": "resnet9", "hard": True, "in_chans": 3}


def test_num_classes_gives_phi_with_a_fresh_head_for_vaes_and_a_new_head_for_classifiers():
    phi = create("patchvae_resnet9", num_classes=7, **TINY)
    assert isinstance(phi, ResNetTrunk) and phi.num_classes == 7
    assert phi(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert phi.data_config.input_size == (3, 32, 32)
    clf = create("classifier_resnet9_32", num_classes=10)
    assert isinstance(clf, Classifier) and clf(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert clf.model_args["num_classes"] == 10


def test_features_only_is_phis_pyramid():
    model = create("patchvae_resnet9", features_only=True, **TINY)
    assert isinstance(model, FeatureListNet)
    maps = model(torch.randn(2, 3, 32, 32))
    assert [tuple(m.shape) for m in maps] == [(2, 64, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4)]
    assert model.feature_info.reduction() == [2, 4, 8]
    last = create("patchvae_resnet9", features_only=True, out_indices=(-1,), **TINY)
    assert [tuple(m.shape) for m in last(torch.randn(1, 3, 64, 64))] == [(1, 128, 8, 8)]
    r18 = create("patchvae_resnet18", features_only=True, out_indices=(2, 4), num_parts=2, part_dim=2, decoder_width=8)
    assert [m.shape[1] for m in r18(torch.randn(1, 3, 64, 64))] == [128, 512]


# ----------------------------------------------------------------------------- components, backbone
def test_components_of_the_generative_models():
    for name in ("patchvae_resnet9", "beta_vae_resnet9_32", "bigan_resnet9_32"):
        model = create(name)
        assert isinstance(model.backbone, ResNetTrunk)
        assert model.backbone is model.encoder.backbone
        encoder = {id(p) for p in model.encoder.parameters()}
        decoder = {id(p) for p in model.decoder.parameters()}
        assert encoder and decoder and encoder.isdisjoint(decoder)
        rest = {id(p) for p in model.parameters()} - encoder - decoder
        expected_rest = {id(p) for p in model.discriminator.parameters()} if name.startswith("bigan") else set()
        assert rest == expected_rest  # encoder + decoder (+ BiGAN's D) is the whole model


def test_create_backbone_is_phi_with_the_timm_contract(tmp_path):
    source = tiny_patchvae(seed=3)
    folder = weights_folder(tmp_path / "w", source)
    phi = create_backbone("patchvae_resnet9", checkpoint_path=folder).eval()
    assert isinstance(phi, ResNetTrunk)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        feats = phi.forward_features(x)
        torch.testing.assert_close(feats, source.encoder.backbone.forward_features(x), rtol=0, atol=0)
        assert phi.num_features == 128 and phi(x).shape == (3, 128)  # num_classes=0: pooled features
        torch.testing.assert_close(phi.forward_head(feats, pre_logits=True), feats.mean((2, 3)))
    assert [f["reduction"] for f in phi.feature_info] == [2, 4, 8]
    phi.reset_classifier(5)
    assert phi(x).shape == (3, 5)
    assert phi.data_config == source.data_config and phi.pretrained_cfg.architecture == "patchvae_resnet9"
    pyramid = create_backbone("patchvae_resnet9", checkpoint_path=folder, features_only=True, out_indices=(1, 2)).eval()
    with torch.no_grad():
        torch.testing.assert_close(pyramid(x)[1], feats, rtol=0, atol=0)
    with pytest.raises(ValueError, match="has no backbone"):
        create_backbone("vaegan_discriminator")
    with pytest.raises(ValueError, match="needs features_only=True"):
        create_backbone("patchvae_resnet9", out_indices=(1,))


def test_saving_a_part_is_refused(tmp_path):
    from patchvae.models import save_pretrained

    with pytest.raises(ValueError, match="backbone of a 'patchvae_resnet9' model, not the whole model"):
        save_pretrained(create_backbone("patchvae_resnet9", **TINY), tmp_path / "phi")
    with pytest.raises(ValueError, match="created by patchvae.models.create"):
        save_pretrained(PatchVAE(), tmp_path / "raw")


# ----------------------------------------------------------------------------- in_chans adaptation
def _gray_and_rgb(gray_model, rgb_model, x_gray):
    with torch.no_grad():
        a = gray_model.eval()(x_gray)
        b = rgb_model.eval()(x_gray.expand(-1, 3, -1, -1))
    return a, b


def test_gray_weights_at_three_channels_give_the_same_features(tmp_path):
    torch.manual_seed(0)
    gray = randomize_batchnorm(create("patchvae_resnet9", in_chans=1, **TINY)).eval()
    folder = weights_folder(tmp_path / "gray", gray)
    assert create("patchvae_resnet9", checkpoint_path=folder).in_chans == 1  # default: the weights' channels
    rgb = create("patchvae_resnet9", checkpoint_path=folder, in_chans=3)
    assert rgb.encoder.backbone.conv1.weight.shape[1] == 3 and rgb.data_config.channels == 3
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    a, b = _gray_and_rgb(gray, rgb, x)
    for name in ("features", "visibility_probs", "appearance_mean", "appearance_var"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=1e-5, atol=1e-5)
    # the decoder's image conv is adapted too: every output channel is the gray reconstruction
    torch.testing.assert_close(b.reconstruction, a.reconstruction.expand(-1, 3, -1, -1), rtol=1e-5, atol=1e-5)


def test_rgb_weights_at_one_channel_give_the_same_features(tmp_path):
    torch.manual_seed(1)
    rgb = randomize_batchnorm(create("patchvae_resnet9", **TINY)).eval()
    gray = create("patchvae_resnet9", checkpoint_path=weights_folder(tmp_path / "rgb", rgb), in_chans=1)
    assert gray.in_chans == 1 and gray.decoder.head.weight.shape[1] == 1 and gray.data_config.channels == 1
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    a, b = _gray_and_rgb(gray, rgb, x)
    for name in ("features", "visibility_probs", "appearance_mean"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-5)


def test_from_pretrained_needs_a_weights_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a weights folder"):
        from_pretrained(tmp_path)
    model = tiny_patchvae()
    loaded = from_pretrained(weights_folder(tmp_path / "w", model))
    assert type(loaded) is PatchVAE and loaded.model_args == model.model_args


def test_cli_list_shows_architectures_and_weights(monkeypatch, capsys):
    from patchvae.cli import main

    register_weights(monkeypatch, "patchvae_resnet9", "cifar100", file="x/model.safetensors", dataset="cifar100",
                     metrics={"top1_conv5": 41.2})
    register_weights(monkeypatch, "patchvae_resnet9", "places205", file="y/model.safetensors", dataset="places205")
    assert main(["list", "patchvae_*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("patchvae_resnet18") and "no pretrained weights yet" in out[0]
    assert "patchvae_resnet9.cifar100 (default), patchvae_resnet9.places205" in out[1]
    assert main(["list", "--pretrained"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["patchvae_resnet9.cifar100", "patchvae_resnet9.places205"]
    assert "top1_conv5=41.2" in out[0] and "places205" in out[1]
    assert main(["list", "--pretrained", "beta*"]) == 0
    assert "no pretrained weights match" in capsys.readouterr().out
