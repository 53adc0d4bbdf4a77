"""Exception types. Library code raises these; only the CLI turns them into exit codes."""
from __future__ import annotations

from pathlib import Path


class SpecdenoiseError(Exception):
    """Base class: a problem the user can act on, shown as one line by the CLI."""


class ConfigError(SpecdenoiseError, ValueError):
    """An invalid configuration value; the message names the field."""


class AudioError(SpecdenoiseError):
    """A file that cannot be used as audio. Carries the file name and a plain reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CheckpointError(SpecdenoiseError):
    """A checkpoint that cannot be loaded (missing, corrupt, unknown model name)."""
