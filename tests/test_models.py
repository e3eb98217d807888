"""The PatchVAE model family: architecture (supplement Tables 1-5), shapes, outputs, input checks."""

from __future__ import annotations

import pytest
import torch
import torchvision

from patchvae.models import (
    BetaVAE,
    BiGAN,
    Classifier,
    Discriminator,
    PatchVAE,
    PatchVAEOutput,
    build_backbone,
)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- exact parameter counts
@pytest.mark.parametrize(
    ("build", "part", "expected"),
    [
        (lambda: PatchVAE(16, 6), "encoder", 922_896),  # supplement Table 1/2, PatchVAE
        (lambda: PatchVAE(16, 6), "decoder", 683_904),  # Table 3/4, PatchVAE
        (lambda: BetaVAE(96, img_size=32), "encoder", 888_192),  # Table 1, β-VAE
        (lambda: BetaVAE(96, img_size=32), "decoder", 774_144),  # Table 3, β-VAE
        (lambda: BetaVAE(96, img_size=64), "encoder", 1_478_016),  # Table 2, β-VAE
        (lambda: BetaVAE(96, img_size=64), "decoder", 1_069_056),  # Table 4, β-VAE
        (lambda: BiGAN(96, img_size=32), "encoder", 789_792),  # Table 1, BiGAN
        (lambda: BiGAN(96, img_size=32), "decoder", 774_144),  # Table 3, BiGAN generator
        (lambda: BiGAN(96, img_size=64), "encoder", 1_084_704),  # Table 2, BiGAN
        (lambda: BiGAN(96, img_size=64), "decoder", 1_069_056),  # Table 4, BiGAN generator
    ],
)
def test_paper_parameter_counts(build, part, expected):
    assert n_params(getattr(build(), part)) == expected


@pytest.mark.parametrize(
    ("classes", "size", "expected"),
    [(100, 32, 1_783_460), (67, 64, 4_912_259), (205, 64, 4_983_053)],  # supplement Table 5
)
def test_classifier_parameter_counts(classes, size, expected):
    assert n_params(Classifier(classes, img_size=size)) == expected


def test_patchvae_size_independent_of_input_size():
    # Tables 1 and 2 list the same 922,896 for 32x32 and 64x64: one set of weights for every size
    assert n_params(PatchVAE().encoder) == 922_896
    model = PatchVAE().eval()
    for size in ((32, 32), (64, 64), (48, 80)):
        out = model(torch.randn(1, 3, *size))
        assert out.patch_code.shape == (1, 96, size[0] // 8, size[1] // 8)
        assert out.reconstruction.shape == (1, 3, *size)


def test_vaegan_discriminator_layers():
    disc = Discriminator(3)
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in disc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert (len(convs), len(bns)) == (4, 2)  # supplement A: four conv layers, two with batchnorm
    assert disc(torch.randn(5, 3, 32, 32)).shape == (5,)
    assert disc(torch.randn(2, 3, 64, 64)).shape == (2,)


# ----------------------------------------------------------------------------- backbones φ
@pytest.mark.parametrize(("name", "stages", "chans", "stride"), [("resnet9", 2, 128, 8), ("resnet18", 4, 512, 32)])
def test_backbone_matches_torchvision_resnet18(name, stages, chans, stride):
    tv = torchvision.models.resnet18().eval()
    phi = build_backbone(name).eval()
    keep = ("conv1", "bn1") + tuple(f"layer{i}" for i in range(1, stages + 1))
    tv_state = {k: v for k, v in tv.state_dict().items() if k.startswith(keep)}
    phi.load_state_dict(tv_state, strict=True)  # same keys, same shapes as torchvision's ResNet-18
    x = torch.randn(2, 3, 64, 64)
    ref = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
    for i in range(1, stages + 1):
        ref = getattr(tv, f"layer{i}")(ref)
    out = phi.forward_features(x)
    assert out.shape == (2, chans, 64 // stride, 64 // stride)
    torch.testing.assert_close(out, ref)
    assert phi.num_features == chans and phi.stride == stride


def test_resnet9_parameter_count_and_in_chans():
    assert n_params(build_backbone("resnet9")) == 683_072
    phi = build_backbone("resnet9", in_chans=1)
    assert phi.conv1.weight.shape == (64, 1, 7, 7)
    assert phi.forward_features(torch.randn(2, 1, 32, 32)).shape == (2, 128, 4, 4)


def test_backbone_timm_contract():
    phi = build_backbone("resnet9").eval()
    x = torch.randn(3, 3, 32, 32)
    assert [f["reduction"] for f in phi.feature_info] == [2, 4, 8]
    assert [f["num_chs"] for f in phi.feature_info] == [64, 64, 128]
    feats = phi.forward_features(x)
    assert phi(x).shape == (3, 128)  # no head: pooled features
    torch.testing.assert_close(phi.forward_head(feats, pre_logits=True), feats.mean((2, 3)))
    phi.reset_classifier(10)
    assert phi(x).shape == (3, 10) and phi.get_classifier().out_features == 10
    final, inter = phi.forward_intermediates(x)
    assert [t.shape[-1] for t in inter] == [16, 8, 4]
    torch.testing.assert_close(final, feats)
    assert len(phi.forward_intermediates(x, indices=[1], intermediates_only=True)) == 1


def test_backbone_rejects_bad_configs():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet50")
    with pytest.raises(ValueError, match="same length"):
        from patchvae.models import ResNetTrunk

        ResNetTrunk(layers=(2, 2), channels=(64,))


# ----------------------------------------------------------------------------- PatchVAE forward
def test_patchvae_named_outputs_and_shapes():
    model = PatchVAE(num_parts=16, part_dim=6)
    out = model(torch.randn(4, 3, 32, 32), temperature=0.5)
    assert isinstance(out, PatchVAEOutput)
    shapes = {k: tuple(v.shape) for k, v in out._asdict().items()}
    assert shapes == {
        "reconstruction": (4, 3, 32, 32),
        "features": (4, 128, 4, 4),
        "visibility_logits": (4, 16, 4, 4),
        "visibility_probs": (4, 16, 4, 4),
        "visibility_sample": (4, 16, 4, 4),
        "appearance_mean": (4, 16, 6),
        "appearance_var": (4, 16, 6),
        "appearance_sample": (4, 16, 6),
        "patch_code": (4, 96, 4, 4),
    }
    assert out.reconstruction.abs().max() <= 1.0  # tanh
    torch.testing.assert_close(out.visibility_probs, torch.sigmoid(out.visibility_logits))
    # ẑ is z_app broadcast where z_vis says the part is present, part-major channels
    expected = out.appearance_sample[:, :, :, None, None] * out.visibility_sample[:, :, None]
    torch.testing.assert_close(out.patch_code, expected.reshape(4, 96, 4, 4))


@pytest.mark.parametrize(("size", "grid"), [(32, 4), (64, 8)])
def test_patch_code_grid(size, grid):
    out = PatchVAE().eval()(torch.randn(2, 3, size, size))
    assert out.patch_code.shape == (2, 96, grid, grid)


def test_resnet18_patchvae_imagenet_shape():
    model = PatchVAE(num_parts=64, part_dim=16, backbone="resnet18").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.patch_code.shape == (1, 64 * 16, 7, 7)
    assert out.reconstruction.shape == (1, 3, 224, 224)


def test_eval_is_deterministic_and_training_samples():
    model = PatchVAE()
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    a, b = model(x), model(x)
    torch.testing.assert_close(a.reconstruction, b.reconstruction)
    torch.testing.assert_close(a.appearance_sample, a.appearance_mean)
    torch.testing.assert_close(a.visibility_sample, a.visibility_probs)
    s1, s2 = model(x, sample=True), model(x, sample=True)
    assert not torch.equal(s1.visibility_sample, s2.visibility_sample)


def test_hard_straight_through_visibility():
    model = PatchVAE(hard=True)
    out = model(torch.randn(2, 3, 32, 32), temperature=0.5)
    assert set(out.visibility_sample.unique().tolist()) <= {0.0, 1.0}
    out.reconstruction.square().sum().backward()
    grad = model.encoder.visibility.weight.grad
    assert grad is not None and grad.abs().sum() > 0  # gradient flows through the hard sample


def test_in_chans_one_and_prior_samples():
    model = PatchVAE(in_chans=1).eval()
    assert model(torch.randn(2, 1, 32, 32)).reconstruction.shape == (2, 1, 32, 32)
    assert model.sample(3, grid_size=(4, 4)).shape == (3, 1, 32, 32)
    assert BetaVAE(in_chans=1).eval().sample(2).shape == (2, 1, 32, 32)


def test_beta_vae_and_bigan_outputs():
    vae = BetaVAE(96, img_size=64)
    out = vae(torch.randn(2, 3, 64, 64))
    assert out.reconstruction.shape == (2, 3, 64, 64) and out.latent_mean.shape == (2, 96)
    gan = BiGAN(96, img_size=32)
    g = gan(torch.randn(3, 3, 32, 32))
    assert g.latent.shape == (3, 96) and g.generated.shape == (3, 3, 32, 32)
    assert g.real_logits.shape == (3,) and g.fake_logits.shape == (3,)
    assert gan.generator is gan.decoder and gan.backbone is gan.encoder.backbone


def test_components_exposed():
    for model in (PatchVAE(), BetaVAE(), BiGAN()):
        assert model.backbone is model.encoder.backbone
        assert isinstance(model.decoder, torch.nn.Module)
    assert all(k.startswith(("encoder.backbone.", "encoder.", "decoder.")) for k in PatchVAE().state_dict())
    assert "encoder.backbone.layer2.0.downsample.0.weight" in PatchVAE().state_dict()


def test_bf16_autocast_forward():
    model = PatchVAE()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 3, 32, 32))
    assert out.appearance_mean.dtype == torch.float32  # posterior maths in fp32
    assert torch.isfinite(out.reconstruction.float()).all()


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (torch.randn(2, 1, 32, 32), ValueError, r"expected 3 input channel\(s\), got 1"),
        (torch.randn(2, 3, 30, 32), ValueError, "not a positive multiple of the network stride 8"),
        (torch.full((1, 3, 32, 32), float("nan")), ValueError, "NaN/Inf"),
        (torch.tensor([[[[float("inf")]]]]).expand(1, 3, 32, 32), ValueError, "NaN/Inf"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, "floating-point"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.float64), TypeError, "parameter dtype torch.float32"),
        (torch.zeros(3, 32, 32), ValueError, r"unsqueeze\(0\)"),
        ([[0.0]], TypeError, "torch.Tensor"),
    ],
)
def test_patchvae_bad_input(x, error, message):
    with pytest.raises(error, match=message):
        PatchVAE()(x)


def test_fixed_size_models_reject_other_sizes():
    with pytest.raises(ValueError, match="fixed 32x32 bottleneck"):
        BetaVAE(img_size=32)(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="fixed 64x64 bottleneck"):
        BiGAN(img_size=64).encode(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="fixed 32x32 bottleneck"):
        Classifier(10, img_size=32)(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="positive multiple of the backbone stride"):
        BetaVAE(img_size=36)


def test_bad_temperature():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        PatchVAE().train()(torch.randn(1, 3, 32, 32), temperature=0.0)


# ----------------------------------------------------------------------------- classifier freezing
def _trainable(model: Classifier) -> set[str]:
    return {n.split(".weight")[0] for n, p in model.named_parameters() if p.requires_grad and n.endswith("weight")}


def test_freeze_presets_follow_paper_columns():
    model = Classifier(10, freeze="conv1")
    assert not model.backbone.conv1.weight.requires_grad and not model.backbone.bn1.weight.requires_grad
    assert model.backbone.layer1[0].conv1.weight.requires_grad
    model.freeze("conv3")  # stem + layer1 frozen, "fine-tune the last residual block" (layer2)
    assert not any(p.requires_grad for p in model.backbone.layer1.parameters())
    assert all(p.requires_grad for p in model.backbone.layer2.parameters())
    model.freeze("conv5")  # all of φ frozen: only the two FC layers train
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert _trainable(model) == {"head.fc1", "fc"}
    model.freeze("none")
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_at_block_granularity():
    model = Classifier(10, freeze=2)  # stem + layer1.0: cuts inside layer1
    assert not any(p.requires_grad for p in model.backbone.layer1[0].parameters())
    assert all(p.requires_grad for p in model.backbone.layer1[1].parameters())
    r18 = Classifier(10, img_size=64, backbone="resnet18", freeze="conv5")  # paper Table 2 protocol
    assert not any(p.requires_grad for p in r18.backbone.layer2.parameters())
    assert all(p.requires_grad for p in r18.backbone.layer3.parameters())
    with pytest.raises(ValueError, match="unknown freeze preset"):
        Classifier(10, freeze="conv4x")
    with pytest.raises(ValueError, match=r"int in \[0, 5\]"):
        Classifier(10, freeze=6)


def test_frozen_batchnorm_statistics_do_not_move():
    model = Classifier(10, freeze="conv3").train()
    before_l1 = model.backbone.layer1[0].bn1.running_mean.clone()
    before_l2 = model.backbone.layer2[0].bn1.running_mean.clone()
    model(torch.randn(8, 3, 32, 32) * 3 + 1)
    torch.testing.assert_close(model.backbone.layer1[0].bn1.running_mean, before_l1)
    assert not torch.equal(model.backbone.layer2[0].bn1.running_mean, before_l2)
    assert not any(block.training for block in model.backbone.layer1) and not model.backbone.bn1.training
    assert all(block.training for block in model.backbone.layer2)


def test_classifier_timm_contract():
    model = Classifier(7, img_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model.forward_features(x).shape == (2, 128, 4, 4)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 512)
    assert model(x).shape == (2, 7)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    model.reset_classifier(0)
    assert model(x).shape == (2, 512)
