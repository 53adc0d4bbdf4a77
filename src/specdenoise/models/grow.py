"""Grow a trained CRN into a larger one that computes exactly the same function.

Why: once a model family is settled, every session continues from the last shipped weights, and
training a larger model from scratch on two CPU cores cannot catch up with hours of accumulated
training. Growing keeps what was learnt and hands the optimiser new capacity that starts silent
(the Net2Net idea, Chen et al. 2016, in its zero-initialised form):

- **More dual-path blocks** (``dual_path_blocks``): each new block is appended after the existing
  ones with the scale (``weight``) of both of its LayerNorms at zero, so it adds nothing to its
  residual stream until training moves those scales; its GRUs and linear layers keep their fresh
  random initialisation, so the gradient reaching the scales is not zero.
- **A wider time GRU** (``gru_hidden``): the new hidden units get fresh input weights, no
  connection from them into the old units' gates, and zero weights in the linear layer that reads
  the GRU, so the old units run as before and the new ones are read only once training grows those
  weights.

- **A deep filter** (``filter_taps``): the last layer gets output channels for the extra taps
  (frames ``t-1, t-2, ...``) with zero weights and bias, so their coefficients start at zero and
  the output is the old mask's; the bounded-coefficient map has slope 1 at zero, so those weights
  receive gradient from the first step.

A fourth transformation is *not* exact: :func:`with_lookahead` turns a deep-filter model into one
with look-ahead by moving each tap's output channels L taps later (the coefficients for frame
``t`` now clean frame ``t - L``, which they were never trained for, but masks change slowly from
frame to frame, so it starts close and relearns the alignment quickly; the last L taps are dropped).
It also grows an existing look-ahead (1 -> 2: every tap moves one later; grow ``filter_taps`` by one
first and no trained tap is dropped).

The intra-frame GRU and the convolution widths are tied to ``channels``, whose LayerNorms would
change their statistics if widened, so ``channels`` cannot be grown this way.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .crn import CausalCRN
from .registry import build_model

GROWABLE = ("dual_path_blocks", "gru_hidden", "filter_taps")


def grow_crn(model: CausalCRN, seed: int = 0, **changes: int) -> CausalCRN:
    """A copy of ``model`` with more ``dual_path_blocks``, a wider ``gru_hidden`` and/or more
    ``filter_taps``, whose
    output equals ``model``'s; ``seed`` draws the new parameters' initial values."""
    if not isinstance(model, CausalCRN):
        raise ConfigError(f"only a crn model can be grown, not {getattr(model, 'name', type(model).__name__)!r}")
    unknown = sorted(set(changes) - set(GROWABLE))
    if unknown:
        raise ConfigError(f"cannot grow {', '.join(unknown)} (growable: {', '.join(GROWABLE)})")
    config = model.config()
    for key, value in changes.items():
        if not isinstance(value, int) or value < config[key]:
            raise ConfigError(f"growing needs {key} >= {config[key]} (the model's), got {value!r}")
    with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
        torch.manual_seed(seed)
        big = build_model("crn", **{**config, **changes})
    small_state, big_state = model.state_dict(), big.state_dict()
    old_hidden, new_hidden = config["gru_hidden"], big.config()["gru_hidden"]
    with torch.no_grad():
        for key, value in small_state.items():
            target = big_state[key]
            if target.shape == value.shape:
                target.copy_(value)
            elif ".inter." in key:
                _widen_gru(key, value, target, old_hidden, new_hidden)
            elif ".inter_fc.weight" in key:
                target.zero_()
                target[:, :old_hidden] = value
            elif key in ("dec1.weight", "dec1.bias"):  # the new taps' output channels start silent
                target.zero_()
                if key == "dec1.weight":  # [in, out, 1, kf]
                    target[:, : value.shape[1]] = value
                else:
                    target[: value.shape[0]] = value
            else:  # nothing else may change shape
                raise ConfigError(f"cannot grow {key}: {tuple(value.shape)} -> {tuple(target.shape)}")
        for block in big.dual_path[len(model.dual_path):]:
            block.intra_norm.weight.zero_()
            block.inter_norm.weight.zero_()
    big.load_state_dict(big_state)
    return big.train(model.training)


def _widen_gru(key: str, old: torch.Tensor, new: torch.Tensor, h_old: int, h_new: int) -> None:
    """Copy a GRU tensor into a wider one, gate by gate (PyTorch stacks r, z, n along dim 0).
    ``new`` keeps its fresh values for the new units' rows; the columns through which new units
    would reach the old ones (``weight_hh``) are zeroed."""
    for gate in range(3):
        rows_old = slice(gate * h_old, (gate + 1) * h_old)
        rows_new = slice(gate * h_new, gate * h_new + h_old)
        if key.endswith(("weight_ih_l0", "bias_ih_l0", "bias_hh_l0")):
            new[rows_new] = old[rows_old]
        elif key.endswith("weight_hh_l0"):
            new[rows_new] = 0.0
            new[rows_new, :h_old] = old[rows_old]
        else:
            raise ConfigError(f"cannot grow {key}: not a one-layer unidirectional GRU tensor")


def with_lookahead(model: CausalCRN, frames: int) -> CausalCRN:
    """A copy of a deep-filter ``model`` with ``lookahead = frames`` (more than it has): the same
    weights, the last layer's taps moved ``frames - model.lookahead`` later (tap ``k`` -> ``k +
    shift``, so each old tap still meets the noisy frame it was trained on relative to the frame
    being cleaned; the new first taps, for the frames further ahead, start at zero; the last
    ``shift`` taps are dropped, so grow ``filter_taps`` first to keep them all).
    Only a warm start for training: the output is *not* the old model's."""
    if not isinstance(model, CausalCRN):
        raise ConfigError(f"only a crn model can get look-ahead, not {getattr(model, 'name', type(model).__name__)!r}")
    config = model.config()
    current = config.get("lookahead", 0)
    if not isinstance(frames, int) or frames <= current:
        raise ConfigError(f"look-ahead can only grow: the model already has lookahead={current}, asked {frames!r}")
    new = build_model("crn", **{**config, "lookahead": frames})  # validates 0 <= frames < filter_taps
    shift = frames - current
    state = model.state_dict()
    keep = 2 * (model.filter_taps - shift)  # (Re, Im) channels of the taps that stay
    weight, bias = torch.zeros_like(state["dec1.weight"]), torch.zeros_like(state["dec1.bias"])
    weight[:, 2 * shift :] = state["dec1.weight"][:, :keep]  # [in, out, 1, kf]: output channels on dim 1
    bias[2 * shift :] = state["dec1.bias"][:keep]
    new.load_state_dict({**state, "dec1.weight": weight, "dec1.bias": bias})
    return new.train(model.training)
