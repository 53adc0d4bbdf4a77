"""Atomic file writes (temp file in the same folder, then ``os.replace``)."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path``; remove the temp on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temp(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def new_temp(path: Path) -> str:
    """Create an empty temp file next to ``path``, with the mode a plain ``open()`` would give
    (``tempfile.mkstemp`` makes 0600 files, which would leave results unreadable to others)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return str(tmp)
    raise FileExistsError(f"no free temporary name next to {path}")


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


# --- folders we create and may replace ------------------------------------------------------
# A command that builds a whole folder (synth's corpus, preprocess's cache) writes it beside the
# target as NAME.partial (marked as ours) and swaps it in at the end. It may replace an existing
# folder only when that folder carries its own marker file (corpus.json, stft.json), only with
# --force, and never when the folder is, contains or lies inside one of the command's inputs:
# anything else might be the user's data.

PARTIAL_MARKER = ".specdenoise-partial"


def _resolved(path: Path) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        return Path(os.path.abspath(path))


def check_output_folder(out: str | Path, marker: str, what: str, inputs: tuple | list = (),
                        force: bool = False) -> bool:
    """Refuse an output folder that could hold someone's data; True when ``out`` will be replaced.

    ``marker`` is the file that makes a folder recognisably a ``what`` made by us (e.g.
    ``corpus.json``). Raises :class:`SpecdenoiseError` with one line naming the folder.
    """
    from .errors import SpecdenoiseError

    out = Path(out)
    target = _resolved(out)
    for item in inputs:
        if item is None:
            continue
        source = _resolved(Path(item))
        if target == source:
            raise SpecdenoiseError(f"{out}: is the input {item}; choose an output outside every input")
        if source in target.parents:
            raise SpecdenoiseError(f"{out}: lies inside the input folder {item}; choose an output outside every input")
        if target in source.parents:
            raise SpecdenoiseError(f"{out}: contains the input {item}; choose an output outside every input")
    if not os.path.lexists(out):
        return False
    if not out.is_dir():
        raise SpecdenoiseError(f"{out}: exists and is not a folder; choose a new folder name")
    if not any(out.iterdir()):
        return False  # an empty folder holds nothing to lose
    if not (out / marker).is_file():
        raise SpecdenoiseError(f"{out}: exists and is not a {what} ({marker} missing); refusing to replace it, "
                               "choose a new folder")
    if not force:
        raise SpecdenoiseError(f"{out}: {what} exists (use --force to rebuild it)")
    return True


def make_partial(out: str | Path) -> Path:
    """Create ``OUT.partial`` (marked as ours); a stale one of ours is removed, anyone else's refused."""
    import shutil

    from .errors import SpecdenoiseError

    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if os.path.lexists(partial):
        if not (partial.is_dir() and not partial.is_symlink() and (partial / PARTIAL_MARKER).is_file()):
            raise SpecdenoiseError(f"{partial}: exists and was not made by specdenoise; move it away first")
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    (partial / PARTIAL_MARKER).write_text("unfinished specdenoise output; safe to delete\n")
    return partial


def remove_partial(partial: Path) -> None:
    """Delete a partial folder of ours (after a failure); never anything without the marker."""
    import shutil

    if (Path(partial) / PARTIAL_MARKER).is_file():
        shutil.rmtree(partial, ignore_errors=True)


def swap_in(partial: Path, out: Path) -> None:
    """Move a finished partial folder onto ``out``; an existing ``out`` (already checked with
    :func:`check_output_folder`) is renamed aside first and deleted only after the swap."""
    import shutil

    (partial / PARTIAL_MARKER).unlink(missing_ok=True)
    if os.path.lexists(out) and out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        out.rmdir()
    if os.path.lexists(out):
        old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
        os.rename(out, old)
        os.rename(partial, out)
        if old.is_symlink():  # the link was ours to replace, never the folder it points to
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(partial, out)
