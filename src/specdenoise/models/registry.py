"""Model registry and checkpoints. Checkpoints hold plain data only (tensors, numbers, strings,
dicts), so they load with ``torch.load(weights_only=True)``; the class is found by name here,
never unpickled.
"""
from __future__ import annotations

import pickle
import platform
from pathlib import Path
from typing import Any, Callable

import torch

from .. import __version__
from ..errors import CheckpointError, ConfigError, first_line, shown
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


def model_class(name: str) -> type:
    """The class registered as ``name``; its constructor arguments are that family's config keys."""
    if name not in _REGISTRY:
        raise ConfigError(f"model.name must be one of {available()}, got {name!r}")
    return _REGISTRY[name]


def build_model(name: str, **kwargs: Any):
    cls = model_class(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad arguments for model {name!r}: {exc}") from None


def architecture_differences(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Differences between two ``{"name", "config"}`` model specs that change what the weights mean,
    as "model.KEY A vs B" phrases; weight-free ``output_options`` of the family are ignored."""
    if theirs.get("name") != ours.get("name"):
        return [f"model {theirs.get('name')!r} vs {ours.get('name')!r}"]
    free = set(getattr(_REGISTRY.get(ours.get("name")), "output_options", ()))
    a, b = theirs.get("config") or {}, ours.get("config") or {}
    return [f"model.{k} {a.get(k)!r} vs {b.get(k)!r}" for k in sorted((set(a) | set(b)) - free) if a.get(k) != b.get(k)]


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


def _finite_weights(state_dict: dict[str, Any]) -> str | None:
    """Name of the first floating tensor holding NaN or Inf (a diverged run), else None."""
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            return key
    return None


def from_serialized(package: dict[str, Any]):
    """Rebuild the model a checkpoint names. Every problem is a CheckpointError in words: what is
    missing, which model and which weights do not fit, or that the weights are not finite."""
    if not isinstance(package, dict) or package.get("format") != FORMAT:
        raise CheckpointError("not a specdenoise checkpoint (format tag missing)")
    spec, state = package.get("model"), package.get("state_dict")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("config"), dict):
        raise CheckpointError("incomplete checkpoint: the model name and settings are missing")
    if not isinstance(state, dict) or not state:
        raise CheckpointError("incomplete checkpoint: the weights (state_dict) are missing")
    bad = _finite_weights(state)
    if bad is not None:
        raise CheckpointError(f"weights contain NaN or Inf ({bad}; a diverged run?): refusing to use them")
    try:
        model = build_model(spec["name"], **spec["config"])
    except ConfigError as exc:
        raise CheckpointError(f"cannot build its model: {exc}") from None
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing" if missing else "", f"{len(unexpected)} unexpected" if unexpected else "",
                 f"{len(shapes)} of another shape (e.g. {shapes[0]})" if shapes else ""]
        raise CheckpointError(f"its weights do not fit the {spec['name']!r} model it names "
                              f"({', '.join(p for p in parts if p)}): another architecture or a damaged file")
    model.load_state_dict(state)
    model.eval()
    return model


def save_checkpoint(path: str | Path, package: dict[str, Any]) -> Path:
    """Atomic write: a crash mid-save never corrupts the previous checkpoint."""
    return atomic_write(path, lambda tmp: torch.save(package, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint as plain data (``weights_only=True``: no code in it can run)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{shown(path)}: checkpoint not found")
    if path.is_dir():
        raise CheckpointError(f"{shown(path)}: is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{shown(path)}: empty file (0 bytes), not a checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{shown(path)}: holds Python objects, which a specdenoise checkpoint never does; "
                              "refused without running them") from None
    except Exception as exc:
        text = str(exc).strip()
        if "weights_only" in text or "Unsupported global" in text:  # torch's advice is unsafe: never repeat it
            raise CheckpointError(f"{shown(path)}: holds Python objects, which a specdenoise checkpoint never does; "
                                  "refused without running them") from None
        reason = first_line(exc).split(". ")[0][:160]
        raise CheckpointError(f"{shown(path)}: not a PyTorch checkpoint, or a damaged one ({reason})") from None


def model_from_checkpoint(path: str | Path):
    try:
        return from_serialized(load_checkpoint(path))
    except CheckpointError as exc:
        if shown(path) in str(exc):
            raise
        raise CheckpointError(f"{shown(path)}: {exc}") from None


def export_for_release(source: str | Path, target: str | Path, options: dict[str, Any] | None = None,
                       trained_weights: bool = False) -> Path:
    """Copy a training checkpoint without optimizer/RNG state (the shipped model's form).
    A checkpoint with NaN/Inf weights is refused: it would only ever write garbage audio.
    ``options`` sets weight-free output options of the model (its class's ``output_options``,
    e.g. the CRN's ``low_cut_hz``); anything else would change what the weights mean.
    ``trained_weights`` exports the weights the optimizer reached instead of their running
    average, from a run with ``optim.ema_decay`` (training/ema.py)."""
    package = load_checkpoint(source)  # its errors name the file already
    try:
        if trained_weights:
            raw = package.get("train_state", {}).get("raw_state_dict") if isinstance(package, dict) else None
            if raw is None:
                raise CheckpointError("no trained weights besides its state_dict (the run kept no average)")
            package = {**package, "state_dict": raw}
        if options:
            spec = package.get("model") if isinstance(package, dict) else None
            if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
                raise CheckpointError("incomplete checkpoint: the model name and settings are missing")
            allowed = getattr(_REGISTRY.get(spec.get("name")), "output_options", ())
            refused = sorted(set(options) - set(allowed))
            if refused:
                raise CheckpointError(f"cannot set {', '.join(refused)} on a {spec.get('name')!r} model "
                                      f"(settable without retraining: {', '.join(allowed) or 'none'})")
            package = {**package, "model": {**spec, "config": {**spec["config"], **options}}}
        return save_release(package, target)
    except CheckpointError as exc:
        raise CheckpointError(f"{shown(source)}: not exported: {exc}") from None


def save_release(package: dict[str, Any], target: str | Path) -> Path:
    """Write ``package`` without its optimizer/RNG state, after checking that it is complete, fits
    its model and has finite weights (nothing is written otherwise)."""
    from_serialized(package)
    return save_checkpoint(target, {k: v for k, v in package.items() if k != "train_state"})
