"""Shared fixtures: the real-data folder and a per-run random generator whose seed is printed."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` folder next to the repository (real recordings); skips if absent."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):  # CI always has it beside the clone: a skip there would hide everything
            pytest.fail(f"real data folder {SHARED_DATA} is missing in CI")
        pytest.skip(f"real data folder {SHARED_DATA} is missing (see README: ../shared/data)")
    return SHARED_DATA


def _run_seed() -> int:
    """One seed per test run; set SPECDENOISE_TEST_SEED to replay a failing run."""
    fixed = os.environ.get("SPECDENOISE_TEST_SEED")
    return int(fixed) if fixed else secrets.randbits(32)


RUN_SEED = _run_seed()


def pytest_report_header(config) -> str:
    return f"specdenoise random seed: {RUN_SEED} (replay with SPECDENOISE_TEST_SEED={RUN_SEED})"


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the run seed and the test's id, so every test draws fresh data
    each run yet one seed replays the whole run. The seed is printed (shown on failure)."""
    seed = np.random.SeedSequence([RUN_SEED, *request.node.nodeid.encode()])
    print(f"rng: SPECDENOISE_TEST_SEED={RUN_SEED} (test {request.node.nodeid})")
    return np.random.default_rng(seed)


def run_cli(*args: str, check: bool = True, env: dict | None = None, timeout: float = 600):
    """Run ``python -m specdenoise ARGS`` in a subprocess; returns the CompletedProcess."""
    import subprocess
    import sys

    full_env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
                **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "specdenoise", *map(str, args)], capture_output=True,
                          text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"specdenoise {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, shared_data) -> Path:
    """A real corpus from the shared data: 3-second clips, a few per split."""
    out = tmp_path_factory.mktemp("corpus") / "corpus"
    run_cli("synth", "--speech", shared_data / "speech", "--noise", shared_data / "noise",
            "--rir", shared_data / "rir", "--out", out, "--hours", "0.02", "--clip-seconds", "3",
            "--seed", "7", "--workers", "2", "--no-progress")
    return out


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory, tiny_corpus) -> Path:
    out = tmp_path_factory.mktemp("pre") / "PREPROCESSED"
    run_cli("preprocess", tiny_corpus, "--out", out, "--merge-train-validation", "--no-progress")
    return out


def speech_and_noise_files(data: Path) -> tuple[list[Path], list[Path]]:
    speech_files = sorted((data / "speech" / "librispeech_train-clean-100").rglob("*.flac"))
    noise_files = sorted((data / "noise").rglob("*.flac"))
    if not speech_files or not noise_files:
        pytest.skip(f"no LibriSpeech speech or noise recordings under {data}")
    return speech_files, noise_files


def real_speech(speech_files: list[Path], rng: np.random.Generator, need: int) -> np.ndarray:
    """``need`` samples of consecutive LibriSpeech utterances from a random start file."""
    parts, total, i = [], 0, int(rng.integers(len(speech_files)))
    while total < need:
        x, _ = sf.read(speech_files[i % len(speech_files)], dtype="float32")
        parts.append(x)
        total += len(x)
        i += 1
    return np.concatenate(parts)[:need]


def noise_at_snr(noise_files: list[Path], rng: np.random.Generator, speech: np.ndarray, snr_db: float) -> np.ndarray:
    """A random excerpt of a random real noise recording, scaled to ``snr_db`` below ``speech``."""
    need = len(speech)
    noise, _ = sf.read(noise_files[int(rng.integers(len(noise_files)))], dtype="float32")
    if noise.ndim == 2:
        noise = noise.mean(axis=1)
    noise = np.tile(noise, need // len(noise) + 2)
    start = int(rng.integers(len(noise) - need))
    noise = noise[start : start + need]
    return noise * np.sqrt(np.mean(speech**2) / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))


def noisy_speech(data: Path, rng: np.random.Generator, seconds: float, rate: int = 16000,
                 channels: int | None = None, snr_db: float = 5.0, peak: float = 0.5) -> np.ndarray:
    """Real LibriSpeech speech plus a real noise recording, at ``rate``; (n,) or (channels, n)."""
    speech_files, noise_files = speech_and_noise_files(data)
    speech = real_speech(speech_files, rng, max(1, int(round(seconds * 16000))))
    out = [speech + noise_at_snr(noise_files, rng, speech, snr_db) for _ in range(channels or 1)]
    mix = np.stack(out)
    if rate != 16000:
        mix = np.ascontiguousarray(soxr.resample(mix.T, 16000, rate, quality="HQ").T)
    mix = mix[:, : int(round(seconds * rate))]
    mix *= peak / np.abs(mix).max()
    mix = mix.astype(np.float32)
    return mix if channels else mix[0]
