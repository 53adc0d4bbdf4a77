"""The evaluation run: find clean/noisy pairs, enhance with every system, score, aggregate.

Two phases, on purpose. Enhancement runs first, sequentially in this process, with torch
limited to one thread and nothing else running, so each system's real-time factor is honest
(model loading excluded, one warm-up call first). Scoring follows in a process pool, since
PESQ, STOI and DNSMOS are CPU-bound and independent per file. Enhanced audio waits in a scratch
folder in between so memory stays flat on large test sets.
"""
from __future__ import annotations

import csv
import math
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import audio as audio_io
from ..errors import SpecdenoiseError

EVAL_RATE = 16000  # PESQ-WB and DNSMOS are defined at 16 kHz; every system is scored there
METRICS = ("pesq_wb", "stoi", "estoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
SNR_BUCKETS = ((-math.inf, 0.0, "<0"), (0.0, 5.0, "0-5"), (5.0, 10.0, "5-10"), (10.0, 15.0, "10-15"), (15.0, math.inf, ">=15"))
VOICEBANK_DIRS = ("noisy_testset_wav", "clean_testset_wav")
META_COLUMNS = ("clip", "snr_db", "noise_category")
WARMUP_SECONDS = 2.0


@dataclass(frozen=True)
class Pair:
    """One test item: a noisy file, its clean reference, and synth metadata when known."""

    name: str
    noisy: Path
    clean: Path
    snr_db: float | None = None
    noise_category: str | None = None


@dataclass
class Dataset:
    root: Path
    layout: str  # "noisy-clean", "synth" (with meta.csv) or "voicebank-demand"
    pairs: list[Pair]

    @property
    def has_meta(self) -> bool:
        return self.layout == "synth"


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


# --------------------------------------------------------------------------- data discovery


def _audio_files(folder: Path) -> dict[str, Path]:
    """Audio files of a folder keyed by stem (so a.wav pairs with a.flac); hidden files skipped."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or not audio_io.is_audio_file(path):
            continue
        if path.stem in found:
            raise SpecdenoiseError(f"{folder}: two audio files share the name {path.stem!r} ({found[path.stem].name}, {path.name})")
        found[path.stem] = path
    return found


def _preview(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def _read_meta(path: Path) -> dict[str, tuple[float | None, str | None]]:
    """``meta.csv`` of a synth split: clip -> (snr_db, noise_category), keyed by name and stem."""
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in META_COLUMNS if c not in columns]
            if missing:
                raise SpecdenoiseError(f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(META_COLUMNS)})")
            meta = {}
            for line, record in enumerate(reader, start=2):
                clip = (record.get("clip") or "").strip()
                if not clip:
                    continue
                text = (record.get("snr_db") or "").strip()
                try:
                    snr = float(text) if text else None
                except ValueError:
                    raise SpecdenoiseError(f"{path}, line {line}: snr_db is not a number: {text!r}") from None
                category = (record.get("noise_category") or "").strip() or None
                meta[clip] = (snr, category)
                meta.setdefault(Path(clip).stem, (snr, category))
            return meta
    except OSError as exc:
        raise SpecdenoiseError(f"{path}: cannot read ({exc.strerror or exc})") from None


def discover(data: str | Path, limit: int | None = None) -> Dataset:
    """Find clean/noisy pairs in ``data``; the three supported layouts are tried in turn.

    Raises :class:`SpecdenoiseError` for a missing folder, an unknown layout, no audio, or
    names that do not match one to one (a silent partial match would bias the averages).
    """
    root = Path(data)
    if not root.exists():
        raise SpecdenoiseError(f"data folder not found: {root}")
    if not root.is_dir():
        raise SpecdenoiseError(f"data must be a folder with noisy/ and clean/ subfolders: {root}")
    if (root / "noisy").is_dir() and (root / "clean").is_dir():
        noisy_dir, clean_dir = root / "noisy", root / "clean"
        layout = "synth" if (root / "meta.csv").is_file() else "noisy-clean"
    elif all((root / d).is_dir() for d in VOICEBANK_DIRS):
        noisy_dir, clean_dir = root / VOICEBANK_DIRS[0], root / VOICEBANK_DIRS[1]
        layout = "voicebank-demand"
    else:
        splits = [p.name for p in sorted(root.iterdir()) if p.is_dir() and (p / "noisy").is_dir() and (p / "clean").is_dir()]
        hint = f"; it looks like a corpus root: pass one split, e.g. {root / splits[0]}" if splits else ""
        raise SpecdenoiseError(
            f"{root}: expected noisy/ and clean/ subfolders (or VoiceBank-DEMAND's {VOICEBANK_DIRS[0]}/ and {VOICEBANK_DIRS[1]}/){hint}"
        )
    noisy, clean = _audio_files(noisy_dir), _audio_files(clean_dir)
    if not noisy and not clean:
        raise SpecdenoiseError(f"{root}: no audio files in {noisy_dir.name}/ or {clean_dir.name}/")
    only_noisy, only_clean = sorted(set(noisy) - set(clean)), sorted(set(clean) - set(noisy))
    if only_noisy or only_clean:
        parts = []
        if only_noisy:
            parts.append(f"{len(only_noisy)} only in {noisy_dir.name}/ ({_preview(only_noisy)})")
        if only_clean:
            parts.append(f"{len(only_clean)} only in {clean_dir.name}/ ({_preview(only_clean)})")
        raise SpecdenoiseError(f"{root}: {noisy_dir.name}/ and {clean_dir.name}/ must hold the same file names: " + "; ".join(parts))
    meta = _read_meta(root / "meta.csv") if layout == "synth" else {}
    pairs = []
    for stem in sorted(noisy):
        snr, category = meta.get(noisy[stem].name, meta.get(stem, (None, None)))
        pairs.append(Pair(stem, noisy[stem], clean[stem], snr, category))
    if limit is not None:
        if limit < 1:
            raise SpecdenoiseError(f"--limit must be at least 1, got {limit}")
        pairs = pairs[:limit]
    return Dataset(root, layout, pairs)


def snr_bucket(snr_db: float | None) -> str | None:
    if snr_db is None or not math.isfinite(snr_db):
        return None
    for low, high, label in SNR_BUCKETS:
        if low <= snr_db < high:
            return label
    return None


# --------------------------------------------------------------------------- scoring (workers)


def score(clean: np.ndarray, estimate: np.ndarray, sample_rate: int = EVAL_RATE) -> dict[str, float]:
    """All per-file metrics of one estimate; raises on the first metric that cannot be computed."""
    from .. import metrics

    def guarded(name, fn, *args, **kwargs):
        try:
            value = float(fn(*args, **kwargs))
        except Exception as exc:
            raise ValueError(f"{name}: {str(exc).strip() or type(exc).__name__}") from None
        if not math.isfinite(value):
            raise ValueError(f"{name}: not a finite number ({value})")
        return value

    result = {
        "pesq_wb": guarded("pesq_wb", metrics.pesq_wb, clean, estimate, sample_rate),
        "stoi": guarded("stoi", metrics.stoi, clean, estimate, sample_rate),
        "estoi": guarded("estoi", metrics.stoi, clean, estimate, sample_rate, extended=True),
        "si_sdr": guarded("si_sdr", metrics.si_sdr, clean, estimate),
    }
    try:
        mos = metrics.dnsmos(estimate, sample_rate)
    except Exception as exc:
        raise ValueError(f"dnsmos: {str(exc).strip() or type(exc).__name__}") from None
    result.update(dnsmos_sig=mos["sig"], dnsmos_bak=mos["bak"], dnsmos_ovrl=mos["ovrl"])
    return result


def _score_file(clean_path: str, estimates: list[tuple[str, str]]) -> list[tuple[str, dict | None, str | None]]:
    """Worker task: read the clean reference once, score each system's saved estimate."""
    out = []
    try:
        clean, _ = audio_io.read(clean_path, sample_rate=EVAL_RATE)
    except Exception as exc:
        return [(system, None, f"clean reference: {exc}") for system, _ in estimates]
    for system, npy in estimates:
        try:
            estimate = np.load(npy)
            out.append((system, score(clean, estimate), None))
        except Exception as exc:
            out.append((system, None, str(exc).strip() or type(exc).__name__))
    return out


# --------------------------------------------------------------------------- the run


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


class _TorchThreads:
    """Limit torch to one thread while timing, if torch is loaded, and restore afterwards."""

    def __enter__(self):
        self._torch = sys.modules.get("torch")
        if self._torch is not None:
            self._saved = self._torch.get_num_threads()
            self._torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self._torch is not None:
            self._torch.set_num_threads(self._saved)
        return False


def _check_output(output, length: int) -> np.ndarray:
    output = np.asarray(output, dtype=np.float32)
    if output.ndim != 1:
        output = output.reshape(-1) if output.size == length else output
    if output.ndim != 1 or len(output) != length:
        raise ValueError(f"output has shape {output.shape}, expected ({length},)")
    if not np.isfinite(output).all():
        raise ValueError("output contains NaN or Inf")
    return output


def _call(system, audio: np.ndarray) -> tuple[np.ndarray, float]:
    """Untimed ``prepare()`` (if any), then the timed enhancement call."""
    prepare = getattr(system, "prepare", None)
    if prepare is not None:
        prepare()
    start = time.perf_counter()
    output = system(audio, EVAL_RATE)
    return output, time.perf_counter() - start


def evaluate(
    data: str | Path | Dataset,
    systems: Sequence[tuple[str, Callable[[np.ndarray, int], np.ndarray]]],
    out_dir: str | Path,
    limit: int | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate ``systems`` (``(name, callable)`` pairs) on ``data`` and write the report.

    ``data`` is a folder (see :func:`discover`) or an already discovered :class:`Dataset`.

    Returns the result; writes ``per_file.csv``, ``metrics.json``, ``report.md``,
    ``comparison.png`` (and ``breakdown.csv`` when the data has metadata) into ``out_dir``.
    """
    from . import report

    log = log or (lambda message: None)
    dataset = data if isinstance(data, Dataset) else discover(data, limit)
    if limit is not None and isinstance(data, Dataset):
        dataset = Dataset(dataset.root, dataset.layout, dataset.pairs[:limit])
    if not systems:
        raise SpecdenoiseError("nothing to evaluate: no systems given")
    names = [name for name, _ in systems]
    if len(set(names)) != len(names):
        raise SpecdenoiseError(f"system names must be unique, got {names}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise SpecdenoiseError(f"--workers must be at least 1, got {workers}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SpecdenoiseError(f"report folder is a file: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)

    log(f"{len(dataset.pairs)} files ({dataset.layout} layout), systems: {', '.join(names)}")
    scratch = Path(tempfile.mkdtemp(prefix=".evaluate-", dir=out_dir))
    try:
        start = time.perf_counter()
        rows = _enhance_all(dataset, systems, scratch, log)
        log(f"enhancement done in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        _score_all(rows, scratch, workers, log)
        log(f"scoring done in {time.perf_counter() - start:.1f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    summary = report.summarize(rows, names)
    breakdown = report.breakdown(rows, names) if dataset.has_meta else []
    result = EvaluationResult(dataset, names, rows, summary, breakdown)
    result.files = report.write_report(result, out_dir)
    return result


def _enhance_all(dataset: Dataset, systems, scratch: Path, log) -> list[Row]:
    """Phase 1: every system on every file, sequential and timed; outputs saved as .npy."""
    pairs = dataset.pairs
    try:
        first, _ = audio_io.read(pairs[0].noisy, sample_rate=EVAL_RATE)
    except SpecdenoiseError:  # reported with its file below; warm up on quiet noise instead
        first = (0.01 * np.random.default_rng(0).standard_normal(int(WARMUP_SECONDS * EVAL_RATE))).astype(np.float32)
    warmup = np.ascontiguousarray(first[: int(WARMUP_SECONDS * EVAL_RATE)])
    rows: list[Row] = []
    with _TorchThreads():
        for name, system in systems:
            try:  # the first call pays for lazy initialisation, caches, JIT: keep it out of the RTF
                _check_output(_call(system, warmup)[0], len(warmup))
            except Exception as exc:
                raise SpecdenoiseError(f"system {name!r} failed on its warm-up call: {str(exc).strip() or type(exc).__name__}") from None
        for index, pair in enumerate(pairs):
            try:
                noisy, _ = audio_io.read(pair.noisy, sample_rate=EVAL_RATE)
                clean_frames = len(audio_io.read(pair.clean, sample_rate=EVAL_RATE)[0])
            except SpecdenoiseError as exc:
                rows.extend(Row(name, pair, 0.0, error=f"input: {exc}") for name, _ in systems)
                continue
            duration = len(noisy) / EVAL_RATE
            if clean_frames != len(noisy):
                reason = f"clean and noisy lengths differ ({clean_frames} vs {len(noisy)} samples at {EVAL_RATE} Hz)"
                rows.extend(Row(name, pair, duration, error=reason) for name, _ in systems)
                continue
            for slot, (name, system) in enumerate(systems):
                row = Row(name, pair, duration)
                try:
                    output, row.seconds = _call(system, noisy)
                    np.save(scratch / f"{index}_{slot}.npy", _check_output(output, len(noisy)))
                except Exception as exc:
                    row.error = f"enhancement: {str(exc).strip() or type(exc).__name__}"
                rows.append(row)
            if (index + 1) % 25 == 0 or index + 1 == len(pairs):
                log(f"enhanced {index + 1}/{len(pairs)} files")
    return rows


def _score_all(rows: list[Row], scratch: Path, workers: int, log) -> None:
    """Phase 2: metrics per file in a process pool (spawned, so no torch state is forked)."""
    pair_index = {}
    for row in rows:
        pair_index.setdefault(row.pair, len(pair_index))
    slots = {}
    for row in rows:
        slots.setdefault(row.system, len(slots))
    tasks: dict[Pair, list[tuple[str, str]]] = {}
    for row in rows:
        if row.ok:
            npy = scratch / f"{pair_index[row.pair]}_{slots[row.system]}.npy"
            tasks.setdefault(row.pair, []).append((row.system, str(npy)))
    by_key = {(row.system, row.pair): row for row in rows}

    def collect(pair: Pair, results) -> None:
        for system, values, error in results:
            row = by_key[(system, pair)]
            if error is not None:
                row.error = error
            else:
                row.metrics = values

    if not tasks:
        return
    log(f"scoring {sum(len(v) for v in tasks.values())} outputs with {workers} worker(s)")
    if workers == 1:
        for pair, estimates in tasks.items():
            collect(pair, _score_file(str(pair.clean), estimates))
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        futures = {pair: pool.submit(_score_file, str(pair.clean), estimates) for pair, estimates in tasks.items()}
        for pair, future in futures.items():
            try:
                collect(pair, future.result())
            except Exception as exc:  # a crashed worker: fail its files, never guess values
                for system, _ in tasks[pair]:
                    by_key[(system, pair)].error = f"scoring: {str(exc).strip() or type(exc).__name__}"
