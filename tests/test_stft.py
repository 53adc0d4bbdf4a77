"""The STFT core: perfect reconstruction and config validation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specdenoise.errors import ConfigError
from specdenoise.stft import (
    StftConfig,
    istft,
    stft,
    stft_np,
)

TOL = 1e-5

# (n_fft, hop_length, win_length, window)
CONFIGS = [
    (512, 128, None, "hann"),
    (1024, 256, None, "hann"),
    (320, 160, None, "hann"),
    (400, 100, None, "hamming"),
    (512, 128, None, "blackman"),
    (512, 256, None, "blackman"),
    (512, 256, None, "sqrt_hann"),
    (320, 80, None, "sqrt_hann"),
    (512, 128, 400, "hann"),  # win_length < n_fft
    (512, 160, 320, "hamming"),
    (511, 128, None, "hann"),  # odd n_fft
]
IDS = [f"{w}-{n}-{h}" + (f"-win{wl}" if wl else "") for n, h, wl, w in CONFIGS]


def _config(n_fft, hop, win, window):
    return StftConfig(n_fft=n_fft, hop_length=hop, win_length=win, window=window)


def _lengths(config: StftConfig) -> list[int]:
    """Odd and awkward lengths: every remainder class near the end matters, and short signals."""
    n, h = config.n_fft, config.hop_length
    return [16001, 777, n - 1, n // 2, n // 2 + 1, 1, 2, 3 * h - 1, 3 * h + h // 2 + 1]


def _signal(rng, *shape) -> torch.Tensor:
    return torch.from_numpy(rng.uniform(-1.0, 1.0, shape).astype(np.float32))


@pytest.mark.parametrize("params", CONFIGS, ids=IDS)
def test_round_trip(params, rng):
    config = _config(*params)
    for length in _lengths(config):
        x = _signal(rng, length)
        spec = stft(x, config)
        assert spec.dtype == torch.complex64
        assert spec.shape == (config.n_freqs, config.n_frames(length))
        y = istft(spec, config, length=length)
        assert y.dtype == torch.float32 and y.shape == x.shape
        err = (y - x).abs().max().item()
        assert err < TOL, f"length {length}: max error {err:.3g}"


def test_round_trip_every_length_near_the_edges(rng):
    """A sweep over all remainders of length modulo hop, for the configs with the most overlap
    loss at the ends (50 % hann, and win_length < n_fft)."""
    for params in [(320, 160, None, "hann"), (64, 24, 50, "blackman"), (64, 40, None, "sqrt_hann")]:
        config = _config(*params)
        for length in range(3000, 3000 + config.hop_length):
            x = _signal(rng, length)
            y = istft(stft(x, config), config, length=length)
            err = (y - x).abs().max().item()
            assert err < TOL, f"{params}, length {length}: max error {err:.3g}"


def test_round_trip_batched(rng):
    config = StftConfig(n_fft=512, hop_length=128)
    x = _signal(rng, 3, 2, 4001)
    spec = stft(x, config)
    assert spec.shape == (3, 2, config.n_freqs, config.n_frames(4001))
    # batching changes nothing: each channel equals its own STFT
    torch.testing.assert_close(spec[2, 1], stft(x[2, 1], config))
    y = istft(spec, config, length=4001)
    assert y.shape == x.shape
    assert (y - x).abs().max().item() < TOL


def test_round_trip_numpy(rng):
    config = StftConfig(n_fft=400, hop_length=100, window="hamming")
    x = rng.uniform(-1, 1, (2, 5555)).astype(np.float32)
    spec = stft_np(x, config)
    assert isinstance(spec, np.ndarray) and np.iscomplexobj(spec)
    assert spec.shape == (2, config.n_freqs, config.n_frames(5555))
    y = istft(torch.from_numpy(spec), config, length=5555).numpy()
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert np.abs(y - x).max() < TOL
    # float64 and int16 input are accepted too (cast to float32)
    np.testing.assert_allclose(stft_np(x.astype(np.float64), config), spec, atol=1e-5)
    pcm = (x[0] * 32767).astype(np.int16)
    assert stft_np(pcm, config).shape == spec.shape[1:]


def test_float64_round_trip_is_exact(rng):
    config = StftConfig(n_fft=512, hop_length=128)
    x = torch.from_numpy(rng.uniform(-1, 1, 3333))  # float64
    spec = stft(x, config)
    assert spec.dtype == torch.complex128
    assert (istft(spec, config, length=3333) - x).abs().max().item() < 1e-12


def test_stft_matches_a_direct_dft(rng):
    """Frame k is centred on sample k * hop, windowed by a periodic hann: check one frame by hand,
    so a framing shift (which a round trip alone cannot see) is caught."""
    config = StftConfig(n_fft=64, hop_length=16)
    x = rng.uniform(-1, 1, 500)
    spec = stft(torch.from_numpy(x), config).numpy()
    k = 7
    n = np.arange(64)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / 64)
    frame = x[k * 16 - 32 : k * 16 + 32] * w
    np.testing.assert_allclose(spec[:, k], np.fft.rfft(frame), atol=1e-9)


def test_frames_cover_the_signal():
    config = StftConfig(n_fft=512, hop_length=128)
    assert config.n_frames(1) == 1
    assert config.n_frames(128) == 2
    assert config.n_frames(129) == 2
    assert config.n_frames(130) == 3  # the last frame is centred on or after the last sample
    assert config.n_frames(16000) == 126
    # a crop of F frames stands for (F - 1) * hop samples, and back
    for frames in (1, 2, 63, 64):
        assert config.n_frames((frames - 1) * 128) == max(frames, 1)
    for n in (1, 100, 129, 130, 16001):
        left, right = config.padding(n)
        assert left == 256
        assert (n + left + right - 512) == (config.n_frames(n) - 1) * 128


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_round_trip_cuda(rng):
    config = StftConfig(n_fft=512, hop_length=128)
    x = _signal(rng, 2, 16001).cuda()
    spec = stft(x, config)
    assert spec.is_cuda
    y = istft(spec, config, length=16001)
    assert y.is_cuda
    assert (y - x).abs().max().item() < TOL
    torch.testing.assert_close(spec.cpu(), stft(x.cpu(), config), atol=1e-4, rtol=1e-4)


# --- config validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(n_fft=512, hop_length=600, win_length=512), "hop_length"),
        (dict(n_fft=512, hop_length=300, win_length=256), "hop_length"),
        (dict(n_fft=256, hop_length=64, win_length=512), "win_length"),
        (dict(n_fft=0, hop_length=128), "n_fft"),
        (dict(n_fft=-512, hop_length=128), "n_fft"),
        (dict(n_fft=512.0, hop_length=128), "n_fft"),
        (dict(n_fft="512", hop_length=128), "n_fft"),
        (dict(n_fft=True, hop_length=1), "n_fft"),
        (dict(n_fft=512, hop_length=0), "hop_length"),
        (dict(n_fft=512, hop_length=-128), "hop_length"),
        (dict(n_fft=512, hop_length=128.5), "hop_length"),
        (dict(n_fft=512, hop_length=None), "hop_length"),
        (dict(n_fft=512, hop_length=128, win_length=0), "win_length"),
        (dict(n_fft=512, hop_length=128, win_length=400.0), "win_length"),
        (dict(n_fft=512, hop_length=128, window="kaiser"), "window"),
        (dict(n_fft=512, hop_length=128, window="Hann"), "window"),
        (dict(n_fft=512, hop_length=128, center=False), "center"),
        (dict(n_fft=512, hop_length=128, center="yes"), "center"),
        # windows and hops that leave (near) zero overlap-add envelope somewhere
        (dict(n_fft=512, hop_length=512, window="hann"), "hop_length"),
        (dict(n_fft=512, hop_length=512, window="sqrt_hann"), "hop_length"),
        (dict(n_fft=512, hop_length=480, window="blackman"), "hop_length"),
        (dict(n_fft=512, hop_length=400, window="blackman"), "hop_length"),
        (dict(n_fft=400, hop_length=400, window="hamming"), "hop_length"),
    ],
)
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        StftConfig(**kwargs)
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)  # ConfigError is a ValueError too


@pytest.mark.parametrize("params", CONFIGS, ids=IDS)
def test_valid_configs_are_accepted(params):
    config = _config(*params)
    assert config.win_length == (params[2] or params[0])


def test_config_dict_round_trip_and_plain_ints():
    config = StftConfig(n_fft=np.int64(400), hop_length=np.int32(100), window="hamming")
    data = config.to_dict()
    assert data == {"n_fft": 400, "hop_length": 100, "win_length": 400, "window": "hamming", "center": True}
    assert all(type(data[k]) is int for k in ("n_fft", "hop_length", "win_length"))
    assert StftConfig.from_dict(data) == config
    assert StftConfig.from_dict({"n_fft": 1024, "hop_length": 256}).win_length == 1024
    with pytest.raises(ConfigError, match="hop_length"):
        StftConfig.from_dict({"n_fft": 256, "hop_length": 300})


def test_config_is_frozen():
    config = StftConfig()
    with pytest.raises(Exception):
        config.hop_length = 64  # type: ignore[misc]
