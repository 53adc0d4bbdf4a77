"""Run tracking: one thin wrapper over Weights & Biases, plus a local metrics.jsonl always.

Mode: ``WANDB_MODE`` when set; otherwise online when an API key is configured (``WANDB_API_KEY``
or ``wandb login``), else offline, with runs stored in the run folder for a later ``wandb sync``.
Only rank 0 tracks.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def wandb_mode() -> str:
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    if netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return "online"
    return "offline"


class Tracker:
    """Logs to ``run_dir/metrics.jsonl`` and, when enabled, to W&B."""

    def __init__(self, run_dir: str | Path, config: dict[str, Any], kind: str = "wandb",
                 project: str = "specdenoise", group: str | None = None, name: str | None = None,
                 enabled: bool = True, resume_id: str | None = None):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.run = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a")
        if kind == "wandb":
            import wandb

            self.run = wandb.init(project=project, group=group, name=name or self.run_dir.name,
                                  dir=str(self.run_dir), config=config, mode=wandb_mode(),
                                  id=resume_id, resume="allow" if resume_id else None, reinit="finish_previous")
        elif kind != "none":
            from .errors import ConfigError

            raise ConfigError(f"tracking.tracker must be 'wandb' or 'none', got {kind!r}")

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def log(self, metrics: dict[str, float], step: int) -> None:
        if not self.enabled:
            return
        self._jsonl.write(json.dumps({"step": step, **{k: float(v) for k, v in metrics.items()}}) + "\n")
        self._jsonl.flush()
        if self.run is not None:
            self.run.log(metrics, step=step)

    def log_media(self, audio: dict[str, tuple[np.ndarray, int]], images: dict[str, str | Path], step: int) -> None:
        """Audio clips ({key: (waveform, rate)}) and image files ({key: png path})."""
        if self.run is None:
            return
        import wandb

        payload: dict[str, Any] = {k: wandb.Audio(w, sample_rate=sr) for k, (w, sr) in audio.items()}
        payload.update({k: wandb.Image(str(p)) for k, p in images.items()})
        self.run.log(payload, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            for k, v in values.items():
                self.run.summary[k] = v

    def finish(self) -> None:
        if not self.enabled:
            return
        self._jsonl.close()
        if self.run is not None:
            self.run.finish()
            self.run = None
