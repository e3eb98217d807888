"""The wheel, installed in a fresh venv outside the source tree, loads weights offline exactly as the checkout does.

Builds the wheel from a copy of the checkout with a placeholder weight under ``weights/`` (shipped as
``patchvae/_weights``), installs it into a new venv that sees the test environment's torch/timm
through a ``.pth`` file, and compares the installed package's outputs (packaged weights and
``checkpoint_path``) with this checkout's, with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from zoo_helpers import TINY, outputs, single_thread, tiny_patchvae, weights_folder  # noqa: F401 (fixture)

from patchvae.models import create
from patchvae.models._weights import sha256sum

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]
pytest.importorskip("hatchling", reason="building the wheel needs the hatchling build backend (pip install hatchling)")

REPO = Path(__file__).resolve().parents[1]
PLACEHOLDER = "patchvae_resnet9.placeholder"

_SCRIPT = """
import json, sys
from pathlib import Path
import patchvae
assert "torch" not in sys.modules, "import patchvae imported torch"
import patchvae.models as zoo
from patchvae.models import _hub, _registry

info = json.loads(sys.argv[1])
package = Path(patchvae.__file__).resolve().parent
assert str(package).startswith(info["venv"]), f"patchvae imported from {package}, not the venv"
assert _hub.packaged_weights_dir() == package / "_weights", _hub.packaged_weights_dir()
cfg = _registry.get_architecture_cfg("patchvae_resnet9").replace(
    tag="placeholder", file=info["file"], sha256=info["sha256"], model_args=info["model_args"],
    hf_hub_id="patchvae/never-downloaded", hf_revision="0" * 40)
_registry._tag_cfgs["patchvae_resnet9"]["placeholder"] = cfg

import torch
x = torch.load(info["input"])
result = {}
for key, model in {
    "packaged": zoo.create("patchvae_resnet9.placeholder", pretrained=True),
    "checkpoint": zoo.create("patchvae_resnet9", checkpoint_path=info["checkpoint"]),
}.items():
    model.eval()
    with torch.no_grad():
        out = model(x)
    result[key] = [t for t in out]
# the real weights the zoo ships, by name, offline, from the installed copy
for name in zoo.list_pretrained():
    if name != "patchvae_resnet9.placeholder" and zoo.get_pretrained_cfg(name).file:
        assert (package / "_weights" / zoo.get_pretrained_cfg(name).file).is_file(), name
        zoo.create(name, pretrained=True)
with torch.no_grad():
    result["default"] = list(zoo.create("patchvae_resnet9", pretrained=True).eval()(x))
torch.save(result, info["output"])
print("ok", package)
"""


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _site_dirs() -> list[str]:
    """Where this interpreter finds torch, timm ...: its site-packages and any added to sys.path by .pth files."""
    dirs = list(site.getsitepackages())
    return dirs + [p for p in sys.path if p not in dirs and Path(p).name in ("site-packages", "dist-packages")]


def test_wheel_installs_and_loads_weights_offline(tmp_path):
    model = tiny_patchvae(seed=40)
    # the source tree with a placeholder packaged weight
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", ".hypothesis", "*.pyc", "build", "dist", "runs", "scratch", ".venv", "venv", ".pytest_cache"
    ))
    placeholder = weights_folder(src / "weights" / PLACEHOLDER, model)
    checkpoint = weights_folder(tmp_path / "checkpoint", tiny_patchvae(seed=41))

    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = wheels.glob("patchvae-*.whl")
    # PyPI refuses files over 100 MB: the wheel carries the packaged weights, so keep it well under that
    assert wheel.stat().st_size < 100 * 1024**2, f"the wheel is {wheel.stat().st_size / 1024**2:.1f} MB, PyPI's limit is 100 MB"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = _venv_python(venv)
    venv_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    # torch, timm ... come from the test environment (a venv's --system-site-packages would be the base interpreter's)
    (venv_site / "_test_env.pth").write_text("\n".join(_site_dirs()) + "\n")
    # --ignore-installed: the test environment (seen through the .pth) may hold an installed patchvae already
    # (CI installs ".[dev]"); pip must neither skip the wheel nor uninstall that copy.
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    installed = venv_site / "patchvae" / "_weights" / PLACEHOLDER / "model.safetensors"
    assert installed.is_file(), "weights/ is not shipped in the wheel as patchvae/_weights"
    assert (venv_site / "patchvae" / "_weights" / "README.md").is_file()

    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    info = {
        "venv": str(venv.resolve()), "file": f"{PLACEHOLDER}/model.safetensors", "sha256": sha256sum(placeholder / "model.safetensors"),
        "model_args": TINY, "checkpoint": str(checkpoint), "input": str(tmp_path / "x.pt"), "output": str(tmp_path / "out.pt"),
    }
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    run = subprocess.run([str(python), "-c", textwrap.dedent(_SCRIPT), json.dumps(info)],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("ok") and str(venv_site) in run.stdout

    installed_outputs = torch.load(tmp_path / "out.pt")
    source = {"packaged": model, "checkpoint": create("patchvae_resnet9", checkpoint_path=checkpoint),
              "default": create("patchvae_resnet9.cifar10_tuned", pretrained=True)}
    for key, reference in source.items():
        inputs = x
        assert len(installed_outputs[key]) == len(outputs(reference, inputs))
        for a, b in zip(installed_outputs[key], outputs(reference, inputs)):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
