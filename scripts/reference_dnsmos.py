"""How does each system's DNSMOS compare with its clean reference's own DNSMOS?

    specdenoise evaluate runs/corpus/test/clean --no-reference --model none --baselines noisy \
        --out runs/results/test_clean_refs --workers 2
    python scripts/reference_dnsmos.py runs/results/test/per_file.csv runs/results/test_clean_refs/per_file.csv \
        runs/corpus/test/meta.csv --systems deepfilternet3,gtcrn,specdenoise

DNSMOS is non-intrusive: it can score a denoiser *above* the reference, by removing the noise, hiss
or reverberation that the "clean" recording itself carries, while PESQ, STOI and SI-SDR charge the
same removal as an error. This prints, for the whole split, dry clips, clips with a room response and
each quartile of the references' own DNSMOS BAK, the references' mean SIG/BAK/OVRL beside each
system's mean OVRL (and BAK), so a DNSMOS gap can be read against what the references allow.
"""
from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

METRICS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")


def read_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def reference_groups(references: dict[str, dict[str, float]], rooms: dict[str, bool]) -> dict[str, list[str]]:
    """Clip names per group: all, dry, room, and the four quartiles of the references' own BAK."""
    names = sorted(references)
    groups = {"all": names, "dry": [n for n in names if not rooms[n]], "room": [n for n in names if rooms[n]]}
    by_bak = sorted(names, key=lambda n: references[n]["dnsmos_bak"])
    for q in range(4):
        groups[f"reference BAK quartile {q + 1}"] = sorted(by_bak[q * len(by_bak) // 4:(q + 1) * len(by_bak) // 4])
    return groups


def compare(per_file: list[dict[str, str]], reference_rows: list[dict[str, str]], meta: list[dict[str, str]],
            systems: list[str]) -> list[dict[str, object]]:
    """One row per group: its size, the references' mean DNSMOS and each system's mean OVRL and BAK.

    ``reference_rows`` is the per-file CSV of an ``evaluate --no-reference`` run over the clean
    files (the pass-through system ``noisy`` there *is* the reference)."""
    references = {r["file"]: {m: float(r[m]) for m in METRICS} for r in reference_rows
                  if r["system"] == "noisy" and r["status"] == "ok"}
    rooms = {r["clip"]: r.get("rir", "none") not in ("", "none") for r in meta}
    scores = {(r["system"], r["file"]): r for r in per_file if r["status"] == "ok"}
    missing = [(s, n) for s in systems for n in references if (s, n) not in scores]
    if missing:
        raise ValueError(f"{len(missing)} system/clip pairs have no score, e.g. {missing[0]}")
    rows = []
    for group, names in reference_groups(references, rooms).items():
        if not names:
            continue
        row: dict[str, object] = {"group": group, "clips": len(names)}
        for m in METRICS:
            row[f"reference {m}"] = statistics.mean(references[n][m] for n in names)
        for s in systems:
            for m in ("dnsmos_ovrl", "dnsmos_bak"):
                row[f"{s} {m}"] = statistics.mean(float(scores[s, n][m]) for n in names)
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    keys = list(rows[0])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(k.replace("dnsmos_", "") for k in keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("per_file", help="per_file.csv of an evaluate run with references")
    parser.add_argument("references", help="per_file.csv of `evaluate --no-reference` over the clean files")
    parser.add_argument("meta", help="the split's meta.csv (its rir column tells dry clips from rooms)")
    parser.add_argument("--systems", required=True, help="comma-separated system names of per_file")
    args = parser.parse_args()
    try:
        rows = compare(read_rows(args.per_file), read_rows(args.references), read_rows(args.meta),
                       args.systems.split(","))
    except (OSError, KeyError, ValueError) as exc:
        raise SystemExit(f"reference_dnsmos: {exc}") from None
    print(markdown(rows))


if __name__ == "__main__":
    main()
