"""Keep noisy "clean" speech out of the training targets, judged by DNSMOS P.835.

Why: a denoiser learns to reproduce whatever its targets contain. Several speech sources here
are home or crowd-sourced recordings (VoxForge, Speech Commands, spoken digits) whose own
background noise DNSMOS hears (BAK about 3.5 against about 4.0 for LibriSpeech), so with them
as targets the model is taught to leave some noise in. The DNS Challenge built its clean set the
same way: score every clean clip with a non-intrusive MOS and drop the low ones.

Scores are cached by file *content* (a SHA-256 of the bytes) in a TSV under the cache folder, so
only new or changed files are scored again. Not by path and modification time: a data folder that
is copied, re-synced or moved keeps its scores (measured on the 670 training files: rescoring took
3.5 minutes of DNSMOS on two cores, hashing them 0.2 s). Only the training split is filtered: validation
and test keep their references, so numbers stay comparable with earlier runs.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..fileio import atomic_write_text
from .sources import SourceFile

log = logging.getLogger(__name__)
CACHE_NAME = "speech_dnsmos_by_content.tsv"  # (the earlier speech_dnsmos.tsv, keyed by path and mtime, is not read)
FIELDS = ("sha256", "path", "sig", "bak", "ovrl")


@dataclass(frozen=True)
class SpeechQuality:
    sig: float
    bak: float
    ovrl: float


def content_digest(path: Path) -> str:
    """SHA-256 of the file's bytes: the cache key, the same wherever the file lies."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_cache(cache: Path) -> dict[str, tuple[str, SpeechQuality]]:
    """``{sha256: (path it was scored under, scores)}``."""
    if not cache.exists():
        return {}
    with cache.open(newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        return {r["sha256"]: (r["path"], SpeechQuality(float(r["sig"]), float(r["bak"]), float(r["ovrl"])))
                for r in rows}


def _write_cache(cache: Path, scores: dict[str, tuple[str, SpeechQuality]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(FIELDS)
    for digest, (path, q) in sorted(scores.items(), key=lambda item: item[1][0]):
        writer.writerow([digest, path, f"{q.sig:.4f}", f"{q.bak:.4f}", f"{q.ovrl:.4f}"])
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
    keys = {f.path: content_digest(f.path) for f in files}
    todo = {}  # digest -> one path holding that content
    for path, digest in keys.items():
        if digest not in known:
            todo.setdefault(digest, str(path.resolve()))
    if todo:
        log.info("scoring %d speech files with DNSMOS (cached in %s)", len(todo), cache)
        paths = list(todo.values())
        if workers > 1 and len(paths) > 1:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(_score_file, paths, chunksize=4))
        else:
            results = [_score_file(path) for path in paths]
        known.update({digest: (path, q) for (digest, path), q in zip(todo.items(), results)})
        _write_cache(cache, known)
    return {path: known[digest][1] for path, digest in keys.items()}


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
