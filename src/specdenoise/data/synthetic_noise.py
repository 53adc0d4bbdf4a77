"""Procedural noises for training: mains hum and buzz, tonal whine, low rumble and thumps,
crackle and knocks, a dominant low tone.

Why: these are common in real recordings (ground loops, chargers, fans, coil whine, handling and
footfall) but rare in the recorded noise collection (3 electrical-hum files, 4 synthetic mains
hums), so a model sees too few of them to learn their fine harmonic structure. Drawing them with
random parameters gives endless variety without taking anything from the validation or test
noise files. Each generator returns float32 noise of unit RMS; the mixer sets its level.
Crackle and knocks (impulsive noise: static, contact noise, dishes, tapping, handling) and the
low tone are opt-in through ``MixConfig.synthetic_kinds`` so that corpora drawn before they existed stay
identical.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

KINDS = ("hum", "whine", "rumble")  # the default draw; "crackle", "knock", "low_tone" are opt-in (MixConfig.synthetic_kinds)


def _drifting_phase(rng: np.random.Generator, f0: float, n: int, sample_rate: int, drift: float) -> np.ndarray:
    """Phase (radians) of a tone at ``f0`` Hz whose frequency wanders by about ``drift`` (relative)."""
    knots = max(2, n // sample_rate + 2)  # one random frequency offset per second, interpolated
    offsets = rng.normal(0.0, drift, knots)
    freq = f0 * (1.0 + np.interp(np.arange(n), np.linspace(0, n - 1, knots), offsets))
    return 2 * np.pi * np.cumsum(freq) / sample_rate + rng.uniform(0, 2 * np.pi)


def _slow_envelope(rng: np.random.Generator, n: int, depth: float) -> np.ndarray:
    """A smooth gain of 1 +- ``depth`` (slow level changes, beating)."""
    knots = int(rng.integers(2, 8))
    return 1.0 + depth * np.interp(np.arange(n), np.linspace(0, n - 1, knots), rng.uniform(-1, 1, knots))


def mains_hum(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """50/60 Hz (or its double) with a random harmonic series: from a smooth hum to a harsh buzz.
    Odd harmonics may dominate (transformer/rectifier buzz), a soft clip may add more."""
    f0 = float(rng.choice([50.0, 60.0, 100.0, 120.0])) * (1 + rng.uniform(-0.01, 0.01))
    top = min(sample_rate / 2 * 0.95, float(rng.choice([400.0, 1500.0, 4000.0, 7000.0])))
    k = np.arange(1, int(top // f0) + 1)
    slope = rng.uniform(0.3, 2.0)  # spectral decay per harmonic (1/k**slope)
    amps = k ** -slope * np.exp(rng.normal(0, 0.5, len(k)))
    if rng.random() < 0.5:
        amps[1::2] *= rng.uniform(0.0, 0.5)  # even harmonics weak
    phase = _drifting_phase(rng, f0, n, sample_rate, drift=0.002)
    x = np.zeros(n)
    for kk, a in zip(k, amps):
        x += a * np.sin(kk * phase + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.3:
        x = np.tanh(rng.uniform(1.0, 5.0) * x / (np.abs(x).max() + 1e-12))
    return x * _slow_envelope(rng, n, rng.uniform(0.0, 0.3))


def tonal_whine(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """One to three narrow tones (coil whine, fan blade-pass, electronics), each with a few
    harmonics and a slight wobble, over a little broadband hiss."""
    x = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        f = float(np.exp(rng.uniform(np.log(300.0), np.log(0.45 * sample_rate))))
        phase = _drifting_phase(rng, f, n, sample_rate, drift=rng.uniform(0.0, 0.01))
        for h in range(1, int(rng.integers(1, 4)) + 1):
            if h * f < 0.48 * sample_rate:
                x += rng.uniform(0.2, 1.0) / h * np.sin(h * phase)
    x /= np.sqrt(np.mean(x**2)) + 1e-12
    return x + rng.uniform(0.0, 0.3) * rng.standard_normal(n)


def infrasound(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Unit-RMS drift below ~20 Hz: brown (1/f^2) noise, high-passed at 1-8 Hz so it stays bounded.
    Why: handling, wind buffets and DC drift put most of their energy there; with only
    band-limited white rumble the model never learned to remove it, and what it left swung from
    version to version (docs/RESULTS.md, the golden example2)."""
    sos = butter(2, float(rng.uniform(1.0, 8.0)), "highpass", fs=sample_rate, output="sos")
    x = sosfilt(sos, np.cumsum(rng.standard_normal(n)) / np.sqrt(sample_rate))
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def low_rumble(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Noise below 40-250 Hz (traffic, building and handling rumble), half the time over an
    infrasonic drift, steady or as thumps that decay over 50-600 ms (footfall, door slams, a
    microphone being bumped)."""
    cutoff = float(rng.uniform(40.0, 250.0))
    sos = butter(int(rng.integers(2, 5)), cutoff, "lowpass", fs=sample_rate, output="sos")
    x = sosfilt(sos, rng.standard_normal(n))
    if rng.random() < 0.5:
        x = x / (np.sqrt(np.mean(x**2)) + 1e-12) + rng.uniform(0.5, 3.0) * infrasound(rng, n, sample_rate)
    if rng.random() < 0.5:
        env = np.zeros(n)
        t = np.arange(n)
        for start in rng.integers(0, n, int(rng.integers(1, 2 + n // sample_rate))):
            decay = rng.uniform(0.05, 0.6) * sample_rate
            tail = t >= start
            env[tail] += rng.uniform(0.3, 1.0) * np.exp(-(t[tail] - start) / decay)
        x = x * (env + rng.uniform(0.0, 0.05))
    return x


def _onsets(rng: np.random.Generator, n: int, sample_rate: int, rate: float) -> np.ndarray:
    """Sample indices of a Poisson process of ``rate`` events per second over ``n`` samples."""
    count = int(rng.poisson(rate * n / sample_rate))
    return np.sort(rng.integers(0, n, max(1, count)))


def crackle(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Random clicks and pops (2-300 a second, heavy-tailed amplitudes, 0.2-3 ms decaying bursts,
    high-passed at 300-3000 Hz) over a little hiss: static, loose contacts, crackling, handling.
    Why: the recorded collection has a handful of such files, and a mask trained mostly on
    stationary noise lets isolated clicks through."""
    x = np.zeros(n)
    idx = _onsets(rng, n, sample_rate, float(np.exp(rng.uniform(np.log(2.0), np.log(300.0)))))
    x[idx] = rng.lognormal(0.0, 1.0, len(idx)) * rng.choice([-1.0, 1.0], len(idx))
    decay = rng.uniform(0.0002, 0.003) * sample_rate
    taps = np.arange(int(6 * decay) + 1)
    burst = rng.standard_normal(len(taps)) * np.exp(-taps / decay)
    x = np.convolve(x, burst)[:n]
    sos = butter(2, float(rng.uniform(300.0, 3000.0)), "highpass", fs=sample_rate, output="sos")
    x = sosfilt(sos, x)
    x /= np.sqrt(np.mean(x**2)) + 1e-12
    return x + rng.uniform(0.0, 0.2) * rng.standard_normal(n)


def knocks(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Impacts 0.3-4 times a second, each a short noise burst plus one to three damped resonances
    (100-4000 Hz, 10-150 ms): tapping, dishes, tools, doors, a table being bumped."""
    x = np.zeros(n)
    for start in _onsets(rng, n, sample_rate, float(rng.uniform(0.3, 4.0))):
        m = min(n - start, int(0.4 * sample_rate))
        t = np.arange(m) / sample_rate
        hit = rng.uniform(0.1, 1.0) * rng.standard_normal(m) * np.exp(-t / rng.uniform(0.002, 0.02))
        for _ in range(int(rng.integers(1, 4))):
            f = float(np.exp(rng.uniform(np.log(100.0), np.log(4000.0))))
            hit += rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) \
                * np.exp(-t / rng.uniform(0.01, 0.15))
        x[start:start + m] += rng.lognormal(0.0, 0.7) * hit
    return x


def low_tone(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """One strong tone at 40-130 Hz that carries most of the power (a fundamental with weak
    harmonics, slight drift), steady or switching on and off with soft edges (a loose connection).
    Why: in :func:`mains_hum` the fundamental competes with a harmonic series, and since the
    clean-target change the CRN removed a lone dominant tone near 50 Hz worse than crn-1.0 did
    (docs/RESULTS.md, "Tried on 2026-12-07 (nineteenth session)"); off-mains frequencies cover
    motors, transformers on other grids and sped-up or slowed recordings."""
    f0 = float(np.exp(rng.uniform(np.log(40.0), np.log(130.0))))
    phase = _drifting_phase(rng, f0, n, sample_rate, drift=rng.uniform(0.0, 0.003))
    x = np.sin(phase)
    for h in range(2, int(rng.integers(2, 6)) + 1):
        x += rng.uniform(0.0, 0.2) / h * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.3:  # intermittent: on/off segments of 0.1-1.5 s, 10-ms ramps
        gate = np.zeros(n)
        start, on = 0, bool(rng.random() < 0.5)
        while start < n:
            length = int(rng.uniform(0.1, 1.5) * sample_rate)
            gate[start:start + length] = float(on)
            start, on = start + length, not on
        ramp = max(1, int(0.01 * sample_rate))
        gate = np.convolve(gate, np.ones(ramp) / ramp, mode="same")
        x = x * (gate + 0.02)
    return x * _slow_envelope(rng, n, rng.uniform(0.0, 0.2))


GENERATORS = {"hum": mains_hum, "whine": tonal_whine, "rumble": low_rumble, "crackle": crackle, "knock": knocks,
              "low_tone": low_tone}


def synthetic_noise(rng: np.random.Generator, n: int, sample_rate: int, kind: str | None = None,
                    kinds: tuple[str, ...] = KINDS) -> tuple[np.ndarray, str]:
    """``n`` samples of one procedural noise (``kind``, or one drawn from ``kinds`` when None),
    unit RMS, and its kind."""
    kind = kind or str(rng.choice(kinds))
    x = GENERATORS[kind](rng, n, sample_rate)
    rms = np.sqrt(np.mean(np.square(x))) + 1e-12
    return (x / rms).astype(np.float32), kind
