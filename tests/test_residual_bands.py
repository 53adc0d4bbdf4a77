"""scripts/residual_bands.py: the residual of a denoised example, per frequency band."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from conftest import REPO_ROOT, cli_env, load_script

SCRIPT = REPO_ROOT / "scripts" / "residual_bands.py"


def test_a_residual_shows_in_its_own_band_and_the_reference_does_not(rng):
    rate = 16000
    t = np.arange(4 * rate) / rate
    clean = rng.standard_normal(len(t)).astype(np.float32) * 0.1
    drift = 0.01 * np.sin(2 * np.pi * 10 * t)  # 10 Hz: the 0-20 Hz band
    residual_bands = load_script("residual_bands").residual_bands
    bands = residual_bands(3.0 * clean + drift, clean, rate)  # the scaled reference is not error
    assert int(np.argmax(bands)) == 0 and bands[0] > max(bands[1:]) + 30
    assert max(residual_bands(2.0 * clean, clean, rate)) < -150  # no residual at all


def test_the_script_tables_each_model_on_an_example():
    proc = subprocess.run([sys.executable, str(SCRIPT), "default", "realtime", "--example", "example2"],
                          capture_output=True, text=True, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines()[2:]]
    assert [r[0].strip() for r in rows] == ["default", "realtime"]
    assert all(len(r) == 7 and 10.0 < float(r[1]) < 25.0 for r in rows)  # SI-SDR of a denoised example, then 5 bands
