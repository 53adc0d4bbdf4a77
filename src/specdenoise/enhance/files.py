"""Files and folders through a :class:`~specdenoise.enhance.Denoiser`, for the CLI and the
Python API alike.

:func:`denoise_file` streams one file from disk to disk (bounded memory, atomic: nothing is left
behind on failure). :func:`plan_batch` maps inputs (files, folders walked recursively) to outputs
before anything is written (:mod:`.batch` says why), and :func:`run_batch` denoises the planned
jobs, one broken file never stopping the rest; :func:`denoise_paths` is both in one call.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf

from .. import audio as audio_io
from ..errors import AudioError, ConfigError, SpecdenoiseError, first_line, shown
from ..fileio import atomic_write
from .batch import Job, plan
from .denoiser import MAX_RATE, MIN_RATE, Denoiser, _finite_number


@dataclass
class FileResult:
    source: Path
    target: Path
    seconds: float
    duration: float


_WAV_SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


def _output_subtype(input_subtype: str, fmt: str) -> str:
    """The input's sample format where the output container holds it, else the nearest one."""
    if fmt == "OGG":
        return "VORBIS"
    if fmt == "FLAC":
        if input_subtype in ("PCM_16", "PCM_24"):
            return input_subtype
        return "PCM_24" if input_subtype in ("PCM_32", "FLOAT", "DOUBLE") else "PCM_16"
    return input_subtype if input_subtype in _WAV_SUBTYPES else "PCM_16"


def _write_error(target: Path, exc: BaseException) -> AudioError:
    return AudioError(target, f"cannot write ({audio_io._short(exc)})")


def denoise_file(denoiser: Denoiser, source: str | Path, target: str | Path, mono: bool = False,
                 force: bool = False, block_seconds: float = 10.0, progress: bool = False) -> FileResult:
    """Stream ``source`` through the denoiser into ``target`` (atomic, bounded memory).

    Keeps the input's rate, channels (unless ``mono``), length and sample format (as far as the
    target's container allows); never overwrites the input, and an existing target only with
    ``force``. On any failure nothing is left behind (no partial output, no temp file).
    """
    source, target = Path(source), Path(target)
    block_seconds = _finite_number("block_seconds", block_seconds)
    if block_seconds <= 0:
        raise ConfigError(f"block_seconds must be positive, got {block_seconds}")
    meta = _check_source_and_target(source, target, force)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(target.suffix.lower())
    channels = 1 if mono else meta.channels
    subtype = _output_subtype(meta.subtype, fmt)
    started = time.perf_counter()
    writing = False  # an OSError outside the streaming itself is a write error (folder, temp, rename)

    def write(tmp: str) -> None:
        nonlocal writing
        writing = True
        _stream(denoiser, source, tmp, target, meta, channels, subtype, fmt, mono,
                max(1, int(block_seconds * meta.samplerate)), progress)
        writing = False

    try:
        atomic_write(target, write)
    except OSError as exc:
        if writing:
            raise
        raise _write_error(target, exc) from None
    return FileResult(source, target, time.perf_counter() - started, meta.frames / meta.samplerate)


def _check_source_and_target(source: Path, target: Path, force: bool):
    """The input's soundfile info once it is known to be usable, and the target to be writable."""
    meta = audio_io.info(source)
    if meta.frames == 0:
        raise AudioError(source, "empty file (zero samples)")
    if not MIN_RATE <= meta.samplerate <= MAX_RATE:
        raise AudioError(source, f"sample rate {meta.samplerate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    audio_io._check_wav_complete(source)
    if audio_io.same_file(source, target):
        raise AudioError(target, "refusing to overwrite the input file")
    if target.is_dir():
        raise AudioError(target, "output is a folder")
    if target.exists() and not force:
        raise AudioError(target, "output exists (use --force to replace it)")
    if target.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise AudioError(target, "output name must end in .wav, .flac or .ogg")
    return meta


def _stream(denoiser: Denoiser, source: Path, tmp: str, target: Path, meta, channels: int, subtype: str,
            fmt: str, mono: bool, block: int, progress: bool) -> None:
    """Read ``source`` block by block, denoise every channel, write ``tmp`` (``target`` is the
    name errors give); exactly ``meta.frames`` samples are written or an error is raised."""
    from tqdm import tqdm

    rate = meta.samplerate
    streams = [denoiser.stream(rate) for _ in range(channels)]
    try:
        fin = sf.SoundFile(audio_io.sf_name(source))
    except Exception as exc:
        raise AudioError(source, f"unreadable or not audio ({audio_io._short(exc)})") from None
    written = read = 0
    with fin:
        try:
            fout = sf.SoundFile(audio_io.sf_name(tmp), "w", rate, channels, subtype=subtype, format=fmt)
        except Exception as exc:
            raise _write_error(target, exc) from None
        bar = tqdm(total=meta.frames, unit="sample", unit_scale=True, desc=source.name,
                   disable=not progress, leave=False)
        done = False
        try:
            while True:
                try:
                    data = fin.read(block, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise AudioError(source, f"unreadable or not audio ({audio_io._short(exc)})") from None
                read += len(data)
                last = len(data) == 0 or read >= meta.frames
                if not np.isfinite(data).all():
                    raise AudioError(source, "contains NaN or Inf samples")
                x = data.mean(axis=1, keepdims=True) if mono else data
                outs = [s.push(x[:, c], last) for c, s in enumerate(streams)]
                n = min(min(len(o) for o in outs), meta.frames - written)
                if n > 0:
                    y = np.stack([o[:n] for o in outs], axis=1)
                    if subtype not in ("FLOAT", "DOUBLE"):
                        y = np.clip(y, -1.0, 1.0)
                    try:
                        fout.write(y)
                    except Exception as exc:
                        raise _write_error(target, exc) from None
                    written += n
                bar.update(len(data))
                if last:
                    break
            if read < meta.frames:
                raise AudioError(source, f"truncated file ({read} of {meta.frames} samples present)")
            done = True
        finally:
            bar.close()
            try:
                fout.close()  # flushes: a full disk shows here
            except Exception as exc:
                if done:  # else the error already on its way is the one to report
                    raise _write_error(target, exc) from None
    if written != meta.frames:  # ChannelStream returns exactly what it was given
        raise RuntimeError(f"internal error: wrote {written} of {meta.frames} samples to {target}")


# --- many files: the batch policy of ``specdenoise denoise`` -------------------------------------

@dataclass
class Outcome:
    """One planned job's end: ``result`` when it was written, else ``problem`` (one line)."""

    job: Job
    result: FileResult | None = None
    problem: str | None = None


def plan_batch(inputs: list[str | Path], out: str | Path) -> list[Job]:
    """Every (source, target) of denoising ``inputs`` (files or folders) into ``out`` (a folder,
    or a file name for one input file), decided before anything is written."""
    jobs, _ = plan(inputs, out)
    if not jobs:
        raise SpecdenoiseError(f"no audio files found in {', '.join(shown(i) for i in inputs)}")
    return jobs


def run_batch(denoiser: Denoiser, jobs: Iterable[Job], mono: bool = False, force: bool = False,
              progress: bool = False) -> Iterator[Outcome]:
    """Denoise planned jobs one by one, yielding each one's outcome as it ends. A job the plan
    refused, or a file that fails, is an outcome with a problem: never the end of the batch."""
    for job in jobs:
        if job.problem is not None:
            yield Outcome(job, problem=job.problem)
            continue
        try:
            result = denoise_file(denoiser, job.source, job.target, mono=mono, force=force, progress=progress)
        except SpecdenoiseError as exc:
            yield Outcome(job, problem=str(exc))
            continue
        except Exception as exc:  # one broken file must not stop the batch
            yield Outcome(job, problem=f"{shown(job.source)}: {type(exc).__name__}: {first_line(exc)}")
            continue
        yield Outcome(job, result=result)


def denoise_paths(denoiser: Denoiser, inputs: list[str | Path], out: str | Path, mono: bool = False,
                  force: bool = False) -> list[Outcome]:
    """Denoise files and folders (recursively, keeping the tree) into ``out``, as the CLI does."""
    return list(run_batch(denoiser, plan_batch(inputs, out), mono=mono, force=force))
