"""Streaming (issue 11): a causal model pushed block by block equals offline processing, shifted by
the stated latency, at any block size, rate and channel count; Denoiser's chunked path for a
causal model carries the state (chunked == whole); the low-latency resampler is exact."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from conftest import noisy_speech, random_model
from specdenoise.enhance import Denoiser
from specdenoise.errors import ConfigError
from specdenoise.models import build_model, save_checkpoint, serialize
from specdenoise.resampling import StreamResampler, design
from specdenoise.streaming import FrameEngine, NotCausalError, StreamingDenoiser


@pytest.fixture(scope="module", params=[0, 1, 2], ids=["causal", "lookahead", "lookahead2"])
def crn(request):
    """A mask far from 0 and 1, so errors would show; and deep filters with one and two frames of
    look-ahead (their frames come out one or two steps late, the engine must shift and flush them)."""
    if request.param:
        return random_model("crn", seed=11, gain=1.5, filter_taps=request.param + 1, lookahead=request.param)
    return random_model("crn", seed=11, gain=1.5)


def _push_randomly(stream, x: np.ndarray, rng, largest: int) -> np.ndarray:
    outs, i = [], 0
    while i < len(x):
        n = int(rng.choice([1, 2, 7, int(rng.integers(1, largest))]))
        y = stream.push(x[i : i + n])
        assert len(y) == len(x[i : i + n])  # a live stream gets back what it gave
        outs.append(y)
        i += n
    outs.append(stream.flush())
    return np.concatenate(outs)


def _offline(model, x: np.ndarray, rate: int) -> np.ndarray:
    """The same causal model on the whole signal, through the same resampling filters applied
    offline with scipy's upfirdn (an independent path): ``(samples, channels)``."""
    def resample(sig, a, b):
        if a == b:
            return sig
        r = StreamResampler(a, b)
        taps, half = design(r.up, r.down)
        n_out = -(-len(sig) * r.up // r.down)
        cols = []
        for c in sig.T:
            yu = scipy.signal.upfirdn(taps, c.astype(np.float64), r.up, 1)
            yu = np.concatenate([yu, np.zeros(n_out * r.down + half)])
            cols.append(yu[np.arange(n_out) * r.down + half])
        return np.stack(cols, 1).astype(np.float32)

    low = resample(x, rate, model.sample_rate)
    with torch.inference_mode():
        y = model.enhance(torch.from_numpy(np.ascontiguousarray(low.T))).numpy().T
    return resample(y, model.sample_rate, rate)[: len(x)]


@pytest.mark.parametrize("rate, channels", [(16000, 1), (16000, 2), (48000, 1), (48000, 2), (44100, 1)])
def test_streaming_equals_offline(crn, shared_data, rng, rate, channels):
    x = noisy_speech(shared_data, rng, 2.3, rate=rate, channels=channels if channels > 1 else None)
    x = x.T if channels > 1 else x  # (samples, channels) or (samples,)
    stream = StreamingDenoiser(crn, rate, channels=channels)
    y = _push_randomly(stream, x, rng, largest=rate // 10)
    lat = stream.latency_samples
    assert len(y) == len(x) + lat
    assert np.all(y[:lat] == 0)
    ref = _offline(crn, x.reshape(len(x), -1), rate)
    got = y[lat:].reshape(len(x), -1)
    assert np.abs(ref).max() > 0.05  # the model does not output silence
    np.testing.assert_allclose(got, ref, atol=1e-4)
    # and the output is not simply the input: the comparison can fail
    assert np.abs(got - x.reshape(len(x), -1)).max() > 1e-2


def test_latency_budget(crn):
    ahead = crn.lookahead * crn.stft_config.hop_length  # one 16-ms hop per look-ahead frame
    at16 = StreamingDenoiser(crn, 16000)
    assert at16.latency_samples == crn.stft_config.n_fft - 1 + ahead
    assert at16.latency_ms <= 32.0 + 1000 * ahead / 16000
    at48 = StreamingDenoiser(crn, 48000)
    budget = at48.latency_budget()
    assert budget["look_ahead_ms"] == 1000 * ahead / 16000 and 0 < budget["resampling_ms"] < 3
    assert budget["window_ms"] == pytest.approx(1000 * (crn.stft_config.n_fft - 1) / 16000)
    assert budget["total_ms"] == pytest.approx(at48.latency_ms)


def test_reset_and_strength(crn, shared_data, rng):
    x = noisy_speech(shared_data, rng, 1.0)
    full = StreamingDenoiser(crn, 16000)
    first = np.concatenate([full.push(x), full.flush()])
    full.reset()
    again = np.concatenate([full.push(x), full.flush()])
    np.testing.assert_array_equal(first, again)
    with pytest.raises(ConfigError):
        full.push(x)
    lat = full.latency_samples
    half = StreamingDenoiser(crn, 16000, strength=0.25)
    mixed = np.concatenate([half.push(x), half.flush()])
    dry = np.concatenate([np.zeros(lat, np.float32), x])
    np.testing.assert_allclose(mixed, 0.25 * first + 0.75 * dry, atol=1e-5)


def test_bad_blocks_refused(crn):
    stream = StreamingDenoiser(crn, 16000, channels=2)
    with pytest.raises(ConfigError, match="channels"):
        stream.push(np.zeros(100, np.float32))
    with pytest.raises(ConfigError, match="NaN"):
        stream.push(np.full((10, 2), np.nan, np.float32))
    with pytest.raises(ConfigError):
        StreamingDenoiser(crn, 0)


def test_unet_cannot_stream():
    with pytest.raises(NotCausalError, match="not causal"):
        StreamingDenoiser(build_model("unet"), 16000)


@pytest.mark.parametrize("n", [1, 300, 511, 512, 513, 5000])
def test_engine_any_length(crn, rng, n):
    x = (0.1 * rng.standard_normal(n)).astype(np.float32)
    with torch.inference_mode():
        ref = crn.enhance(torch.from_numpy(x)[None])[0].numpy()
    engine = FrameEngine(crn, 1)
    y = np.concatenate([engine.push(x[: n // 3]), engine.push(x[n // 3 :]), engine.flush()])[:, 0]
    assert len(y) == n
    np.testing.assert_allclose(y, ref, atol=1e-5)


@pytest.mark.parametrize("a, b", [(48000, 16000), (16000, 48000), (44100, 16000), (16000, 22050)])
def test_resampler_exact_and_chunk_independent(rng, a, b):
    x = rng.standard_normal((5001, 2)).astype(np.float32)
    r = StreamResampler(a, b, 2)
    pieces, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 400))
        pieces.append(r.push(x[i : i + n]))
        i += n
        assert r.n_out == r.ready(min(i, len(x)))
    y = np.concatenate(pieces + [r.flush()])
    assert len(y) == -(-len(x) * b // a)
    whole = StreamResampler(a, b, 2)
    np.testing.assert_array_equal(np.concatenate([whole.push(x), whole.flush()]), y)
    # a tone below both Nyquist rates passes at unity gain
    t = np.arange(a) / a
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    r1 = StreamResampler(a, b)
    out = np.concatenate([r1.push(tone), r1.flush()])[:, 0]
    assert np.sqrt(np.mean(out[b // 10 : -b // 10] ** 2)) == pytest.approx(np.sqrt(0.5), rel=1e-3)


# --- Denoiser: chunked == whole for a stateful causal model -----------------------------------


@pytest.fixture(scope="module")
def crn_ckpt(crn, tmp_path_factory):
    path = tmp_path_factory.mktemp("crn") / "crn.pt"
    save_checkpoint(path, serialize(crn))
    return path


@pytest.mark.parametrize("rate, channels", [(16000, None), (22050, 2)])
def test_denoiser_chunked_equals_whole_crn(crn, crn_ckpt, shared_data, rng, rate, channels):
    x = noisy_speech(shared_data, rng, 3.1, rate=rate, channels=channels)
    whole = Denoiser.from_checkpoint(crn_ckpt, chunk_seconds=1000.0)(x, rate)
    chunked = Denoiser.from_checkpoint(crn_ckpt, chunk_seconds=0.37)(x, rate)
    assert chunked.shape == x.shape
    np.testing.assert_allclose(chunked, whole, atol=1e-4)
    if rate == 16000:  # aligned with the input: equals the model on the whole signal
        with torch.inference_mode():
            ref = crn.enhance(torch.from_numpy(x)[None])[0].numpy()
        np.testing.assert_allclose(whole, ref, atol=1e-5)


def test_denoise_file_crn_block_sizes(crn_ckpt, shared_data, rng, tmp_path):
    import soundfile as sf

    from specdenoise.enhance import denoise_file

    x = noisy_speech(shared_data, rng, 2.5, rate=16000)
    src = tmp_path / "in.wav"
    sf.write(src, x, 16000, subtype="FLOAT")
    den = Denoiser.from_checkpoint(crn_ckpt, chunk_seconds=0.5)
    denoise_file(den, src, tmp_path / "a.wav", block_seconds=0.13)
    denoise_file(den, src, tmp_path / "b.wav", block_seconds=100)
    a, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    b, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    assert len(a) == len(x)
    np.testing.assert_allclose(a, b, atol=1e-4)
