"""Helpers of the model-zoo tests: tiny models, weights folders, temporary registry entries."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from patchvae.models import PretrainedCfg, create, save_pretrained
from patchvae.models import _registry

#: constructor overrides that make a PatchVAE tiny and fast (φ stays ResNet-9: it is what is tested)
TINY = {"num_parts": 2, "part_dim": 2, "decoder_width": 8}


@pytest.fixture
def single_thread():
    """One intra-op thread for the test: these tiny models gain nothing from more, and on a shared,
    busy machine two spinning OpenMP threads make each forward pass ~100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def subprocess_env() -> dict[str, str]:
    """Environment of the subprocess tests: one thread (see :func:`single_thread`)."""
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics and affine parameters, so that weights that were not loaded show."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


def tiny_patchvae(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(create("patchvae_resnet9", **{**TINY, **overrides}), seed).eval()


def weights_folder(path: Path, model: torch.nn.Module, **extra) -> Path:
    """A save_pretrained folder of ``model`` at ``path``."""
    return save_pretrained(model, path, extra=extra or None)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_state_equal(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), f"{key} changed"


def register_weights(monkeypatch: pytest.MonkeyPatch, arch: str, tag: str, **cfg_fields) -> PretrainedCfg:
    """Register ``arch.tag`` as published weights for the duration of a test (undone by monkeypatch)."""
    base = _registry.get_architecture_cfg(arch)
    cfg = base.replace(tag=tag, **cfg_fields)
    tags = dict(_registry._tag_cfgs[arch])
    tags[tag] = cfg
    monkeypatch.setitem(_registry._tag_cfgs, arch, tags)
    if arch not in _registry._default_tags:
        monkeypatch.setitem(_registry._default_tags, arch, tag)
    return cfg


def outputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Deterministic outputs of any zoo model (eval mode) as a list of tensors."""
    model.eval()
    with torch.no_grad():
        out = model(x)
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)) and not hasattr(out, "_fields"):
        return list(out)
    return [v for v in out if isinstance(v, torch.Tensor)]
