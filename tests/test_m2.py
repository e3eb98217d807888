"""Semi-supervised M2 / LPVAE-M2 (Zhang et al. 2022 §6): bounds, α, labelled subsets, training and resume, data."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import patchvae.models as zoo
from patchvae.data import ImageTensorDataset, balanced_label_indices, get_dataset, load_mnist, load_svhn
from patchvae.models import M2VAE
from patchvae.models.m2 import label_entropy
from patchvae.recipes import get_recipe, list_recipes
from patchvae.training.data import build_run_data
from patchvae.training.distributed import World
from patchvae.training.tasks import M2Task, m2_alpha

#: parameter counts of every registered configuration (paper/reference size and CPU size)
PARAMS = {
    "m2_mlp_m2": 15_287_832, "m2_mlp_lpvae_h1": 15_288_856, "m2_mlp_lpvae_h2": 15_290_904,
    "m2_mlp_m2_small": 4_800_712, "m2_mlp_lpvae_h1_small": 4_800_840, "m2_mlp_lpvae_h2_small": 4_801_096,
    "m2_conv_m2": 4_459_770, "m2_conv_lpvae_h1": 4_462_842, "m2_conv_lpvae_h2": 4_468_986,
    "m2_conv_m2_small": 3_181_366, "m2_conv_lpvae_h1_small": 3_181_750, "m2_conv_lpvae_h2_small": 3_182_518,
}


def tiny(arch: str = "mlp", horizon: int = 1, **kw) -> M2VAE:
    torch.manual_seed(0)
    size = {"in_chans": 1, "img_size": 8} if arch == "mlp" else {"in_chans": 3, "img_size": 32}
    return M2VAE(arch, horizon, num_labels=3, latent_dim=4, hidden_dim=16, cond_chans=4, head_width=8, head_blocks=1,
                 head_convs_per_block=1, num_mixtures=2, **{**size, **kw})


def images(model: M2VAE, batch: int = 5, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    side = model.img_size
    return torch.randint(0, 256, (batch, model.in_chans, side, side), generator=g).double() / 127.5 - 1


def test_parameter_counts_are_pinned():
    assert sorted(zoo.list_models("m2_*")) == sorted(PARAMS)
    for name, count in PARAMS.items():
        assert sum(p.numel() for p in zoo.create(name).parameters()) == count, name


def test_unlabelled_bound_equals_explicit_enumeration_in_float64():
    model = tiny().double().eval()
    x = images(model)
    bound, elbos = model.unlabelled_elbo(x, sample=False)
    q = F.softmax(model.classify(x), 1)
    explicit = torch.zeros(x.shape[0], dtype=torch.float64)
    for y in range(model.num_labels):
        labels = torch.full((x.shape[0],), y, dtype=torch.long)
        elbo_y = model.labelled_elbo(x, labels, sample=False)  # one label at a time: no enumeration
        torch.testing.assert_close(elbos[:, y], elbo_y, rtol=1e-12, atol=1e-9)
        explicit += q[:, y] * elbo_y
    explicit += -(q * q.log()).sum(1)
    torch.testing.assert_close(bound, explicit, rtol=1e-12, atol=1e-9)
    # the labelled bound itself: E log p(x | y, z) + log p(y) − KL, with log p(y) = −log K
    nll, kl = model.labelled_terms(x, torch.zeros(5, dtype=torch.long), sample=False)
    torch.testing.assert_close(elbos[:, 0], -math.log(3) - nll - kl)
    torch.testing.assert_close(label_entropy(torch.zeros(2, 4)), torch.full((2,), math.log(4)))
    out = model(x)
    assert out.label_elbos.shape == (5, 3) and torch.equal(out.elbo, bound)


def test_alpha_follows_the_chosen_formula():
    assert m2_alpha(100, 60_000) == pytest.approx(0.1 * 60_100 / 100)  # r(N+M)/N, the reference code's
    assert m2_alpha(100, 60_000, formula="paper") == pytest.approx(0.1 * 60_100 / 60_000)  # r(N+M)/M as printed
    assert m2_alpha(1000, 73_257, rate=0.2) == pytest.approx(0.2 * 74_257 / 1000)
    with pytest.raises(ValueError, match="alpha_formula must be 'reference'"):
        m2_alpha(1, 1, formula="kingma")
    with pytest.raises(ValueError, match="N >= 1 labelled"):
        m2_alpha(0, 10)


def test_labelled_subset_is_class_balanced_seeded_and_checked():
    labels = torch.arange(10).repeat(50)[torch.randperm(500, generator=torch.Generator().manual_seed(0))]
    idx = balanced_label_indices(labels, 7, seed=3)
    assert len(idx) == 70 and len(set(idx.tolist())) == 70 and torch.equal(idx, idx.sort().values)
    assert torch.equal(labels[idx].bincount(), torch.full((10,), 7))
    assert torch.equal(idx, balanced_label_indices(labels, 7, seed=3))
    assert not torch.equal(idx, balanced_label_indices(labels, 7, seed=4))
    assert set(balanced_label_indices(labels, 3, seed=3).tolist()) <= set(range(500))
    with pytest.raises(ValueError, match="class 0 has 50 item"):
        balanced_label_indices(labels, 51)
    with pytest.raises(ValueError, match="labels per class must be an int >= 1"):
        balanced_label_indices(labels, 0)


def _unique_images(n: int, classes: int = 4, side: int = 8) -> ImageTensorDataset:
    """n grey images whose first two pixels spell their index (so a test can tell which images a loader drew)."""
    imgs = torch.randint(0, 256, (n, 1, side, side), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    imgs[:, 0, 0, 0], imgs[:, 0, 0, 1] = torch.arange(n) // 256, torch.arange(n) % 256
    return ImageTensorDataset(imgs, torch.arange(n) % classes)


def _recipe(**changes):
    args = {"labels_per_class": 2, **changes.pop("objective_args", {})}
    model_args = {"in_chans": 1, "img_size": 8, "num_labels": 4, "latent_dim": 4, "hidden_dim": 16, "cond_chans": 4,
                  "head_width": 8, "head_blocks": 1, "head_convs_per_block": 1, "num_mixtures": 2}
    return get_recipe("zhang2022_m2_fmnist_lpvae").with_overrides(
        {"batch_size": 8, "image_size": 8, "model_args": model_args, "objective_args": args, **changes})


def _fake_split(monkeypatch, train: ImageTensorDataset, test: ImageTensorDataset) -> None:
    import patchvae.training.data as data_mod

    monkeypatch.setattr(data_mod, "get_dataset", lambda name, root, split, **kw: test if split == "test" else train)


def test_labelled_images_come_from_the_training_part_only(monkeypatch):
    pool = _unique_images(200)
    _fake_split(monkeypatch, pool, _unique_images(40))
    data = build_run_data(_recipe(), None, World(), torch.device("cpu"), val_fraction=0.25, num_workers=0)
    lab = data.labelled
    assert lab.num_labelled == 8 and lab.num_unlabelled == data.num_train == 150
    ids = lambda x: set(((x[:, 0, 0, 0] + 1) * 127.5).round().long().mul(256).add(((x[:, 0, 0, 1] + 1) * 127.5).round().long()).tolist())
    labelled_ids, labelled_y = set(), []
    for x, y in lab.batches:
        labelled_ids |= ids(x)
        labelled_y += y.tolist()
    held_ids = set().union(*(ids(x) for x, _ in data.eval))
    train_ids = set().union(*(ids(x) for x, _ in data.train))
    assert len(labelled_ids) == 8 and sorted(np.bincount(labelled_y).tolist()) == [2, 2, 2, 2]
    assert not labelled_ids & held_ids  # never an evaluation image
    assert len(train_ids | labelled_ids) <= 150 and labelled_ids <= set(range(200)) - held_ids
    assert data.info["labelled"] == {"labels_per_class": 2, "num_labelled": 8, "seed": 0}
    with pytest.raises(ValueError, match="needs objective_args.labels_per_class"):
        build_run_data(_recipe().with_overrides({"objective_args": {}}), None, World(), torch.device("cpu"))


def test_task_refuses_bad_arguments_and_cycles_labelled_batches(monkeypatch):
    _fake_split(monkeypatch, _unique_images(64), _unique_images(16))
    recipe = _recipe(objective_args={"labels_per_class": 4})
    data = build_run_data(recipe, None, World(), torch.device("cpu"), num_workers=0)
    model = zoo.create(recipe.model, **recipe.model_args)
    task = M2Task(model, recipe, torch.device("cpu"), World(), None, data.labelled)
    assert task.alpha == pytest.approx(0.1 * (16 + 64) / 16)
    assert len(data.labelled.batches) == 2
    first = [task.labelled_batch(s)[0] for s in range(5)]
    fresh = M2Task(model, recipe, torch.device("cpu"), World(), None, data.labelled)
    assert torch.equal(fresh.labelled_batch(3)[0], first[3]) and torch.equal(fresh.labelled_batch(4)[0], first[4])
    assert not torch.equal(first[0], first[2])  # cycle 1 is reshuffled
    paper = M2Task(model, recipe.with_overrides({"objective_args.alpha_formula": "paper"}), torch.device("cpu"), World(),
                   None, data.labelled)
    assert paper.alpha == pytest.approx(0.1 * 80 / 64)
    with pytest.raises(ValueError, match="objective 'm2' takes objective_args"):
        M2Task(model, recipe.with_overrides({"objective_args.beta": 2}), torch.device("cpu"), World(), None, data.labelled)
    with pytest.raises(ValueError, match="needs an M2 model"):
        M2Task(zoo.create("pixelvae_mlp_h1_small"), recipe, torch.device("cpu"), World(), None, data.labelled)
    with pytest.raises(ValueError, match="needs the eval split's labels"):
        task.eval_step(data.labelled.batches.dataset.images[:2].float() / 127.5 - 1, 0)


def test_training_reports_accuracy_and_resumes_exactly(monkeypatch, tmp_path):
    from patchvae.training import train

    _fake_split(monkeypatch, _unique_images(48), _unique_images(16))
    kw = dict(deterministic=True, log_every=1, progress=False, num_workers=0)
    full = train(_recipe(epochs=2, objective_args={"generative_accuracy": True}), tmp_path / "full", **kw)
    assert full.steps == 12
    train_parts, eval_parts = full.history[-1]["train"], full.history[-1]["eval"]
    assert {"loss", "labelled_nelbo", "unlabelled_nelbo", "cross_entropy", "labelled_accuracy"} <= set(train_parts)
    assert {"accuracy", "generative_accuracy", "cross_entropy", "labelled_nelbo", "bpd"} <= set(eval_parts)
    assert 0 <= eval_parts["accuracy"] <= 100
    # the eval accuracy is q(y|x)'s on the test images
    model = full.model.eval()
    test = _unique_images(16)
    x = test.images.float() / 127.5 - 1
    with torch.no_grad():
        acc = (model.classify(x).argmax(1) == test.labels).float().mean().item() * 100
    assert eval_parts["accuracy"] == pytest.approx(acc, abs=1e-4)
    for kind in ("reconstructions", "samples"):
        assert (tmp_path / "full" / "images" / f"epoch_002_{kind}.png").is_file()
    # killed after epoch 1, resumed: identical weights
    train(_recipe(epochs=1, objective_args={"generative_accuracy": True}), tmp_path / "split", save_images=False, **kw)
    resumed = train(_recipe(epochs=2, objective_args={"generative_accuracy": True}), tmp_path / "split", resume=True,
                    save_images=False, **kw)
    assert resumed.steps == full.steps
    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the supervised baseline trains q(y|x) only
    sup = train(_recipe(epochs=1, objective_args={"supervised_only": True}), tmp_path / "sup", **kw)
    assert set(sup.history[-1]["train"]) == {"loss", "cross_entropy", "labelled_accuracy"}


def test_supervised_baseline_updates_the_classifier_only(monkeypatch):
    _fake_split(monkeypatch, _unique_images(48), _unique_images(16))
    recipe = _recipe(objective_args={"supervised_only": True})
    data = build_run_data(recipe, None, World(), torch.device("cpu"), num_workers=0)
    model = zoo.create(recipe.model, **recipe.model_args)
    task = M2Task(model, recipe, torch.device("cpu"), World(), None, data.labelled)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, _ = next(iter(data.train))
    task.train_step(x, 0)
    after = model.state_dict()
    changed = {".".join(k.split(".")[:2]) for k in after if not torch.equal(before[k], after[k])}
    assert changed == {"encoder.classifier"}


def test_model_api_validates_and_samples_by_label():
    model = tiny().float().eval()
    x = images(model, 4).float()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        model.labelled_elbo(x, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"integer tensor of shape \(4,\)"):
        model.labelled_elbo(x, torch.zeros(4))
    with pytest.raises(ValueError, match="arch must be 'mlp'"):
        M2VAE("resnet")
    with pytest.raises(ValueError, match="take 32x32 images"):
        M2VAE("conv", img_size=28)
    g = torch.Generator().manual_seed(0)
    samples = model.sample(6, torch.tensor([0, 1, 2, 0, 1, 2]), generator=g)
    assert samples.shape == (6, 1, 8, 8) and samples.abs().max() <= 1
    z = torch.randn(2, 4)
    y = torch.tensor([1, 2])
    assert torch.equal(model.decode(model.label_code(z, y)), model.decode(model.label_code(z, y)))  # fixed noise
    with pytest.raises(ValueError, match=r"an M2 code is \[onehot\(y\), z\] of shape \(B, 7\)"):
        model.decode(z)
    post = model.encode(x)
    assert torch.equal(post.label, model.classify(x).argmax(1)) and post.code().shape == (4, 7)
    assert torch.equal(model.reconstruct(x), model.decode(post.code()))
    assert model.generative_classify(x).shape == (4,)
    reps = model.represent(x, list(model.representations()), mode="embedding")
    assert reps["latent"].shape == (4, 8) and reps["class_probs"].sum(1).allclose(torch.ones(4))
    assert torch.equal(reps["class_logits"], model.classify(x))
    conv = tiny("conv", 2).eval()
    assert conv(images(conv, 2).float()).label_elbos.shape == (2, 3)


def test_recipes_cover_table6():
    names = set(list_recipes("zhang2022_m2_*"))
    assert {f"zhang2022_m2_{d}_{v}" for d in ("mnist", "svhn", "fmnist", "cifar10")
            for v in ("m2", "lpvae", "supervised")} == names
    mnist, svhn = get_recipe("zhang2022_m2_mnist_lpvae"), get_recipe("zhang2022_m2_svhn_lpvae")
    assert (mnist.model, mnist.epochs, mnist.batch_size, mnist.lr) == ("m2_mlp_lpvae_h1", 50, 16, 1e-3)
    assert (svhn.model, svhn.epochs, svhn.batch_size, svhn.dataset) == ("m2_conv_lpvae_h2", 20, 32, "svhn")
    assert mnist.objective_args["labels_per_class"] == 10 and svhn.objective_args["labels_per_class"] == 100
    assert get_recipe("zhang2022_m2_fmnist_m2").model == "m2_mlp_m2_small"
    assert get_recipe("zhang2022_m2_cifar10_supervised").objective_args["supervised_only"] is True


def _write_idx(path, array: np.ndarray) -> None:
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_idx_files(tmp_path, monkeypatch):
    import patchvae.data.fashion_mnist as fm
    import patchvae.data.mnist as mnist

    monkeypatch.setattr(mnist, "_SIZES", {True: 6, False: 4})
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for train, n in ((True, 6), (False, 4)):
        img_stem, lbl_stem = fm._FILES[train]
        _write_idx(raw / f"{img_stem}.gz", np.arange(n * 28 * 28).reshape(n, 28, 28) % 256)
        _write_idx(raw / f"{lbl_stem}.gz", np.arange(n) % 10)
    ds = get_dataset("mnist", tmp_path, "test", train_transform=False)
    assert ds.images.shape == (4, 1, 28, 28) and ds.labels.tolist() == [0, 1, 2, 3]
    assert load_mnist(tmp_path, train=True).images.shape == (6, 1, 28, 28)
    with pytest.raises(FileNotFoundError, match="MNIST not found in"):
        load_mnist(tmp_path / "nowhere")


def test_svhn_reads_mat_files(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    scipy_io.savemat(tmp_path / "test_32x32.mat", {"X": x, "y": np.array([[10], [1], [2], [10], [9]])})
    ds = get_dataset("svhn", tmp_path, "test", train_transform=False)
    assert ds.labels.tolist() == [0, 1, 2, 0, 9]
    assert ds.images.shape == (5, 3, 32, 32) and torch.equal(ds.images[2], torch.from_numpy(x[..., 2]).permute(2, 0, 1))
    scipy_io.savemat(tmp_path / "train_32x32.mat", {"X": x[..., 0].astype(np.float64), "y": np.array([[1]])})
    with pytest.raises(ValueError, match="X must be uint8"):
        load_svhn(tmp_path, train=True)
    with pytest.raises(FileNotFoundError, match="SVHN not found"):
        load_svhn(tmp_path / "nowhere")
