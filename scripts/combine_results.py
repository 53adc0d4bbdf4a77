"""Merge the per_file.csv of several `specdenoise evaluate` runs over the same files into one
markdown report (overall means, by SNR bucket, by noise category), e.g. when the baselines and a
new model were scored in separate runs:

    .venv/bin/python scripts/combine_results.py runs/results/test_baselines runs/results/test_new \
        --rename specdenoise=unet-0.2 --rename "specdenoise#2=crn-0.3" > runs/results/test_combined.md

``--rooms CORPUS/test/meta.csv`` adds the overall table for dry and for reverberant clips.

A system name that appears in more than one run gets ``#2``, ``#3``... in the order of the runs.
The runs must cover the same files (checked: the noisy rows must agree), so rows are comparable.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

METRICS = ("pesq_wb", "stoi", "estoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "rtf")
BUCKETS = ((-math.inf, 0, "< 0 dB"), (0, 5, "0-5 dB"), (5, 10, "5-10 dB"), (10, 15, "10-15 dB"), (15, math.inf, ">= 15 dB"))


def load(runs: list[Path], renames: dict[str, str]) -> dict[str, list[dict]]:
    systems: dict[str, list[dict]] = {}
    for run in runs:
        rows = list(csv.DictReader(open(run / "per_file.csv", newline="")))
        names = {r["system"] for r in rows}
        for name in sorted(names):
            key, n = name, 2
            while key in systems and not (name == "noisy" and key == "noisy"):
                key, n = f"{name}#{n}", n + 1
            picked = [r for r in rows if r["system"] == name]
            if key == "noisy" and "noisy" in systems:
                old = {r["file"]: r.get("si_sdr") for r in systems["noisy"]}
                new = {r["file"]: r.get("si_sdr") for r in picked}
                if old != new:
                    sys.exit(f"{run}: its noisy rows differ from the first run's: not the same files")
                continue
            systems[renames.get(key, key)] = picked
    return systems


def mean(rows: list[dict], metric: str) -> float | None:
    vals = [float(r[metric]) for r in rows if r.get(metric) not in (None, "", "nan") and r.get("status", "ok") == "ok"]
    return sum(vals) / len(vals) if vals else None


def fmt(v: float | None, metric: str) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if metric == "si_sdr" else f"{v:.3f}"


def table(systems: dict[str, list[dict]], metrics: tuple[str, ...]) -> str:
    lines = ["| system | files | " + " | ".join(metrics) + " |", "|---|---:|" + "---:|" * len(metrics)]
    for name, rows in systems.items():
        ok = [r for r in rows if r.get("status", "ok") == "ok"]
        lines.append(f"| {name} | {len(ok)} | " + " | ".join(fmt(mean(ok, m), m) for m in metrics) + " |")
    return "\n".join(lines)


def breakdown(systems: dict[str, list[dict]], metric: str, key) -> str:
    groups = sorted({key(r) for rows in systems.values() for r in rows if key(r)}, key=_order)
    lines = ["| system | " + " | ".join(groups) + " |", "|---|" + "---:|" * len(groups)]
    for name, rows in systems.items():
        by = defaultdict(list)
        for r in rows:
            by[key(r)].append(r)
        lines.append(f"| {name} | " + " | ".join(fmt(mean(by[g], metric), metric) for g in groups) + " |")
    counts = defaultdict(int)
    for r in next(iter(systems.values())):
        counts[key(r)] += 1
    lines.append("| (clips) | " + " | ".join(str(counts[g]) for g in groups) + " |")
    return "\n".join(lines)


def _order(label: str):
    for i, (_, _, name) in enumerate(BUCKETS):
        if label == name:
            return (0, i, "")
    return (1, 0, label)


def bucket(row: dict) -> str:
    try:
        snr = float(row["snr_db"])
    except (KeyError, ValueError):
        return ""
    return next(name for lo, hi, name in BUCKETS if lo <= snr < hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="evaluate output folders (each with per_file.csv)")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW")
    parser.add_argument("--breakdown-metrics", default="pesq_wb,stoi,si_sdr,dnsmos_ovrl")
    parser.add_argument("--rooms", type=Path, metavar="META_CSV",
                        help="the corpus split's meta.csv: also the overall table for dry clips and for clips "
                             "with a room response (whose reference is the full reverberant speech)")
    args = parser.parse_args()
    renames = dict(item.split("=", 1) for item in args.rename)
    systems = load(args.runs, renames)
    present = tuple(m for m in METRICS if any(mean(rows, m) is not None for rows in systems.values()))
    out = ["## Overall (means over files)", "", table(systems, present), ""]
    if args.rooms:
        with open(args.rooms, newline="") as f:
            reverberant = {r["clip"]: r["rir"] != "none" for r in csv.DictReader(f)}
        for label, want in (("dry clips", False), ("clips with a room response", True)):
            part = {name: [r for r in rows if reverberant.get(Path(r["file"]).stem) == want] for name, rows in systems.items()}
            out += [f"## Overall, {label}", "", table(part, present), ""]
    for metric in args.breakdown_metrics.split(","):
        if metric not in present:
            continue
        if any(bucket(r) for rows in systems.values() for r in rows):
            out += [f"## {metric} by input SNR", "", breakdown(systems, metric, bucket), ""]
        out += [f"## {metric} by noise category", "", breakdown(systems, metric, lambda r: r.get("noise_category", "")), ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
