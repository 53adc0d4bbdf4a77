"""Growing a trained CRN (models/grow.py, scripts/grow_model.py): the grown model computes the same
output, whole and frame by frame, its new parameters receive gradient, it loads through the
registry and --init-from, and what cannot be grown is refused in words."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, random_model
from specdenoise.errors import ConfigError
from specdenoise.models import build_model, model_from_checkpoint, save_checkpoint, serialize
from specdenoise.models.grow import grow_crn, with_lookahead
from specdenoise.stft import stft
from specdenoise.training.trainer import init_weights_from

SMALL = {"channels": 8, "first_channels": 4, "gru_hidden": 8}
CHANGES = [{"dual_path_blocks": 3}, {"gru_hidden": 20}, {"dual_path_blocks": 4, "gru_hidden": 12}, {"filter_taps": 4},
           {"gru_hidden": 12, "filter_taps": 2}]


def _trained_like(seed: int = 0):
    return random_model("crn", seed, norms=True, jitter=0.2, **SMALL)


def _spec(rng, frames: int = 50) -> torch.Tensor:
    x = torch.from_numpy(rng.standard_normal((2, 256 * (frames - 1))).astype(np.float32)) * 0.1
    return stft(x, build_model("crn", **SMALL).stft_config)


@pytest.mark.parametrize("changes", CHANGES)
def test_grown_model_computes_the_same_output(changes, rng):
    small = _trained_like(1)
    grown = grow_crn(small, seed=3, **changes).eval()
    assert grown.config() == {**small.config(), **changes}
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in small.parameters())
    spec = _spec(rng)
    with torch.no_grad():
        expected = small(spec)
        whole = grown(spec)
        state, frames = None, []
        for t in range(spec.shape[-1]):  # the streaming path carries the wider / extra GRU states
            out, state = grown.forward_frames(spec[..., t : t + 1], state)
            frames.append(out)
    scale = expected.abs().max()
    assert scale > 0
    assert (whole - expected).abs().max() <= 1e-5 * scale
    assert (torch.cat(frames, dim=-1) - expected).abs().max() <= 1e-4 * scale


def test_new_parameters_receive_gradient(rng):
    """Zero-initialised is not dead: the scales of a new block and the read-out of new GRU units learn."""
    grown = grow_crn(_trained_like(2), dual_path_blocks=3, gru_hidden=12).train()
    grown(_spec(rng, 30)).abs().pow(2).mean().backward()
    new_block = grown.dual_path[2]
    assert new_block.intra_norm.weight.grad.abs().sum() > 0
    assert new_block.inter_norm.weight.grad.abs().sum() > 0
    assert grown.dual_path[0].inter_fc.weight.grad[:, 8:].abs().sum() > 0


def test_new_filter_taps_start_silent_and_receive_gradient(rng):
    grown = grow_crn(_trained_like(4), filter_taps=3).train()
    assert torch.all(grown.dec1.weight[:, 2:] == 0) and torch.all(grown.dec1.bias[2:] == 0)
    grown(_spec(rng, 30)).abs().pow(2).mean().backward()
    assert grown.dec1.weight.grad[:, 2:].abs().sum() > 0
    assert grown.dec1.bias.grad[2:].abs().sum() > 0


def _last_layer_logits(old, new, spec) -> dict[str, torch.Tensor]:
    """The last layer's output (the filter coefficients) of both models on the same frames: the
    network before the filter is the same, so only the taps' arrangement may differ."""
    logits = {}
    for name, model in (("old", old), ("new", new)):
        model.dec1.register_forward_hook(lambda m, i, o, name=name: logits.__setitem__(name, o))
    with torch.no_grad():
        old.forward_frames(spec)
        new.forward_frames(spec)
    return logits


def test_lookahead_moves_each_taps_coefficients_one_frame_later(rng):
    """with_lookahead is a warm start, not the same output: the network is untouched, and the last
    layer's coefficients for tap k (frame t-k) become those of tap k+1, the new tap 0 (the frame
    ahead of the one cleaned) starts at zero, and the model's output is late by one frame."""
    old = _trained_like(5)
    old = grow_crn(old, filter_taps=3)
    with torch.no_grad():  # give the grown taps non-zero weights, as training would
        old.dec1.weight[:, 2:] = 0.1 * torch.randn_like(old.dec1.weight[:, 2:])
        old.dec1.bias[2:] = 0.1
    new = with_lookahead(old.eval(), 1).eval()
    assert new.config() == {**old.config(), "lookahead": 1} and new.lookahead_frames == 1
    logits = _last_layer_logits(old, new, _spec(rng, 30))
    assert torch.all(logits["new"][:, :2] == 0)
    assert torch.equal(logits["new"][:, 2:], logits["old"][:, :4])
    with pytest.raises(ConfigError, match="lookahead < filter_taps"):
        with_lookahead(_trained_like(), 1)  # a plain mask has no tap to move into
    with pytest.raises(ConfigError, match="already has lookahead=1"):
        with_lookahead(new, 1)


def test_lookahead_grows_one_more_frame_after_an_extra_tap(rng):
    """1 -> 2 frames of look-ahead on a model first grown from 3 to 4 taps: every trained tap
    survives, one tap later, so it still meets the same noisy frame relative to the frame cleaned."""
    old = with_lookahead(grow_crn(_trained_like(5), filter_taps=3), 1)
    with torch.no_grad():
        old.dec1.weight.copy_(0.1 * torch.randn_like(old.dec1.weight))
        old.dec1.bias.fill_(0.1)
    wider = grow_crn(old, filter_taps=4)
    new = with_lookahead(wider.eval(), 2).eval()
    assert new.config() == {**old.config(), "filter_taps": 4, "lookahead": 2} and new.lookahead_frames == 2
    logits = _last_layer_logits(old.eval(), new, _spec(rng, 30))
    assert torch.all(logits["new"][:, :2] == 0)
    assert torch.equal(logits["new"][:, 2:], logits["old"])


def test_refusals_name_the_problem():
    small = _trained_like()
    with pytest.raises(ConfigError, match="gru_hidden >= 8"):
        grow_crn(small, gru_hidden=4)
    with pytest.raises(ConfigError, match="cannot grow channels"):
        grow_crn(small, channels=16)
    with pytest.raises(ConfigError, match="only a crn model"):
        grow_crn(build_model("unet", depth=2, base_channels=4), dual_path_blocks=3)


def test_script_writes_a_checkpoint_that_init_from_accepts(tmp_path, rng):
    small = _trained_like(4)
    save_checkpoint(tmp_path / "small.pt", serialize(small))
    script = REPO_ROOT / "scripts" / "grow_model.py"
    run = subprocess.run([sys.executable, script, tmp_path / "small.pt", tmp_path / "big.pt", "--set", "dual_path_blocks=3",
                          "--set", "gru_hidden=10"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    big = model_from_checkpoint(tmp_path / "big.pt")  # registry, weights_only=True
    spec = _spec(rng)
    with torch.no_grad():
        assert torch.allclose(big(spec), small(spec), atol=1e-5)
    target = build_model("crn", **{**SMALL, "dual_path_blocks": 3, "gru_hidden": 10})
    init_weights_from(target, tmp_path / "big.pt")
    with pytest.raises(ConfigError, match="model.dual_path_blocks 3 vs 2"):
        init_weights_from(build_model("crn", **{**SMALL, "gru_hidden": 10}), tmp_path / "big.pt")
    bad = subprocess.run([sys.executable, script, tmp_path / "small.pt", tmp_path / "x.pt", "--set", "gru_hidden=2"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "gru_hidden" in bad.stderr
    assert not (tmp_path / "x.pt").exists()


def test_growing_leaves_the_callers_random_stream_alone():
    small = _trained_like(6)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    first = grow_crn(small, seed=2, dual_path_blocks=3)
    assert torch.equal(torch.get_rng_state(), before)
    again = grow_crn(small, seed=2, dual_path_blocks=3)  # the seed alone decides the new parameters
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
