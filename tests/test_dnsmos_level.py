"""scripts/dnsmos_level.py: DNSMOS of a system's output at fixed gains, and its level in speech."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO_ROOT, cli_env, load_script
from specdenoise.metrics import dnsmos

SCRIPT = REPO_ROOT / "scripts" / "dnsmos_level.py"


def test_active_level_counts_only_the_references_speech():
    level = load_script("dnsmos_level").active_level_db
    rng = np.random.default_rng(0)
    reference = np.concatenate([rng.normal(0, 0.1, 8192), np.zeros(8192)]).astype(np.float32)
    assert level(0.5 * reference, reference) == pytest.approx(-6.0206, abs=1e-3)
    loud_pause = 0.5 * reference + np.concatenate([np.zeros(8192), np.full(8192, 0.3)]).astype(np.float32)
    assert level(loud_pause, reference) == pytest.approx(-6.0206, abs=1e-3)  # the pause is not speech


def test_gain_that_undoes_the_input_level_scores_the_clean_clip(shared_data, tmp_path):
    """'noisy' made of twice the clean clip: at -6.02 dB it is the clean clip, so DNSMOS must match."""
    speech = sorted((shared_data / "speech").rglob("*.flac"))[0]
    clean, rate = sf.read(speech, dtype="float32", frames=3 * 16000)
    for sub, audio in (("clean", clean), ("noisy", 2 * clean)):
        (tmp_path / sub).mkdir()
        sf.write(tmp_path / sub / "a.wav", audio, rate, subtype="FLOAT")
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--system", "noisy", "--files", "1",
                          f"--gains={20 * np.log10(0.5)},0"], capture_output=True, text=True,
                         env=cli_env(), check=True).stdout
    assert "level vs the reference in its speech: +6.02 dB" in out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| -6 ")]
    expected = dnsmos(clean, rate)
    assert float(rows[0][4]) == pytest.approx(expected["ovrl"], abs=2e-3)
    assert float(rows[0][3]) == pytest.approx(expected["bak"], abs=2e-3)
