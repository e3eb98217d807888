"""Shared fixtures. Data tests skip locally without Fashion-MNIST but fail in CI (CI installs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    # PATCHVAE_TEST_THREADS=1 is much faster on a machine shared with other jobs
    torch.set_num_threads(int(os.environ.get("PATCHVAE_TEST_THREADS", max(1, min(2, os.cpu_count() or 1)))))


@pytest.fixture(scope="session")
def fashion_mnist():
    from patchvae.data import find_fashion_mnist, load_fashion_mnist

    if find_fashion_mnist() is None:
        if os.environ.get("CI"):
            pytest.fail("Fashion-MNIST is missing in CI: .ci/run must 'apt-get install dataset-fashion-mnist'")
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return load_fashion_mnist(train=True)


@pytest.fixture(scope="session")
def fashion_mnist_test():
    from patchvae.data import find_fashion_mnist, load_fashion_mnist

    if find_fashion_mnist() is None:
        pytest.skip("Fashion-MNIST not installed")
    return load_fashion_mnist(train=False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def isolated_zoo(monkeypatch):
    """A registry without the weights the zoo ships: tests register their own tags (and defaults) in it."""
    from patchvae.models import _registry

    monkeypatch.setattr(_registry, "_tag_cfgs", {arch: {} for arch in _registry._tag_cfgs})
    monkeypatch.setattr(_registry, "_default_tags", {})


SHARED_CIFAR10 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.zip"


def _cifar10(train: bool, tmp_path_factory: pytest.TempPathFactory):
    from patchvae.data import load_cifar10

    if not SHARED_CIFAR10.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the CIFAR-10 JPEG copy is missing in CI: expected {SHARED_CIFAR10} (../shared/ beside the clone)")
        pytest.skip(f"the CIFAR-10 JPEG copy is not at {SHARED_CIFAR10}")
    cache = tmp_path_factory.getbasetemp() / "decoded-cache"
    previous = os.environ.get("PATCHVAE_CACHE_DIR")
    os.environ["PATCHVAE_CACHE_DIR"] = str(cache)  # never write into the user's cache from the tests
    try:
        return load_cifar10(SHARED_CIFAR10, train=train)
    finally:
        if previous is None:
            os.environ.pop("PATCHVAE_CACHE_DIR", None)
        else:
            os.environ["PATCHVAE_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def cifar10_test(tmp_path_factory):
    """The 10,000 CIFAR-10 (JPEG copy) test images from ../shared/data (skipped locally when absent, fails in CI)."""
    return _cifar10(False, tmp_path_factory)


@pytest.fixture(scope="session")
def cifar10_train(tmp_path_factory):
    return _cifar10(True, tmp_path_factory)
