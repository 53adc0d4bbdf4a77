"""Exception types. Library code raises these; only the CLI turns them into exit codes."""
from __future__ import annotations

from pathlib import Path


class SpecdenoiseError(Exception):
    """Base class: a problem the user can act on, shown as one line by the CLI."""


class ConfigError(SpecdenoiseError, ValueError):
    """An invalid configuration value; the message names the field."""


def message(exc: BaseException) -> str:
    """An exception's text, or its type's name when it has none (``KeyError()``, ``OSError()``)."""
    return str(exc).strip() or type(exc).__name__


def first_line(exc: BaseException | str, limit: int | None = None) -> str:
    """The first line of an exception's message (its type's name when empty), or of a text
    ("" when empty), cut to ``limit`` characters: what fits a one-line error report."""
    text = message(exc) if isinstance(exc, BaseException) else str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line[:limit] if limit else line


def shown(path: str | Path) -> str:
    """A file name fit for a one-line message: control characters (a newline in a name would
    split the line) and undecodable bytes (kept by Python as surrogates, which cannot be printed)
    are written as escapes, e.g. ``a\\nb.wav``, ``caf\\xe9.wav``."""
    out = []
    for ch in str(path):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)


class AudioError(SpecdenoiseError):
    """A file that cannot be used as audio. Carries the file name and a plain reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{shown(self.path)}: {reason}")


class CheckpointError(SpecdenoiseError):
    """A checkpoint that cannot be loaded (missing, corrupt, unknown model name)."""
