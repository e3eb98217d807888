"""The model protocol (issue 15): every architecture represents its layers through one contract,
generative ones compose from create_encoder + create_decoder, and extract_features names no family."""

from __future__ import annotations

import ast
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import patchvae.models as zoo
from patchvae import extract_features
from patchvae.models import GenerativeModel, Representable

sys.path.insert(0, str(Path(__file__).parent / "data"))
from make_pinned_features import PINNED_MODELS, build, images, pinned_layers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GENERATIVE = ["patchvae_resnet9", "patchvae_resnet18", "beta_vae_resnet9_32", "beta_vae_resnet9_64",
              "beta_vae_resnet18_224", "bigan_resnet9_32", "bigan_resnet9_64"]
#: Zhang et al. 2022's PixelVAEs (autoregressive decoders: decode = a sample with fixed noise)
PIXELVAE = [f"pixelvae_{arch}_{head}{size}" for arch in ("mlp", "resnet") for head in ("h0", "h1", "h2", "full")
            for size in ("", "_small")]
#: the paper-size full PixelCNN decoders: one sample takes minutes on a CPU, so they are not decoded here
#: (tests/test_pixelvae.py checks the full-head samplers on small models)
SLOW_DECODERS = ["pixelvae_mlp_full", "pixelvae_resnet_full"]
GENERATIVE += [name for name in PIXELVAE if name not in SLOW_DECODERS]
#: Sixt 2018's patch VAEs (decode p×p patches; reconstruct tiles an image) and global VAEs
SIXT_PATCH = [f"sixt2018_patch_p{p}_i{i}" for p, i in ((3, 1), (9, 1), (9, 3), (15, 1), (15, 3), (15, 5))]
GENERATIVE += SIXT_PATCH + [f"sixt2018_vae_{d}d" for d in (32, 256, 4096)]
M2 = [f"m2_{arch}_{dec}{size}" for arch in ("mlp", "conv") for dec in ("m2", "lpvae_h1", "lpvae_h2") for size in ("", "_small")]
GENERATIVE += M2
NOT_GENERATIVE = ["classifier_resnet9_32", "classifier_resnet9_64", "classifier_resnet18_224", "vaegan_discriminator"]
#: a small valid input side per architecture (fixed-size models need theirs)
SIDE = {"patchvae_resnet18": 64, "beta_vae_resnet9_64": 64, "bigan_resnet9_64": 64, "beta_vae_resnet18_224": 224,
        "classifier_resnet9_64": 64, "classifier_resnet18_224": 224,
        **{name: 28 for name in PIXELVAE + M2 if "_mlp_" in name},
        # a multiple of the patch size, so the tiled reconstruction covers the whole image
        **{name: {3: 30, 9: 27, 15: 30}[int(name.split("_p")[-1].split("_")[0])] for name in SIXT_PATCH}}
#: image channels where the architecture's default is not 3
CHANS = {name: 1 for name in PIXELVAE + M2 if "_mlp_" in name}


def _x(name: str, chans: int | None = None, batch: int = 2) -> torch.Tensor:
    side = SIDE.get(name, 32)
    chans = chans or CHANS.get(name, 3)
    return torch.randn(batch, chans, side, side, generator=torch.Generator().manual_seed(1))


def test_every_architecture_is_covered():
    assert sorted(GENERATIVE + SLOW_DECODERS + NOT_GENERATIVE) == zoo.list_models()


@pytest.mark.parametrize("name", SLOW_DECODERS)
def test_slow_decoders_have_parts(name):
    model = zoo.create(name, device="meta")
    assert isinstance(model, GenerativeModel)
    assert zoo.create_encoder(name, device="meta").zoo_component == "encoder"
    assert zoo.create_decoder(name, device="meta").zoo_component == "decoder"


@pytest.mark.parametrize("name", GENERATIVE)
def test_encoder_and_decoder_compose_to_the_models_reconstruction(name):
    torch.manual_seed(0)
    model = zoo.create(name).eval()
    torch.manual_seed(0)
    enc = zoo.create_encoder(name).eval()
    torch.manual_seed(0)
    dec = zoo.create_decoder(name).eval()
    x = _x(name, batch=1 if SIDE.get(name, 32) > 64 else 2)
    with torch.no_grad():
        expected = model.reconstruct(x)
        assert torch.equal(dec(enc(x).code()), expected)
        assert torch.equal(model.decode(model.encode(x).code()), expected)
        assert expected.shape == x.shape
    assert isinstance(model, GenerativeModel)
    assert enc.zoo_component == "encoder" and dec.zoo_component == "decoder"
    assert enc.model_args == model.model_args and enc.data_config == model.data_config


@pytest.mark.parametrize("name", zoo.list_pretrained())
def test_pretrained_encoder_and_decoder_compose(name):
    model = zoo.create(name, pretrained=True).eval()
    enc = zoo.create_encoder(name, pretrained=True).eval()
    dec = zoo.create_decoder(name, pretrained=True).eval()
    x = _x(name.split(".")[0], chans=model.in_chans)
    with torch.no_grad():
        assert torch.equal(dec(enc(x).code()), model.reconstruct(x))
    assert enc.pretrained_cfg.name == name


def test_hard_patchvae_code_thresholds_visibility():
    model = zoo.create("patchvae_resnet9", hard=True).eval()
    x = _x("patchvae_resnet9")
    with torch.no_grad():
        post = model.encode(x)
        assert torch.equal(model.reconstruct(x), model.decode(post.code(hard=True)))
        assert set(post.code(hard=True).unique().tolist()) <= set(post.appearance_mean.unique().tolist()) | {0.0}


@pytest.mark.parametrize("name", NOT_GENERATIVE)
def test_parts_of_non_generative_models_are_refused(name):
    with pytest.raises(ValueError, match="not a generative model"):
        zoo.create_encoder(name)
    with pytest.raises(ValueError, match="not a generative model"):
        zoo.create_decoder(name)


def test_whole_model_options_are_refused_by_part_factories():
    with pytest.raises(TypeError, match="takes no num_classes"):
        zoo.create_encoder("patchvae_resnet9", num_classes=10)
    with pytest.raises(TypeError, match="takes no features_only"):
        zoo.create_decoder("beta_vae_resnet9_32", features_only=True)


def test_parts_cannot_be_saved_as_whole_models(tmp_path):
    with pytest.raises(ValueError, match="encoder of a"):
        zoo.save_pretrained(zoo.create_encoder("beta_vae_resnet9_32"), tmp_path / "w")


@pytest.mark.parametrize("name", zoo.list_models())
@pytest.mark.parametrize("mode", ["mean", "sample", "embedding"])
def test_representations_match_represent(name, mode):
    """Every layer every architecture announces comes out with the announced shape, in every mode."""
    model = zoo.create(name, **({"num_classes": 10} if name.startswith("classifier") else {}))
    if name == "vaegan_discriminator":
        assert not isinstance(model, Representable)
        return
    model = model.eval()
    assert isinstance(model, Representable)
    x = _x(name, batch=1 if SIDE.get(name, 32) > 64 else 2)
    infos = model.representations(tuple(x.shape[1:]))
    with torch.no_grad():
        out = model.represent(x, list(infos), mode=mode)
    assert list(out) == list(infos)
    for layer, info in infos.items():
        assert tuple(out[layer].shape) == (x.shape[0], *info.shape_for(mode)), layer
        assert torch.isfinite(out[layer]).all(), layer
    if mode == "mean":  # deterministic
        with torch.no_grad():
            again = model.represent(x, list(infos), mode="mean")
        assert all(torch.equal(out[k], again[k]) for k in out)


def test_backbone_and_classifier_represent_the_same_trunk():
    torch.manual_seed(0)
    phi = zoo.create_backbone("patchvae_resnet9").eval()
    x = _x("patchvae_resnet9")
    with torch.no_grad():
        out = phi.represent(x, ["features", "pooled"])
        assert torch.equal(out["features"], phi.forward_features(x))
        assert torch.equal(out["pooled"], phi(x))


def test_embedding_mode_is_mean_and_std():
    vae = zoo.create("beta_vae_resnet9_32").eval()
    patch = zoo.create("patchvae_resnet9").eval()
    x = _x("beta_vae_resnet9_32")
    with torch.no_grad():
        post = vae.encode(x)
        emb = vae.represent(x, ["latent"], mode="embedding")["latent"]
        assert torch.equal(emb, torch.cat([post.mean, post.var.sqrt()], dim=1))
        ppost = patch.encode(x)
        app = patch.represent(x, ["appearance"], mode="embedding")["appearance"]
        assert torch.equal(app, torch.cat([ppost.appearance_mean, ppost.appearance_var.sqrt()], dim=-1))


def test_sample_mode_uses_the_noise_it_is_given():
    vae = zoo.create("beta_vae_resnet9_32").eval()
    x = _x("beta_vae_resnet9_32")
    with torch.no_grad():
        post = vae.encode(x)
        z = vae.represent(x, ["latent"], mode="sample", noise=lambda like, draw: torch.ones_like(like))["latent"]
    assert torch.allclose(z, post.mean + post.var.sqrt())


def test_represent_refuses_unknown_layers_and_modes():
    model = zoo.create("patchvae_resnet9").eval()
    x = _x("patchvae_resnet9")
    with pytest.raises(ValueError, match="has no layer 'visibilty'. Did you mean 'visibility'"):
        model.represent(x, ["visibilty"])
    with pytest.raises(ValueError, match="mode must be one of"):
        model.represent(x, ["pooled"], mode="median")
    model.check_inputs = False  # represent validates its input whatever the training-loop switch says
    with pytest.raises(ValueError, match="expected 3 input channel"):
        model.represent(torch.randn(1, 1, 32, 32), ["pooled"])


@pytest.mark.parametrize("name", ["patchvae_resnet9", "beta_vae_resnet9_32", "bigan_resnet9_32"])
def test_sample_decodes_prior_draws(name):
    model = zoo.create(name).eval()
    out = model.sample(3)
    assert out.shape == (3, 3, 32, 32) and out.abs().max() <= 1


@pytest.mark.parametrize("name", ["patchvae_resnet9", "beta_vae_resnet9_32"])
def test_sample_prior_is_a_deprecated_alias(name):
    model = zoo.create(name).eval()
    torch.manual_seed(5)
    new = model.sample(2)
    torch.manual_seed(5)
    with pytest.warns(FutureWarning, match=r"sample_prior is deprecated since patchvae 0.1.0 .* use \w+\.sample instead"):
        old = model.sample_prior(2)
    assert torch.equal(new, old)


# --------------------------------------------------------------------------- extract_features, unchanged
@pytest.mark.parametrize("key", list(PINNED_MODELS))
def test_extract_features_output_is_pinned(key):
    """Every layer of every family equals what extract_features gave before the protocol refactor
    (tests/data/pinned_features.safetensors, made by tests/data/make_pinned_features.py)."""
    pinned = load_file(str(ROOT / "tests" / "data" / "pinned_features.safetensors"))
    model = build(key)
    layers = pinned_layers(model)
    assert {k.split("/")[2] for k in pinned if k.startswith(f"{key}/mean/")} == set(layers)
    for mode in ("mean", "sample"):
        got = extract_features(model, images(), layer=layers, mode=mode, amp=None, progress=False, seed=3)
        for layer in layers:
            ref = pinned.get(f"{key}/{mode}/{layer}", pinned[f"{key}/mean/{layer}"])
            torch.testing.assert_close(got[layer], ref, rtol=1e-5, atol=1e-6, msg=f"{key} {mode} {layer}")


def test_extraction_code_names_no_family():
    """features.py and its helpers reach models only through the protocol: no family class in their code."""
    families = {name for name in zoo.__all__ if isinstance(getattr(zoo, name), type)
                and issubclass(getattr(zoo, name), torch.nn.Module)}
    assert {"PatchVAE", "BetaVAE", "BiGAN", "Classifier", "ResNetTrunk"} <= families
    for path in [ROOT / "patchvae" / "features.py", *sorted((ROOT / "patchvae" / "_extract").glob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
        assert not used & families, f"{path.name} names {sorted(used & families)}"


def test_extract_features_refuses_meta_and_keeps_the_callers_model():
    model = zoo.create("patchvae_resnet9").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="meta"):
        extract_features(model, images(), device="meta", progress=False)
    after = model.state_dict()
    assert all(after[k].device.type == "cpu" and torch.equal(after[k], v) for k, v in before.items())


def test_models_without_the_protocol_are_refused():
    with pytest.raises(TypeError, match="Representable protocol"):
        extract_features(torch.nn.Conv2d(3, 4, 3), images(), preprocessed=False, progress=False)


def test_no_warnings_from_the_protocol_paths():
    model = zoo.create("patchvae_resnet9").eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.sample(1)
        model.represent(_x("patchvae_resnet9"), ["pooled"])
