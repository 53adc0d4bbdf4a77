"""The denoising API (issue 5): any shape, length, rate and strength; chunked = whole-file;
streaming ``denoise_file`` = in-memory ``Denoiser``; the shipped model and the demo.

Most tests use small random checkpoints (tests/conftest.py: random weights, BatchNorm statistics
perturbed so inference is not an identity of the training statistics), which are fast and make
chunking errors visible; the shipped model and examples are tested as shipped.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from conftest import noisy_speech, random_checkpoint
from specdenoise.enhance import PRETRAINED, Denoiser, denoise_file, model_path, pretrained_path
from specdenoise.errors import AudioError, ConfigError

PACKAGE = Path(str(resources.files("specdenoise")))
SHIPPED_MODEL = PACKAGE / "pretrained" / "default.pt"
SHIPPED_EXAMPLES = PACKAGE / "examples" / "examples.json"
RATES = (8000, 16000, 22050, 44100, 48000)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shipped_size_ckpt(tmp_path_factory) -> Path:
    """Same architecture as the shipped U-Net (pretrained/unet.pt: depth 4, base 8): its receptive
    field and frame grid are what chunking must respect."""
    return random_checkpoint(tmp_path_factory.mktemp("ckpt") / "unet8.pt", "unet", seed=3, kaiming=True, norms=True,
                             depth=4, base_channels=8)


@pytest.fixture(scope="session")
def cnn_ckpt(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("ckpt") / "cnn.pt", "cnn", seed=5, kaiming=True, norms=True)


@pytest.fixture(scope="session")
def tiny(tiny_ckpt) -> Denoiser:
    return Denoiser.from_checkpoint(tiny_ckpt)


@pytest.fixture(scope="session")
def data(shared_data) -> Path:
    return shared_data


def band_energy(x: np.ndarray, rate: int, low_hz: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    return float(spec[np.fft.rfftfreq(len(x), 1 / rate) >= low_hz].sum())


def lowpass(x: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(len(x), 1 / rate) > cutoff_hz] = 0
    return np.fft.irfft(spec, len(x))


# --- the API: types, shapes, lengths, rates ----------------------------------------------------


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("channels", [None, 2])
def test_same_type_and_shape_out(tiny, data, rng, kind, channels):
    x = noisy_speech(data, rng, 1.3, 16000, channels)
    inp = torch.from_numpy(x.copy()) if kind == "torch" else x.copy()
    y = tiny(inp, 16000)
    assert type(y) is type(inp)
    assert tuple(y.shape) == x.shape
    assert y.dtype == inp.dtype
    y = y.numpy() if kind == "torch" else y
    assert np.isfinite(y).all()
    assert np.abs(y - x).max() > 1e-3, "the model did nothing"
    assert np.array_equal(inp.numpy() if kind == "torch" else inp, x), "the input was modified"


def test_numpy_and_torch_agree(tiny, data, rng):
    x = noisy_speech(data, rng, 1.0, 22050, channels=2)
    np.testing.assert_array_equal(tiny(x, 22050), tiny(torch.from_numpy(x), 22050).numpy())


def test_channels_are_independent(tiny, data, rng):
    x = noisy_speech(data, rng, 1.0, 16000, channels=3)
    y = tiny(x, 16000)
    for c in range(3):
        np.testing.assert_allclose(y[c], tiny(x[c], 16000), atol=1e-6)


def test_float64_and_grad_inputs(tiny, data, rng):
    x = noisy_speech(data, rng, 0.7, 16000)
    y64 = tiny(x.astype(np.float64), 16000)
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, tiny(x, 16000), atol=1e-6)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = tiny(t, 16000)
    assert isinstance(yt, torch.Tensor) and not yt.requires_grad and yt.dtype == torch.float32


@pytest.mark.parametrize("rate", [16000, 44100, 8000])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 255, 513, 2047, 2049])
def test_any_length(tiny, rng, rate, n):
    x = (rng.standard_normal(n) * 0.1).astype(np.float32)
    y = tiny(x, rate)
    assert y.shape == (n,) and np.isfinite(y).all()
    y2 = tiny(np.stack([x, -x]), rate, layout="channels_first")  # (2, 2) would be ambiguous
    assert y2.shape == (2, n) and np.isfinite(y2).all()


@pytest.mark.parametrize("rate", RATES)
def test_short_clip(tiny, data, rng, rate):
    n = int(0.05 * rate)
    x = noisy_speech(data, rng, 0.05, rate)[:n]
    y = tiny(x, rate)
    assert y.shape == x.shape and np.isfinite(y).all()


def test_empty_input(tiny):
    assert tiny(np.zeros(0, np.float32), 16000).shape == (0,)
    assert tiny(np.zeros((2, 0), np.float32), 44100).shape == (2, 0)
    assert tuple(tiny(torch.zeros(0), 16000).shape) == (0,)


@pytest.mark.parametrize("rate", RATES)
def test_sample_rates_keep_length(tiny, data, rng, rate):
    n = int(2.3 * rate) + 7  # an odd number of samples that rounds unevenly at every ratio
    x = noisy_speech(data, rng, 2.4, rate)[:n]
    y = tiny(x, rate)
    assert y.shape == (n,)
    assert np.isfinite(y).all() and np.abs(y).max() > 1e-3


def test_resampled_path_tracks_the_model_rate(tiny, data, rng):
    """Denoising at 48 kHz is (within resampling error) denoising the 16 kHz version."""
    x16 = noisy_speech(data, rng, 2.0, 16000)
    x48 = soxr.resample(x16, 16000, 48000, quality="HQ").astype(np.float32)
    y16 = tiny(x16, 16000)
    y48 = soxr.resample(tiny(x48, 48000), 48000, 16000, quality="HQ")
    inner = slice(800, len(x16) - 800)
    # below 6 kHz (the resamplers' transition bands lie above): the same signal, not delayed
    a, b = lowpass(y48[inner], 16000, 6000), lowpass(y16[inner], 16000, 6000)
    err = np.sqrt(np.mean((a - b) ** 2) / np.mean(b**2))
    assert err < 0.005, f"relative RMS error {err:.4f}"


@pytest.mark.parametrize("bad", [None, 0, -16000])
def test_sample_rate_required(tiny, bad):
    with pytest.raises(ConfigError, match="sample_rate"):
        tiny(np.zeros(100, np.float32), bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_refused(tiny, value):
    x = np.zeros(1000, np.float32)
    x[500] = value
    with pytest.raises(ConfigError, match="NaN"):
        tiny(x, 16000)
    with pytest.raises(ConfigError, match="NaN"):
        tiny(torch.from_numpy(np.stack([np.zeros(1000, np.float32), x])), 16000)


def test_bad_shapes_refused(tiny):
    with pytest.raises(ConfigError, match="shape"):
        tiny(np.zeros((1, 2, 100), np.float32), 16000)
    with pytest.raises(ConfigError, match="shape"):
        tiny(np.float32(0.5), 16000)


# --- strength ----------------------------------------------------------------------------------


def test_strength_zero_returns_the_input(tiny_ckpt, data, rng):
    off = Denoiser.from_checkpoint(tiny_ckpt, strength=0.0)
    x16 = noisy_speech(data, rng, 1.5, 16000, channels=2)
    np.testing.assert_array_equal(off(x16, 16000), x16)
    # at other rates the dry signal is mixed back at the input rate: no resampling round trip
    for rate in (44100, 8000):
        x = noisy_speech(data, rng, 1.5, rate)
        np.testing.assert_allclose(off(x, rate), x, atol=1e-6)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_strength_mixes(tiny_ckpt, data, rng, rate):
    x = noisy_speech(data, rng, 1.5, rate)
    full = Denoiser.from_checkpoint(tiny_ckpt)(x, rate)
    for s in (0.25, 0.5, 0.9):
        y = Denoiser.from_checkpoint(tiny_ckpt, strength=s)(x, rate)
        np.testing.assert_allclose(y, s * full + (1 - s) * x, atol=1e-5)


def test_strength_caps_attenuation_above_the_model_band(tiny_ckpt, rng):
    """The model runs at 16 kHz, so a 44.1 kHz input loses everything above 8 kHz on the wet
    path; with strength < 1 the mixed-back input must keep that band at -20*log10(1-s) dB."""
    rate, s = 44100, 0.5
    x = (rng.standard_normal(rate) * 0.1).astype(np.float32)
    y = Denoiser.from_checkpoint(tiny_ckpt, strength=s)(x, rate)
    kept_db = 10 * np.log10(band_energy(y, rate, 9000) / band_energy(x, rate, 9000))
    assert kept_db >= 20 * np.log10(1 - s) - 0.5, f"high band attenuated by {-kept_db:.1f} dB"


@pytest.mark.parametrize("bad", [-0.1, 1.1, float("nan")])
def test_strength_out_of_range_refused(tiny_ckpt, bad):
    with pytest.raises(ConfigError, match="strength"):
        Denoiser.from_checkpoint(tiny_ckpt, strength=bad)


@pytest.mark.parametrize("limit_db", [0.5, 3.0, 6.0, 20.0, 60.0])
def test_attenuation_to_strength(limit_db):
    s = Denoiser.attenuation_to_strength(limit_db)
    assert 0.0 < s < 1.0
    assert 20 * np.log10(1 - s) == pytest.approx(-limit_db)


def test_attenuation_limit_edges():
    assert Denoiser.attenuation_to_strength(0.0) == 0.0  # no attenuation allowed: pass through
    assert Denoiser.attenuation_to_strength(float("inf")) == 1.0
    for bad in (-1.0, float("nan")):
        with pytest.raises(ConfigError, match="attenuation"):
            Denoiser.attenuation_to_strength(bad)


def test_attenuation_limit_holds_on_pure_noise(tiny_ckpt, rng):
    """Whatever the model removes, the output keeps at least (1 - s) of the input."""
    s = Denoiser.attenuation_to_strength(6.0)
    x = (rng.standard_normal(32000) * 0.1).astype(np.float32)
    y = Denoiser.from_checkpoint(tiny_ckpt, strength=s)(x, 16000)
    full = Denoiser.from_checkpoint(tiny_ckpt)(x, 16000)
    np.testing.assert_allclose(y - (1 - s) * x, s * full, atol=1e-5)


# --- construction --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"chunk_seconds": 0}, {"chunk_seconds": -1}, {"chunk_seconds": float("nan")},
                                    {"context_seconds": -0.5}, {"context_seconds": float("inf")}])
def test_bad_chunking_refused(tiny_ckpt, kwargs):
    with pytest.raises(ConfigError):
        Denoiser.from_checkpoint(tiny_ckpt, **kwargs)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    from specdenoise.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not found"):
        Denoiser.from_checkpoint(tmp_path / "nope.pt")


def test_unknown_pretrained_name():
    with pytest.raises(ConfigError, match="unknown pretrained"):
        pretrained_path("nope")


def test_load_takes_a_shipped_name_or_a_checkpoint_path(tiny_ckpt, rng):
    """``Denoiser.load`` (behind every ``--model`` option): a name resolves to the shipped file,
    anything else is a path, and both load the same way as the explicit constructors."""
    for name in PRETRAINED:
        assert model_path(name) == pretrained_path(name)
    assert model_path(tiny_ckpt) == Path(tiny_ckpt)
    assert Denoiser.load("default").source == Denoiser.from_pretrained("default").source
    x = rng.standard_normal(16000).astype(np.float32) * 0.1
    np.testing.assert_array_equal(Denoiser.load(str(tiny_ckpt))(x, 16000), Denoiser.from_checkpoint(tiny_ckpt)(x, 16000))
    from specdenoise.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not found"):
        Denoiser.load("nope")  # not a shipped name, so a (missing) path


def test_silence_stays_silent(tiny):
    y = tiny(np.zeros(16000, np.float32), 16000)
    assert np.isfinite(y).all() and np.abs(y).max() < 1e-4


# --- chunked = whole ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate, chunks", [(16000, (0.5, 1.0)), (44100, (0.77,))])
def test_chunked_equals_whole(shipped_size_ckpt, data, rng, rate, chunks):
    x = noisy_speech(data, rng, 7.0, rate)
    whole = Denoiser.from_checkpoint(shipped_size_ckpt, chunk_seconds=1000.0)(x, rate)
    for chunk in chunks:  # 0.77 s is off the model's frame grid: it is rounded onto it
        den = Denoiser.from_checkpoint(shipped_size_ckpt, chunk_seconds=chunk)
        assert den.chunk <= 16384 < len(x)
        np.testing.assert_allclose(den(x, rate), whole, atol=1e-4, err_msg=f"chunk_seconds={chunk}")


def test_chunked_equals_whole_cnn(cnn_ckpt, data, rng):
    x = noisy_speech(data, rng, 4.0, 16000)
    whole = Denoiser.from_checkpoint(cnn_ckpt, chunk_seconds=1000.0)(x, 16000)
    chunked = Denoiser.from_checkpoint(cnn_ckpt, chunk_seconds=0.77, context_seconds=0.0)(x, 16000)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


def test_chunked_equals_whole_stereo_partial_strength(tiny_ckpt, data, rng):
    x = noisy_speech(data, rng, 3.3, 22050, channels=2)
    whole = Denoiser.from_checkpoint(tiny_ckpt, strength=0.6, chunk_seconds=1000.0)(x, 22050)
    chunked = Denoiser.from_checkpoint(tiny_ckpt, strength=0.6, chunk_seconds=0.3)(x, 22050)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


def test_context_never_narrower_than_the_receptive_field(shipped_size_ckpt, data, rng):
    """``context_seconds`` is a minimum: too small a value is widened to the model's receptive
    field, so even context_seconds=0 gives whole-file output. The equality is not vacuous: with
    the context forced below the receptive field, chunk borders show."""
    x = noisy_speech(data, rng, 4.0, 16000)
    whole = Denoiser.from_checkpoint(shipped_size_ckpt, chunk_seconds=1000.0)(x, 16000)
    den = Denoiser.from_checkpoint(shipped_size_ckpt, chunk_seconds=0.5, context_seconds=0.0)
    np.testing.assert_allclose(den(x, 16000), whole, atol=1e-4)
    den.context = 2048  # 16 frames: far inside the receptive field of a depth-4 U-Net
    assert np.abs(den(x, 16000) - whole).max() > 1e-3


def test_deeper_unet_gets_more_context(tmp_path, data, rng):
    ckpt = random_checkpoint(tmp_path / "deep.pt", "unet", seed=7, kaiming=True, norms=True, depth=5, base_channels=4)
    den = Denoiser.from_checkpoint(ckpt, chunk_seconds=0.5)  # default context_seconds=1.0
    assert den.context > 16000 * 1.5
    x = noisy_speech(data, rng, 6.0, 16000)
    whole = Denoiser.from_checkpoint(ckpt, chunk_seconds=1000.0)(x, 16000)
    np.testing.assert_allclose(den(x, 16000), whole, atol=1e-4)


# --- streaming files = in-memory ---------------------------------------------------------------


@pytest.mark.parametrize("rate, channels", [(16000, None), (44100, 2)])
def test_denoise_file_equals_in_memory(tiny_ckpt, data, rng, tmp_path, rate, channels):
    x = noisy_speech(data, rng, 4.2, rate, channels)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x.T, rate, subtype="FLOAT")
    den = Denoiser.from_checkpoint(tiny_ckpt, chunk_seconds=0.6, strength=0.8)
    result = denoise_file(den, src, dst, block_seconds=0.37)
    assert result.target == dst and result.duration == pytest.approx(x.shape[-1] / rate)
    y, sr = sf.read(dst, dtype="float32", always_2d=True)
    assert sr == rate and sf.info(dst).subtype == "FLOAT"
    expected = den(x, rate)
    np.testing.assert_allclose(y.T if channels else y[:, 0], expected, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def test_denoise_file_block_size_does_not_matter(tiny, data, rng, tmp_path):
    x = noisy_speech(data, rng, 2.5, 22050)
    src = tmp_path / "in.wav"
    sf.write(src, x, 22050, subtype="FLOAT")
    outs = []
    for block in (0.01, 0.5, 100.0):
        dst = tmp_path / f"out_{block}.wav"
        denoise_file(tiny, src, dst, block_seconds=block)
        outs.append(sf.read(dst, dtype="float32")[0])
    np.testing.assert_allclose(outs[0], outs[2], atol=1e-6)
    np.testing.assert_allclose(outs[1], outs[2], atol=1e-6)


def test_denoise_file_refuses_truncated_wav(tiny, data, rng, tmp_path):
    x = noisy_speech(data, rng, 1.0, 16000)
    src = tmp_path / "cut.wav"
    sf.write(src, x, 16000, subtype="PCM_16")
    raw = src.read_bytes()
    src.write_bytes(raw[: len(raw) - 4000])  # header still promises the full length
    with pytest.raises(AudioError, match="truncated"):
        denoise_file(tiny, src, tmp_path / "out.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.wav"]


def test_denoise_file_refuses_its_input(tiny, data, rng, tmp_path):
    x = noisy_speech(data, rng, 0.5, 16000)
    src = tmp_path / "in.wav"
    sf.write(src, x, 16000)
    before = src.read_bytes()
    for force in (False, True):
        with pytest.raises(AudioError, match="input"):
            denoise_file(tiny, src, src, force=force)
        with pytest.raises(AudioError, match="input"):
            denoise_file(tiny, src, tmp_path / "." / "in.wav", force=force)
    assert src.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["in.wav"]


# --- the shipped model and the demo (tests/test_demo.py checks the demo's output and scores) ----


def test_shipped_model_and_examples_are_in_the_package():
    assert SHIPPED_MODEL.is_file(), f"the shipped model {SHIPPED_MODEL} is missing"
    assert SHIPPED_EXAMPLES.is_file(), f"the shipped examples {SHIPPED_EXAMPLES} are missing"
    assert pretrained_path("default") == SHIPPED_MODEL


def test_from_pretrained(data, rng):
    den = Denoiser.from_pretrained()
    assert den.sample_rate == 16000
    x = noisy_speech(data, rng, 3.0, 16000, snr_db=0.0)
    y = den(x, 16000)
    assert y.shape == x.shape and np.isfinite(y).all()
    assert Denoiser.from_pretrained(strength=0.0)(x, 16000).tolist() == x.tolist()
    # it removes noise: pure recorded noise comes out quieter
    noise_files = sorted((data / "noise" / "synthetic_stationary").glob("*.flac"))
    noise = sf.read(noise_files[0], dtype="float32")[0][:48000]
    noise *= 0.03 / np.sqrt(np.mean(noise**2))  # -30 dBFS: inside the training levels
    assert np.mean(den(noise, 16000) ** 2) < 0.5 * np.mean(noise**2)


def test_demo_with_a_checkpoint(tiny_ckpt, tmp_path):
    from specdenoise.demo import load_example, run_demo

    report = run_demo(tmp_path / "demo", model=str(tiny_ckpt))
    noisy, _, sr, _ = load_example("example1")
    y, rate = sf.read(report["wav"])
    assert rate == sr and len(y) == len(noisy)


def test_demo_unknown_example(tmp_path):
    from specdenoise.demo import run_demo

    with pytest.raises(ConfigError, match="unknown example"):
        run_demo(tmp_path, example="nope")


def test_demo_without_examples_is_a_clear_error(tiny_ckpt, tmp_path, monkeypatch):
    from specdenoise import demo

    monkeypatch.setattr(demo, "examples_dir", lambda: tmp_path / "no_examples")
    with pytest.raises(ConfigError, match="examples"):
        demo.run_demo(tmp_path / "out", model=str(tiny_ckpt))
    assert not (tmp_path / "out").exists()
