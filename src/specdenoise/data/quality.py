"""Keep noisy "clean" speech out of the training targets, judged by DNSMOS P.835.

Why: a denoiser learns to reproduce whatever its targets contain. Several speech sources here
are home or crowd-sourced recordings (VoxForge, Speech Commands, spoken digits) whose own
background noise DNSMOS hears (BAK about 3.5 against about 4.0 for LibriSpeech), so with them
as targets the model is taught to leave some noise in. The DNS Challenge built its clean set the
same way: score every clean clip with a non-intrusive MOS and drop the low ones.

Scores are cached per file (path, size, modification time) in a TSV under the cache folder,
so only new or changed files are scored again. Only the training split is filtered: validation
and test keep their references, so numbers stay comparable with earlier runs.
"""
from __future__ import annotations

import csv
import io
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..fileio import atomic_write_text
from .sources import SourceFile

log = logging.getLogger(__name__)
CACHE_NAME = "speech_dnsmos.tsv"
FIELDS = ("path", "size", "mtime_ns", "sig", "bak", "ovrl")


@dataclass(frozen=True)
class SpeechQuality:
    sig: float
    bak: float
    ovrl: float


def _key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _read_cache(cache: Path) -> dict[tuple[str, int, int], SpeechQuality]:
    if not cache.exists():
        return {}
    with cache.open(newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        return {(r["path"], int(r["size"]), int(r["mtime_ns"])): SpeechQuality(float(r["sig"]), float(r["bak"]), float(r["ovrl"]))
                for r in rows}


def _write_cache(cache: Path, scores: dict[tuple[str, int, int], SpeechQuality]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(FIELDS)
    for (path, size, mtime), q in sorted(scores.items()):
        writer.writerow([path, size, mtime, f"{q.sig:.4f}", f"{q.bak:.4f}", f"{q.ovrl:.4f}"])
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, buf.getvalue())


def _score_file(path: str) -> SpeechQuality:
    from .. import audio
    from ..metrics import DNSMOS_RATE, dnsmos

    data, _ = audio.read(path, sample_rate=DNSMOS_RATE, mono=True)
    d = dnsmos(data, DNSMOS_RATE)
    # rounded as the cache stores them, so a fresh score equals its cached copy
    return SpeechQuality(round(d["sig"], 4), round(d["bak"], 4), round(d["ovrl"], 4))


def score_speech(files: list[SourceFile], cache_dir: Path, workers: int = 2) -> dict[Path, SpeechQuality]:
    """DNSMOS of every file in ``files``, from the cache where it holds the same file."""
    cache = cache_dir / CACHE_NAME
    known = _read_cache(cache)
    keys = {f.path: _key(f.path) for f in files}
    todo = sorted({k for k in keys.values() if k not in known})
    if todo:
        log.info("scoring %d speech files with DNSMOS (cached in %s)", len(todo), cache)
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(_score_file, [k[0] for k in todo], chunksize=4))
        else:
            results = [_score_file(k[0]) for k in todo]
        known.update(zip(todo, results))
        _write_cache(cache, known)
    return {path: known[key] for path, key in keys.items()}


def filter_speech(files: list[SourceFile], scores: dict[Path, SpeechQuality],
                  min_bak: float = 0.0, min_sig: float = 0.0) -> tuple[list[SourceFile], list[SourceFile]]:
    """Split ``files`` into (kept, dropped) by the DNSMOS floors (0 = no floor)."""
    kept, dropped = [], []
    for f in files:
        q = scores[f.path]
        (kept if q.bak >= min_bak and q.sig >= min_sig else dropped).append(f)
    return kept, dropped


def keep_clean_speech(files: list[SourceFile], min_bak: float, min_sig: float, cache_dir: Path,
                      workers: int = 2) -> list[SourceFile]:
    """``files`` without those DNSMOS scores below the floors; logs what was dropped."""
    if min_bak <= 0 and min_sig <= 0:
        return files
    kept, dropped = filter_speech(files, score_speech(files, cache_dir, workers), min_bak, min_sig)
    minutes = lambda fs: sum(f.duration for f in fs) / 60  # noqa: E731
    log.info("speech quality floor (DNSMOS BAK >= %.2f, SIG >= %.2f): kept %d files (%.1f min), dropped %d (%.1f min)",
             min_bak, min_sig, len(kept), minutes(kept), len(dropped), minutes(dropped))
    return kept
