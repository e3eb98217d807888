"""Checkpoints of the authors' reference implementation (run.py's ``model_N.pt``) load with no key surgery.

The authors' module layout is rebuilt here from its description (torchvision ResNet-18 children
sliced into ``features``, 3×3 ``app_mu``/``app_logvar``/``vis_mean_logit`` convs, the pyramid decoder
with its module names), independently of the converter under test, so that their state-dict keys
come from real modules. Their eval-mode computation is written out here too, and the zoo model
loaded from the checkpoint must reproduce it.
"""

from __future__ import annotations

import argparse
import math
import re

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn
from zoo_helpers import randomize_batchnorm, single_thread  # noqa: F401 (single_thread is a fixture)

from patchvae.data import IMAGENET_NORMALIZATION
from patchvae.models import BetaVAE, PatchVAE, WeightsError, create

pytestmark = pytest.mark.usefixtures("single_thread")


def pyramid_decoder(out_chans: int, ngf: int, nz: int, scale: int) -> nn.Sequential:
    levels = int(math.log2(scale))
    dec = nn.Sequential()
    dec.add_module("input-conv", nn.ConvTranspose2d(nz, ngf * 2 ** (levels - 1), 1, bias=False))
    dec.add_module("input-batchnorm", nn.BatchNorm2d(ngf * 2 ** (levels - 1)))
    dec.add_module("input-relu", nn.LeakyReLU(0.2))
    for i in range(levels - 1, 0, -1):
        wide, narrow = ngf * 2**i, ngf * 2 ** (i - 1)
        dec.add_module(f"pyramid-{wide}-{narrow}-conv", nn.ConvTranspose2d(wide, narrow, 4, 2, 1, bias=False))
        dec.add_module(f"pyramid-{narrow}-batchnorm", nn.BatchNorm2d(narrow))
        dec.add_module(f"pyramid-{narrow}-relu", nn.LeakyReLU(0.2))
    dec.add_module("ouput-conv", nn.ConvTranspose2d(ngf, out_chans, 4, 2, 1, bias=False))  # (sic)
    dec.add_module("output-tanh", nn.Tanh())
    return dec


def resnet_features(chans: int, scale: int) -> nn.Sequential:
    children = list(torchvision.models.resnet18().children())  # conv1 bn1 relu maxpool layer1-4 avgpool fc
    features = nn.Sequential(*children[: {8: 6, 32: 8}[scale]])
    if chans != 3:
        features[0] = nn.Conv2d(chans, 64, 7, 2, 3, bias=False)
    return features


class AuthorsPatchyVAE(nn.Module):
    def __init__(self, chans=3, num_parts=16, hidden=6, ngf=64, scale=8):
        super().__init__()
        self.P, self.L = num_parts, hidden
        width = 16 * scale if scale == 8 else 512
        self.features = resnet_features(chans, scale)
        self.app_mu = nn.Sequential(nn.Conv2d(width, num_parts * hidden, 3, 1, 1))
        self.app_logvar = nn.Sequential(nn.Conv2d(width, num_parts * hidden, 3, 1, 1))
        self.vis_mean_logit = nn.Sequential(nn.Conv2d(width, num_parts, 3, 1, 1))
        self.decoder = pyramid_decoder(chans, ngf, num_parts * hidden, scale)

    def reference(self, x):
        """Eval-mode posterior means: pooled appearance weighted by P(visible), code = μ̄ ⊗ P(visible)."""
        f = self.features(x)
        mu, var = self.app_mu(f), self.app_logvar(f).exp().clamp(1e-7, 1e7)
        probs = torch.sigmoid(self.vis_mean_logit(f))
        b, _, h, w = probs.shape
        weight = probs[:, :, None].expand(-1, -1, self.L, -1, -1).reshape(b, self.P * self.L, h, w)
        total = weight.sum((2, 3)) + 1e-7
        mu_bar = (mu * weight).sum((2, 3)) / total
        var_bar = ((var * weight).sum((2, 3)) + 1e-7) / total
        recon = self.decoder(mu_bar[:, :, None, None] * weight)
        return {
            "features": f,
            "visibility_probs": probs,
            "appearance_mean": mu_bar.view(b, self.P, self.L),
            "appearance_var": var_bar.view(b, self.P, self.L),
            "reconstruction": recon,
        }


class AuthorsVAE(nn.Module):
    def __init__(self, chans=3, image=32, latent=96, ngf=64, scale=8):
        super().__init__()
        side = image // scale
        self.features = resnet_features(chans, scale)
        self.reduce = nn.Sequential(nn.Conv2d(16 * scale, ngf, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU())
        self.app_mu = nn.Sequential(nn.Conv2d(ngf, latent, side))
        self.app_logvar = nn.Sequential(nn.Conv2d(ngf, latent, side))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(latent, ngf, side, bias=False), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2),
            pyramid_decoder(chans, ngf, ngf, scale),
        )

    def reference(self, x):
        f = self.features(x)
        h = self.reduce(f)
        mu = self.app_mu(h)
        return {"features": f, "latent_mean": mu.flatten(1), "latent_var": self.app_logvar(h).exp().flatten(1), "reconstruction": self.decoder(mu)}


def authors_args(**overrides) -> argparse.Namespace:
    """run.py's saved args: note the numpy scalar (annealed temperature) and the torch.device."""
    args = dict(
        dataset="cifar100", inet=True, size=64, arch="patchy", encoder_arch="resnet", decoder_arch="pyramid",
        independent=False, ngf=64, num_parts=16, hidden_size=6, hard=False, categorical=False, scale=8,
        temp=np.float64(1.0) * np.exp(-3e-5 * 1000), py=1 / 16, steps=1000, device=torch.device("cpu"),
        output_folder="./scratch/1234",
    )
    args.update(overrides)
    return argparse.Namespace(**args)


def save_authors_checkpoint(path, module: nn.Module, args: argparse.Namespace, *, data_parallel=True, gan=False):
    state = {("module." if data_parallel else "") + k: v for k, v in module.state_dict().items()}
    payload = {"args": args, "vae_dict": state, "loss": np.float64(123.4)}
    if gan:
        payload["disc_dict"] = {"features.input-conv.weight": torch.randn(8, 3, 4, 4)}
    torch.save(payload, path)
    return path


def _authors(cls, seed=0, **kwargs):
    torch.manual_seed(seed)
    return randomize_batchnorm(cls(**kwargs), seed).eval()


def _compare(zoo_model, reference, x, names):
    zoo_model.eval()
    with torch.no_grad():
        ours = zoo_model(x)
        ref = reference.reference(x)
    for name in names:
        torch.testing.assert_close(getattr(ours, name), ref[name], rtol=1e-4, atol=1e-5, msg=name)


def test_authors_layout_has_the_documented_keys():
    keys = set(AuthorsPatchyVAE().state_dict())
    for key in (
        "features.0.weight", "features.1.running_var", "features.4.0.conv1.weight", "features.5.0.downsample.0.weight",
        "app_mu.0.weight", "app_logvar.0.bias", "vis_mean_logit.0.weight", "decoder.input-conv.weight",
        "decoder.input-batchnorm.weight", "decoder.pyramid-256-128-conv.weight", "decoder.pyramid-128-batchnorm.bias",
        "decoder.pyramid-128-64-conv.weight", "decoder.pyramid-64-batchnorm.running_mean", "decoder.ouput-conv.weight",
    ):
        assert key in keys, key
    vae_keys = set(AuthorsVAE().state_dict())
    assert {"reduce.0.weight", "reduce.1.weight", "decoder.0.weight", "decoder.1.running_mean", "decoder.3.input-conv.weight", "decoder.3.ouput-conv.weight"} <= vae_keys


def test_authors_patchyvae_checkpoint_loads_and_computes_the_same(tmp_path):
    authors = _authors(AuthorsPatchyVAE, num_parts=4, hidden=3)
    path = save_authors_checkpoint(tmp_path / "model_90.pt", authors, authors_args(num_parts=4, hidden_size=3))
    model = create("patchvae_resnet9", checkpoint_path=path)  # N and d_p come from the file
    assert isinstance(model, PatchVAE) and (model.num_parts, model.part_dim, model.in_chans) == (4, 3, 3)
    assert model.data_config.mean == IMAGENET_NORMALIZATION[0] and model.data_config.input_size == (3, 32, 32)  # --inet, CIFAR
    _compare(model, authors, torch.randn(3, 3, 32, 32), ["features", "visibility_probs", "appearance_mean", "appearance_var", "reconstruction"])
    _compare(model, authors, torch.randn(1, 3, 64, 48), ["features", "appearance_mean", "reconstruction"])


def test_authors_grayscale_hard_gan_checkpoint(tmp_path):
    authors = _authors(AuthorsPatchyVAE, seed=1, chans=1, num_parts=2, hidden=2)
    args = authors_args(dataset="mnist", inet=False, num_parts=2, hidden_size=2, hard=True, gan=True)
    path = save_authors_checkpoint(tmp_path / "best.pt", authors, args, data_parallel=False, gan=True)
    model = create("patchvae_resnet9", checkpoint_path=path)
    assert (model.in_chans, model.hard) == (1, True)
    assert model.data_config.input_size == (1, 32, 32) and model.data_config.mean == (0.5,) and model.data_config.std == (0.5,)
    _compare(model, authors, torch.randn(2, 1, 32, 32), ["features", "visibility_probs", "appearance_mean"])


def test_authors_keys_in_a_safetensors_file_are_converted_too(tmp_path):
    authors = _authors(AuthorsPatchyVAE, seed=2, num_parts=2, hidden=2)
    path = tmp_path / "converted_by_someone.safetensors"
    save_file({k: v.contiguous() for k, v in authors.state_dict().items()}, str(path))
    model = create("patchvae_resnet9", checkpoint_path=path)
    _compare(model, authors, torch.randn(2, 3, 32, 32), ["features", "appearance_mean", "reconstruction"])


def test_authors_vae_checkpoint_loads_into_the_beta_vae(tmp_path):
    authors = _authors(AuthorsVAE, seed=3, latent=12)
    path = save_authors_checkpoint(tmp_path / "model_30.pt", authors, authors_args(arch="vae", num_parts=4, hidden_size=3))
    model = create("beta_vae_resnet9_32", checkpoint_path=path)
    assert isinstance(model, BetaVAE) and model.latent_dim == 12
    _compare(model, authors, torch.randn(2, 3, 32, 32), ["features", "latent_mean", "latent_var", "reconstruction"])
    with pytest.raises(WeightsError, match=r"authors' BetaVAE weights, not a PatchVAE .*create\('beta_vae_resnet9_32'"):
        create("patchvae_resnet9", checkpoint_path=path)


def test_authors_checkpoint_of_another_input_size_or_scale_names_the_right_architecture(tmp_path):
    vae64 = save_authors_checkpoint(tmp_path / "vae64.pt", _authors(AuthorsVAE, image=64, latent=8), authors_args(size=64, dataset="indoor"))
    with pytest.raises(WeightsError, match=r"img_size=64, but 'beta_vae_resnet9_32' has img_size=32: create\('beta_vae_resnet9_64'"):
        create("beta_vae_resnet9_32", checkpoint_path=vae64)
    model = create("beta_vae_resnet9_64", checkpoint_path=vae64)
    assert model.data_config.input_size == (3, 64, 64)  # --size 64 for Indoor67

    authors = _authors(AuthorsPatchyVAE, seed=4, num_parts=2, hidden=2, ngf=8, scale=32)
    path = save_authors_checkpoint(tmp_path / "imagenet.pt", authors, authors_args(scale=32, size=224, dataset="imagenet"))
    with pytest.raises(WeightsError, match=r"backbone='resnet18', but 'patchvae_resnet9' has backbone='resnet9': create\('patchvae_resnet18'"):
        create("patchvae_resnet9", checkpoint_path=path)
    model = create("patchvae_resnet18", checkpoint_path=path)
    assert model.data_config.input_size == (3, 224, 224) and model.model_args["decoder_width"] == 8
    _compare(model, authors, torch.randn(1, 3, 64, 64), ["features", "appearance_mean", "reconstruction"])


@pytest.mark.parametrize("flag", ["categorical", "independent"])
def test_authors_variants_without_a_zoo_architecture_are_refused(tmp_path, flag):
    authors = _authors(AuthorsPatchyVAE, num_parts=2, hidden=2)
    path = save_authors_checkpoint(tmp_path / "model.pt", authors, authors_args(**{flag: True}))
    with pytest.raises(WeightsError, match=re.escape(f"trained with --{flag}; that variant has no architecture in the zoo")):
        create("patchvae_resnet9", checkpoint_path=path)


def test_authors_pyramid_encoder_is_refused(tmp_path):
    authors = _authors(AuthorsPatchyVAE, num_parts=2, hidden=2)
    state = {k: v for k, v in authors.state_dict().items() if not k.startswith("features.")}
    state["features.input-conv.weight"] = torch.randn(64, 3, 4, 4)
    path = tmp_path / "pyramid.pt"
    torch.save({"vae_dict": state}, path)
    with pytest.raises(WeightsError, match="not a ResNet-18 part"):
        create("patchvae_resnet9", checkpoint_path=path)
