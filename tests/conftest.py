"""Shared fixtures: the real-data folder and a per-run random generator whose seed is printed."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` folder next to the repository (real recordings); skips if absent."""
    if not SHARED_DATA.is_dir():
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
