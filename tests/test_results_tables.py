"""docs/results.md's CIFAR-10 tables are the ones docs/reproduce/cifar10_tables.py prints from the committed JSON
reports in docs/results/: a number edited by hand, or a new report whose table was not regenerated, fails here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from patchvae.recipes import get_sweep, list_sweeps

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def _tables():
    spec = importlib.util.spec_from_file_location("cifar10_tables", ROOT / "docs" / "reproduce" / "cifar10_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SWEEPS = list_sweeps("*_cifar10")  #: every CIFAR-10 ablation sweep of the registry has its table in docs/results.md


@pytest.mark.parametrize("name", ["zhang_table", "family_table", "table1", "seeds", *SWEEPS])
def test_cifar10_table_in_results_md_is_generated_from_the_json(name):
    tables = _tables()
    table = tables.sweep_table(RESULTS, name) if name in SWEEPS else getattr(tables, name)(RESULTS)
    assert table.count("\n") >= 3, table  # a header, the rule and at least two rows
    assert table in (ROOT / "docs" / "results.md").read_text(), (
        f"docs/results.md does not hold the current {name}: run python docs/reproduce/cifar10_tables.py and paste it")


def test_table1_reads_every_row_and_marks_missing_cells(tmp_path):
    tables = _tables()
    empty = tables.table1(tmp_path)  # no report at all: every cell of every row is a dash
    rows = empty.splitlines()[2:]
    assert len(rows) == len(tables.TABLE1)
    assert all(set(cell.strip()) == {tables.DASH} for row in rows for cell in row.strip("|").split("|")[1:])
    full = tables.table1(RESULTS)
    tuned = next(r for r in full.splitlines() if "cifar10_tuned" in r)
    assert "| 54.76 |" in tuned and "16 / 16" in tuned  # the default weights' Conv5 and part health


def test_sweep_tables_cover_exactly_the_registered_sweeps():
    tables = _tables()
    assert len(SWEEPS) == 4
    assert sorted(tables.SWEEPS) == sorted(SWEEPS)
    for sweep, (_, rows) in tables.SWEEPS.items():
        assert list(rows) == [r.name for r in get_sweep(sweep)], f"{sweep}: the table's rows are not the sweep's recipes"


def test_sweep_table_marks_missing_runs_and_adds_conv5_once_run(tmp_path):
    tables = _tables()
    empty = tables.sweep_table(tmp_path, "table3_num_parts_cifar10").splitlines()
    assert "Conv5 top-1" not in empty[0] and len(empty) == 2 + 5
    assert all(row.count(tables.DASH) == 6 for row in empty[2:])  # all but the label and the paper's number
    (tmp_path / "cifar10_patchvae_n8.finetune.json").write_text(json.dumps(
        {"results": [{"freeze": "conv5", "top1": 51.234, "top5": 90.0}]}))
    with_conv5 = tables.sweep_table(tmp_path, "table3_num_parts_cifar10").splitlines()
    assert "Conv5 top-1" in with_conv5[0]
    assert with_conv5[3].startswith("| N = 8 | 28.74 | 51.23 |")
