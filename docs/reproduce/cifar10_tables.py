"""Print the CIFAR-10 (JPEG copy) tables of docs/results.md (markdown) from the evaluation JSON in docs/results/.

    python docs/reproduce/cifar10_tables.py [docs/results]

Tables: the Zhang et al. 2022 Table 3 analogue (zhang2022_cifar10.sh), the family comparison (the same
rate / intrinsic dimension / latent probe columns for PatchVAE, β-VAE and the PixelVAEs), the Table 1
analogue rows (cifar10_weights.sh and the L_w runs), the low-label probes (cifar10_low_label.sh, mean ± std
over seeds) and the ablation sweeps (cifar10_sweeps.sh). Cells without a result file print "—".
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ZHANG = {"vae": "VAE (h = 0)", "lpvae_h1": "LPVAE (h = 1)", "lpvae_h2": "LPVAE (h = 2)", "fpvae": "FPVAE"}
HEADS = {"vae": "h0", "lpvae_h1": "h1", "lpvae_h2": "h2", "fpvae": "full"}  #: variant -> pixelvae_resnet_<head>_small
TABLE1 = {"cifar10_patchvae": "PatchVAE", "cifar10_patchvae_lw": "PatchVAE + L_w", "cifar10_beta_vae": "β-VAE",
          "cifar10_beta_vae_lw": "β-VAE + L_w", "cifar10_random": "random-init φ"}
LOW_LABEL = {"patchvae_resnet9.cifar10": "PatchVAE", "cifar10_patchvae_lw": "PatchVAE + L_w",
             "beta_vae_resnet9_32.cifar10": "β-VAE", "cifar10_beta_vae_lw": "β-VAE + L_w", "random": "random-init φ"}
SWEEPS = {"cifar10_patchvae_bvis0.06": "β_vis = 0.96 (paper 0.06 × 16)", "cifar10_patchvae_bvis0.3": "β_vis = 4.8 (0.3 × 16)",
          "cifar10_patchvae_bvis0.6": "β_vis = 9.6 (0.6 × 16)"}
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


def zhang_table(folder: Path) -> str:
    ms = {v: metrics_of(read(folder / f"zhang2022_cifar10_{v}.json")) for v in ZHANG}
    spec = [("test BPD (−ELBO)", "bpd", "bpd", 3), ("Mutual Info (rate, nats)", "rate", "nats", 1),
            ("Intrinsic Dim (of 64)", "intrinsic_dim", "intrinsic_dimension", 0),
            ("conditional entropy (nats)", "conditional_entropy", "nats", 1),
            ("Nonlinear probe (MLP-200)", "nonlinear", "top1", 2), ("Linear probe (LinearSVC)", "linear_svm_fast", "top1", 2)]
    rows = [[label] + [fmt(get(ms[v].get(metric), key), digits) for v in ZHANG] for label, metric, key, digits in spec]
    return table([""] + list(ZHANG.values()), rows)


def family_table(folder: Path) -> str:
    rows = []
    for stem, arch, label in (("cifar10_patchvae", "patchvae_resnet9", "PatchVAE (`patchvae_resnet9.cifar10`), appearance μ̄ (96-d)"),
                              ("cifar10_beta_vae", "beta_vae_resnet9_32", "β-VAE (`beta_vae_resnet9_32.cifar10`), μ (96-d)")):
        m = {**metrics_of(read(folder / f"{stem}.probes.json")), **metrics_of(read(folder / f"cifar10_{arch}.latent_probes.json"))}
        rows.append([label, "20", fmt(get(m.get("rate"), "nats"), 1), fmt(get(m.get("intrinsic_dim"), "intrinsic_dimension"), 0),
                     fmt(get(m.get("linear_svm_fast"), "top1")), fmt(get(m.get("nonlinear"), "top1"))])
    for v, label in ZHANG.items():
        m = metrics_of(read(folder / f"zhang2022_cifar10_{v}.json"))
        rows.append([f"{label} (`pixelvae_resnet_{HEADS[v]}_small.cifar10`), μ (64-d)",
                     "3", fmt(get(m.get("rate"), "nats"), 1), fmt(get(m.get("intrinsic_dim"), "intrinsic_dimension"), 0),
                     fmt(get(m.get("linear_svm_fast"), "top1")), fmt(get(m.get("nonlinear"), "top1"))])
    return table(["model, representation", "epochs", "rate (nats)", "intrinsic dim.", "linear (LinearSVC)",
                  "nonlinear (MLP-200)"], rows)


def finetune_top1(report: dict | None, freeze: str = "conv5") -> float | None:
    if report is None:
        return None
    for r in report.get("results", []):
        if str(r.get("freeze")) == freeze:
            return r["top1"]
    return None


def table1(folder: Path) -> str:
    rows = []
    for stem, label in TABLE1.items():
        m = metrics_of(read(folder / f"{stem}.probes.json"))
        parts = m.get("parts")
        rows.append([label, fmt(finetune_top1(read(folder / f"{stem}.finetune.json"))), fmt(get(m.get("pooled_linear"), "top1")),
                     fmt(get(m.get("pooled_knn"), "top1")), fmt(get(m.get("rate"), "nats"), 1),
                     DASH if not parts else f"{parts['active_parts']} / {parts['num_parts']}"])
    return table(["φ", "Conv5 top-1", "linear probe", "kNN", "rate (nats)", "active parts"], rows)


def low_label(folder: Path) -> str:
    rows = []
    for tag, label in LOW_LABEL.items():
        cells = [label]
        for n in (10, 100):
            runs = [read(folder / "low_label" / f"{tag}.n{n}.seed{s}.json") for s in range(3)]
            top1 = [r["results"][0]["top1"] for r in runs if r is not None]
            cells.append(DASH if not top1 else f"{statistics.mean(top1):.2f} ± {statistics.stdev(top1) if len(top1) > 1 else 0:.2f}"
                         + ("" if len(top1) == 3 else f" ({len(top1)} seeds)"))
        rows.append(cells)
    return table(["φ", "10 labels / class", "100 labels / class"], rows)


def sweeps(folder: Path) -> str:
    rows = []
    for stem, label in SWEEPS.items():
        m = metrics_of(read(folder / f"{stem}.probes.json"))
        parts = m.get("parts")
        rows.append([label, fmt(get(m.get("pooled_linear"), "top1")), fmt(get(m.get("pooled_knn"), "top1")),
                     fmt(get(m.get("rate"), "nats"), 1), DASH if not parts else f"{parts['active_parts']} / {parts['num_parts']}",
                     DASH if not parts else fmt(parts["mean_visibility"], 3)])
    return table(["β_vis (15 epochs)", "linear probe", "kNN", "rate (nats)", "active parts", "mean P(visible)"], rows)


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results")
    for title, make in (("Zhang et al. 2022, Table 3 analogue", zhang_table), ("Families, one protocol", family_table),
                        ("Table 1 analogue", table1), ("Low-label linear probes", low_label), ("Table 6 analogue", sweeps)):
        print(f"### {title}\n\n{make(folder)}\n")


if __name__ == "__main__":
    main()
