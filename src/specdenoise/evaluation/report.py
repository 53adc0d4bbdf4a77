"""Turn evaluation rows into the report: per_file.csv, metrics.json, report.md, comparison.png.

Means are over the files a system scored; failed files are counted (``n_failed``) and listed,
never averaged in as zeros, and a mean over no files is ``null`` rather than a made-up number.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

from ..fileio import atomic_write, atomic_write_json, atomic_write_text
from .data import INTRUSIVE, METRICS, P808, SNR_BUCKETS, EvaluationResult, Row, snr_bucket

LABELS = {
    "pesq_wb": "PESQ-WB",
    "stoi": "STOI",
    "estoi": "ESTOI",
    "si_sdr": "SI-SDR (dB)",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_ovrl": "DNSMOS OVRL",
    P808: "DNSMOS P.808",
    "rtf": "RTF",
}
DIGITS = {"pesq_wb": 3, "stoi": 3, "estoi": 3, "si_sdr": 2, "dnsmos_sig": 3, "dnsmos_bak": 3, "dnsmos_ovrl": 3, P808: 3, "rtf": 4}
MAX_LISTED_FAILURES = 20


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _aggregate(rows: Sequence[Row], metrics: Sequence[str] = METRICS) -> dict:
    """Means of every metric over the scored rows, plus the counts."""
    ok = [row for row in rows if row.ok]
    entry = {metric: _mean([row.metrics[metric] for row in ok]) for metric in metrics}
    timed = [row for row in rows if row.seconds is not None]
    total = sum(row.duration_s for row in timed)
    # Whole-run RTF: total processing time over total audio, so long files weigh more (as they cost more).
    entry["rtf"] = float(sum(row.seconds for row in timed) / total) if total > 0 else None
    entry["n_files"] = len(ok)
    entry["n_failed"] = len(rows) - len(ok)
    return entry


def summarize(rows: Sequence[Row], systems: Sequence[str], metrics: Sequence[str] = METRICS) -> dict[str, dict]:
    """The ``systems`` object of metrics.json, in the order systems were given."""
    return {name: _aggregate([row for row in rows if row.system == name], metrics) for name in systems}


def breakdown(rows: Sequence[Row], systems: Sequence[str], metrics: Sequence[str] = METRICS) -> list[dict]:
    """Means per SNR bucket and per noise category, for every system (synth data only)."""
    table = []
    buckets = [label for _, _, label in SNR_BUCKETS]
    categories = sorted({row.pair.noise_category for row in rows if row.pair.noise_category})
    groupings = (("snr_db", buckets, lambda row: snr_bucket(row.pair.snr_db)), ("noise_category", categories, lambda row: row.pair.noise_category))
    for group_by, groups, key in groupings:
        for group in groups:
            members = [row for row in rows if key(row) == group]
            if not members:
                continue
            for name in systems:
                mine = [row for row in members if row.system == name]
                if mine:
                    table.append({"group_by": group_by, "group": group, "system": name, **_aggregate(mine, metrics)})
    return table


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def markdown_table(summary: dict[str, dict], metrics: Sequence[str] = METRICS) -> str:
    """The main comparison: one row per system, best value of each metric in bold."""
    columns = list(metrics) + ["rtf"]
    best = {}
    for metric in columns:
        # the identity "system" trivially has the lowest RTF: leave it out of that contest
        values = [e[metric] for n, e in summary.items() if e[metric] is not None and not (metric == "rtf" and n == "noisy")]
        if values and len(summary) > 1:
            best[metric] = min(values) if metric == "rtf" else max(values)
    header = "| System | " + " | ".join(LABELS[c] for c in columns) + " | Files | Failed |"
    rule = "|---|" + "---:|" * (len(columns) + 2)
    lines = [header, rule]
    for name, entry in summary.items():
        cells = []
        for metric in columns:
            text = _fmt(entry[metric], DIGITS[metric])
            if metric in best and entry[metric] is not None and not (metric == "rtf" and name == "noisy") and round(entry[metric], DIGITS[metric]) == round(best[metric], DIGITS[metric]):
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {entry['n_files']} | {entry['n_failed']} |")
    return "\n".join(lines)


def _breakdown_markdown(rows: list[dict], group_by: str, title: str) -> str:
    selected = [row for row in rows if row["group_by"] == group_by]
    if not selected:
        return ""
    metrics = [m for m in ("pesq_wb", "stoi", "si_sdr", "dnsmos_ovrl") if m in selected[0]]
    lines = [f"### {title}", "", "| Group | System | Files | " + " | ".join(LABELS[m] for m in metrics) + " |", "|---|---|---:|" + "---:|" * len(metrics)]
    for row in selected:
        cells = " | ".join(_fmt(row[m], DIGITS[m]) for m in metrics)
        lines.append(f"| {row['group']} | {row['system']} | {row['n_files']} | {cells} |")
    return "\n".join(lines) + "\n"


def render_markdown(result: EvaluationResult) -> str:
    """The whole report.md: main table, how it was measured, breakdowns, failures."""
    dataset = result.dataset
    scope = "scored at 16 kHz" if dataset.has_reference else "no clean reference: non-intrusive metrics only, scored at 16 kHz"
    parts = [
        "# Evaluation report",
        "",
        f"Data: `{dataset.root}` ({dataset.layout} layout, {len(dataset.pairs)} files), {scope}.",
        "",
        markdown_table(result.summary, result.metrics),
        "",
        "Means over scored files; a file a metric cannot score"
        + (" (e.g. PESQ finds no utterance)" if dataset.has_reference else "")
        + " is counted under *Failed* and left out of that system's means. RTF = processing time / audio duration, "
        "one thread, after a warm-up call, model loading excluded. "
        + ("SI-SDR in dB; " if dataset.has_reference else "")
        + "DNSMOS is the P.835 model (1–5)"
        + (", DNSMOS P.808 the P.808 overall-quality model (1–5)." if P808 in result.metrics else "."),
        "",
    ]
    if result.skipped:
        reasons = []
        needs_reference = [LABELS[m] for m in result.skipped if m in INTRUSIVE]
        if needs_reference:
            reasons.append(f"{', '.join(needs_reference)}: need a clean reference")
        if P808 in result.skipped:
            reasons.append(f"{LABELS[P808]}: its model is not in the installed speechmos")
        parts += ["Skipped metrics: " + "; ".join(reasons) + ".", ""]
    if dataset.warnings:
        parts += ["## Notes on the data", ""] + [f"- {warning}" for warning in dataset.warnings] + [""]
    if result.breakdown:
        parts += ["## Breakdown", ""]
        parts.append(_breakdown_markdown(result.breakdown, "snr_db", "By input SNR (dB)"))
        parts.append(_breakdown_markdown(result.breakdown, "noise_category", "By noise category"))
    failed = [row for row in result.rows if not row.ok]
    if failed:
        parts += ["## Failed files", ""]
        for row in failed[:MAX_LISTED_FAILURES]:
            parts.append(f"- {row.system} / {row.pair.name}: {row.error}")
        if len(failed) > MAX_LISTED_FAILURES:
            parts.append(f"- … {len(failed) - MAX_LISTED_FAILURES} more in per_file.csv")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def per_file_csv(result: EvaluationResult) -> str:
    columns = ["system", "file", "snr_db", "noise_category", "duration_s", *result.metrics, "rtf", "status", "error"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in result.rows:
        values = [row.metrics.get(m) for m in result.metrics]
        writer.writerow([
            row.system,
            row.pair.name,
            "" if row.pair.snr_db is None else f"{row.pair.snr_db:g}",
            row.pair.noise_category or "",
            f"{row.duration_s:.3f}",
            *("" if v is None else f"{v:.6g}" for v in values),
            "" if row.rtf is None else f"{row.rtf:.6g}",
            "ok" if row.ok else "failed",
            row.error or "",
        ])
    return buffer.getvalue()


def breakdown_csv(rows: list[dict], metrics: Sequence[str] = METRICS) -> str:
    columns = ["group_by", "group", "system", *metrics, "rtf", "n_files", "n_failed"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k])) for k in columns})
    return buffer.getvalue()


def plot(summary: dict[str, dict], path: str | Path, metrics: Sequence[str] = METRICS) -> Path:
    """Bar chart of every metric, one panel each, systems side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = list(metrics) + ["rtf"]
    names = list(summary)
    cols = 4
    rows = -(-len(panels) // cols)
    figure = Figure(figsize=(4 * cols, rows * 3.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    colors = [f"C{i % 10}" for i in range(len(names))]
    for ax, metric in zip(axes.flat, panels):
        values = [summary[name][metric] for name in names]
        heights = [0.0 if v is None else v for v in values]
        bars = ax.bar(range(len(names)), heights, color=colors)
        for bar, value in zip(bars, values):
            ax.annotate(_fmt(value, 2 if metric != "rtf" else 3), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        ax.set_title(LABELS[metric] + (" (lower is better)" if metric == "rtf" else ""), fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.axhline(0, color="black", linewidth=0.5)
    figure.suptitle("Systems compared (means over scored files)", fontsize=11)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))


def write_report(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write every report file (atomically) and return their paths by kind."""
    out_dir = Path(out_dir)
    files = {
        "per_file": atomic_write_text(out_dir / "per_file.csv", per_file_csv(result)),
        "metrics": atomic_write_json(out_dir / "metrics.json", {"systems": result.summary, **({"skipped": list(result.skipped)} if result.skipped else {})}),
        "report": atomic_write_text(out_dir / "report.md", render_markdown(result)),
        "plot": plot(result.summary, out_dir / "comparison.png", result.metrics),
    }
    stale = out_dir / "breakdown.csv"
    if result.breakdown:
        files["breakdown"] = atomic_write_text(stale, breakdown_csv(result.breakdown, result.metrics))
    elif stale.is_file():  # from an earlier run on other data: it would contradict this report
        stale.unlink()
    return files
