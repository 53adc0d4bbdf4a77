"""The evaluation's data types and constants, shared by discovery, the run and the report.

Kept apart so ``report`` and ``evaluate`` both import from here and not from each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

EVAL_RATE = 16000  # PESQ-WB and DNSMOS are defined at 16 kHz; every system is scored there
INTRUSIVE = ("pesq_wb", "stoi", "estoi", "si_sdr")  # need the clean reference
NON_INTRUSIVE = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")  # score the estimate alone
P808 = "dnsmos_p808"  # DNSMOS P.808 (overall MOS), scored with --no-reference
METRICS = INTRUSIVE + NON_INTRUSIVE
NO_REFERENCE_METRICS = NON_INTRUSIVE + (P808,)
SNR_BUCKETS = ((-math.inf, 0.0, "<0"), (0.0, 5.0, "0-5"), (5.0, 10.0, "5-10"), (10.0, 15.0, "10-15"), (15.0, math.inf, ">=15"))


@dataclass(frozen=True)
class Pair:
    """One test item: a noisy file, its clean reference (None without one), metadata when known."""

    name: str
    noisy: Path
    clean: Path | None
    snr_db: float | None = None
    noise_category: str | None = None


@dataclass
class Dataset:
    root: Path
    layout: str  # "noisy-clean", "synth" (with meta.csv), "voicebank-demand" or "no-reference"
    pairs: list[Pair]
    warnings: list[str] = field(default_factory=list)  # one line each: what was adapted or ignored

    @property
    def has_meta(self) -> bool:
        return any(p.snr_db is not None or p.noise_category is not None for p in self.pairs)

    @property
    def has_reference(self) -> bool:
        return self.layout != "no-reference"


@dataclass
class Row:
    """Result for one (system, file); ``error`` set means it is excluded from every mean."""

    system: str
    pair: Pair
    duration_s: float
    seconds: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def rtf(self) -> float | None:
        return None if self.seconds is None or self.duration_s <= 0 else self.seconds / self.duration_s


@dataclass
class EvaluationResult:
    dataset: Dataset
    systems: list[str]
    rows: list[Row]
    summary: dict[str, dict]  # the "systems" object of metrics.json
    breakdown: list[dict]  # rows of breakdown.csv (empty without metadata)
    files: dict[str, Path] = field(default_factory=dict)
    metrics: tuple[str, ...] = METRICS  # the metrics scored, in column order
    skipped: tuple[str, ...] = ()  # metrics left out (they need a reference, or their model is missing)

    @property
    def n_failed(self) -> int:
        return sum(1 for row in self.rows if not row.ok)


def snr_bucket(snr_db: float | None) -> str | None:
    if snr_db is None or not math.isfinite(snr_db):
        return None
    for low, high, label in SNR_BUCKETS:
        if low <= snr_db < high:
            return label
    return None
