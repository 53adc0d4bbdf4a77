"""Model registry and checkpoints. Checkpoints hold plain data only (tensors, numbers, strings,
dicts), so they load with ``torch.load(weights_only=True)``; the class is found by name here,
never unpickled.
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Callable

import torch

from .. import __version__
from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_write

FORMAT = "specdenoise-checkpoint/1"
_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        _REGISTRY[name] = cls
        return cls
    return wrap


def available() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, **kwargs: Any):
    if name not in _REGISTRY:
        raise ConfigError(f"model.name must be one of {available()}, got {name!r}")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad arguments for model {name!r}: {exc}") from None


def serialize(model, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to rebuild ``model``: name, constructor args, weights, versions."""
    return {
        "format": FORMAT,
        "model": {"name": model.name, "config": model.config()},
        "sample_rate": model.sample_rate,
        "stft": model.stft_config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "versions": {"specdenoise": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
        **(extra or {}),
    }


def from_serialized(package: dict[str, Any]):
    if not isinstance(package, dict) or package.get("format") != FORMAT:
        raise CheckpointError("not a specdenoise checkpoint (format tag missing)")
    spec = package["model"]
    model = build_model(spec["name"], **spec["config"])
    model.load_state_dict(package["state_dict"])
    model.eval()
    return model


def save_checkpoint(path: str | Path, package: dict[str, Any]) -> Path:
    """Atomic write: a crash mid-save never corrupts the previous checkpoint."""
    return atomic_write(path, lambda tmp: torch.save(package, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0][:160]})") from None


def model_from_checkpoint(path: str | Path):
    try:
        return from_serialized(load_checkpoint(path))
    except CheckpointError as exc:
        if str(path) in str(exc):
            raise
        raise CheckpointError(f"{path}: {exc}") from None


def export_for_release(source: str | Path, target: str | Path) -> Path:
    """Copy a training checkpoint without optimizer/RNG state (the shipped model's form)."""
    package = load_checkpoint(source)
    package = {k: v for k, v in package.items() if k != "train_state"}
    return save_checkpoint(target, package)
