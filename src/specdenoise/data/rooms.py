"""Simulated room responses for training, and the early-reflection target.

The shared data holds only a handful of measured responses, so training draws from a bank of
shoebox rooms simulated with pyroomacoustics (image sources up to order 3 plus ray tracing for the
late tail: with image sources alone, capped orders give a far shorter decay than asked for).
Reverberation times are drawn uniformly in ``t60`` (seconds); rooms, source and microphone
positions are random. Every response is marked ``simulated:pyroomacoustics`` wherever it is
named. The bank is cached as ``.npz`` (keyed by its parameters) because a few hundred responses
take about a minute.

``early_part`` cuts a response after the direct path plus ``ms`` milliseconds (with a short
fade): convolving speech with it gives the target that keeps the early reflections, which
listeners hear as the voice's colour, and drops the late reverberation, so the model learns to
make reverberant input drier (as GTCRN and the DNS challenge do).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..fileio import atomic_write


def _simulate_one(rng: np.random.Generator, sample_rate: int, t60: float) -> np.ndarray | None:
    import pyroomacoustics as pra

    dims = rng.uniform([3.0, 3.0, 2.4], [12.0, 10.0, 4.5])
    try:
        absorption, _ = pra.inverse_sabine(t60, dims)
    except ValueError:  # that T60 is impossible in this room: draw another
        return None
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=3,
                       ray_tracing=True, air_absorption=True)
    room.set_ray_tracing(receiver_radius=0.5, n_rays=2000, energy_thres=1e-5)
    margin = 0.4
    room.add_source(rng.uniform(margin, dims - margin))
    room.add_microphone(rng.uniform(margin, dims - margin))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float32)[: int(sample_rate * 1.5)]
    peak = np.abs(rir).max()
    return rir / peak if peak > 0 else None


def simulate_room_bank(n: int, sample_rate: int, seed: int, t60: tuple[float, float] = (0.1, 1.0),
                       cache_dir: str | Path | None = None) -> list[np.ndarray]:
    """``n`` simulated responses (cached under ``cache_dir`` when given)."""
    lo, hi = t60
    if n < 0 or not 0 < lo <= hi <= 3:
        raise ConfigError(f"simulated rooms need n >= 0 and 0 < t60 low <= high <= 3 s, got n={n}, t60={t60}")
    if n == 0:
        return []
    key = hashlib.sha1(f"v1:{n}:{sample_rate}:{seed}:{lo}:{hi}".encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"rooms-{key}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return [z[f"r{i}"] for i in range(n)]
    rng = np.random.default_rng([seed, 0x2007])
    bank: list[np.ndarray] = []
    while len(bank) < n:
        rir = _simulate_one(rng, sample_rate, float(rng.uniform(lo, hi)))
        if rir is not None:
            bank.append(rir)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
                np.savez(fh, **{f"r{i}": r for i, r in enumerate(bank)})

        atomic_write(path, write)
    return bank


def default_cache_dir() -> Path:
    """Where simulated banks are kept between runs (``SPECDENOISE_CACHE`` or ~/.cache/specdenoise)."""
    return Path(os.environ.get("SPECDENOISE_CACHE", Path.home() / ".cache" / "specdenoise"))


def early_part(rir: np.ndarray, sample_rate: int, ms: float) -> np.ndarray:
    """The response up to ``ms`` after its direct-path peak, faded out over 5 ms."""
    peak = int(np.argmax(np.abs(rir)))
    stop = min(len(rir), peak + int(sample_rate * ms / 1000))
    early = rir[:stop].copy()
    fade = min(len(early) - peak, int(sample_rate * 0.005))
    if fade > 0:
        early[stop - fade : stop] *= np.linspace(1.0, 0.0, fade, dtype=early.dtype)
    return early
