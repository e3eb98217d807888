"""Zhang et al. 2022's VAE / LPVAE / FPVAE (patchvae.models.pixelvae): sizes, protocol, ELBO, sampling, training."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from torch.distributions import Normal, kl_divergence

import patchvae.models as zoo
from patchvae.models import (
    GenerativeModel,
    LikelihoodModel,
    PixelVAE,
    RateModel,
    Representable,
)
from patchvae.models.likelihoods import DiscretizedLogisticMixture, DMOLNoise
from patchvae.models.pixelvae import DECODE_SEED, autoregressive_sample, receptive_reach
from patchvae.recipes import get_recipe, list_recipes
from patchvae.training.data import likelihood_data_config

#: every registered configuration: parameters (torch numel, masked kernel taps included)
PARAM_COUNTS = {
    "pixelvae_mlp_h0": 14_579_758,
    "pixelvae_mlp_h1": 14_580_782,
    "pixelvae_mlp_h2": 14_582_830,
    "pixelvae_mlp_full": 22_450_222,
    "pixelvae_mlp_h0_small": 7_262_222,
    "pixelvae_mlp_h1_small": 7_262_478,
    "pixelvae_mlp_h2_small": 7_262_990,
    "pixelvae_mlp_full_small": 7_460_366,
    "pixelvae_resnet_h0": 37_768_984,
    "pixelvae_resnet_h1": 37_772_056,
    "pixelvae_resnet_h2": 37_778_200,
    "pixelvae_resnet_full": 45_651_736,
    "pixelvae_resnet_h0_small": 372_548,
    "pixelvae_resnet_h1_small": 373_316,
    "pixelvae_resnet_h2_small": 374_852,
    "pixelvae_resnet_full_small": 573_764,
}
HORIZONS = {"h0": 0, "h1": 1, "h2": 2, "full": None}


def tiny(arch: str = "resnet", horizon: int | None = 1, chans: int = 3, **changes) -> PixelVAE:
    """A few-thousand-parameter model on 8×8 images, eval mode."""
    args = dict(arch=arch, horizon=horizon, in_chans=chans, img_size=8, latent_dim=4, hidden_dim=8 if arch == "resnet" else 16,
                cond_chans=4, head_width=8, head_blocks=1, head_convs_per_block=2, num_mixtures=2)
    torch.manual_seed(0)
    return PixelVAE(**{**args, **changes}).eval()


def images(model: PixelVAE, batch: int = 2, seed: int = 1) -> torch.Tensor:
    """8-bit images as v/127.5 - 1."""
    g = torch.Generator().manual_seed(seed)
    side = model.img_size
    return torch.randint(0, 256, (batch, model.in_chans, side, side), generator=g).float() / 127.5 - 1


def on_grid(x: torch.Tensor) -> bool:
    levels = (x + 1) * 127.5
    return bool(x.abs().max() <= 1 and (levels - levels.round()).abs().max() < 1e-4)


# ----------------------------------------------------------------------------- registry and sizes
def test_every_variant_is_registered_with_pinned_parameter_counts():
    assert zoo.list_models("pixelvae_*") == sorted(PARAM_COUNTS)
    for name, count in PARAM_COUNTS.items():
        model = zoo.create(name, device="meta")
        assert sum(p.numel() for p in model.parameters()) == count, name
        arch, head = name.split("_")[1:3]
        assert model.arch == arch and model.horizon == HORIZONS[head]
        cfg = model.data_config
        assert cfg.mean == cfg.std == (0.5,) * model.in_chans  # v/127.5 - 1
        assert cfg.input_size == ((1, 28, 28) if arch == "mlp" else (3, 32, 32))
        assert cfg.resize_mode == ("pad" if arch == "mlp" else "resize_crop")
        assert model.num_dims == (784 if arch == "mlp" else 3072)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_reference_sizes_follow_the_spec_architecture():
    """The paper/reference parts, counted layer by layer from spec §2.3-2.5."""
    conv = lambda i, o, k, bias=True: i * o * k * k + (o if bias else 0)
    lin = lambda i, o: i * o + o
    bn = lambda c: 2 * c
    w = 400
    encoder = 2 * conv(3, w, 3) + 5 * (bn(w) + conv(w, w, 3)) + bn(w) + 2 * lin(w * 16, 64)
    block = 2 * conv(w, w, 4) + bn(w) + bn(w) + conv(w, w, 5) + bn(w) + conv(w, w, 1)
    decoder = lin(64, w * 16) + 3 * block + bn(w) + conv(w, 100, 3)

    def head(chans, cond, out, k, block_k):
        trunk = conv(chans, 128, k, bias=False) + conv(cond, 128, 1, bias=False) + 15 * conv(256, 256, block_k)
        return trunk + conv(256, 256, 1) + conv(256, out, 1)

    model = zoo.create("pixelvae_resnet_h1", device="meta")
    assert (_count(model.encoder), _count(model.decoder.net)) == (encoder, decoder) == (8_048_528, 28_628_900)
    assert _count(model.decoder.head) == head(3, 100, 100, 3, 1)
    assert _count(zoo.create("pixelvae_resnet_full", device="meta").decoder.head) == head(3, 100, 100, 7, 3)
    mlp = zoo.create("pixelvae_mlp_h2", device="meta")
    assert _count(mlp.encoder) == lin(784, 500) + bn(500) + lin(500, 500) + bn(500) + 2 * lin(500, 32)
    assert _count(mlp.decoder.net) == lin(32, 500) + bn(500) + lin(500, 500) + bn(500) + lin(500, 32 * 784)
    assert _count(mlp.decoder.head) == head(1, 32, 30, 5, 1)  # 1-channel DMOL: 3K = 30 parameters


def test_constructor_errors():
    with pytest.raises(ValueError, match="arch must be"):
        PixelVAE(arch="vit")
    with pytest.raises(ValueError, match="horizon must be"):
        PixelVAE(horizon=-1)
    with pytest.raises(ValueError, match="multiple of 8"):
        PixelVAE(img_size=28)
    model = tiny()
    with pytest.raises(ValueError, match="fixed input size"):
        model.representations((3, 16, 16))
    with pytest.raises(ValueError, match="method must be"):
        model.decode(torch.zeros(1, 4), method="slow")
    with pytest.raises(ValueError, match="fixed 8x8"):
        model.encode(torch.zeros(1, 3, 16, 16))


# ----------------------------------------------------------------------------- the protocol
@pytest.mark.parametrize("arch", ["mlp", "resnet"])
@pytest.mark.parametrize("mode", ["mean", "sample", "embedding"])
def test_representations_match_represent(arch, mode):
    model = tiny(arch)
    assert isinstance(model, Representable) and isinstance(model, GenerativeModel)
    assert isinstance(model, RateModel) and isinstance(model, LikelihoodModel)
    x = images(model)
    infos = model.representations()
    expected = ["hidden1", "hidden2"] if arch == "mlp" else ["stage1", "stage2", "stage3", "features", "pooled"]
    assert list(infos) == [*expected, "latent", "latent_var"]
    with torch.no_grad():
        out = model.represent(x, list(infos), mode=mode)
        post = model.encode(x)
    for name, info in infos.items():
        assert tuple(out[name].shape) == (2, *info.shape_for(mode)), name
    if mode == "embedding":
        assert torch.equal(out["latent"], torch.cat([post.mean, post.var.sqrt()], dim=1))
    elif mode == "mean":
        assert torch.equal(out["latent"], post.mean)
    with torch.no_grad():
        z = model.represent(x, ["latent"], mode="sample", noise=lambda like, draw: torch.ones_like(like))["latent"]
    torch.testing.assert_close(z, post.mean + post.var.sqrt())
    assert torch.equal(out["latent_var"], post.var)


def test_encoder_and_decoder_compose_to_the_reconstruction():
    name = "pixelvae_mlp_h2_small"
    parts = []
    for create in (zoo.create, zoo.create_encoder, zoo.create_decoder):
        torch.manual_seed(0)  # the same random weights
        parts.append(create(name).eval())
    model, enc, dec = parts
    x = images(model)
    with torch.no_grad():
        expected = model.reconstruct(x)
        assert torch.equal(dec(enc(x).code()), expected)
        assert torch.equal(model.decode(model.encode(x).code()), expected)
    assert expected.shape == x.shape and on_grid(expected)


# ----------------------------------------------------------------------------- likelihood and ELBO
def _dmol_reference(params: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """Textbook PixelCNN++ DMOL log p(x) per image in float64 (open edge bins, RGB linear autoregression)."""
    p, x = params.double(), x.double()
    batch, _, height, width = p.shape
    chans = x.shape[1]
    rest = p[:, k:].view(batch, chans, -1, height, width)
    means, log_s = rest[:, :, :k], rest[:, :, k:2 * k].clamp(min=-7.0)
    if chans == 3:
        coef = torch.tanh(rest[:, :, 2 * k:])
        means = torch.stack([means[:, 0], means[:, 1] + coef[:, 0] * x[:, 0:1],
                             means[:, 2] + coef[:, 1] * x[:, 0:1] + coef[:, 2] * x[:, 1:2]], 1)
    xs, s = x.unsqueeze(2), log_s.exp()
    upper = torch.where(xs > 0.999, 1.0, torch.sigmoid((xs + 1 / 255 - means) / s))
    lower = torch.where(xs < -0.999, 0.0, torch.sigmoid((xs - 1 / 255 - means) / s))
    joint = torch.log_softmax(p[:, :k], 1) + (upper - lower).log().sum(1)
    return torch.logsumexp(joint, 1).sum((1, 2))


@pytest.mark.parametrize("arch, chans, horizon", [("mlp", 1, 1), ("resnet", 3, 2), ("resnet", 3, None)])
def test_elbo_terms_are_the_dmol_nll_and_the_analytic_kl(arch, chans, horizon):
    model = tiny(arch, horizon, chans)
    x = images(model)
    with torch.no_grad():
        torch.manual_seed(7)
        terms = model.elbo_terms(x)
        torch.manual_seed(7)
        post = model.encode(x)
        z = post.mean + post.var.sqrt() * torch.randn_like(post.mean)  # the same posterior sample
        params = model.decoder.head(x, model.decoder.net(z))
    torch.testing.assert_close(terms.reconstruction_nll.double(), -_dmol_reference(params, x, 2), rtol=1e-5, atol=1e-3)
    kl = kl_divergence(Normal(post.mean.double(), post.var.double().sqrt()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(terms.kl.double(), kl, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.rate(x), terms.kl)
    # the eval-mode forward decodes μ, and BPD = −ELBO / (D ln 2)
    out = model(x)
    assert torch.equal(out.latent_sample, post.mean) and out.likelihood_params.shape == (2, model.likelihood.param_channels, 8, 8)
    # importance weights: log p(x|z) + log p(z) - log q(z|x) with the same draws
    with torch.no_grad():
        torch.manual_seed(3)
        w = model.log_importance_weights(x, 2)
        torch.manual_seed(3)
        eps = torch.randn_like(post.mean)
        z = post.mean + post.var.sqrt() * eps
        log_px = model.likelihood.log_prob(model.decoder.params(x, z), x)
    q = Normal(post.mean.double(), post.var.double().sqrt())
    expected = log_px.double() + Normal(0.0, 1.0).log_prob(z.double()).sum(1) - q.log_prob(z.double()).sum(1)
    assert w.shape == (2, 2)
    torch.testing.assert_close(w[:, 0].double(), expected, rtol=1e-5, atol=1e-3)


def _pixel_dependence(model: PixelVAE, i: int, j: int) -> set[tuple[int, int]]:
    """Pixels (r, c) whose value changes log p(x_ij | context, z) (gradient ≠ 0), for a fixed z."""
    x = images(model, batch=1).requires_grad_(True)
    z = torch.randn(1, model.latent_dim)
    ll = model.likelihood.log_prob(model.decoder.params(x, z), x, per_pixel=True)
    (grad,) = torch.autograd.grad(ll[0, i, j], x)
    return {(int(r), int(c)) for r, c in grad[0].abs().sum(0).nonzero()}


def test_h0_likelihood_factorises_over_pixels():
    model = tiny("resnet", 0)
    for i, j in [(0, 0), (3, 4), (7, 7)]:
        assert _pixel_dependence(model, i, j) == {(i, j)}  # its own value only
    lp = tiny("resnet", 1)
    assert _pixel_dependence(lp, 3, 4) == {(3, 4), (2, 3), (2, 4), (2, 5), (3, 3)}  # itself + the 4 context pixels
    fp = tiny("mlp", None, 1)
    got = _pixel_dependence(fp, 4, 2)
    assert all(r * 8 + c <= 4 * 8 + 2 for r, c in got) and len(got) > 5


# ----------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("arch, chans, horizon", [("resnet", 3, 0), ("resnet", 3, 1), ("resnet", 3, 2), ("mlp", 1, 2),
                                                  ("resnet", 3, None), ("mlp", 1, None)])
def test_fast_sampler_equals_naive_sampler_for_the_same_noise(arch, chans, horizon):
    model = tiny(arch, horizon, chans)
    z = torch.randn(3, model.latent_dim)
    fast = model.decoder.sample(z, generator=torch.Generator().manual_seed(5), method="fast")
    naive = model.decoder.sample(z, generator=torch.Generator().manual_seed(5), method="naive")
    assert fast.shape == (3, chans, 8, 8) and on_grid(fast)
    assert torch.equal(fast, naive)
    other = model.decoder.sample(z, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(fast, other)


def test_sampler_uses_the_given_noise_and_the_head_context():
    model = tiny("resnet", 1)
    dec = model.decoder
    with torch.no_grad():
        cond = dec.condition(torch.randn(2, 4))
    noise = dec.likelihood.sample_noise(2, 8, 8, generator=torch.Generator().manual_seed(0))
    kept = DMOLNoise(noise.component.clone(), noise.value.clone())
    x = autoregressive_sample(dec.head, dec.likelihood, cond, noise, method="fast")
    assert torch.equal(noise.component, kept.component) and torch.equal(noise.value, kept.value)  # not consumed in place
    # every pixel is the DMOL draw of its own noise given the head's parameters for the finished image
    params = dec.head(x, cond)
    assert torch.equal(dec.likelihood.sample(params, noise=noise), x)
    assert receptive_reach(dec.head) == 1 and receptive_reach(tiny("resnet", None).decoder.head) == 3 + 2


def test_dmol_noise_is_what_sample_draws():
    lik = DiscretizedLogisticMixture(3, 4)
    params = torch.randn(2, lik.param_channels, 3, 5)
    a = lik.sample(params, generator=torch.Generator().manual_seed(9))
    b = lik.sample(params, noise=lik.sample_noise(2, 3, 5, generator=torch.Generator().manual_seed(9)))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="does not fit"):
        lik.sample(params, noise=lik.sample_noise(2, 3, 4))


def test_decode_is_deterministic_and_sampling_apis():
    model = tiny("mlp", 1, 1)
    z = torch.randn(2, 4)
    first = model.decode(z)
    assert torch.equal(first, model.decode(z))
    assert torch.equal(first, model.decode(z, generator=torch.Generator().manual_seed(DECODE_SEED)))
    assert not torch.equal(first, model.decode(z, generator=torch.Generator().manual_seed(DECODE_SEED + 1)))
    samples = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 1, 8, 8) and on_grid(samples)
    assert torch.equal(samples, model.sample(3, generator=torch.Generator().manual_seed(0)))
    x = images(model)
    rows = model.sample_from(x, 4, generator=torch.Generator().manual_seed(0))
    assert rows.shape == (2, 4, 1, 8, 8) and on_grid(rows)
    assert not torch.equal(rows[:, 0], rows[:, 1])  # one z' per row, different local draws


# ----------------------------------------------------------------------------- recipes and training
def test_recipes_for_tables_2_and_3():
    names = [n for n in list_recipes("zhang2022_*") if not n.startswith("zhang2022_m2_")]
    variants = ("vae", "lpvae_h1", "lpvae_h2", "fpvae")
    assert names == sorted(f"zhang2022_{d}_{v}{s}" for d in ("fmnist", "cifar10") for v in variants for s in ("", "_paper"))
    for name in names:
        r = get_recipe(name)
        cifar = r.dataset == "cifar10"
        paper = name.endswith("_paper")
        # bf16 autocast only for the CPU-size CIFAR-10 convnets (the head keeps the DMOL parameters in float32)
        assert (r.objective, r.family, r.lr, r.betas, r.batch_size, r.weight_decay, r.amp) == (
            "elbo", "vae", 3e-4, (0.9, 0.999), 100, 0.0, "auto" if cifar and not paper else "none")
        assert r.paper_ref.startswith("Zhang et al. 2022") and r.notes
        assert zoo.is_model(r.model) and r.model.endswith("_small") != paper
        assert r.epochs == ((1000 if cifar else 100) if paper else (3 if cifar else 4))
        assert r.image_size == (32 if cifar else 28)
        assert dict(r.objective_args) == ({"random_crop_padding": 4} if cifar else {})
        cfg = likelihood_data_config(r)
        assert cfg.mean == (0.5,) * cfg.channels and cfg.input_size[1:] == (r.image_size, r.image_size)
        assert cfg.hflip == cifar
    with pytest.raises(ValueError, match="mean = std = 0.5"):
        likelihood_data_config(get_recipe("zhang2022_cifar10_vae").replace(model="beta_vae_resnet9_32"))


@pytest.mark.parametrize("name", ["pixelvae_resnet_h1_small", "pixelvae_resnet_full_small", "pixelvae_mlp_h2_small"])
def test_dmol_parameters_stay_float32_under_bf16_autocast(name):
    """Under autocast the trunk runs in bf16 but the last conv (the DMOL parameters) in float32: bf16 means
    near ±1 are 2^-7 apart, one 8-bit bin. The −ELBO stays within 1e-3 bits/dim of float32 on the same noise."""
    torch.manual_seed(0)
    model = zoo.create(name).eval()
    head = model.decoder.head
    hidden = {}
    head.out.register_forward_hook(lambda mod, inp, out: hidden.update(inp=inp[0], out=out))
    x = torch.randint(0, 256, (4, model.in_chans, model.img_size, model.img_size)).float() / 127.5 - 1
    with torch.no_grad():
        torch.manual_seed(1)
        ref = model.elbo_terms(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.manual_seed(1)
            low = model.elbo_terms(x)
    assert hidden["inp"].dtype == torch.float32 and hidden["out"].dtype == torch.float32
    expected = torch.nn.functional.conv2d(hidden["inp"], head.out.weight, head.out.bias)
    torch.testing.assert_close(hidden["out"], expected, rtol=0, atol=1e-5)  # computed in float32, not rounded
    dims = x[0].numel() * math.log(2)
    gap = ((low.reconstruction_nll + low.kl) - (ref.reconstruction_nll + ref.kl)).abs().max() / dims
    assert gap < 1e-3, gap


def test_random_crops_pad_with_black():
    from patchvae.training.distributed import World
    from patchvae.training.tasks import ELBOTask, make_task

    recipe = get_recipe("zhang2022_cifar10_lpvae_h1").replace(channels_last=False)
    task = make_task(tiny(), recipe, torch.device("cpu"), World(), None)
    assert isinstance(task, ELBOTask) and task.crop_padding == 4
    x = images(tiny(), batch=64)
    torch.manual_seed(0)
    out = task._random_crop(x)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4), value=-1.0)
    for b in range(64):  # each image is one 8×8 window of its padded self
        assert any(torch.equal(out[b], padded[b, :, r:r + 8, c:c + 8]) for r in range(9) for c in range(9))
    assert not torch.equal(out, x) and (out == -1).any()
    with pytest.raises(ValueError, match="takes objective_args random_crop_padding, beta, patch_size, patches_per_image"):
        make_task(tiny(), recipe.replace(objective_args={"free_bits": 2}), torch.device("cpu"), World(), None)


def _tiny_recipe(**changes):
    model_args = {"hidden_dim": 32, "cond_chans": 4, "head_width": 8, "head_blocks": 1}
    return get_recipe("zhang2022_fmnist_lpvae_h1").with_overrides({"batch_size": 16, "model_args": model_args, **changes})


@pytest.mark.data
def test_training_logs_bpd_and_resumes_exactly(tmp_path, fashion_mnist):
    from patchvae.training import train

    kw = dict(train_subset=32, eval_subset=16, deterministic=True, log_every=1, progress=False)
    full = train(_tiny_recipe(epochs=2), tmp_path / "full", **kw)
    assert full.steps == 4
    history = full.history[-1]
    assert {"loss", "reconstruction_nll", "kl", "bpd"} <= set(history["train"]) and "bpd" in history["eval"]
    assert history["eval"]["bpd"] == pytest.approx(history["eval"]["loss"] / (784 * math.log(2)), rel=1e-5)
    for kind in ("reconstructions", "samples"):
        assert (tmp_path / "full" / "images" / f"epoch_002_{kind}.png").is_file()
    train(_tiny_recipe(epochs=1), tmp_path / "split", save_images=False, **kw)
    resumed = train(_tiny_recipe(epochs=2), tmp_path / "split", resume=True, save_images=False, **kw)
    assert resumed.steps == full.steps
    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the exported folder: the model's preprocessing (28×28 unpadded, v/127.5 - 1) and identical outputs
    config = json.loads((tmp_path / "full" / "model" / "config.json").read_text())
    assert config["data_config"]["input_size"] == [1, 28, 28] and config["data_config"]["mean"] == [0.5]
    # in the trained model's memory format: oneDNN may pick other float32 kernels for NCHW than channels_last
    loaded = zoo.from_pretrained(tmp_path / "full" / "model").eval().to(memory_format=torch.channels_last)
    x = images(loaded)
    with torch.no_grad():
        assert torch.equal(loaded(x).reconstruction_nll, full.model.eval()(x).reconstruction_nll)


# ----------------------------------------------------------------------------- shipped CIFAR-10 weights (Table 3)
SHIPPED_CIFAR10 = [f"pixelvae_resnet_{h}_small.cifar10" for h in ("h0", "h1", "h2", "full")]


def test_the_four_table3_models_are_shipped_with_their_card_numbers():
    assert set(SHIPPED_CIFAR10) <= set(zoo.list_pretrained())
    for name in SHIPPED_CIFAR10:
        cfg = zoo.get_pretrained_cfg(name)
        assert cfg.dataset == "cifar10" and cfg.recipe.startswith("zhang2022_cifar10_") and "--data-dir" in cfg.command
        assert {"bpd", "rate_nats", "conditional_entropy_nats", "intrinsic_dim", "linear_svm_top1",
                "nonlinear_probe_top1"} <= set(cfg.metrics), name
        assert 0 < cfg.metrics["bpd"] < 8 and cfg.num_params == sum(
            p.numel() for p in zoo.create(name.split(".")[0]).parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pixelvae_resnet_h1_small.cifar10"])
def test_table3_card_bpd_and_rate_reproduce(name, cifar10_test):
    """Re-run a card's test BPD and rate (10,000 test images, seed 0, ~1 min)."""
    from patchvae.evaluation import bpd, rate

    cfg = zoo.get_pretrained_cfg(name)
    model = zoo.create(name, pretrained=True)
    assert abs(bpd(model, cifar10_test, seed=0).bpd - cfg.metrics["bpd"]) < 0.005
    assert abs(rate(model, cifar10_test).nats - cfg.metrics["rate_nats"]) < 0.05
