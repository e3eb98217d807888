"""docs/results.md's CIFAR-10 tables are the ones docs/reproduce/cifar10_tables.py prints from the committed JSON
reports in docs/results/: a number edited by hand, or a new report whose table was not regenerated, fails here."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
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


@pytest.mark.parametrize("name", ["zhang_table", "family_table", "table1", "table1_shipped", "table1_e90", "seeds",
                                  "finetune_seeds", "retrained_rows", *SWEEPS])
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
    full = tables.table1(RESULTS)  # the 20-epoch table
    tuned = next(r for r in full.splitlines() if r.startswith("| PatchVAE, β_vis = 0.96 |"))
    assert "| 54.76 |" in tuned and "16 / 16" in tuned  # the 20-epoch β_vis = 0.96 run's Conv5 and part health


def test_shipped_budget_table_reads_its_folder_and_the_baselines(tmp_path):
    """The rows without pretraining come from the baselines' folder, the others only from the budget's folder."""
    tables = _tables()
    (tmp_path / "cifar10_random.finetune.json").write_text(json.dumps({"results": [{"freeze": "conv5", "top1": 50.5, "top5": 90}]}))
    (tmp_path / "cifar10_patchvae.finetune.json").write_text(json.dumps({"results": [{"freeze": "conv5", "top1": 40.0, "top5": 80}]}))
    rows = {r.split(" | ")[0]: r for r in tables.table1(tmp_path / "none", baselines=tmp_path, weights=tables.SHIPPED).splitlines()[2:]}
    assert "| 50.50 | 90.00 |" in rows["| random-init φ"]
    assert set(rows["| PatchVAE (`patchvae_resnet9.cifar10`)"].split(" | ")[1:-1]) == {tables.DASH}
    run_only = tables.table1(tmp_path / "none", baselines=tmp_path, run_rows_only=True).splitlines()[2:]
    assert [r.split(" | ")[0] for r in run_only] == ["| random-init φ"]  # rows without any report are left out


def _finetune(path: Path, freeze: str, top1: float, top5: float = 90.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": [{"freeze": freeze, "top1": top1, "top5": top5}]}))


def test_conv_cells_missing_for_a_run_come_from_its_retrained_run_marked(tmp_path):
    """A ConvK cell the first run never had is read from the re-trained φ's report and marked; a cell the first run
    has is never replaced, and Conv5 and the probes always stay the first run's."""
    tables = _tables()
    budget = tmp_path / tables.SHIPPED_BUDGET
    again = budget / tables.RETRAINED
    _finetune(budget / "cifar10_patchvae_gan.finetune.json", "conv5", 49.15)
    _finetune(budget / "cifar10_patchvae_gan.finetune_conv3.json", "conv3", 60.0)
    _finetune(again / "cifar10_patchvae_gan.finetune.json", "conv5", 48.0)
    _finetune(again / "cifar10_patchvae_gan.finetune_conv3.json", "conv3", 61.0)
    _finetune(again / "cifar10_patchvae_gan.finetune_conv1.json", "conv1", 66.456)
    lines = tables.table1_budget(tmp_path, tables.SHIPPED_BUDGET).splitlines()
    row = next(r for r in lines if r.startswith("| PatchVAE-GAN |"))
    assert row.startswith(f"| PatchVAE-GAN | 66.46 {tables.RERUN} | 60.00 | 49.15 | 90.00 |")
    plain = tables.table1(budget, baselines=tmp_path, run_rows_only=True).splitlines()  # no re-trained folder given
    assert "Conv1" not in plain[0]  # without the re-trained run no row has a Conv1 cell: the column is left out
    assert next(r for r in plain if r.startswith("| PatchVAE-GAN |")).startswith("| PatchVAE-GAN | 60.00 | 49.15 |")


def test_retrained_rows_show_both_runs_from_their_own_reports(tmp_path):
    tables = _tables()
    budget = tmp_path / tables.SHIPPED_BUDGET
    _finetune(budget / "cifar10_beta_vae_gan.finetune.json", "conv5", 51.69)
    _finetune(budget / tables.RETRAINED / "cifar10_beta_vae_gan.finetune.json", "conv5", 52.5)
    _finetune(budget / tables.RETRAINED / "cifar10_beta_vae_gan.finetune_conv1.json", "conv1", 70.0)
    assert tables.retrained_rows(tmp_path).count("\n") == 1  # a run without probes is not listed
    (budget / tables.RETRAINED / "cifar10_beta_vae_gan.probes.json").write_text(json.dumps({"results": [{"probe": "knn", "top1": 41.0}]}))
    rows = tables.retrained_rows(tmp_path).splitlines()
    assert rows[0].startswith("| φ | Conv1 top-1 | Conv5 top-1 |")  # Conv3: no run of either, left out
    assert rows[2:] == ["| β-VAE-GAN, first run (bf16) | — | 51.69 | 90.00 | — | — | — | — | — | — | — |",
                        "| β-VAE-GAN, re-run (float32) | 70.00 | 52.50 | 90.00 | — | 41.00 | — | — | — | — | — |"]


def test_finetune_seeds_table_reads_seed_zero_from_table1_and_the_others_from_their_folder(tmp_path):
    tables = _tables()
    budget = tmp_path / tables.SHIPPED_BUDGET
    _finetune(budget / "cifar10_patchvae_tuned.finetune.json", "conv5", 55.0)
    _finetune(budget / "cifar10_patchvae_tuned.finetune_conv1.json", "conv1", 68.5)
    for seed, top1 in ((1, 56.0), (2, 57.0)):
        _finetune(budget / "finetune_seeds" / f"cifar10_patchvae_tuned.conv5.seed{seed}.json", "conv5", top1)
    for seed, top1 in ((10, 72.0), (2, 71.0), (1, 70.0)):  # no seed 0 yet; seed 10 comes after seed 2
        _finetune(budget / "finetune_seeds" / f"cifar10_beta_vae.conv1.seed{seed}.json", "conv1", top1)
    lines = tables.finetune_seeds(tmp_path).splitlines()
    assert lines[0] == ("| φ (30 epochs) | Conv5 top-1 (seed 0 / 1 / ...; mean ± std) | "
                        "Conv3 top-1 (seed 0 / 1 / ...; mean ± std) | Conv1 top-1 (seed 0 / 1 / ...; mean ± std) |")
    assert lines[2:] == ["| PatchVAE, β_vis = 0.96 (`patchvae_resnet9.cifar10_tuned`) | 55.00 / 56.00 / 57.00; 56.00 ± 1.00 | — | 68.50 |",
                         "| β-VAE (`beta_vae_resnet9_32.cifar10`) | — | — | — / 70.00 / 71.00 / 72.00; 71.00 ± 1.00 |"]


@pytest.mark.parametrize("budget, stem", [(b, s) for b, rows in _tables().SHIPPED_BUDGETS.items() for s in sorted(rows)])
def test_shipped_weights_cards_match_their_budgets_table(budget, stem):
    """Each shipped CIFAR-10 weight's card numbers are its row of its budget's Table 1 (same reports)."""
    from patchvae.models import get_pretrained_cfg

    tables = _tables()
    name = tables.SHIPPED_BUDGETS[budget][stem]
    cfg = get_pretrained_cfg(name)
    lines = tables.table1_budget(RESULTS, budget).splitlines()
    row = next(r for r in lines if f"(`{name}`)" in r)
    cells = dict(zip(lines[0].split(" | "), row.split(" | ")))  # column header -> this row's cell
    for column, key in (("Conv1 top-1", "conv1_top1"), ("Conv3 top-1", "conv3_top1"), ("Conv5 top-1", "conv5_top1"),
                        ("Conv5 top-5", "conv5_top5"), ("kNN", "knn_top1")):
        # a card carries exactly the cells its row has run: a new report without a refreshed card fails here
        expected = f"{cfg.metrics[key]:.2f}" if key in cfg.metrics else tables.DASH
        assert cells.get(column, tables.DASH) == expected, (key, row, cfg.metrics)
    assert cfg.epochs == int(budget.removeprefix("cifar10_e"))


def test_sweep_tables_cover_exactly_the_registered_sweeps():
    tables = _tables()
    assert len(SWEEPS) == 6
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


def test_sweep_of_ours_has_no_paper_column(tmp_path):
    """The β_vis-combined sweep is not in the paper: no CIFAR-100 column, and its first row is the Table 6 run."""
    tables = _tables()
    (tmp_path / "cifar10_patchvae_bvis0.06.finetune.json").write_text(json.dumps(
        {"results": [{"freeze": "conv5", "top1": 54.07, "top5": 90.0}]}))
    lines = tables.sweep_table(tmp_path, "beta_vis_combined_cifar10").splitlines()
    assert "paper" not in lines[0] and lines[0].startswith("| β_vis = 0.96 with (15 epochs) | Conv5 top-1 |")
    assert lines[2].startswith("| N = 16, d_p = 6 (the Table 6 run) | 54.07 |")
    assert [r.split(" | ")[0] for r in lines[3:]] == ["| N = 32", "| d_p = 9"]
    assert all(row.count(tables.DASH) == 7 for row in lines[3:])  # nothing run yet: every cell but the label


def test_sweep_seeds_table_adds_each_pretraining_seed_of_a_sweep_row(tmp_path):
    """Seed 0 is the sweep's own report; seed s > 0 the <stem>.seed<s>.* reports of cifar10_sweeps.sh with SEED=s."""
    tables = _tables()
    every_row = {stem for _, rows in tables.SWEEPS.values() for stem in rows}
    assert set(tables.SWEEP_SEEDS) <= every_row, "a sweep-seeds row is not a row of any sweep"
    for tag, linear, conv5, active in (("", 44.72, 54.07, 16), (".seed1", 44.52, 55.01, 15)):
        (tmp_path / f"cifar10_patchvae_bvis0.06{tag}.probes.json").write_text(json.dumps({
            "results": [{"probe": "linear", "top1": linear}, {"probe": "knn", "top1": 41.0}],
            "part_health": {"active_parts": active, "num_parts": 16}}))
        _finetune(tmp_path / f"cifar10_patchvae_bvis0.06{tag}.finetune.json", "conv5", conv5)
    lines = tables.sweep_seeds(tmp_path).splitlines()
    assert lines[0].startswith("| sweep row (15 epochs) | seeds | Conv5 top-1 (seed 0 / 1 / ...; mean ± std) |")
    assert lines[2] == ("| β_vis = 0.96, N = 16, d_p = 6 (Table 6 and the follow-up) | 2 | 54.07 / 55.01; 54.54 ± 0.66 | "
                        "44.72 / 44.52; 44.62 ± 0.14 | 41.00 / 41.00; 41.00 ± 0.00 | 16 of 16 / 15 of 16 |")
    assert lines[3] == f"| β_vis = 0.96, N = 32 (the follow-up) | 1 | {' | '.join([tables.DASH] * 4)} |"


def _curve(tmp_path, stem, events, stems, epochs):
    """The training-curve rows of ``stems`` after writing ``events`` to the log of run ``stem``."""
    run = tmp_path / stem
    run.mkdir()
    (run / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return _tables().training_curve(tmp_path, stems, epochs=epochs).splitlines()[2:]


def test_training_curve_reads_loss_temperature_and_parts_from_the_logs(tmp_path):
    events = [{"event": "epoch", "epoch": 10, "eval": {"loss": 1400.4}, "temperature": 0.5, "part_health": {"active_parts": 16}},
              {"event": "epoch", "epoch": 20, "eval": {"loss": 1350.0}, "temperature": 0.4}]  # no parts: no τ shown
    rows = _curve(tmp_path, "cifar10_patchvae", events, ["cifar10_patchvae", "cifar10_beta_vae"], (10, 20, 30))
    assert rows == ["| PatchVAE | 1400 (τ 0.50, 16 parts) | 1350 | — |", "| β-VAE | — | — | — |"]


def test_training_curve_shows_the_discriminator_loss_of_gan_runs(tmp_path):
    events = [{"event": "epoch", "epoch": 10, "eval": {"loss": 1162.3}, "temperature": 0.8, "train": {"loss": 1170.0, "d_loss": 0.0213}},
              {"event": "epoch", "epoch": 20, "eval": {"loss": 1093.0}, "temperature": 0.4, "train": {"loss": 1100.0}}]
    rows = _curve(tmp_path, "cifar10_beta_vae_gan", events, ["cifar10_beta_vae_gan"], (10, 20))
    assert rows == ["| β-VAE-GAN | 1162 (D 0.02) | 1093 |"]


def test_training_curve_shows_the_reconstruction_error_of_runs_without_a_test_loss(tmp_path):
    """BiGAN has no ELBO: its epochs log the test reconstruction error of G(E(x)), shown as ``L2``."""
    events = [{"event": "epoch", "epoch": 10, "eval": {"reconstruction": 3935.4}, "temperature": 0.8, "train": {"loss": 5.9, "d_loss": 0.42}},
              {"event": "epoch", "epoch": 20, "temperature": 0.4, "train": {"loss": 6.0}}]  # no evaluation that epoch
    rows = _curve(tmp_path, "cifar10_bigan", events, ["cifar10_bigan"], (10, 20))
    assert rows == ["| BiGAN | L2 3935 (D 0.42) | — |"]


def _run_sweeps_script(tmp_path, **env) -> list[list[str]]:
    """Run docs/reproduce/cifar10_sweeps.sh with a stub ``patchvae`` on PATH that records its arguments and makes the
    outputs a real run would (``train``: OUT/model/, ``eval`` / ``finetune``: the --out file); the calls made."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (tmp_path / "results").mkdir(exist_ok=True)
    stub = bin_dir / "patchvae"
    stub.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n'
                    'out=$(echo "$*" | sed -n "s/.*--out \\([^ ]*\\).*/\\1/p")\n'
                    '[ "$1" = train ] && mkdir -p "$out/model" || touch "$out"\n')
    stub.chmod(0o755)
    subprocess.run(["bash", str(ROOT / "docs" / "reproduce" / "cifar10_sweeps.sh"), "beta_vis_combined_cifar10"],
                   cwd=ROOT, check=True, capture_output=True, text=True,
                   env={**os.environ, "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]),
                        "RUNS": str(tmp_path / "runs"), "RESULTS": str(tmp_path / "results"), **env})
    return [line.split() for line in calls.read_text().splitlines()] if calls.is_file() else []


def test_sweeps_script_pretrains_another_seed_of_the_chosen_rows_into_seed_tagged_paths(tmp_path):
    calls = _run_sweeps_script(tmp_path, SEED="1", ONLY="cifar10_patchvae_bvis0.06_n32")
    run, results = tmp_path / "runs" / "cifar10_patchvae_bvis0.06_n32.seed1", tmp_path / "results"
    assert [c[:2] for c in calls] == [["train", "cifar10_patchvae_bvis0.06_n32"], ["eval", f"{run}/model"],
                                      ["finetune", f"{run}/model"]]
    train, probes, conv5 = calls
    assert train[train.index("--seed") + 1] == "1" and train[train.index("--out") + 1] == str(run) and "--resume" in train
    assert probes[probes.index("--seed") + 1] == "0" and conv5[conv5.index("--seed") + 1] == "0"  # evaluated as seed 0
    assert probes[probes.index("--out") + 1] == str(results / "cifar10_patchvae_bvis0.06_n32.seed1.probes.json")
    assert conv5[conv5.index("--out") + 1] == str(results / "cifar10_patchvae_bvis0.06_n32.seed1.finetune.json")
    assert len(_run_sweeps_script(tmp_path, SEED="1", ONLY="cifar10_patchvae_bvis0.06_n32")) == 3  # done: nothing more runs
    seed0 = _run_sweeps_script(tmp_path / "default", CONV5="0")  # the default: seed 0, every row, untagged paths
    assert [c[1] for c in seed0 if c[0] == "train"] == [r.name for r in get_sweep("beta_vis_combined_cifar10")]
    assert all(".seed" not in Path(c[c.index("--out") + 1]).name for c in seed0) and not any(c[0] == "finetune" for c in seed0)
