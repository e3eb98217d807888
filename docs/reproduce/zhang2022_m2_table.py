"""Collect the Table 6 analogue (M2 / LPVAE-M2 / supervised / low-label probes) into docs/results/zhang2022_m2.json.

Reads the runs of ``docs/reproduce/zhang2022_m2.sh`` (the final epoch's test accuracy of q(y|x) in each
``log.jsonl``) and the probes of ``docs/reproduce/zhang2022_m2_baselines.sh``; prints the markdown table.

    python docs/reproduce/zhang2022_m2_table.py /work/runs
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from patchvae.training.logs import read_events

ROWS = [("lpvae", "LPVAE-M2"), ("m2", "M2 (h=0 decoder)"), ("supervised", "q(y|x) on the labels only")]
PROBES = {"fmnist": ("patchvae_resnet9.fmnist", "beta_vae_resnet9_32.fmnist"),
          "cifar10": ("patchvae_resnet9.cifar10", "beta_vae_resnet9_32.cifar10")}
COLUMNS = {"fmnist": (10, 60, 100, 300), "cifar10": (100, 300)}


def run_accuracy(runs: Path, data: str, variant: str, per: int, seed: int) -> dict | None:
    epochs = read_events(runs / f"m2_{data}_{variant}_{per}pc_s{seed}", "epoch")
    if not epochs:
        return None
    last = epochs[-1]
    return {"accuracy": last["eval"]["accuracy"], "epochs": last["epoch"], "steps": last["step"],
            "train_seconds": round(sum(e["seconds"] for e in epochs))}


def probe_accuracy(runs: Path, weights: str, per: int, seed: int) -> float | None:
    path = runs / f"m2probe_{weights}_{per}pc_s{seed}.json"
    return json.loads(path.read_text())["results"][0]["top1"] if path.is_file() else None


def cell(values: list[float]) -> dict:
    out = {"values": values, "mean": statistics.fmean(values)}
    if len(values) > 1:
        out["std"] = statistics.stdev(values)
    return out


def main(runs: Path) -> None:
    table: dict = {}
    for data, columns in COLUMNS.items():
        for per in columns:
            seeds = (0, 1, 2) if per == columns[0] else (0,)
            for variant, _ in ROWS:
                got = [run_accuracy(runs, data, variant, per, s) for s in seeds]
                got = [g for g in got if g is not None]
                if got:
                    table.setdefault(data, {}).setdefault(variant, {})[str(per * 10)] = {
                        **cell([g["accuracy"] for g in got]), "runs": got}
            for weights in PROBES[data]:
                got = [probe_accuracy(runs, weights, per, s) for s in seeds]
                got = [g for g in got if g is not None]
                if got:
                    table.setdefault(data, {}).setdefault(f"probe:{weights}", {})[str(per * 10)] = cell(got)
    out = Path(__file__).resolve().parents[1] / "results" / "zhang2022_m2.json"
    out.write_text(json.dumps(table, indent=1) + "\n")
    for data, rows in table.items():
        labels = [str(p * 10) for p in COLUMNS[data]]
        print(f"\n{data}\n| model | " + " | ".join(f"{n} labels" for n in labels) + " |")
        print("|---|" + "---|" * len(labels))
        for name, cells in rows.items():
            def fmt(c):
                return "–" if c is None else (f"{c['mean']:.2f} ± {c['std']:.2f}" if "std" in c else f"{c['mean']:.2f}")
            print(f"| {name} | " + " | ".join(fmt(cells.get(n)) for n in labels) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs"))
