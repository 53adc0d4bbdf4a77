"""scripts/tone_probe.py: SI-SDR of models on clean speech plus one strong low tone."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO_ROOT, cli_env, load_script, speech_and_noise_files

SCRIPT = REPO_ROOT / "scripts" / "tone_probe.py"


def test_the_tone_is_added_at_the_asked_snr_and_frequency(rng):
    rate = 16000
    clean = (0.1 * rng.standard_normal(2 * rate)).astype(np.float32)
    noisy = load_script("tone_probe").add_tone(clean, rate, 49.5, 8.0, np.random.default_rng(0))
    tone = noisy.astype(np.float64) - clean
    assert 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(tone**2)) == pytest.approx(8.0, abs=0.01)
    freqs = np.fft.rfftfreq(len(tone), 1 / rate)
    assert freqs[np.argmax(np.abs(np.fft.rfft(tone)))] == pytest.approx(49.5, abs=0.5)


def test_the_script_tables_each_model_per_frequency(tmp_path, shared_data):
    speech_files, _ = speech_and_noise_files(shared_data)
    for i, path in enumerate(speech_files[:2]):
        audio, rate = sf.read(path, frames=3 * 16000, dtype="float32")
        sf.write(tmp_path / f"clip{i}.wav", audio, rate)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "default", "--freqs", "50", "120"],
                          capture_output=True, text=True, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines()[2:]]
    assert [float(r[0]) for r in rows] == [50.0, 120.0]
    assert all(5.0 < float(r[1]) < 40.0 for r in rows)  # 8 dB in, a denoised SI-SDR out


def test_an_empty_folder_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "default"], capture_output=True, text=True, env=cli_env())
    assert proc.returncode != 0 and "no .wav or .flac files" in proc.stderr


def test_a_corrupt_file_is_a_one_line_error_naming_it(tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEnot audio")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "default"], capture_output=True, text=True, env=cli_env())
    assert proc.returncode != 0 and "broken.wav" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
