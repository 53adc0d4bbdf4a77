"""Shared fixtures and helpers, kept in one place so every test file reaches the real data, the
command line, caches and random checkpoints the same way:

* ``shared_data``: the ``../shared/data`` folder. Every test that reads it goes through this
  fixture (or :func:`missing_data`), which fails in CI (``CI`` set: ``.ci/run`` exports it) and
  skips only locally, so a CI job without the data cannot pass by skipping everything.
* ``run_cli`` / ``cli_env``: ``python -m specdenoise`` in a subprocess (the real entry point).
* ``tiny_corpus``, ``tiny_cache``, ``tuning_cache``: real corpora and caches built once a session.
* ``random_model`` / ``random_checkpoint``: small untrained models whose output is not trivial.
* ``clean_and_noisy`` / ``noisy_speech``: real LibriSpeech speech plus real noise.
* ``rng``: a per-run random generator whose seed is printed, so a failing draw can be replayed.
* ``wait_until``: poll a condition with a timeout (instead of sleeping a fixed time).
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import numpy as np
import soundfile as sf
import soxr
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


# --- the real data ------------------------------------------------------------------------------


def missing_data(reason: str) -> NoReturn:
    """Fail in CI (the data sits beside every CI clone: a skip there would hide a broken job),
    skip locally (a fresh clone need not have the data)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have ../shared/data)")
    pytest.skip(f"{reason} (see README: ../shared/data)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` folder next to the repository (real recordings)."""
    if not SHARED_DATA.is_dir():
        missing_data(f"real data folder {SHARED_DATA} is missing")
    return SHARED_DATA


# For tests that read files of the shared data by fixed paths (module constants) rather than
# through the fixture's value: the fixture still decides between failing and skipping.
needs_data = pytest.mark.usefixtures("shared_data")


# --- one random seed per run ----------------------------------------------------------------------


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


def wait_until(predicate, timeout: float = 30.0, step: float = 0.05):
    """Poll ``predicate`` until it returns something true (returned) or ``timeout`` seconds pass
    (its last value is returned): a wait on a condition, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


# --- the command line in a subprocess ----------------------------------------------------------


def load_script(name: str):
    """The module of ``scripts/NAME.py`` (scripts are not a package), for testing its functions."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``specdenoise`` child process: W&B offline, one OpenMP thread unless
    the caller's environment says otherwise, and no Python warnings (tests count stderr lines)."""
    return {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "PYTHONWARNINGS": "ignore", **extra}


def run_cli(*args, check: bool = True, env: dict | None = None, timeout: float = 600,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m specdenoise ARGS`` in a subprocess; returns the CompletedProcess. With
    ``check`` a non-zero exit is an AssertionError that shows the end of stderr."""
    proc = subprocess.run([sys.executable, "-m", "specdenoise", *map(str, args)], capture_output=True,
                          text=True, env=cli_env(**(env or {})), timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"specdenoise {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


# --- real corpora and caches, built once a session ---------------------------------------------


def _synth(out: Path, data: Path, hours: str, clip_seconds: str, *extra: str) -> Path:
    run_cli("synth", "--speech", data / "speech", "--noise", data / "noise", "--rir", data / "rir", "--out", out,
            "--hours", hours, "--clip-seconds", clip_seconds, "--no-progress", *extra)
    return out


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, shared_data) -> Path:
    """A real corpus from the shared data: 3-second clips, a few per split."""
    return _synth(tmp_path_factory.mktemp("corpus") / "corpus", shared_data, "0.02", "3", "--seed", "7",
                  "--workers", "2")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory, tiny_corpus) -> Path:
    """``tiny_corpus`` preprocessed, with the merged train+validation split."""
    out = tmp_path_factory.mktemp("pre") / "PREPROCESSED"
    run_cli("preprocess", tiny_corpus, "--out", out, "--merge-train-validation", "--no-progress")
    return out


@pytest.fixture(scope="session")
def tuning_cache(tmp_path_factory, shared_data) -> Path:
    """A 0.03 h corpus of 4-second clips (the default seed) and its cache: the tuning tests' trials
    and their pruning decisions were measured on exactly this data."""
    root = tmp_path_factory.mktemp("tune_data")
    corpus = _synth(root / "corpus", shared_data, "0.03", "4", "--workers", "1")
    run_cli("preprocess", corpus, "--out", root / "cache", "--no-progress")
    return root / "cache"


# --- small random models -----------------------------------------------------------------------


def random_model(name: str = "unet", seed: int = 0, *, kaiming: bool = False, norms: bool = False,
                 jitter: float | None = None, gain: float | None = None, **kwargs):
    """An untrained model in eval mode whose output is not a near-identity.

    ``kaiming``: variance-preserving convolution weights. With PyTorch's default init each layer
    shrinks the signal, the deep levels contribute almost nothing and the effective receptive
    field is a few frames, which would make chunking tests vacuous; with these weights a U-Net of
    depth 4 reacts ~100 frames away, as a trained one does.
    ``norms``: BatchNorm statistics and affine parameters far from (0, 1), and the input
    normalisation at the level of log-magnitude features, so inference does not merely undo the
    training statistics.
    ``jitter``: every parameter moved by ``jitter`` times standard normal noise (weights away from
    their initial values, like trained ones).
    ``gain``: every parameter multiplied by it (a causal model's mask then sits far from 0 and 1,
    so streaming errors would show)."""
    import torch

    from specdenoise.models import build_model

    torch.manual_seed(seed)
    model = build_model(name, **kwargs)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        if kaiming:
            for module in model.modules():
                if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                    torch.nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu", generator=gen)
                    module.bias.copy_(torch.rand(module.bias.shape, generator=gen) * 0.2 - 0.1)
        if norms:
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    n = module.num_features
                    module.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
                    module.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                    module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                    module.bias.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
            if hasattr(model, "input_norm"):
                model.input_norm.running_mean.fill_(-6.0)  # log-magnitude features sit far below zero
                model.input_norm.running_var.fill_(4.0)
        if jitter is not None:
            for p in model.parameters():
                p.add_(jitter * torch.randn(p.shape, generator=gen))
        if gain is not None:
            for p in model.parameters():
                p.mul_(gain)
    return model.eval()


def random_checkpoint(path: Path, name: str = "unet", seed: int = 0, **options) -> Path:
    """:func:`random_model` saved as a checkpoint at ``path``; returns ``path``."""
    from specdenoise.models import save_checkpoint, serialize

    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, serialize(random_model(name, seed, **options)))
    return path


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A small U-Net (depth 2, 4 base channels) with random, non-trivial weights."""
    return random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", "unet", kaiming=True, norms=True,
                             depth=2, base_channels=4)


# --- real noisy speech --------------------------------------------------------------------------


def speech_and_noise_files(data: Path) -> tuple[list[Path], list[Path]]:
    speech_files = sorted((data / "speech" / "librispeech_train-clean-100").rglob("*.flac"))
    noise_files = sorted((data / "noise").rglob("*.flac"))
    if not speech_files or not noise_files:
        missing_data(f"no LibriSpeech speech or noise recordings under {data}")
    return speech_files, noise_files


def real_speech(speech_files: list[Path], rng: np.random.Generator, need: int) -> np.ndarray:
    """``need`` samples of consecutive LibriSpeech utterances from a random start file.

    Some recordings open with digital silence, so a very short excerpt can be all zeros (a
    50-ms draw was, and scaling it to a peak divided by zero); such a draw is made again."""
    for _ in range(50):
        parts, total, i = [], 0, int(rng.integers(len(speech_files)))
        while total < need:
            x, _ = sf.read(speech_files[i % len(speech_files)], dtype="float32")
            parts.append(x)
            total += len(x)
            i += 1
        speech = np.concatenate(parts)[:need]
        if np.sqrt(np.mean(speech**2)) > 1e-3:
            return speech
    raise AssertionError(f"50 draws of {need} samples of speech were all silent")


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


def clean_and_noisy(data: Path, rng: np.random.Generator, seconds: float, snr_db: float = 5.0,
                    channels: int | None = None, peak: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) float32 at 16 kHz: real LibriSpeech speech plus a real noise recording (a
    fresh excerpt per channel), both scaled so the noisy peak is ``peak``; noisy is (n,) or
    (channels, n), clean is (n,)."""
    speech_files, noise_files = speech_and_noise_files(data)
    clean = real_speech(speech_files, rng, max(1, int(round(seconds * 16000))))
    noisy = np.stack([clean + noise_at_snr(noise_files, rng, clean, snr_db) for _ in range(channels or 1)])
    scale = peak / np.abs(noisy).max()
    clean, noisy = (clean * scale).astype(np.float32), (noisy * scale).astype(np.float32)
    return clean, noisy if channels else noisy[0]


def noisy_speech(data: Path, rng: np.random.Generator, seconds: float, rate: int = 16000,
                 channels: int | None = None, snr_db: float = 5.0, peak: float = 0.5) -> np.ndarray:
    """The noisy half of :func:`clean_and_noisy` at ``rate``; (n,) or (channels, n)."""
    mix = np.atleast_2d(clean_and_noisy(data, rng, seconds, snr_db, channels or 1)[1])
    if rate != 16000:
        mix = np.ascontiguousarray(soxr.resample(mix.T, 16000, rate, quality="HQ").T)
    mix = mix[:, : int(round(seconds * rate))]
    mix = (mix * (peak / np.abs(mix).max())).astype(np.float32)
    return mix if channels else mix[0]
