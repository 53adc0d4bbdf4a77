"""Audio I/O: formats, channels, resampling, bad inputs, atomic and careful writes."""
from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specdenoise import audio
from specdenoise.errors import AudioError

RATE = 16000


def _noise(rng, n=RATE, channels=None, level=0.5) -> np.ndarray:
    shape = (n,) if channels is None else (n, channels)
    return np.clip(rng.uniform(-level, level, shape), -1, 1).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence): the measurement these tests compare."""
    power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10.0 * np.log10(power) if power > 0 else float("-inf")


def _sine(freq, rate, seconds=1.0, amp=0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def _assert_audio_error(path: Path, **kwargs) -> AudioError:
    with pytest.raises(AudioError) as info:
        audio.read(path, **kwargs)
    assert path.name in str(info.value)
    assert Path(info.value.path).name == path.name
    assert info.value.reason and "\n" not in str(info.value)
    return info.value


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- reading formats -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, subtype, suffix, tol",
    [
        ("WAV", "PCM_U8", ".wav", 1 / 127),
        ("WAV", "PCM_16", ".wav", 1 / 2**15),
        ("WAV", "PCM_24", ".wav", 1 / 2**23),
        ("WAV", "PCM_32", ".wav", 1 / 2**30),
        ("WAV", "FLOAT", ".wav", 0.0),
        ("WAV", "DOUBLE", ".wav", 1e-7),
        ("FLAC", "PCM_16", ".flac", 1 / 2**15),
        ("FLAC", "PCM_24", ".flac", 1 / 2**23),
    ],
)
def test_read_lossless_formats(tmp_path, rng, fmt, subtype, suffix, tol):
    x = _noise(rng, 4000)
    path = tmp_path / f"in{suffix}"
    sf.write(path, x, RATE, format=fmt, subtype=subtype)
    assert sf.info(path).subtype == subtype
    y, rate = audio.read(path)
    assert rate == RATE
    assert y.dtype == np.float32 and y.shape == (4000,)
    assert np.abs(y - x).max() <= tol
    # reading never changes the file
    assert sf.info(path).frames == 4000


def test_read_ogg_vorbis(tmp_path):
    x = _sine(1000, RATE, 1.0, amp=0.5)
    path = tmp_path / "in.ogg"
    sf.write(path, x, RATE, format="OGG", subtype="VORBIS")
    y, rate = audio.read(path)
    assert rate == RATE and y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(x)) <= 1024  # lossy codec: length close, not necessarily equal
    assert abs(_peak_hz(y, RATE) - 1000) <= 2
    assert abs(rms_db(y[2000:-2000]) - rms_db(x[2000:-2000])) < 0.5


def test_stereo_to_mono_is_the_mean(tmp_path, rng):
    x = _noise(rng, 3000, channels=2)
    path = tmp_path / "stereo.wav"
    sf.write(path, x, RATE, subtype="FLOAT")
    mono, _ = audio.read(path)
    assert mono.shape == (3000,)
    np.testing.assert_allclose(mono, x.mean(axis=1), atol=1e-7)
    kept, _ = audio.read(path, mono=False)
    assert kept.shape == (2, 3000) and kept.dtype == np.float32
    np.testing.assert_array_equal(kept, x.T)
    assert kept.flags["C_CONTIGUOUS"]


def test_mono_file_kept_channels_is_2d(tmp_path, rng):
    path = tmp_path / "mono.wav"
    sf.write(path, _noise(rng, 100), RATE, subtype="FLOAT")
    kept, _ = audio.read(path, mono=False)
    assert kept.shape == (1, 100)


# --- resampling ----------------------------------------------------------------------------


@pytest.mark.parametrize("source_rate", [44100, 8000, 48000, 22050])
def test_resample_keeps_frequency_and_level(source_rate):
    x = _sine(1000, source_rate, 1.0, amp=0.5)
    y = audio.resample(x, source_rate, RATE)
    assert y.dtype == np.float32
    assert abs(len(y) - RATE) <= 1
    assert abs(_peak_hz(y, RATE) - 1000) <= 1.0  # 1 Hz bins at 1 s
    edge = 800  # ignore the filter's start-up and tail
    level_change = rms_db(y[edge:-edge]) - rms_db(x[edge * source_rate // RATE : -edge * source_rate // RATE])
    assert abs(level_change) < 0.1


@pytest.mark.parametrize("source_rate", [44100, 8000])
def test_read_resamples_files(tmp_path, source_rate):
    x = np.stack([_sine(1000, source_rate, 0.5, 0.5), _sine(1000, source_rate, 0.5, 0.25)])
    path = tmp_path / f"sine_{source_rate}.wav"
    sf.write(path, x.T, source_rate, subtype="FLOAT")
    y, rate = audio.read(path, sample_rate=RATE, mono=False)
    assert rate == RATE and y.shape[0] == 2 and abs(y.shape[1] - RATE // 2) <= 1
    assert y.dtype == np.float32
    for channel, amp in zip(y, (0.5, 0.25)):
        assert abs(_peak_hz(channel, RATE) - 1000) <= 2.0
        assert abs(rms_db(channel[800:-800]) - 20 * np.log10(amp / np.sqrt(2))) < 0.1
    mono, _ = audio.read(path, sample_rate=RATE)
    assert mono.ndim == 1
    assert abs(rms_db(mono[800:-800]) - 20 * np.log10(0.375 / np.sqrt(2))) < 0.1


def test_resample_same_rate_is_identity_and_bad_rates_refused(rng):
    x = _noise(rng, 100)
    assert audio.resample(x, RATE, RATE) is x
    with pytest.raises(ValueError):
        audio.resample(x, 0, RATE)
    with pytest.raises(ValueError):
        audio.resample(x, RATE, -8000)


# --- bad inputs ----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    error = _assert_audio_error(tmp_path / "nowhere.wav")
    assert "not found" in error.reason


def test_folder(tmp_path):
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    error = _assert_audio_error(folder)
    assert "folder" in error.reason


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    _assert_audio_error(path)
    with pytest.raises(AudioError, match="notes.wav"):
        audio.info(path)


def _pcm16_wav(tmp_path, rng, name="full.wav", n=RATE) -> Path:
    path = tmp_path / name
    sf.write(path, _noise(rng, n), RATE, subtype="PCM_16")
    return path


def test_truncated_wav_data(tmp_path, rng):
    data = _pcm16_wav(tmp_path, rng).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])  # an interrupted copy: header promises more samples
    error = _assert_audio_error(path)
    assert "truncated" in error.reason


def test_truncated_wav_header(tmp_path, rng):
    data = _pcm16_wav(tmp_path, rng).read_bytes()
    path = tmp_path / "cut_header.wav"
    path.write_bytes(data[:30])
    _assert_audio_error(path)


def test_corrupt_wav(tmp_path, rng):
    data = bytearray(_pcm16_wav(tmp_path, rng).read_bytes())
    data[12:40] = rng.integers(0, 256, 28, dtype=np.uint8).tobytes()  # garble the fmt chunk
    path = tmp_path / "garbled.wav"
    path.write_bytes(bytes(data))
    _assert_audio_error(path)


def test_truncated_flac(tmp_path, rng):
    src = tmp_path / "full.flac"
    sf.write(src, _noise(rng, 3 * RATE), RATE, subtype="PCM_16")
    data = src.read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(data[: len(data) // 2])
    _assert_audio_error(path)


def test_zero_length_files(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), RATE, subtype="PCM_16")
    error = _assert_audio_error(empty)
    assert "empty" in error.reason
    y, rate = audio.read(empty, allow_empty=True)
    assert y.shape == (0,) and rate == RATE
    y, rate = audio.read(empty, sample_rate=8000, allow_empty=True)
    assert y.shape == (0,) and rate == 8000

    zero_bytes = tmp_path / "zero_bytes.wav"
    zero_bytes.touch()
    _assert_audio_error(zero_bytes)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_wav(tmp_path, rng, bad):
    x = _noise(rng, 1000)
    x[rng.integers(0, 1000)] = bad
    path = tmp_path / "nonfinite.wav"
    sf.write(path, x, RATE, subtype="FLOAT")
    error = _assert_audio_error(path)
    assert "NaN" in error.reason or "Inf" in error.reason


def test_silent_and_clipped_files_are_fine(tmp_path, rng):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(RATE, np.float32), RATE, subtype="PCM_16")
    y, _ = audio.read(silent)
    assert y.shape == (RATE,) and not y.any()
    assert rms_db(y) == float("-inf")

    clipped = tmp_path / "clipped.wav"
    sf.write(clipped, np.clip(3 * _noise(rng), -1, 1), RATE, subtype="PCM_16")
    y, _ = audio.read(clipped)
    assert np.abs(y).max() >= 0.99 and np.abs(y).max() <= 1.0

    hot = tmp_path / "hot_float.wav"  # float files may exceed full scale: kept as is
    x = 2.5 * _noise(rng)
    sf.write(hot, x, RATE, subtype="FLOAT")
    y, _ = audio.read(hot)
    np.testing.assert_array_equal(y, x)


# --- writing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, subtype, tol",
    [(".wav", "PCM_16", 1 / 2**15), (".wav", "PCM_24", 1 / 2**23), (".wav", "PCM_32", 1 / 2**30),
     (".wav", "FLOAT", 0.0), (".flac", "PCM_16", 1 / 2**15), (".flac", "PCM_24", 1 / 2**23)],
)
def test_write_read_round_trip(tmp_path, rng, suffix, subtype, tol):
    x = _noise(rng, 2000, channels=2).T  # (channels, samples)
    path = audio.write(tmp_path / f"out{suffix}", x, RATE, subtype=subtype)
    assert path == tmp_path / f"out{suffix}"
    meta = sf.info(path)
    assert meta.format == ("FLAC" if suffix == ".flac" else "WAV") and meta.subtype == subtype
    y, rate = audio.read(path, mono=False)
    assert rate == RATE and y.shape == (2, 2000)
    assert np.abs(y - x).max() <= tol
    assert _leftovers(tmp_path) == [f"out{suffix}"]


def test_write_ogg_by_suffix(tmp_path):
    path = audio.write(tmp_path / "out.ogg", _sine(1000, RATE, 0.5), RATE)
    assert sf.info(path).format == "OGG"


def test_write_refuses_flac_float(tmp_path, rng):
    with pytest.raises(ValueError, match="FLAC"):
        audio.write(tmp_path / "out.flac", _noise(rng, 10), RATE, subtype="FLOAT")
    with pytest.raises(ValueError, match="subtype"):
        audio.write(tmp_path / "out.wav", _noise(rng, 10), RATE, subtype="PCM_12")
    assert _leftovers(tmp_path) == []


def test_write_clips_integer_subtypes(tmp_path, rng):
    x = 3 * _noise(rng, 1000)
    y, _ = audio.read(audio.write(tmp_path / "int.wav", x, RATE))
    assert np.abs(y).max() <= 1.0
    np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=1 / 2**15)
    y, _ = audio.read(audio.write(tmp_path / "float.wav", x, RATE, subtype="FLOAT"))
    np.testing.assert_array_equal(y, x)


def test_write_refuses_non_finite(tmp_path, rng):
    x = _noise(rng, 100)
    x[5] = np.nan
    with pytest.raises(AudioError, match="out.wav"):
        audio.write(tmp_path / "out.wav", x, RATE)
    assert _leftovers(tmp_path) == []


def test_write_refuses_to_overwrite(tmp_path, rng):
    path = tmp_path / "out.wav"
    first = _noise(rng, 500)
    audio.write(path, first, RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="out.wav") as info:
        audio.write(path, _noise(rng, 700), RATE, subtype="FLOAT")
    assert "exists" in info.value.reason
    y, _ = audio.read(path)
    np.testing.assert_array_equal(y, first)  # untouched
    second = _noise(rng, 700)
    audio.write(path, second, RATE, subtype="FLOAT", overwrite=True)
    np.testing.assert_array_equal(audio.read(path)[0], second)
    assert _leftovers(tmp_path) == ["out.wav"]


def test_write_refuses_protected_paths(tmp_path, rng):
    source = tmp_path / "input.wav"
    sf.write(source, _noise(rng, 500), RATE, subtype="FLOAT")
    before = source.read_bytes()
    other = tmp_path / "other.wav"
    spellings = [source, str(source), tmp_path / "sub" / ".." / "input.wav"]
    link = tmp_path / "link.wav"
    link.symlink_to(source)
    hard = tmp_path / "hard.wav"
    os.link(source, hard)
    (tmp_path / "sub").mkdir()
    for target in spellings + [link, hard]:
        with pytest.raises(AudioError, match="input"):
            audio.write(target, _noise(rng, 100), RATE, overwrite=True, protect=(other, source))
    # protection also holds when the protected path is given through a link
    with pytest.raises(AudioError):
        audio.write(source, _noise(rng, 100), RATE, overwrite=True, protect=(link,))
    assert source.read_bytes() == before
    # an unprotected path next to it is written
    audio.write(other, _noise(rng, 100), RATE, protect=(source,))
    assert other.exists()


def test_failed_write_leaves_nothing(tmp_path, rng, monkeypatch):
    real_write = sf.write
    calls = []

    def write_then_fail(file, data, *args, **kwargs):
        calls.append(file)
        real_write(file, data[: len(data) // 2], *args, **kwargs)  # half the file is on disk
        raise OSError("No space left on device")

    monkeypatch.setattr(sf, "write", write_then_fail)
    folder = tmp_path / "out"
    with pytest.raises(OSError, match="No space"):
        audio.write(folder / "new.wav", _noise(rng, 1000), RATE)
    assert calls, "the monkeypatched soundfile.write was not used"
    assert _leftovers(folder) == []

    # replacing an existing file: a failure keeps the old file intact
    monkeypatch.setattr(sf, "write", real_write)
    old = _noise(rng, 300)
    audio.write(folder / "old.wav", old, RATE, subtype="FLOAT")
    monkeypatch.setattr(sf, "write", write_then_fail)
    with pytest.raises(OSError):
        audio.write(folder / "old.wav", _noise(rng, 1000), RATE, subtype="FLOAT", overwrite=True)
    assert _leftovers(folder) == ["old.wav"]
    np.testing.assert_array_equal(audio.read(folder / "old.wav")[0], old)


def test_interrupted_write_leaves_nothing(tmp_path, rng, monkeypatch):
    def interrupted(file, *args, **kwargs):
        Path(file).write_bytes(b"RIFF....")
        raise KeyboardInterrupt

    monkeypatch.setattr(sf, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        audio.write(tmp_path / "x.wav", _noise(rng, 10), RATE)
    assert _leftovers(tmp_path) == []


def test_written_file_mode_follows_umask(tmp_path, rng):
    old = os.umask(0o022)
    try:
        path = audio.write(tmp_path / "shared.wav", _noise(rng, 10), RATE)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_creates_parent_folders(tmp_path, rng):
    path = audio.write(tmp_path / "a" / "b" / "c.wav", _noise(rng, 10), RATE)
    assert path.exists()


# --- small helpers and real data -----------------------------------------------------------


def test_rms_db_helper_and_is_audio_file():
    assert rms_db(_sine(1000, RATE, 1.0, amp=1.0)) == pytest.approx(-3.0103, abs=1e-3)
    assert rms_db(np.full(10, 0.1, np.float32)) == pytest.approx(-20.0, abs=1e-4)
    assert rms_db(np.zeros(0)) == float("-inf")
    assert audio.is_audio_file("a/b.WAV") and audio.is_audio_file("x.flac") and audio.is_audio_file("x.ogg")
    assert not audio.is_audio_file("x.mp3") and not audio.is_audio_file("wav")


def test_real_file_reads_at_16k_mono(shared_data):
    with open(shared_data / "MANIFEST.tsv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["kind"] == "speech"]
    assert rows, "no speech rows in MANIFEST.tsv"
    row = rows[0]
    y, rate = audio.read(shared_data / row["path"], sample_rate=RATE)
    assert rate == RATE and y.ndim == 1 and y.dtype == np.float32
    assert len(y) / RATE == pytest.approx(float(row["duration_s"]), abs=0.02)
    assert np.isfinite(y).all() and 0 < np.abs(y).max() <= 1.0
    assert rms_db(y) > -60  # speech, not silence
