"""Plan a ``denoise`` batch completely before anything is written.

Why: outputs written one by one, each checked only against its own input, can replace another
input of the same batch (``denoise A B/x.wav -o B --force`` once replaced ``B/x.wav`` with A's
output). So every input is first mapped to its output, and before any write each job whose
output is an input of the batch, or is claimed by an earlier job, is marked as failed with a
one-line reason. An input folder lying inside ``-o`` is denoised like any other (only an output
folder lying inside an input folder is left out of that input's walk); the same file named twice
is done once; broken links and link loops are bad inputs, not the end of the batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..audio import is_audio_file
from ..errors import ConfigError, shown

# audio containers people name with -o that we cannot write: refused, not taken as folder names
UNWRITABLE_SUFFIXES = (".mp3", ".m4a", ".aac", ".wma", ".opus", ".aif", ".aiff", ".mp4", ".webm", ".amr", ".caf")


@dataclass
class Job:
    source: Path
    target: Path
    problem: str | None = None  # why this job will not run: one line naming the files


def resolved(path: str | Path) -> Path:
    """``Path.resolve`` that survives symlink loops (RuntimeError before Python 3.13)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _identity(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def _walk(folder: Path, skip: Path | None) -> list[tuple[Path, Path, str | None]]:
    """Audio files under ``folder`` as (path, path relative to folder, problem). Hidden names
    (macOS "._x.wav", our temp files) are skipped, and so is ``skip`` (the output folder) when it
    lies strictly inside ``folder``."""
    root = resolved(folder)
    if skip is not None and root not in skip.parents:
        skip = None
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if skip is not None:
            real = resolved(path)
            if real == skip or skip in real.parents:
                continue
        if not is_audio_file(path):
            continue
        if path.is_file():
            found.append((path, rel, None))
        elif path.is_symlink() and not path.exists():
            found.append((path, rel, f"{shown(path)}: broken symbolic link or symbolic link loop"))
    return sorted(found, key=lambda item: item[1])


def plan(inputs: list[str | Path], out: str | Path) -> tuple[list[Job], bool]:
    """Every (source, target) of ``denoise INPUTS -o OUT``; returns (jobs, single).

    ``single``: one input file and an audio file name as OUT. Raises :class:`ConfigError` for an
    unusable OUT; per-job problems are set on the jobs (nothing is written here).
    """
    out = Path(out)
    if out.suffix.lower() in UNWRITABLE_SUFFIXES:
        raise ConfigError(f"-o {shown(out)}: cannot write {out.suffix} files; name a .wav, .flac or .ogg file, "
                          "or a folder")
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir() and is_audio_file(out)
    if is_audio_file(out) and not single:
        raise ConfigError(f"-o {shown(out)} names a file, but the inputs are several files or a folder: give a folder")
    if not single and os.path.lexists(out) and not out.is_dir():
        raise ConfigError(f"-o {shown(out)} exists and is not a folder")
    out_real = resolved(out)
    for item in inputs:
        if not single and Path(item).is_dir() and resolved(item) == out_real:
            raise ConfigError(f"-o {shown(out)} is the input folder {shown(item)}: the outputs would replace the inputs")

    found: list[tuple[Path, Path, str | None]] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found += _walk(item, None if single else out_real)
        else:
            found.append((item, Path(item.name), None))

    # the same file named twice (a.wav a.wav, or DIR and DIR/a.wav) is one job
    seen, unique = set(), []
    for source, rel, problem in found:
        key = _identity(source) or resolved(source)
        if key in seen:
            continue
        seen.add(key)
        unique.append((source, rel, problem))
    input_paths = {resolved(s) for s, _, _ in unique}
    input_ids = {i for i in (_identity(s) for s, _, _ in unique) if i is not None}

    jobs, claimed = [], {}
    for source, rel, problem in unique:
        if not single and not is_audio_file(rel):  # an explicitly named file of another type
            rel = rel.with_suffix(".wav")
        target = out if single else out / rel
        key = resolved(target)
        if problem is None:
            if key in input_paths or (_identity(target) or ()) in input_ids:
                problem = (f"{shown(source)}: its output {shown(target)} is an input of this batch "
                           "(refusing to overwrite an input file; choose another -o)")
            elif key in claimed:
                problem = f"{shown(source)}: its output {shown(target)} is also the output of {shown(claimed[key])}"
        if problem is None:
            claimed[key] = source
        jobs.append(Job(source, target, problem))
    return jobs, single
