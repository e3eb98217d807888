"""Print the CIFAR-10 (JPEG copy) tables of docs/results.md (markdown) from the evaluation JSON in docs/results/.

    python docs/reproduce/cifar10_tables.py [docs/results] [--runs RUNS]

With ``--runs`` (the folder of cifar10_sweeps.sh) it also prints each sweep run's test loss terms at its last
epoch, read from RUNS/<recipe>/log.jsonl (the runs are not committed, so docs/results.md quotes them as text).

Tables: the Zhang et al. 2022 Table 3 analogue (zhang2022_cifar10.sh), the family comparison (the same
rate / intrinsic dimension / latent probe columns for PatchVAE, β-VAE and the PixelVAEs), the Table 1
analogue rows (cifar10_weights.sh and the L_w runs; linear probes over seeds 0-2 from cifar10_probe_seeds.sh
where run), Conv1 / Conv3 / Conv5 from docs/results/<stem>.finetune{_conv1,_conv3,}.json, the low-label probes (cifar10_low_label.sh, mean ± std
over seeds), the pretraining seeds (of Table 1 rows, and of sweep rows: cifar10_sweeps.sh SEED=s), the fine-tuning seeds (<budget>/finetune_seeds/), the rows pretrained twice
(<budget>/retrained_float32/, whose ConvK cells fill those the first run lacks, marked ‡) and the ablation sweeps
(cifar10_sweeps.sh). Cells without a result file print "—".
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from patchvae.training.logs import read_events

ZHANG = {"vae": "VAE (h = 0)", "lpvae_h1": "LPVAE (h = 1)", "lpvae_h2": "LPVAE (h = 2)", "fpvae": "FPVAE"}
HEADS = {"vae": "h0", "lpvae_h1": "h1", "lpvae_h2": "h2", "fpvae": "full"}  #: variant -> pixelvae_resnet_<head>_small
#: Table 1 rows: result stem (docs/results/<stem>.*.json; low-label probes docs/results/low_label/<stem>.*) -> label
TABLE1 = {
    "cifar10_patchvae": "PatchVAE",
    "cifar10_patchvae_lw": "PatchVAE + L_w",
    "cifar10_patchvae_gan": "PatchVAE-GAN",
    "cifar10_patchvae_gan_authors": "PatchVAE-GAN, the authors' two-step update (`gan_update=authors`)",
    "cifar10_patchvae_gan_lw": "PatchVAE-GAN + L_w",
    "cifar10_patchvae_tuned": "PatchVAE, β_vis = 0.96",
    "cifar10_beta_vae": "β-VAE",
    "cifar10_beta_vae_lw": "β-VAE + L_w",
    "cifar10_beta_vae_gan": "β-VAE-GAN",
    "cifar10_beta_vae_gan_lw": "β-VAE-GAN + L_w",
    "cifar10_bigan": "BiGAN",
    "cifar10_random": "random-init φ",
    "cifar10_supervised": "supervised from scratch (nothing frozen)",
}
#: the rows without pretraining: the same at every pretraining budget, so every budget's table reads them from docs/results/
NO_PRETRAINING = ("cifar10_random", "cifar10_supervised")
#: the pretraining budget of the shipped CIFAR-10 weights: its reports (cifar10_table1_rows.sh with RESULTS=...)
SHIPPED_BUDGET = "cifar10_e30"
#: the shipped weights (weights/<name>/) of the rows of the shipped budget: result stem -> registry name
SHIPPED = {"cifar10_patchvae": "patchvae_resnet9.cifar10", "cifar10_patchvae_lw": "patchvae_resnet9.cifar10_lw",
           "cifar10_patchvae_tuned": "patchvae_resnet9.cifar10_tuned", "cifar10_beta_vae": "beta_vae_resnet9_32.cifar10",
           "cifar10_beta_vae_lw": "beta_vae_resnet9_32.cifar10_lw"}
#: the paper's pretraining budget (90 epochs): its reports (cifar10_table1_rows.sh with RESULTS=docs/results/cifar10_e90
#: EPOCHS=90) and the rows whose 90-epoch weights are shipped (``<name>_e90``, stored in float16)
PAPER_BUDGET = "cifar10_e90"
SHIPPED_E90 = {"cifar10_patchvae": "patchvae_resnet9.cifar10_e90", "cifar10_beta_vae": "beta_vae_resnet9_32.cifar10_e90",
               "cifar10_patchvae_lw": "patchvae_resnet9.cifar10_lw_e90", "cifar10_beta_vae_lw": "beta_vae_resnet9_32.cifar10_lw_e90",
               "cifar10_patchvae_tuned": "patchvae_resnet9.cifar10_tuned_e90"}
#: every budget with shipped weights: its reports' folder -> result stem -> registry name
SHIPPED_BUDGETS = {SHIPPED_BUDGET: SHIPPED, PAPER_BUDGET: SHIPPED_E90}
#: the ablation sweeps (cifar10_sweeps.sh, 15 epochs, seed 0): sweep -> (the swept setting, {result stem: (label,
#: the paper's CIFAR-100 Conv5 top-1 of that row)}); every other setting is the paper's default (N = 16, d_p = 6,
#: prior 1/N, β_vis = 10; in our follow-up beta_vis_combined_cifar10, β_vis = 0.96); the paper's number is None for a sweep of ours
SWEEPS: dict[str, tuple[str, dict[str, tuple[str, float | None]]]] = {
    "table3_num_parts_cifar10": ("N", {f"cifar10_patchvae_n{n}": (f"N = {n}", paper) for n, paper in
                                       ((4, 27.59), (8, 28.74), (16, 28.94), (32, 27.78), (64, 29.00))}),
    "table4_part_dim_cifar10": ("d_p", {"cifar10_patchvae_dp3": ("d_p = 3", 28.63),
                                        "cifar10_patchvae_n16": ("d_p = 6 (the N = 16 run)", 28.97),
                                        "cifar10_patchvae_dp9": ("d_p = 9", 28.21)}),
    "table5_visibility_prior_cifar10": ("z_vis prior", {f"cifar10_patchvae_prior{p}": (f"prior = {p}", paper) for p, paper in
                                                        ((0.01, 28.86), (0.05, 28.67), (0.1, 28.31))}),
    "table6_beta_vis_cifar10": ("β_vis", {
        "cifar10_patchvae_bvis0.06": ("β_vis = 0.96 (paper 0.06 × 16)", 30.11),
        "cifar10_patchvae_bvis0.3": ("β_vis = 4.8 (0.3 × 16)", 30.37),
        "cifar10_patchvae_bvis0.6": ("β_vis = 9.6 (0.6 × 16)", 28.90)}),
    # ours, not the paper's (no CIFAR-100 number): β_vis = 0.96 with the Table 3 / 4 settings the probes rank first
    "beta_vis_combined_cifar10": ("β_vis = 0.96 with", {
        "cifar10_patchvae_bvis0.06": ("N = 16, d_p = 6 (the Table 6 run)", None),
        "cifar10_patchvae_bvis0.06_n32": ("N = 32", None),
        "cifar10_patchvae_bvis0.06_dp9": ("d_p = 9", None)}),
    # ours: the temperature schedule at the paper's defaults (β_vis = 10); the first row is the Tables 3 / 4 defaults' run
    "temperature_schedule_cifar10": ("temperature τ", {
        "cifar10_patchvae_n16": ("the paper's schedule: 1.0 → 0.64 (the N = 16 run)", None),
        "cifar10_patchvae_tau_fixed": ("fixed at 1.0", None),
        "cifar10_patchvae_tau_fast": ("8× the rate: 1.0 → 0.1 at step 4,001", None)}),
}
#: seeds of pretraining (random φ: of its init): result stem of seed 0 -> label; seed s > 0 is docs/results/<stem>.seed<s>.*.json
SEEDS = {"cifar10_patchvae_tuned": "PatchVAE, β_vis = 0.96", "cifar10_beta_vae": "β-VAE",
         "cifar10_random": "random-init φ (seed of the init and the head)"}
#: sweep rows pretrained with more seeds (cifar10_sweeps.sh SEED=s ONLY=...): result stem -> label
SWEEP_SEEDS = {"cifar10_patchvae_bvis0.06": "β_vis = 0.96, N = 16, d_p = 6 (Table 6 and the follow-up)",
               "cifar10_patchvae_bvis0.06_n32": "β_vis = 0.96, N = 32 (the follow-up)"}
#: shipped φ of the shipped budget fine-tuned again with more seeds (Conv5: 0-2, Conv3 and Conv1: 0-1): the spread of one Table 1 cell
FINETUNE_SEEDS = ("cifar10_patchvae_tuned", "cifar10_beta_vae")
DASH = "—"


def read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def metrics_of(report: dict | None) -> dict[str, dict]:
    """metric name (probe name for probes) -> record, from one ``patchvae eval --out`` JSON."""
    if report is None:
        return {}
    out = {}
    for m in report.get("metrics", []):
        out[m["probe"] if m.get("metric") == "probe" else m["metric"]] = m
    for r in report.get("results", []):
        out["pooled_" + r["probe"]] = r
    if report.get("part_health"):
        out["parts"] = report["part_health"]
    return out


def fmt(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def get(record: dict | None, key: str) -> float | None:
    return None if record is None else record.get(key)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def without_empty_columns(header: list[str], rows: list[list[str]], columns: tuple[int, ...]) -> tuple[list, list]:
    """``header`` and ``rows`` without those of ``columns`` in which every row is a dash (nothing run yet)."""
    empty = {c for c in columns if all(r[c] == DASH for r in rows)}
    keep = [i for i in range(len(header)) if i not in empty]
    return [header[i] for i in keep], [[r[i] for i in keep] for r in rows]


def zhang_table(folder: Path) -> str:
    ms = {v: metrics_of(read(folder / f"zhang2022_cifar10_{v}.json")) for v in ZHANG}
    spec = [("test BPD (−ELBO)", "bpd", "bpd", 3), ("Mutual Info (rate, nats)", "rate", "nats", 1),
            ("Intrinsic Dim (of 64)", "intrinsic_dim", "intrinsic_dimension", 0),
            ("conditional entropy (nats)", "conditional_entropy", "nats", 1),
            ("Nonlinear probe (MLP-200)", "nonlinear", "top1", 2), ("Linear probe (LinearSVC)", "linear_svm_fast", "top1", 2)]
    rows = [[label] + [fmt(get(ms[v].get(metric), key), digits) for v in ZHANG] for label, metric, key, digits in spec]
    return table([""] + list(ZHANG.values()), rows)


def family_table(folder: Path) -> str:
    """Every CIFAR-10 family on its own latent code: the shipped PatchVAE and β-VAE files (the shipped budget's reports,
    folder/SHIPPED_BUDGET) and the shipped PixelVAEs (``folder``)."""
    rows, shipped = [], folder / SHIPPED_BUDGET
    for stem, code in (("cifar10_patchvae", "appearance μ̄ (96-d)"), ("cifar10_beta_vae", "μ (96-d)")):
        arch = SHIPPED[stem].split(".")[0]  # the latent probes' report is named after the architecture
        m = {**metrics_of(read(shipped / f"{stem}.probes.json")), **metrics_of(read(shipped / f"cifar10_{arch}.latent_probes.json"))}
        rows.append([f"{TABLE1[stem]} (`{SHIPPED[stem]}`), {code}", SHIPPED_BUDGET.removeprefix("cifar10_e"), fmt(get(m.get("rate"), "nats"), 1), fmt(get(m.get("intrinsic_dim"), "intrinsic_dimension"), 0),
                     fmt(get(m.get("linear_svm_fast"), "top1")), fmt(get(m.get("nonlinear"), "top1"))])
    for v, label in ZHANG.items():
        m = metrics_of(read(folder / f"zhang2022_cifar10_{v}.json"))
        rows.append([f"{label} (`pixelvae_resnet_{HEADS[v]}_small.cifar10`), μ (64-d)",
                     "3", fmt(get(m.get("rate"), "nats"), 1), fmt(get(m.get("intrinsic_dim"), "intrinsic_dimension"), 0),
                     fmt(get(m.get("linear_svm_fast"), "top1")), fmt(get(m.get("nonlinear"), "top1"))])
    return table(["model, representation", "epochs", "rate (nats)", "intrinsic dim.", "linear (LinearSVC)",
                  "nonlinear (MLP-200)"], rows)


def finetune_path(folder: Path, stem: str, preset: str = "conv5") -> Path:
    """The ``patchvae finetune --out`` report of run ``stem`` with freeze ``preset`` (cifar10_table1_rows.sh's names:
    <stem>.finetune.json for Conv5, <stem>.finetune_<preset>.json for the others)."""
    return folder / (f"{stem}.finetune.json" if preset == "conv5" else f"{stem}.finetune_{preset}.json")


def finetune_result(report: dict | None, freeze: str = "conv5") -> dict | None:
    """The fine-tuning result with freeze preset ``freeze`` of one ``patchvae finetune --out`` JSON."""
    return next((r for r in (report or {}).get("results", []) if str(r.get("freeze")) == freeze), None)


def mean_std(top1: list[float], seeds: int = 3) -> str:
    """``mean ± std`` of one cell's runs, ``(k seeds)`` added when fewer than ``seeds`` exist."""
    std = statistics.stdev(top1) if len(top1) > 1 else 0.0
    return f"{statistics.mean(top1):.2f} ± {std:.2f}" + ("" if len(top1) == seeds else f" ({len(top1)} seeds)")


def low_label_tag(stem: str) -> str | None:
    """The name of a Table 1 row in docs/results/low_label/ (cifar10_low_label.sh names a run by its folder)."""
    return {"cifar10_random": "random", "cifar10_supervised": None}.get(stem, stem)


def low_label_cell(folder: Path, tag: str | None, n: int) -> str:
    """mean ± std of the top-1 of the low-label probes of ``tag`` with ``n`` labels per class over seeds 0-2."""
    runs = [read(folder / "low_label" / f"{tag}.n{n}.seed{s}.json") for s in range(3)] if tag else []
    top1 = [r["results"][0]["top1"] for r in runs if r is not None]
    return mean_std(top1) if top1 else DASH


def linear_probe_cell(folder: Path, stem: str, seed0: dict | None) -> str:
    """The pooled linear probe of a Table 1 row: seed 0, or mean ± std over seeds 0-2 where
    docs/results/probe_seeds/<stem>.seed{1,2}.json exist (cifar10_probe_seeds.sh)."""
    more = [metrics_of(read(folder / "probe_seeds" / f"{stem}.seed{s}.json")).get("pooled_linear") for s in (1, 2)]
    top1 = [r["top1"] for r in [seed0, *more] if r is not None]
    return fmt(get(seed0, "top1")) if seed0 is None or len(top1) < 2 else mean_std(top1)


#: the columns of every Table 1 analogue
TABLE1_HEADER = ["φ", "Conv1 top-1", "Conv3 top-1", "Conv5 top-1", "Conv5 top-5", "linear probe", "kNN",
                 "linear, 10 labels / class", "linear, 100 labels / class", "rate (nats)", "intrinsic dim.", "active parts"]
#: sub-folder of a budget's reports with the rows pretrained a second time with the same command on another machine
#: (float32 instead of bf16), for the ConvK cells the first run's φ (not kept) never had: such cells are marked RERUN
RETRAINED = "retrained_float32"
RERUN = "‡"


def finetune_cell(src: Path, stem: str, preset: str, retrained: Path | None = None) -> str:
    """Top-1 of the ``preset`` fine-tune (conv1/conv3) of a row, from ``src``, else from the re-trained φ's report in
    ``retrained`` marked :data:`RERUN`, else a dash."""
    result = finetune_result(read(finetune_path(src, stem, preset)), preset)
    if result is None and retrained is not None:
        rerun = finetune_result(read(finetune_path(retrained, stem, preset)), preset)
        return DASH if rerun is None else f"{rerun['top1']:.2f} {RERUN}"
    return fmt(get(result, "top1"))


def table1_row(src: Path, stem: str, label: str, retrained: Path | None = None) -> list[str]:
    """One Table 1 row (:data:`TABLE1_HEADER`) from the reports of run ``stem`` in ``src``."""
    m = metrics_of(read(src / f"{stem}.probes.json"))
    parts, idim = m.get("parts"), m.get("intrinsic_dim")
    conv5 = finetune_result(read(finetune_path(src, stem)), "none" if stem.endswith("supervised") else "conv5")
    tag = low_label_tag(stem)
    return [label, finetune_cell(src, stem, "conv1", retrained), finetune_cell(src, stem, "conv3", retrained),
            fmt(get(conv5, "top1")), fmt(get(conv5, "top5")), linear_probe_cell(src, stem, m.get("pooled_linear")),
            fmt(get(m.get("pooled_knn"), "top1")), low_label_cell(src, tag, 10), low_label_cell(src, tag, 100),
            fmt(get(m.get("rate"), "nats"), 1),
            DASH if not idim else f"{idim['intrinsic_dimension']} / {idim['feature_dim']} ({idim['layer']})",
            DASH if not parts else f"{parts['active_parts']} / {parts['num_parts']}"]


def table1(folder: Path, baselines: Path | None = None, weights: dict[str, str] | None = None,
           run_rows_only: bool = False, retrained: Path | None = None) -> str:
    """The Table 1 analogue from the reports of one pretraining budget in ``folder``; the rows without pretraining
    (:data:`NO_PRETRAINING`) from ``baselines`` (default ``folder``); ``weights`` names the shipped weights of a row;
    a ConvK cell missing in ``folder`` is read from ``retrained`` (see :data:`RETRAINED`).
    Rows without any report print dashes, or are left out with ``run_rows_only``."""
    rows = []
    for stem, label in TABLE1.items():
        src = (baselines or folder) if stem in NO_PRETRAINING else folder
        if weights and stem in weights:
            label = f"{label} (`{weights[stem]}`)"
        rows.append(table1_row(src, stem, label, retrained))
        if run_rows_only and set(rows[-1][1:]) == {DASH}:
            rows.pop()
    return table(*without_empty_columns(TABLE1_HEADER, rows, (1, 2)))  # a ConvK column without any run yet is left out


def table1_budget(folder: Path, budget: str) -> str:
    """The Table 1 analogue of one budget with shipped weights (folder/<budget>, a key of :data:`SHIPPED_BUDGETS`;
    baselines from ``folder``): the rows run at that budget."""
    return table1(folder / budget, baselines=folder, weights=SHIPPED_BUDGETS[budget], run_rows_only=True,
                  retrained=folder / budget / RETRAINED)


def retrained_rows(folder: Path, budget: str = SHIPPED_BUDGET) -> str:
    """Each row of ``budget`` pretrained twice with the same command (:data:`RETRAINED`): the first run's row
    above its re-run's, every cell from that run's own reports."""
    rows, again = [], folder / budget / RETRAINED
    for stem, label in TABLE1.items():
        if (again / f"{stem}.probes.json").is_file():
            rows += [table1_row(folder / budget, stem, f"{label}, first run (bf16)"),
                     table1_row(again, stem, f"{label}, re-run (float32)")]
    return table(*without_empty_columns(TABLE1_HEADER, rows, (1, 2)))


def table1_shipped(folder: Path) -> str:
    """The Table 1 analogue at the budget of the default shipped weights (30 epochs)."""
    return table1_budget(folder, SHIPPED_BUDGET)


def table1_e90(folder: Path) -> str:
    """The Table 1 analogue at the paper's budget (90 epochs): the rows run so far."""
    return table1_budget(folder, PAPER_BUDGET)


def low_label(folder: Path) -> str:
    rows = [[label] + [low_label_cell(folder, low_label_tag(stem), n) for n in (10, 100)]
            for stem, label in TABLE1.items() if low_label_tag(stem)]
    return table(["φ", "10 labels / class", "100 labels / class"], rows)


def per_seed(values: list[float | None]) -> str:
    """``a / b; mean ± std`` over the seeds' values (just ``a`` for one seed)."""
    known = [v for v in values if v is not None]
    cell = " / ".join(fmt(v) for v in values)
    return cell if len(known) < 2 else f"{cell}; {mean_std(known, len(known))}"


def seed_rows(folder: Path, stems: dict[str, str]) -> list[list[str]]:
    """One row per result stem (-> label): its seeds (0, then each docs/results/<stem>.seed<s>.probes.json), Conv5 /
    linear / kNN per seed with mean ± std, and the active parts of each seed."""
    rows = []
    for stem, label in stems.items():
        runs = [stem] + [f"{stem}.seed{s}" for s in range(1, 10) if (folder / f"{stem}.seed{s}.probes.json").is_file()]
        probes = [metrics_of(read(folder / f"{r}.probes.json")) for r in runs]
        conv5 = [get(finetune_result(read(folder / f"{r}.finetune.json")), "top1") for r in runs]
        health = [m.get("parts") for m in probes]
        rows.append([label, str(len(runs)), per_seed(conv5),
                     per_seed([get(m.get("pooled_linear"), "top1") for m in probes]),
                     per_seed([get(m.get("pooled_knn"), "top1") for m in probes]),
                     DASH if not any(health) else " / ".join(
                         DASH if h is None else f"{h['active_parts']} of {h['num_parts']}" for h in health)])
    return rows


SEED_COLUMNS = ["seeds", "Conv5 top-1 (seed 0 / 1 / ...; mean ± std)", "linear probe", "kNN", "active parts"]


def seeds(folder: Path) -> str:
    """Conv5 / linear / kNN / part health of each pretraining seed of the SEEDS rows (20 epochs), with mean ± std."""
    return table(["φ (20 epochs)", *SEED_COLUMNS], seed_rows(folder, SEEDS))


def sweep_seeds(folder: Path) -> str:
    """The same for the SWEEP_SEEDS rows of the ablation sweeps (15 epochs; cifar10_sweeps.sh with SEED=s)."""
    return table(["sweep row (15 epochs)", *SEED_COLUMNS], seed_rows(folder, SWEEP_SEEDS))


def finetune_seeds(folder: Path, budget: str = SHIPPED_BUDGET, presets: tuple[str, ...] = ("conv5", "conv3", "conv1")) -> str:
    """Top-1 of one φ fine-tuned with several seeds (the head's init, the data order), per freeze preset: seed 0 is
    the Table 1 cell (folder/<budget>/<stem>.finetune{,_conv1,_conv3}.json), seed s > 0
    folder/<budget>/finetune_seeds/<stem>.<preset>.seed<s>.json."""
    rows, weights, budget_dir = [], SHIPPED_BUDGETS[budget], folder / budget
    for stem in FINETUNE_SEEDS:
        cells = []
        for preset in presets:
            seed0 = finetune_path(budget_dir, stem, preset)
            more = (budget_dir / "finetune_seeds").glob(f"{stem}.{preset}.seed*.json")
            reports = [seed0, *sorted(more, key=lambda r: int(r.name.removesuffix(".json").rsplit("seed", 1)[1]))]
            cells.append(per_seed([get(finetune_result(read(r), preset), "top1") for r in reports]))
        rows.append([f"{TABLE1[stem]} (`{weights[stem]}`)", *cells])
    header = [f"φ ({budget.removeprefix('cifar10_e')} epochs)"]
    header += [f"{p.capitalize()} top-1 (seed 0 / 1 / ...; mean ± std)" for p in presets]
    return table(header, rows)


def sweep_table(folder: Path, sweep: str) -> str:
    """One ablation sweep (a key of :data:`SWEEPS`): the paper's CIFAR-100 Conv5 (column left out for a sweep of
    ours) beside our Conv5 (column left out until a docs/results/<stem>.finetune.json exists), probes and part
    health."""
    setting, runs = SWEEPS[sweep]
    rows = []
    for stem, (label, paper) in runs.items():
        m = metrics_of(read(folder / f"{stem}.probes.json"))
        parts, conv5 = m.get("parts"), finetune_result(read(folder / f"{stem}.finetune.json"))
        rows.append([label, fmt(paper), fmt(get(conv5, "top1")), fmt(get(m.get("pooled_linear"), "top1")),
                     fmt(get(m.get("pooled_knn"), "top1")), fmt(get(m.get("rate"), "nats"), 1),
                     DASH if not parts else f"{parts['active_parts']} / {parts['num_parts']}",
                     DASH if not parts else fmt(parts["mean_visibility"], 3),
                     DASH if not parts else fmt(parts["part_usage_entropy_fraction"], 3)])
    header = [f"{setting} (15 epochs)", "paper: CIFAR-100 Conv5", "Conv5 top-1", "linear probe", "kNN", "rate (nats)",
              "active parts", "mean P(visible)", "part usage entropy / log N"]
    return table(*without_empty_columns(header, rows, (1, 2)))


def sweep_losses(runs: Path, sweep: str) -> str:
    """Test loss terms (per image) at the last epoch of each run of ``sweep``, from its training log."""
    rows = []
    for stem, (label, _) in SWEEPS[sweep][1].items():
        epochs = read_events(runs / stem, "epoch")
        test = epochs[-1]["eval"] if epochs else {}
        rows.append([label, str(epochs[-1]["epoch"]) if epochs else DASH] +
                    [fmt(test.get(k), 1) for k in ("loss", "reconstruction", "kl_appearance", "kl_visibility")])
    return table([SWEEPS[sweep][0], "epoch", "test loss", "reconstruction", "KL appearance", "KL visibility"], rows)


def curve_cell(event: dict | None) -> str:
    """``test loss (τ, active parts, D loss)`` of one epoch event of a training log (τ and parts for part models only:
    the trainer logs the schedule's temperature for every model; the discriminator's training loss of that epoch for
    models with one). A model without a test loss (BiGAN: no ELBO) shows its test reconstruction error, ``L2 <value>``."""
    if event is None:
        return DASH
    health, d_loss, test = event.get("part_health"), event.get("train", {}).get("d_loss"), event.get("eval", {})
    notes = [f"τ {event['temperature']:.2f}", f"{health['active_parts']} parts"] if health else []
    notes += [f"D {d_loss:.2f}"] if d_loss is not None else []
    value = (f"{test['loss']:.0f}" if "loss" in test
             else f"L2 {test['reconstruction']:.0f}" if "reconstruction" in test else DASH)
    return value + (f" ({', '.join(notes)})" if notes else "")


def training_curve(runs: Path, stems: list[str], epochs: tuple[int, ...] = (10, 15, 20, 25, 30)) -> str:
    """Test loss (per image), relaxed-Bernoulli temperature and active parts of each run at ``epochs``, from its
    training log."""
    rows = []
    for stem in stems:
        by_epoch = {e["epoch"]: e for e in read_events(runs / stem, "epoch")}
        rows.append([TABLE1.get(stem, stem)] + [curve_cell(by_epoch.get(e)) for e in epochs])
    return table(["run"] + [f"test loss, epoch {e}" for e in epochs], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("docs/results"), help="the evaluation JSON reports")
    parser.add_argument("--runs", type=Path, help="the sweep runs (cifar10_sweeps.sh RUNS): also print their test loss terms")
    parser.add_argument("--budget-runs", type=Path, help="the runs of the shipped budget (cifar10_weights.sh / "
                        "cifar10_table1_rows.sh RUNS): also print the test loss of every Table 1 row found there "
                        "at --curve-epochs")
    parser.add_argument("--curve-epochs", type=int, nargs="+", default=[10, 15, 20, 25, 30],
                        help="the epochs of the --budget-runs table (default 10 15 20 25 30; the 90-epoch runs: 10 30 60 90)")
    args = parser.parse_args()
    folder, runs = args.folder, args.runs
    for title, make in (("Zhang et al. 2022, Table 3 analogue", zhang_table), ("Families, one protocol", family_table),
                        ("Table 1 analogue, 20 epochs", table1),
                        (f"Table 1 analogue, the shipped weights' budget ({SHIPPED_BUDGET})", table1_shipped),
                        (f"Table 1 analogue, the paper's budget ({PAPER_BUDGET})", table1_e90),
                        ("Low-label linear probes", low_label),
                        ("Pretraining seeds", seeds), ("Pretraining seeds of sweep rows", sweep_seeds),
                        ("Fine-tuning seeds", finetune_seeds),
                        ("Rows pretrained twice (30 epochs)", retrained_rows)):
        print(f"### {title}\n\n{make(folder)}\n")
    for sweep in SWEEPS:
        print(f"### Sweep {sweep}\n\n{sweep_table(folder, sweep)}\n")
        if runs is not None:
            print(f"Test loss terms, last epoch ({runs}):\n\n{sweep_losses(runs, sweep)}\n")
    if args.budget_runs is not None:
        stems = [stem for stem in TABLE1 if (args.budget_runs / stem / "log.jsonl").is_file()]
        print(f"### Test loss over training ({args.budget_runs})\n\n{training_curve(args.budget_runs, stems, tuple(args.curve_epochs))}\n")


if __name__ == "__main__":
    main()
