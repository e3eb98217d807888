"""The documentation site (mkdocs.yml, docs/): the zoo table lists every registered weight, and the site
builds with warnings as errors.

The build needs the ``docs`` extra (``pip install ".[docs]"``, also in ``dev``): its tests skip
locally without it, and fail in CI (env ``CI`` set), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from patchvae.models import _registry, get_pretrained_cfg, list_pretrained

ROOT = Path(__file__).resolve().parents[1]
#: the modules of the API reference (docs/reference/<name>.md)
REFERENCE = ("models", "data", "evaluation", "features", "recipes", "losses", "training")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"patchvae_docs_{name}", ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_zoo = _load("gen_zoo")
hooks = _load("hooks")


def _zoo_rows(markdown: str) -> dict[str, list[str]]:
    """The zoo table's rows by weight name, as lists of cells."""
    table = markdown.split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        m = re.match(r"^\| `([^`]+)`", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
    return rows


def _check_zoo(markdown: str) -> None:
    rows = _zoo_rows(markdown)
    missing = sorted(set(list_pretrained()) - set(rows))
    assert not missing, f"registered weights missing from the zoo table (docs/gen_zoo.py): {missing}"
    for name in list_pretrained():
        cfg = get_pretrained_cfg(name)
        row = rows[name]
        assert len(row) == 6, f"{name}: {len(row)} cells, the header has 6: {row}"
        assert f"`{cfg.sha256}`" in row[4], f"{name}: sha256 {cfg.sha256} not in its row"
        assert f"{cfg.num_params:,}" == row[1] if cfg.num_params else row[1] == "—"
        assert (cfg.dataset or "—") in row[2]
        for key in cfg.metrics:
            assert f"{key}: " in row[3], f"{name}: metric {key} not in its row"
        if cfg.description:
            assert " ".join(cfg.description.split()).replace("|", "\\|") == row[5]


def test_zoo_table_lists_every_registered_weight_with_its_metadata():
    assert list_pretrained(), "no registered weights: nothing to check"
    _check_zoo(gen_zoo.render_zoo())


def test_zoo_table_picks_up_a_weight_registered_later(monkeypatch):
    """A weight registered later (e.g. CIFAR-10) is on the page with no edit of the docs."""
    base = get_pretrained_cfg("patchvae_resnet9.fmnist")
    new = base.replace(
        tag="cifar10_docs",
        file="patchvae_resnet9.cifar10_docs/model.safetensors",
        sha256="0123456789abcdef" * 4,
        dataset="cifar10",
        metrics={"conv5_top1": 55.5, "new_metric": 1.25},
        description="A test weight | with a pipe\nand a newline.",
    )
    tags = {**_registry._tag_cfgs["patchvae_resnet9"], "cifar10_docs": new}
    monkeypatch.setitem(_registry._tag_cfgs, "patchvae_resnet9", tags)
    assert "patchvae_resnet9.cifar10_docs" in list_pretrained()
    markdown = gen_zoo.render_zoo()
    _check_zoo(markdown)
    row = _zoo_rows(markdown)["patchvae_resnet9.cifar10_docs"]
    assert row[2] == "cifar10" and row[3] == "conv5_top1: 55.50<br>new_metric: 1.25"
    assert "### `patchvae_resnet9.cifar10_docs`" in markdown


def test_readme_links_are_rewritten_for_the_site():
    text = (
        "[m](docs/models.md) [r](docs/results.md#the-papers-numbers) [w](weights/README.md) "
        "[paper](https://arxiv.org/abs/2004.03623) [a](#use-the-models) [x](hubconf.py)\n"
        "```python\nx = d[0](docs/models.md)\n```\n"
    )
    out = hooks.rewrite_links(text, "README.md")
    assert "[m](models.md) [r](results.md#the-papers-numbers) [w](weights.md) " in out
    assert "[paper](https://arxiv.org/abs/2004.03623) [a](#use-the-models) [x](hubconf.py)" in out
    assert "x = d[0](docs/models.md)" in out  # code is left alone
    assert "[d](results.md)" in hooks.rewrite_links("[d](../docs/results.md)", "weights/README.md")


# ------------------------------------------------------------------------------ the built site
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [m for m in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python") if _no_module(m)]
    if missing:
        message = f"{', '.join(missing)} not installed (pip install '.[docs]')"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: in CI the site must build ('.[dev]' includes the docs extra)")
        pytest.skip(message)
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"`mkdocs build --strict` failed (warnings are errors):\n{log}"
    return out


def _no_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:
        return True


def _text(path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def test_site_zoo_page_lists_every_registered_weight(site):
    page = (site / "zoo" / "index.html").read_text(encoding="utf-8")
    for name in list_pretrained():
        cfg = get_pretrained_cfg(name)
        assert f"<code>{name}</code>" in page, f"{name} missing from the site's zoo page"
        assert f"<code>{cfg.sha256}</code>" in page, f"{name}'s sha256 missing from the site's zoo page"


def test_site_home_page_is_the_readme(site):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    home = _text(site / "index.html")
    headings = re.findall(r"^#{1,3} (.+)$", re.sub(r"```.*?```", "", readme, flags=re.S), re.M)
    assert headings
    for heading in headings:
        assert heading.replace("`", "").strip() in home, f"README heading {heading!r} not on the home page"
    assert 'href="models/"' in (site / "index.html").read_text(encoding="utf-8")  # docs/models.md, rewritten


def test_site_api_reference_documents_every_public_name(site):
    for module in REFERENCE:
        public = importlib.import_module(f"patchvae.{module}").__all__
        ids = set(re.findall(r'id="([^"]+)"', (site / "reference" / module / "index.html").read_text(encoding="utf-8")))
        prefix = f"patchvae.{module}."
        undocumented = [
            n for n in public if prefix + n not in ids and not any(i.startswith(prefix) and i.endswith("." + n) for i in ids)
        ]
        assert not undocumented, f"public names of patchvae.{module} missing from docs/reference/{module}.md: {undocumented}"


def test_site_has_every_page(site):
    for page in ("index.html", "zoo/index.html", "weights/index.html", "models/index.html", "results/index.html",
                 "benchmarks/index.html", "api/index.html"):
        assert (site / page).is_file(), page


def test_readme_pretrained_tables_show_the_cards_numbers():
    """Every README row that names packaged weights shows that card's Conv5 / linear / kNN / active parts."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    header, checked = None, 0
    for line in readme.splitlines():
        if line.startswith("| `create(name, pretrained=True)`"):
            header = [c.strip() for c in line.strip("|").split("|")]
            continue
        m = re.match(r"^\| `([^`]+)`", line)
        if not (header and m and m.group(1) in list_pretrained()):
            header = header if line.startswith("|") else None
            continue
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        metrics = get_pretrained_cfg(m.group(1)).metrics
        for column, key in (("Conv1", "conv1_top1"), ("Conv3", "conv3_top1"), ("Conv5", "conv5_top1"),
                            ("linear probe", "linear_probe_top1"), ("kNN", "knn_top1")):
            if column in cells and key in metrics:
                assert float(cells[column]) == pytest.approx(metrics[key], abs=0.005), (m.group(1), column, cells, metrics)
                checked += 1
        if cells.get("active parts", "—") != "—" and "active_parts" in metrics:  # (the Fashion-MNIST cards predate it)
            assert cells["active parts"] == f"{metrics['active_parts']} / {metrics['num_parts']}", (m.group(1), cells)
    assert checked >= 15, f"only {checked} README cells checked: did the pretrained tables' header change?"
