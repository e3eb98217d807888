"""docs/results.md's CIFAR-10 tables are the ones docs/reproduce/cifar10_tables.py prints from the committed JSON
reports in docs/results/: a number edited by hand, or a new report whose table was not regenerated, fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def _tables():
    spec = importlib.util.spec_from_file_location("cifar10_tables", ROOT / "docs" / "reproduce" / "cifar10_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["zhang_table", "family_table", "table1", "seeds", "sweeps"])
def test_cifar10_table_in_results_md_is_generated_from_the_json(name):
    table = getattr(_tables(), name)(RESULTS)
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
