"""The evaluation run: find clean/noisy pairs, enhance with every system, score, aggregate.

Two phases, on purpose. Enhancement runs first, sequentially in this process, with torch
limited to one thread and nothing else running, so each system's real-time factor is honest
(model loading excluded, one warm-up call first). Scoring follows in a process pool, since
PESQ, STOI and DNSMOS are CPU-bound and independent per file. Enhanced audio waits in a scratch
folder in between so memory stays flat on large test sets.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import audio as audio_io
from ..errors import SpecdenoiseError, message
from ..threads import torch_threads
from . import report
from .data import EVAL_RATE, INTRUSIVE, METRICS, NO_REFERENCE_METRICS, NON_INTRUSIVE, P808, Dataset, EvaluationResult, Pair, Row
from .discover import LENGTH_TOLERANCE_S, discover

WARMUP_SECONDS = 2.0


# --------------------------------------------------------------------------- scoring (workers)


def _guarded(name: str, fn, *args, **kwargs) -> float:
    try:
        value = float(fn(*args, **kwargs))
    except Exception as exc:
        raise ValueError(f"{name}: {message(exc)}") from None
    if not np.isfinite(value):
        raise ValueError(f"{name}: not a finite number ({value})")
    return value


def score(clean: np.ndarray | None, estimate: np.ndarray, sample_rate: int = EVAL_RATE, p808: bool = False) -> dict[str, float]:
    """All per-file metrics of one estimate; raises on the first metric that cannot be computed.

    Without a reference (``clean=None``) only the non-intrusive DNSMOS scores are computed.
    """
    from .. import metrics

    result = {}
    if clean is not None:
        result = {
            "pesq_wb": _guarded("pesq_wb", metrics.pesq_wb, clean, estimate, sample_rate),
            "stoi": _guarded("stoi", metrics.stoi, clean, estimate, sample_rate),
            "estoi": _guarded("estoi", metrics.stoi, clean, estimate, sample_rate, extended=True),
            "si_sdr": _guarded("si_sdr", metrics.si_sdr, clean, estimate),
        }
    try:
        mos = metrics.dnsmos(estimate, sample_rate, p808=p808)
    except Exception as exc:
        raise ValueError(f"dnsmos: {message(exc)}") from None
    result.update(dnsmos_sig=mos["sig"], dnsmos_bak=mos["bak"], dnsmos_ovrl=mos["ovrl"])
    if p808:
        result[P808] = mos["p808"]
    return result


def _score_file(clean_path: str | None, estimates: list[tuple[str, str]], p808: bool = False) -> list[tuple[str, dict | None, str | None]]:
    """Worker task: read the clean reference once (if any), score each system's saved estimate."""
    out = []
    clean = None
    if clean_path is not None:
        try:
            clean, _ = audio_io.read(clean_path, sample_rate=EVAL_RATE)
        except Exception as exc:
            return [(system, None, f"clean reference: {exc}") for system, _ in estimates]
    for system, npy in estimates:
        try:
            estimate = np.load(npy)
            reference = None if clean is None else clean[: len(estimate)]  # trimmed like the noisy input
            out.append((system, score(reference, estimate, p808=p808), None))
        except Exception as exc:
            out.append((system, None, message(exc)))
    return out


# --------------------------------------------------------------------------- the run


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _one_torch_thread():
    """One torch thread while timing, if torch is loaded (never imported just for this)."""
    return torch_threads(1 if "torch" in sys.modules else None)


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


def _progress(total: int, desc: str, enabled: bool):
    """A progress bar on stderr (tqdm); ``enabled=None`` shows it only on a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, disable=None if enabled else True, leave=False, dynamic_ncols=True)


def p808_available() -> bool:
    """Whether the DNSMOS P.808 model ships with the installed speechmos."""
    from .. import metrics

    try:
        metrics.dnsmos_model_path("p808")
    except SpecdenoiseError:
        return False
    return True


def evaluate(
    data: str | Path | Dataset,
    systems: Sequence[tuple[str, Callable[[np.ndarray, int], np.ndarray]]],
    out_dir: str | Path,
    limit: int | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate ``systems`` (``(name, callable)`` pairs) on ``data`` and write the report.

    ``data`` is a folder (see :func:`discover`) or an already discovered :class:`Dataset`
    (:func:`discover_noisy` gives one without references: only non-intrusive metrics are scored).
    ``progress`` shows bars on stderr when it is a terminal.

    Returns the result; writes ``per_file.csv``, ``metrics.json``, ``report.md``,
    ``comparison.png`` (and ``breakdown.csv`` when the data has metadata) into ``out_dir``.
    Files that fail are counted and listed, never averaged in; ``result.n_failed`` counts them.
    """
    log = log or (lambda message: None)
    dataset = data if isinstance(data, Dataset) else discover(data, limit)
    if limit is not None and isinstance(data, Dataset):
        dataset = Dataset(dataset.root, dataset.layout, dataset.pairs[:limit], dataset.warnings)
    if not systems:
        raise SpecdenoiseError("nothing to evaluate: no systems given")
    names = [name for name, _ in systems]
    if len(set(names)) != len(names):
        raise SpecdenoiseError(f"system names must be unique, got {names}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise SpecdenoiseError(f"--workers must be at least 1, got {workers}")
    metrics, skipped = _metrics_for(dataset)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SpecdenoiseError(f"report folder is a file: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)

    log(f"{len(dataset.pairs)} files ({dataset.layout} layout), systems: {', '.join(names)}")
    for warning in dataset.warnings:
        log(f"warning: {warning}")
    scratch = Path(tempfile.mkdtemp(prefix=".evaluate-", dir=out_dir))
    try:
        start = time.perf_counter()
        rows = _enhance_all(dataset, systems, scratch, log, progress)
        log(f"enhancement done in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        _score_all(rows, scratch, workers, log, progress, p808=P808 in metrics)
        log(f"scoring done in {time.perf_counter() - start:.1f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    summary = report.summarize(rows, names, metrics)
    breakdown = report.breakdown(rows, names, metrics) if dataset.has_meta else []
    result = EvaluationResult(dataset, names, rows, summary, breakdown, metrics=metrics, skipped=skipped)
    result.files = report.write_report(result, out_dir)
    return result


def _metrics_for(dataset: Dataset) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The metrics this data can be scored with, and those skipped: without references only the
    non-intrusive DNSMOS (with P.808 when its model is installed)."""
    if dataset.has_reference:
        return METRICS, ()
    with_p808 = p808_available()
    return (NO_REFERENCE_METRICS if with_p808 else NON_INTRUSIVE), INTRUSIVE + (() if with_p808 else (P808,))


def _read_inputs(pair: Pair) -> np.ndarray:
    """The noisy input at 16 kHz, trimmed to its reference's length when they differ slightly
    (discovery refused larger differences; this re-checks after decoding)."""
    noisy, _ = audio_io.read(pair.noisy, sample_rate=EVAL_RATE)
    if pair.clean is None:
        return noisy
    clean_frames = len(audio_io.read(pair.clean, sample_rate=EVAL_RATE)[0])
    if abs(clean_frames - len(noisy)) > LENGTH_TOLERANCE_S * EVAL_RATE:
        raise SpecdenoiseError(f"{pair.noisy}: clean and noisy lengths differ ({clean_frames} vs {len(noisy)} samples at {EVAL_RATE} Hz)")
    return noisy[: min(clean_frames, len(noisy))]


def _enhance_all(dataset: Dataset, systems, scratch: Path, log, progress: bool = False) -> list[Row]:
    """Phase 1: every system on every file, sequential and timed; outputs saved as .npy."""
    pairs = dataset.pairs
    try:
        first, _ = audio_io.read(pairs[0].noisy, sample_rate=EVAL_RATE)
    except SpecdenoiseError:  # reported with its file below; warm up on quiet noise instead
        first = (0.01 * np.random.default_rng(0).standard_normal(int(WARMUP_SECONDS * EVAL_RATE))).astype(np.float32)
    warmup = np.ascontiguousarray(first[: int(WARMUP_SECONDS * EVAL_RATE)])
    rows: list[Row] = []
    with _one_torch_thread():
        for name, system in systems:
            try:  # the first call pays for lazy initialisation, caches, JIT: keep it out of the RTF
                _check_output(_call(system, warmup)[0], len(warmup))
            except Exception as exc:
                raise SpecdenoiseError(f"system {name!r} failed on its warm-up call: {message(exc)}") from None
        with _progress(len(pairs), "enhancing", progress) as bar:
            for index, pair in enumerate(pairs):
                bar.update(1)
                try:
                    noisy = _read_inputs(pair)
                except SpecdenoiseError as exc:
                    rows.extend(Row(name, pair, 0.0, error=f"input: {exc}") for name, _ in systems)
                    continue
                duration = len(noisy) / EVAL_RATE
                for slot, (name, system) in enumerate(systems):
                    row = Row(name, pair, duration)
                    try:
                        output, row.seconds = _call(system, noisy)
                        np.save(scratch / f"{index}_{slot}.npy", _check_output(output, len(noisy)))
                    except Exception as exc:
                        row.error = f"enhancement: {message(exc)}"
                    rows.append(row)
                if bar.disable and ((index + 1) % 25 == 0 or index + 1 == len(pairs)):  # the bar says it otherwise
                    log(f"enhanced {index + 1}/{len(pairs)} files")
    return rows


def _score_all(rows: list[Row], scratch: Path, workers: int, log, progress: bool = False, p808: bool = False) -> None:
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
    clean = {pair: (None if pair.clean is None else str(pair.clean)) for pair in tasks}
    with _progress(len(tasks), "scoring", progress) as bar:
        done = [0]

        def tick() -> None:
            bar.update(1)
            done[0] += 1
            if bar.disable and (done[0] % 25 == 0 or done[0] == len(tasks)):  # the bar says it otherwise
                log(f"scored {done[0]}/{len(tasks)} files")

        if workers == 1:
            for pair, estimates in tasks.items():
                collect(pair, _score_file(clean[pair], estimates, p808))
                tick()
            return
        import multiprocessing
        from concurrent.futures import as_completed

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
            futures = {pool.submit(_score_file, clean[pair], estimates, p808): pair for pair, estimates in tasks.items()}
            for future in as_completed(futures):
                pair = futures[future]
                tick()
                try:
                    collect(pair, future.result())
                except Exception as exc:  # a crashed worker: fail its files, never guess values
                    for system, _ in tasks[pair]:
                        by_key[(system, pair)].error = f"scoring: {message(exc)}"
