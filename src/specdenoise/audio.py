"""Audio I/O: read anything soundfile reads into float32, resample with soxr, write atomically.

Arrays are shaped ``(channels, samples)`` when channels are kept and ``(samples,)`` when mixed
down to mono. Reading never modifies the input; writing goes to a temporary file in the target's
folder, then ``os.replace`` — a crash never leaves a half-written file.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, first_line
from .fileio import atomic_write

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
WRITE_SUBTYPES = {"PCM_16", "PCM_24", "PCM_32", "FLOAT"}


def is_audio_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def sf_name(path: str | Path) -> str | bytes:
    """The name to hand soundfile: it encodes str names as strict UTF-8, so a name holding a byte
    that is not UTF-8 (kept by Python as a surrogate) must go as the raw bytes."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name)
    return name


def info(path: str | Path) -> sf._SoundFileInfo:
    """Header of an audio file (rate, channels, frames) without reading samples."""
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise AudioError(path, "broken symbolic link or symbolic link loop")
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    try:
        return sf.info(sf_name(path))
    except Exception as exc:  # soundfile raises several types for broken headers
        raise AudioError(path, f"unreadable or not audio ({_short(exc)})") from None


def read(
    path: str | Path,
    sample_rate: int | None = None,
    mono: bool = True,
    allow_empty: bool = False,
) -> tuple[np.ndarray, int]:
    """Read a file as float32 in [-1, 1] (floats may exceed it), optionally resampled.

    Returns ``(audio, rate)``; ``rate`` is ``sample_rate`` when one is asked for, else the file's.
    Raises :class:`AudioError` for missing, unreadable, empty or non-finite files.
    """
    path = Path(path)
    meta = info(path)
    if meta.frames == 0 and not allow_empty:
        raise AudioError(path, "empty file (zero samples)")
    _check_wav_complete(path)
    try:
        data, rate = sf.read(sf_name(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(path, f"unreadable or not audio ({_short(exc)})") from None
    if data.shape[0] == 0 and not allow_empty:
        raise AudioError(path, "empty file (zero samples)")
    if data.shape[0] < meta.frames:
        raise AudioError(path, f"truncated file ({data.shape[0]} of {meta.frames} samples present)")
    if not np.isfinite(data).all():
        raise AudioError(path, "contains NaN or Inf samples")
    audio = np.ascontiguousarray(data.T)  # (channels, samples)
    if mono:
        audio = audio.mean(axis=0)
    if sample_rate is not None and sample_rate != rate:
        if audio.shape[-1]:
            audio = resample(audio, rate, sample_rate)
        rate = sample_rate
    return audio.astype(np.float32, copy=False), int(rate)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality). Keeps (channels, samples) shape."""
    if from_rate == to_rate:
        return audio
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if audio.ndim == 1:
        return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32)
    # soxr wants (samples, channels)
    out = soxr.resample(np.ascontiguousarray(audio.T), from_rate, to_rate, quality="HQ")
    return np.ascontiguousarray(out.T).astype(np.float32)


def write(
    path: str | Path,
    audio: np.ndarray,
    sample_rate: int,
    subtype: str = "PCM_16",
    overwrite: bool = False,
    protect: tuple[str | Path, ...] = (),
) -> Path:
    """Write ``audio`` ((samples,) or (channels, samples)) atomically.

    Refuses to replace an existing file unless ``overwrite``, and never replaces any path in
    ``protect`` (the inputs of the job). Integer subtypes are clipped to [-1, 1] first.
    """
    path = Path(path)
    if subtype not in WRITE_SUBTYPES:
        raise ValueError(f"subtype must be one of {sorted(WRITE_SUBTYPES)}, got {subtype!r}")
    suffix = path.suffix.lower()
    if suffix == ".flac":
        fmt = "FLAC"
        if subtype not in ("PCM_16", "PCM_24"):
            raise ValueError(f"FLAC holds PCM_16 or PCM_24 only, got subtype {subtype!r}")
    elif suffix == ".ogg":
        fmt, subtype = "OGG", "VORBIS"
    else:
        fmt = "WAV"
    for other in protect:
        if same_file(path, Path(other)):
            raise AudioError(path, "refusing to overwrite an input file")
    if path.is_dir():
        raise AudioError(path, "is a folder, not a file name to write")
    if path.exists() and not overwrite:
        raise AudioError(path, "output exists (use --force to replace it)")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2):
        raise ValueError(f"audio must be (samples,) or (channels, samples), got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioError(path, "refusing to write NaN or Inf samples")
    if audio.ndim == 2:
        audio = audio.T
    if subtype not in ("FLOAT", "VORBIS"):
        audio = np.clip(audio, -1.0, 1.0)
    return atomic_write(path, lambda tmp: sf.write(sf_name(tmp), audio, sample_rate, subtype=subtype, format=fmt))


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file (symlinks, ``..`` and hard links included)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _check_wav_complete(path: Path) -> None:
    """Refuse a RIFF/WAVE file whose data chunk is shorter than its header says.

    libsndfile silently reads whatever part of a cut-off WAV is there; a download or copy that was
    interrupted should be an error instead of a shorter clip.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return
            size = os.fstat(fh.fileno()).st_size
            offset = 12
            while offset + 8 <= size:
                fh.seek(offset)
                chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
                if chunk_id == b"data":
                    present = size - offset - 8
                    if chunk_size != 0xFFFFFFFF and chunk_size > present:
                        raise AudioError(
                            path,
                            f"truncated file (header promises {chunk_size} bytes of samples, "
                            f"{present} present)",
                        )
                    return
                offset += 8 + chunk_size + (chunk_size & 1)
    except OSError as exc:
        raise AudioError(path, f"unreadable ({_short(exc)})") from None


def _short(exc: Exception) -> str:
    return first_line(exc, 160)
