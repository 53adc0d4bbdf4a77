"""Server settings, validated once so that a bad flag fails at start-up with one line."""
from __future__ import annotations

import ipaddress
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError


@dataclass
class ServeConfig:
    model: str = "default"  # "default" (shipped) or a checkpoint path
    max_upload_mb: float = 200.0
    jobs: int = 1  # inference threads, one torch thread each
    queue: int = 8  # jobs waiting beyond the running ones
    job_timeout_s: float = 600.0  # processing time of one job
    max_seconds: float = 3600.0  # longest recording accepted
    retention_s: float = 1800.0  # finished jobs (and their files) live this long
    max_finished: int = 100  # and at most this many are kept on disk
    upload_idle_s: float = 30.0  # an upload that sends nothing for this long is dropped
    sync_wait_s: float = 300.0  # POST /v1/denoise waits at most this long for its job
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        for name in ("max_upload_mb", "job_timeout_s", "max_seconds", "retention_s", "upload_idle_s", "sync_wait_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        for name, low in (("jobs", 1), ("queue", 0), ("max_finished", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be a whole number of at least {low}, got {value!r}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
