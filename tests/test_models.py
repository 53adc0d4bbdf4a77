"""Models: shapes for any frame count, bounded masks, registry, checkpoint round trip."""
from __future__ import annotations

import pytest
import torch

from conftest import random_model
from specdenoise.errors import CheckpointError, ConfigError
from specdenoise.models import available, build_model, from_serialized, model_from_checkpoint, save_checkpoint, serialize
from specdenoise.stft import stft

SMALL = {"unet": {"depth": 2, "base_channels": 4}, "cnn": {"channels": [4, 6, 4], "freq_kernels": [5, 3, 5]}}


def _perturbed(name, **kw):
    """A small model whose BatchNorm statistics are far from (0, 1), in eval mode."""
    return random_model(name, norms=True, **SMALL[name], **kw)


def test_registry_lists_both_families():
    assert {"unet", "cnn"} <= set(available())
    with pytest.raises(ConfigError, match="model.name"):
        build_model("transformer")
    with pytest.raises(ConfigError, match="unet"):
        build_model("unet", depthh=3)


@pytest.mark.parametrize("name", ["unet", "cnn"])
@pytest.mark.parametrize("mask", ["magnitude", "complex"])
@pytest.mark.parametrize("frames", [1, 7, 64, 101])
def test_any_frame_count_and_bounded_mask(name, mask, frames, rng):
    model = _perturbed(name, mask=mask)
    spec = torch.from_numpy(rng.standard_normal((2, 257, frames)) + 1j * rng.standard_normal((2, 257, frames))).to(torch.complex64)
    with torch.no_grad():
        out = model(spec)
    assert out.shape == spec.shape and out.is_complex()
    assert torch.all(out.abs() <= spec.abs() * (1 + 1e-5) + 1e-7)


@pytest.mark.parametrize("name", ["unet", "cnn"])
def test_checkpoint_round_trip_is_exact(name, tmp_path, rng):
    model = _perturbed(name, stft={"n_fft": 320, "hop_length": 160, "window": "hamming"}, sample_rate=16000)
    x = torch.from_numpy(rng.standard_normal((1, 12345)).astype("float32")) * 0.1
    with torch.no_grad():
        before = model.enhance(x)
    path = save_checkpoint(tmp_path / "m.pt", serialize(model))
    package = torch.load(path, weights_only=True)  # plain data only
    assert package["stft"]["n_fft"] == 320 and package["sample_rate"] == 16000
    assert package["model"]["name"] == name and "torch" in package["versions"]
    loaded = model_from_checkpoint(path)
    assert loaded.stft_config == model.stft_config
    with torch.no_grad():
        after = loaded.enhance(x)
    assert torch.equal(before, after)
    # from_pretrained(serialize()) in memory, too
    with torch.no_grad():
        assert torch.equal(from_serialized(serialize(model)).enhance(x), before)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        model_from_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        model_from_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="format"):
        model_from_checkpoint(tmp_path / "foreign.pt")


def test_enhance_keeps_length_and_sample_rate_is_explicit():
    model = _perturbed("unet")
    for n in (1, 100, 511, 16001):
        with torch.no_grad():
            assert model.enhance(torch.zeros(n)).shape == (n,)
    with pytest.raises(ConfigError, match="sample_rate"):
        build_model("unet", sample_rate=0)


def test_unet_output_depends_on_input():
    model = _perturbed("unet")
    spec = stft(torch.randn(1, 8000), model.stft_config)
    with torch.no_grad():
        a, b = model(spec), model(spec * 0.01)
    assert not torch.allclose(a.abs() / (spec.abs() + 1e-9), b.abs() / (spec.abs() * 0.01 + 1e-9), atol=1e-3)
