"""Find what to evaluate in a user's folder: clean/noisy pairs, their metadata, or lone recordings.

Users bring their own folders, so discovery adapts where it safely can and says so in one line
per adaptation (``Dataset.warnings``, shown by the CLI and in report.md): a ``meta.csv`` from
another tool is used for what it holds under common column names; pairs stored at different
sample rates are resampled; pairs that differ in length by a few milliseconds are trimmed. What it
cannot adapt (names that don't match one to one, a pair whose lengths are far apart) is refused
with one line naming the file, before any model is loaded.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from .. import audio as audio_io
from ..errors import SpecdenoiseError
from .data import EVAL_RATE, Dataset, Pair

VOICEBANK_DIRS = ("noisy_testset_wav", "clean_testset_wav")
META_COLUMNS = ("clip", "snr_db", "noise_category")  # what `specdenoise synth` writes
# Other tools' names for the same things (compared case-insensitively), in order of preference.
NAME_COLUMNS = ("clip", "file", "filename", "file_name", "fname", "name", "noisy", "noisy_file", "noisy_path", "path", "utterance", "utt", "id")
SNR_COLUMNS = ("snr_db", "snr", "snr_level", "input_snr", "snr(db)")
CATEGORY_COLUMNS = ("noise_category", "category", "noise_type", "noise_class", "noise_label", "condition")
LENGTH_TOLERANCE_S = 0.05  # pairs closer than this are trimmed to the shorter (codec padding, rounding)


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


def _pick(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    lowered = {c.strip().lower(): c for c in columns}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    return None


def read_meta(path: Path) -> tuple[dict[str, tuple[float | None, str | None]], str | None]:
    """``meta.csv`` -> ({clip name or stem: (snr_db, noise_category)}, one-line note or None).

    ``specdenoise synth``'s own columns are read silently; another tool's file is read for a
    file-name column and SNR / category columns under common names, and the note says which
    columns were used and which ignored. A file with no usable column is ignored with a note.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c for c in (reader.fieldnames or []) if c is not None]
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpecdenoiseError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    name_col, snr_col, cat_col = _pick(columns, NAME_COLUMNS), _pick(columns, SNR_COLUMNS), _pick(columns, CATEGORY_COLUMNS)
    ours = all(c in columns for c in META_COLUMNS)
    if name_col is None or (snr_col is None and cat_col is None):
        lacking = "file-name column" if name_col is None else "SNR or noise-category column"
        return {}, f"{path.name}: no {lacking} (columns: {', '.join(columns) or 'none'}); ignored it, no breakdown by SNR or noise"
    meta: dict[str, tuple[float | None, str | None]] = {}
    bad_snr: list[str] = []
    for line, record in enumerate(records, start=2):
        clip = (record.get(name_col) or "").strip()
        if not clip:
            continue
        snr = None
        text = (record.get(snr_col) or "").strip() if snr_col else ""
        if text:
            try:
                snr = float(text.lower().removesuffix("db").strip())
            except ValueError:
                bad_snr.append(f"line {line}: {text!r}")
        category = ((record.get(cat_col) or "").strip() or None) if cat_col else None
        for key in (clip, Path(clip).name, Path(clip).stem):
            meta.setdefault(key, (snr, category))
    notes = []
    if not ours:
        used = [f"{name_col} (file)"] + ([f"{snr_col} (SNR)"] if snr_col else []) + ([f"{cat_col} (noise category)"] if cat_col else [])
        ignored = [c for c in columns if c not in (name_col, snr_col, cat_col)]
        notes.append(f"{path.name} is not specdenoise's: used {', '.join(used)}" + (f"; ignored {', '.join(ignored)}" if ignored else ""))
    if bad_snr:
        notes.append(f"{len(bad_snr)} SNR value(s) are not numbers ({_preview(bad_snr, 2)}), left blank")
    return meta, ("; ".join(notes) or None)


def _check_pairs(pairs: list[Pair]) -> list[str]:
    """Compare each pair's headers: warn about rate differences and small length differences,
    refuse a large one (naming the file). Unreadable files fail later, per file."""
    rate_diff, length_diff = [], []
    for pair in pairs:
        try:
            noisy, clean = audio_io.info(pair.noisy), audio_io.info(pair.clean)
        except SpecdenoiseError:
            continue
        if noisy.samplerate != clean.samplerate:
            rate_diff.append(f"{pair.name}: noisy {noisy.samplerate} Hz, clean {clean.samplerate} Hz")
        seconds_noisy, seconds_clean = noisy.frames / noisy.samplerate, clean.frames / clean.samplerate
        gap = abs(seconds_noisy - seconds_clean)
        if gap > LENGTH_TOLERANCE_S:
            raise SpecdenoiseError(
                f"{pair.noisy}: {seconds_noisy:.3f} s long but its reference {pair.clean} is {seconds_clean:.3f} s "
                f"(pairs may differ by at most {LENGTH_TOLERANCE_S * 1000:.0f} ms, which is trimmed)"
            )
        if round(noisy.frames * EVAL_RATE / noisy.samplerate) != round(clean.frames * EVAL_RATE / clean.samplerate):
            length_diff.append((gap, pair.name))
    warnings = []
    if rate_diff:
        warnings.append(f"{len(rate_diff)} pair(s) differ in sample rate ({_preview(rate_diff, 2)}): "
                        "each reference is resampled to its estimate's rate, and both to 16 kHz for scoring")
    if length_diff:
        worst = max(length_diff)
        warnings.append(f"{len(length_diff)} pair(s) differ in length by up to {worst[0] * 1000:.1f} ms "
                        f"(e.g. {worst[1]}): trimmed to the shorter of the two")
    return warnings


def discover(data: str | Path, limit: int | None = None) -> Dataset:
    """Find clean/noisy pairs in ``data``; the three supported layouts are tried in turn.

    Raises :class:`SpecdenoiseError` for a missing folder, an unknown layout, no audio, names
    that do not match one to one (a silent partial match would bias the averages), or a pair
    whose lengths differ by more than :data:`LENGTH_TOLERANCE_S`.
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
        if not hint and _audio_files(root):
            hint = "; to score recordings without a clean reference use --no-reference"
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
    warnings: list[str] = []
    meta: dict = {}
    if layout == "synth":
        meta, note = read_meta(root / "meta.csv")
        if note:
            warnings.append(note)
        if not meta:
            layout = "noisy-clean"
    pairs = []
    for stem in sorted(noisy):
        snr, category = meta.get(noisy[stem].name, meta.get(stem, (None, None)))
        pairs.append(Pair(stem, noisy[stem], clean[stem], snr, category))
    if meta:
        unlisted = [p.name for p in pairs if p.noisy.name not in meta and p.name not in meta]
        if unlisted:
            warnings.append(f"{len(unlisted)} file(s) not listed in meta.csv ({_preview(unlisted)}): no SNR or category for them")
    pairs = _limit(pairs, limit)
    warnings += _check_pairs(pairs)
    return Dataset(root, layout, pairs, warnings)


def discover_noisy(data: str | Path, limit: int | None = None) -> Dataset:
    """Recordings without a clean reference: the audio files of ``data`` (or of ``data/noisy/``)."""
    root = Path(data)
    if not root.exists():
        raise SpecdenoiseError(f"data folder not found: {root}")
    if not root.is_dir():
        raise SpecdenoiseError(f"data must be a folder of noisy recordings: {root}")
    folder = root / "noisy" if (root / "noisy").is_dir() else root
    files = _audio_files(folder)
    if not files:
        raise SpecdenoiseError(f"{folder}: no audio files ({', '.join(audio_io.AUDIO_SUFFIXES)})")
    pairs = _limit([Pair(stem, path, None) for stem, path in sorted(files.items())], limit)
    return Dataset(root, "no-reference", pairs, [])


def _limit(pairs: list[Pair], limit: int | None) -> list[Pair]:
    if limit is None:
        return pairs
    if limit < 1:
        raise SpecdenoiseError(f"--limit must be at least 1, got {limit}")
    return pairs[:limit]
