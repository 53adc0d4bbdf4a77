"""Metrics: analytic SI-SDR values, PESQ/STOI ceilings, DNSMOS ordering and parity with speechmos."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA as DATA
from conftest import needs_data
from specdenoise import metrics

SPEECH = DATA / "speech" / "librispeech_train-clean-100" / "118" / "118-121721-0000.flac"
LONG_SPEECH = DATA / "speech" / "librispeech_train-clean-100" / "1081" / "1081-125237-0000.flac"
WHITE = DATA / "noise" / "synthetic_stationary" / "sc_white_noise.flac"


def _read(path: Path, seconds: float | None = None) -> np.ndarray:
    from specdenoise import audio

    signal, rate = audio.read(path)
    assert rate == 16000
    return signal if seconds is None else signal[: int(seconds * rate)]


@pytest.fixture(scope="module")
def speech(shared_data) -> np.ndarray:
    return _read(SPEECH, 3.0)


@pytest.fixture(scope="module")
def white(shared_data) -> np.ndarray:
    return _read(WHITE, 3.0)


def _orthogonal_noise(reference: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean reference and zero-mean noise orthogonal to it, at exactly ``snr_db``."""
    ref = reference.astype(np.float64) - reference.mean()
    n = noise.astype(np.float64)[: len(ref)]
    n = n - n.mean()
    n = n - np.dot(n, ref) / np.dot(ref, ref) * ref
    n = n - n.mean()  # ref is zero-mean, so this keeps orthogonality
    n *= np.sqrt(np.dot(ref, ref) / np.dot(n, n) / 10 ** (snr_db / 10))
    return ref, n


@needs_data
def test_si_sdr_of_scaled_copy_is_very_high(speech):
    assert metrics.si_sdr(speech, 0.3 * speech) > 80.0
    assert metrics.si_sdr(speech, -2.0 * speech) > 80.0


@needs_data
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 7.5, 20.0])
def test_si_sdr_matches_analytic_value_with_added_noise(speech, white, snr_db):
    ref, noise = _orthogonal_noise(speech, white, snr_db)
    assert abs(metrics.si_sdr(ref, ref + noise) - snr_db) < 0.01
    # A gain on the target is invisible to SI-SDR only through the projection: 0.5·s + n has
    # target 0.5·s, so the value drops by 20·log10(2).
    expected = snr_db + 20 * np.log10(0.5)
    assert abs(metrics.si_sdr(ref, 0.5 * ref + noise) - expected) < 0.01


@needs_data
def test_pesq_of_identical_signals_is_the_ceiling(speech):
    assert metrics.pesq_wb(speech, speech) == pytest.approx(4.644, abs=0.01)


def test_pesq_rejects_other_rates_and_silence():
    with pytest.raises(ValueError, match="16 kHz"):
        metrics.pesq_wb(np.zeros(16000), np.zeros(16000), 8000)
    tone = np.sin(np.arange(32000) * 0.05)
    with pytest.raises(ValueError, match="estimate is digital silence"):
        metrics.pesq_wb(tone, np.zeros(32000))
    with pytest.raises(ValueError, match="reference is digital silence"):
        metrics.pesq_wb(np.zeros(32000), tone)


@needs_data
def test_stoi_and_estoi_of_identical_signals_are_one(speech):
    assert metrics.stoi(speech, speech) == pytest.approx(1.0, abs=1e-6)
    assert metrics.estoi(speech, speech) == pytest.approx(1.0, abs=1e-6)


@needs_data
def test_stoi_drops_with_noise(speech, white):
    ref, noise = _orthogonal_noise(speech, white, -5.0)
    assert metrics.stoi(ref, ref + noise) < 0.9
    assert metrics.estoi(ref, ref + noise) < metrics.stoi(ref, ref + noise)


@needs_data
def test_dnsmos_prefers_clean_speech_over_heavy_white_noise(speech, white):
    # 2.5 s tiles to one 9.01 s DNSMOS window (3 s would need three): same check, a third of the time
    ref, noise = _orthogonal_noise(speech[:40000], white, 0.0)
    clean = metrics.dnsmos(ref)
    noisy = metrics.dnsmos(ref + noise)
    assert set(clean) == {"sig", "bak", "ovrl"}
    for value in (*clean.values(), *noisy.values()):
        assert 1.0 <= value <= 5.0
    assert clean["ovrl"] > noisy["ovrl"] + 0.5
    assert clean["bak"] > noisy["bak"] + 0.5


def test_dnsmos_input_checks():
    with pytest.raises(ValueError, match="16000"):
        metrics.dnsmos(np.zeros(8000), 8000)
    with pytest.raises(ValueError, match="mono"):
        metrics.dnsmos(np.zeros((2, 100)))
    assert metrics.dnsmos_model_path().name == "sig_bak_ovr.onnx"


@needs_data
def test_dnsmos_matches_the_speechmos_reference(monkeypatch):
    """Our re-implementation (shared windows, numpy P.808 features) must give speechmos's numbers;
    speechmos computes the P.808 mel features with librosa (a dev dependency)."""
    pytest.importorskip("librosa", reason="librosa (dev extra) is speechmos's P.808 feature reference")
    monkeypatch.delitem(sys.modules, "speechmos.dnsmos", raising=False)
    try:
        from speechmos import dnsmos as reference
    except ImportError as exc:
        pytest.skip(f"speechmos.dnsmos not importable here: {exc}")
    monkeypatch.setattr(reference, "dnsmos", None)  # no session cached from elsewhere
    speech = _read(LONG_SPEECH)
    # 9.5 s: one window, no tiling; 8 s: tiled to 16 s, seven windows sharing their frames (the
    # length of the test split's clips); 8.00625 s: tiled, but not a whole number of frames
    for seconds in (9.5, 8.0, 8.00625):
        clip = np.clip(speech[: int(seconds * 16000)], -1, 1).astype(np.float32)
        expected = reference.run(clip, 16000)
        ours = metrics.dnsmos(clip, p808=True)
        assert ours["sig"] == pytest.approx(expected["sig_mos"], abs=1e-5), seconds
        assert ours["bak"] == pytest.approx(expected["bak_mos"], abs=1e-5), seconds
        assert ours["ovrl"] == pytest.approx(expected["ovrl_mos"], abs=1e-5), seconds
        assert ours["p808"] == pytest.approx(expected["p808_mos"], abs=1e-5), seconds


@needs_data
def test_dnsmos_shared_windows_equal_per_window_on_a_long_clip(speech, white):
    """A 20-s clip (eleven windows, no tiling, frames computed in several chunks) scores the same
    with the shared computation as with the whole network run on every window."""
    long = np.resize(np.concatenate([_read(LONG_SPEECH), _read(SPEECH)]), 20 * 16000)  # 13.9 s of speech, repeated
    long = long + 0.05 * np.resize(white, len(long))
    fast = metrics.dnsmos(long)
    slow = metrics.dnsmos(long, shared=False)
    for key in ("sig", "bak", "ovrl"):
        assert fast[key] == pytest.approx(slow[key], abs=1e-5), key


@needs_data
@pytest.mark.parametrize("seconds", [0.3, 0.5, 3.0])
def test_dnsmos_shared_windows_equal_per_window_on_short_tiled_clips(seconds):
    """Short clips are tiled many times: one window (0.3 s), seven (0.5 s), three (3 s), each
    computed over one period of frames, wrapped around."""
    clip = _read(LONG_SPEECH)[int(2 * 16000): int((2 + seconds) * 16000)]
    fast, slow = metrics.dnsmos(clip), metrics.dnsmos(clip, shared=False)
    for key in ("sig", "bak", "ovrl"):
        assert fast[key] == pytest.approx(slow[key], abs=1e-5), key
