"""Sixt 2018 (issue 11): patch VAEs p|i with block-local PixelCNN decoders, global VAEs, dense features,
random-patch training, patch metrics, the SGD linear classifier on float16 feature stores, similarity maps."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import patchvae.models as zoo
from patchvae.data import fixed_patches, random_patches
from patchvae.evaluation import FeatureStore, chance_accuracy, patch_metrics, rate, sgd_linear_probe
from patchvae.models.sixt2018 import PATCH_CONFIGS
from patchvae.recipes import get_recipe
from patchvae.recipes.sixt2018 import PATCH_CONFIGS as RECIPE_CONFIGS
from patchvae.visualize import similarity_maps

CIFAR_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.zip"

#: parameter counts of every configuration (docs/models.md lists them)
PARAMS = {
    "sixt2018_patch_p3_i1": 56_594,
    "sixt2018_patch_p9_i1": 463_634,
    "sixt2018_patch_p9_i3": 464_786,
    "sixt2018_patch_p15_i1": 1_166_738,
    "sixt2018_patch_p15_i3": 1_167_890,
    "sixt2018_patch_p15_i5": 1_170_578,
    "sixt2018_vae_32d": 391_110,
    "sixt2018_vae_256d": 563_590,
    "sixt2018_vae_4096d": 3_520_390,
}


def _grid(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Images on the 8-bit grid in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).float() / 127.5 - 1.0


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_are_pinned(name):
    assert sum(p.numel() for p in zoo.create(name).parameters()) == PARAMS[name]


def test_recipes_cover_the_six_configurations():
    assert RECIPE_CONFIGS == PATCH_CONFIGS
    for p, i in PATCH_CONFIGS:
        recipe = get_recipe(f"sixt2018_cifar10_p{p}_i{i}")
        assert recipe.model == f"sixt2018_patch_p{p}_i{i}" and recipe.objective_args["patch_size"] == p
        assert recipe.batch_size * recipe.objective_args["patches_per_image"] == 256
    assert get_recipe("sixt2018_cifar10_betavae_32d").objective_args == {"beta": 250.0}


@pytest.mark.parametrize(("p", "i"), [(3, 1), (9, 3), (15, 5), (9, 1)])
def test_block_independence_of_the_likelihood(p, i):
    """d log p(x_pixel | ...) / d x reaches only the earlier pixels of the pixel's own i×i block (none for
    i = 1), plus the pixel itself (its channels through the DMOL), and z; never another block."""
    torch.manual_seed(0)
    model = zoo.create(f"sixt2018_patch_p{p}_i{i}", width=8, head_width=16).double().eval()
    x = _grid((1, 3, p, p)).double().requires_grad_(True)
    z = torch.randn(1, model.latent_dim, dtype=torch.float64, requires_grad=True)
    per_pixel = model.likelihood.log_prob(model.decoder.params(x, z), x, per_pixel=True)  # (1, p, p)
    reach_z = full = 0
    for r in range(p):
        for c in range(p):
            gx, gz = torch.autograd.grad(per_pixel[0, r, c], (x, z), retain_graph=True)
            reached = {(rr, cc) for rr, cc in (gx[0].abs().sum(0) > 0).nonzero().tolist()}
            top, left = (r // i) * i, (c // i) * i
            earlier = {(rr, cc) for rr in range(top, top + i) for cc in range(left, left + i) if (rr, cc) < (r, c)}
            assert reached - {(r, c)} <= earlier, (r, c)  # never a later pixel, never another block
            full += reached - {(r, c)} == earlier
            reach_z += bool(gz.abs().sum() > 0)
    # every earlier pixel of the block and z condition the pixels (a ReLU of the small random head may be off at a few)
    assert full >= 0.9 * p * p and reach_z >= 0.9 * p * p


@pytest.mark.parametrize(("p", "i"), PATCH_CONFIGS)
def test_dense_map_equals_encoding_each_crop(p, i):
    torch.manual_seed(1)
    model = zoo.create(f"sixt2018_patch_p{p}_i{i}").eval()
    x = _grid((2, 3, 32, 32), seed=2)
    with torch.no_grad():
        dense = model.represent(x, ["dense"])["dense"]
        assert dense.shape == (2, model.latent_dim, 33 - p, 33 - p)
        for r, c in [(0, 0), (5, 11), (32 - p, 32 - p), (32 - p, 0)]:
            crop = model.encode(x[:, :, r:r + p, c:c + p]).mean
            torch.testing.assert_close(dense[:, :, r, c], crop, rtol=1e-5, atol=1e-5)
        emb = model.represent(x, ["dense"], mode="embedding")["dense"]
        post = model.encode(x)
        assert torch.equal(emb, torch.cat([post.mean, post.var.sqrt()], dim=1))


@pytest.mark.parametrize(("p", "i"), [(9, 3), (15, 5)])
def test_fast_block_sampler_equals_naive(p, i):
    torch.manual_seed(3)
    model = zoo.create(f"sixt2018_patch_p{p}_i{i}").eval()
    z = torch.randn(3, model.latent_dim)
    fast = model.decoder.sample(z, generator=torch.Generator().manual_seed(7), method="fast")
    naive = model.decoder.sample(z, generator=torch.Generator().manual_seed(7), method="naive")
    assert fast.shape == (3, 3, p, p) and torch.equal(fast, naive)


def test_tiled_reconstruction_covers_the_largest_tiled_region():
    model = zoo.create("sixt2018_patch_p9_i3").eval()
    x = _grid((2, 3, 32, 32))
    with torch.no_grad():
        recon = model.reconstruct(x)
        tiles = torch.stack([model.reconstruct(x[:, :, r:r + 9, c:c + 9]) for r in (0, 9, 18) for c in (0, 9, 18)])
    assert recon.shape == (2, 3, 27, 27)
    assert recon.abs().max() <= 1
    # each tile is sampled with its own slice of the fixed noise: same code, same distribution, not bitwise
    assert tiles.shape == (9, 2, 3, 9, 9)


def test_patch_methods_refuse_whole_images_with_the_fix():
    model = zoo.create("sixt2018_patch_p9_i1").eval()
    with pytest.raises(ValueError, match=r"scores 9x9 patches, got 32x32; draw patches with patchvae.data.random_patches"):
        model.rate(_grid((1, 3, 32, 32)))
    with pytest.raises(ValueError, match="at least 9x9"):
        model.represent(_grid((1, 3, 8, 8)), ["dense"])
    with pytest.raises(ValueError, match="block_size i must divide patch_size p"):
        zoo.create("sixt2018_patch_p9_i1", block_size=2)


def test_random_patches_are_crops_of_their_own_image():
    x = torch.arange(2 * 3 * 12 * 10, dtype=torch.float32).view(2, 3, 12, 10)
    gen = torch.Generator().manual_seed(0)
    patches = random_patches(x, 5, per_image=50, generator=gen)
    assert patches.shape == (100, 3, 5, 5)
    for k in range(100):
        b = k // 50
        first = int(patches[k, 0, 0, 0]) - b * 360
        r, c = divmod(first, 10)
        assert 0 <= r <= 7 and 0 <= c <= 5
        assert torch.equal(patches[k], x[b, :, r:r + 5, c:c + 5])
    corners = {(int(p[0, 0, 0]) % 360) for p in random_patches(x, 5, per_image=400, generator=gen)}
    assert len(corners) == 8 * 6  # every valid position is drawn
    assert torch.equal(fixed_patches(x, 5, 30, seed=4), fixed_patches(x, 5, 30, seed=4))
    with pytest.raises(ValueError, match="do not fit"):
        random_patches(x, 13)


def test_patch_metrics_are_rate_and_bpd_on_fixed_patches():
    torch.manual_seed(0)
    model = zoo.create("sixt2018_patch_p3_i1").eval()
    x = _grid((20, 3, 16, 16))
    m = patch_metrics(model, x, num_patches=500, seed=3, preprocessed=True)
    with torch.no_grad():
        expected = model.rate(fixed_patches(x, 3, 500, seed=3)).double().mean().item()
    assert m.rate_nats == pytest.approx(expected, rel=1e-6)
    assert m.rate_bits == pytest.approx(m.rate_nats / math.log(2))
    assert m.rate_bits_per_pixel == pytest.approx(m.rate_bits / 9)
    assert m.elbo_bpd - m.reconstruction_bpd == pytest.approx(m.rate_bits / 27, rel=1e-4)
    with pytest.raises(ValueError, match="patch_size"):
        patch_metrics(zoo.create("sixt2018_vae_32d"), _grid((2, 3, 32, 32)), preprocessed=True)


def test_feature_store_round_trip_and_all_equals_concatenation(tmp_path):
    torch.manual_seed(0)
    model = zoo.create("sixt2018_patch_p9_i1").eval()
    x = _grid((40, 3, 16, 16))
    store = FeatureStore.write(model, x, tmp_path / "f.npy", layer="dense", preprocessed=True)
    with torch.no_grad():
        dense = model.represent(x, ["dense"])["dense"].flatten(1)
    assert (len(store), store.dim) == (40, 32 * 8 * 8)
    torch.testing.assert_close(store[np.arange(40)], dense, rtol=1e-3, atol=1e-3)  # float16 rows
    assert np.load(tmp_path / "f.npy", mmap_mode="r").dtype == np.float16
    assert not list(tmp_path.glob("*.tmp"))
    # ALL: two representations streamed side by side == their concatenation held in memory
    other = torch.randn(40, 7)
    y = torch.arange(40) % 4
    a = sgd_linear_probe([store, other], y, [store, other], y, val_size=10, max_epochs=3, seed=1)
    b = sgd_linear_probe([torch.cat([store[np.arange(40)], other], 1)], y, [torch.cat([store[np.arange(40)], other], 1)], y,
                         val_size=10, max_epochs=3, seed=1)
    assert a.top1 == b.top1 and a.params["val_history"] == b.params["val_history"]
    assert a.params["feature_dim"] == 32 * 64 + 7


def test_sgd_linear_probe_learns_and_stops_early():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 20, generator=g) * 3
    y = torch.randint(0, 3, (3000,), generator=g)
    x = centres[y] + torch.randn(3000, 20, generator=g)
    res = sgd_linear_probe([x[:2000]], y[:2000], [x[2000:]], y[2000:], val_size=500, patience=2, seed=0)
    assert res.top1 > 95
    assert res.params["epochs_run"] < 100 and res.params["epochs_run"] - res.params["best_epoch"] <= 2
    assert res.num_train == 1500 and res.probe == "sgd_linear"
    assert chance_accuracy(torch.tensor([0, 1, 1]), torch.tensor([1, 1, 0, 2])) == 50.0
    with pytest.raises(ValueError, match="different numbers of rows"):
        sgd_linear_probe([x[:10], x[:11]], y[:10], [x[:5]], y[:5], val_size=2)


def test_global_vae_layers_and_rate():
    model = zoo.create("sixt2018_vae_256d").eval()
    x = _grid((3, 3, 32, 32))
    with torch.no_grad():
        out = model.represent(x, ["bn1", "bn2", "bn3", "bn4", "fc", "latent"])
        r = rate(model, x, preprocessed=True)
        post = model.encode(x)
    assert out["bn1"].shape == (3, 32, 16, 16) and out["bn4"].shape == (3, 64, 2, 2) and out["latent"].shape == (3, 256)
    kl = 0.5 * (post.mean.square() + post.var - post.var.log() - 1).sum(1).double().mean()
    assert r.nats == pytest.approx(float(kl), rel=1e-5)
    assert not isinstance(model, zoo.LikelihoodModel)  # a Gaussian density gives no bits per 8-bit dimension


def test_similarity_map_is_zero_at_the_query():
    model = zoo.create("sixt2018_patch_p9_i3").eval()
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    dist, offset = similarity_maps(model, images[1], (10, 20), images)
    assert dist.shape == (3, 24, 24) and offset == 4
    assert dist[1, 6, 16] == pytest.approx(0.0, abs=1e-5)
    assert float(dist.min()) >= 0
    with pytest.raises(ValueError, match="at least 4 pixels from the border"):
        similarity_maps(model, images[0], (2, 2), images)


def test_beta_and_patch_objective_in_the_trainer():
    from patchvae.training.distributed import World
    from patchvae.training.tasks import make_task

    recipe = get_recipe("sixt2018_cifar10_betavae_32d")
    model = zoo.create("sixt2018_vae_32d")
    task = make_task(model, recipe, torch.device("cpu"), World(), None)
    x = _grid((4, 3, 32, 32))
    torch.manual_seed(0)
    parts = task.eval_step(x, 0)
    assert parts["loss"] == pytest.approx(float(parts["reconstruction_nll"] + 250 * parts["kl"]), rel=1e-5)
    patch_task = make_task(zoo.create("sixt2018_patch_p9_i3"), get_recipe("sixt2018_cifar10_p9_i3"),
                           torch.device("cpu"), World(), None)
    patch_task.train(False)
    first = patch_task.eval_step(x, 0)
    patch_task.train(False)  # a new eval pass: the same patch positions
    assert torch.equal(patch_task.eval_step(x, 0)["kl"], first["kl"])
    with pytest.raises(ValueError, match="set objective_args.patch_size=9"):
        make_task(zoo.create("sixt2018_patch_p9_i3"), recipe.replace(model="sixt2018_patch_p9_i3"),
                  torch.device("cpu"), World(), None)


@pytest.mark.skipif(not CIFAR_ZIP.is_file(), reason="needs the CIFAR-10 JPEG copy in ../shared/data")
def test_train_a_patch_vae_from_the_cli_on_cifar10(tmp_path):
    cmd = [sys.executable, "-m", "patchvae", "train", "sixt2018_cifar10_p9_i3", "--data-dir", str(CIFAR_ZIP),
           "--epochs", "1", "--train-subset", "256", "--eval-subset", "256", "--out", str(tmp_path / "run"),
           "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    model = zoo.create("sixt2018_patch_p9_i3", checkpoint_path=tmp_path / "run" / "model").eval()
    assert (tmp_path / "run" / "images" / "epoch_001_reconstructions.png").is_file()
    out = subprocess.run([sys.executable, "-m", "patchvae", "similarity", str(tmp_path / "run" / "model"), "--data-dir",
                          str(CIFAR_ZIP), "--out", str(tmp_path / "sim.png")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "sim.png").stat().st_size > 1000
    assert model.representations()["dense"].shape == (32, 24, 24)


# --------------------------------------------------------------------------- the packaged weights' cards
SHIPPED = [n for n in zoo.list_pretrained() if n.startswith("sixt2018_")]


def test_the_six_patch_models_and_the_global_vaes_are_shipped():
    expected = {f"sixt2018_patch_p{p}_i{i}.cifar10" for p, i in PATCH_CONFIGS}
    expected |= {f"sixt2018_vae_{d}d.cifar10" for d in (32, 256, 4096)} | {"sixt2018_vae_32d.cifar10_beta250"}
    assert expected <= set(SHIPPED)
    for name in SHIPPED:
        cfg = zoo.get_pretrained_cfg(name)
        assert "under our architecture" in cfg.protocol and "--data-dir" in cfg.command
        assert "rate_bits" in cfg.metrics and "linear_probe_top1" in cfg.metrics


@pytest.mark.slow
def test_patch_card_metrics_reproduce(cifar10_test):
    """Re-run a card's M and cross entropy (S Tables 2-3: 50,000 seeded test patches, ~1 min)."""
    name = "sixt2018_patch_p9_i3.cifar10"
    cfg = zoo.get_pretrained_cfg(name)
    m = patch_metrics(name, cifar10_test, num_patches=50_000, seed=0)
    assert abs(m.rate_bits - cfg.metrics["rate_bits"]) < 0.05, (m, cfg.metrics)
    assert abs(m.elbo_bpd - cfg.metrics["cross_entropy_elbo_bpd"]) < 0.005, (m, cfg.metrics)
    assert abs(m.reconstruction_bpd - cfg.metrics["cross_entropy_reconstruction_bpd"]) < 0.005, (m, cfg.metrics)


@pytest.mark.slow
def test_patch_card_linear_probe_reproduces(cifar10_train, cifar10_test, tmp_path):
    """Re-run the 3|1 card's linear classifier (Sixt §6 on the dense map; 15,000 training images, ~2 min)."""
    from patchvae.data.subsets import random_subset

    name = "sixt2018_patch_p3_i1.cifar10"
    cfg = zoo.get_pretrained_cfg(name)
    model = zoo.create(name, pretrained=True).eval()
    train = random_subset(cifar10_train, 15000, 0)
    to_x = lambda ds: (ds.images.float().div(255.0) - 0.5) / 0.5  # noqa: E731 (the weights' preprocessing)
    tr = FeatureStore.write(model, to_x(train), tmp_path / "tr.npy", preprocessed=True)
    te = FeatureStore.write(model, to_x(cifar10_test), tmp_path / "te.npy", preprocessed=True)
    res = sgd_linear_probe([tr], train.labels, [te], cifar10_test.labels, seed=0)
    assert abs(res.top1 - cfg.metrics["linear_probe_top1"]) < 1.0, (res.top1, cfg.metrics)
