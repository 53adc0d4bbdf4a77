"""Learning-rate groups (optim.lr_scales): who trains at which rate, who is frozen."""
from __future__ import annotations

import pytest
import torch

from conftest import REPO_ROOT
from specdenoise import config as config_io
from specdenoise.errors import ConfigError
from specdenoise.models import load_checkpoint
from specdenoise.training.config import TrainConfig
from specdenoise.training.optim import build_optimizer, parameter_groups, set_lr
from specdenoise.training.trainer import train

TINY = ["model.depth=2", "model.base_channels=4", "data.batch_size=2", "data.val_clips=2", "data.crop_seconds=1.0",
        "run.pesq_stoi_clips=1", "run.log_every=1", "optim.warmup_steps=0", "optim.schedule=constant",
        "run.threads=1", "tracking.tracker=none", "run.progress=false"]


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)))


def test_longest_prefix_wins_and_zero_freezes():
    net = _net()
    groups = parameter_groups(net, {"1": 10.0, "1.1": 0.5, "0.bias": 0})
    by_scale = {g["lr_scale"]: {id(p) for p in g["params"]} for g in groups}
    assert by_scale[10.0] == {id(net[1][0].weight), id(net[1][0].bias)}
    assert by_scale[0.5] == {id(net[1][1].weight), id(net[1][1].bias)}
    assert by_scale[1.0] == {id(net[0].weight)}
    assert 0 not in by_scale and not net[0].bias.requires_grad and net[0].weight.requires_grad


def test_prefix_matches_whole_names_only_and_typos_are_errors():
    net = torch.nn.ModuleDict({"enc": torch.nn.Linear(2, 2), "enc1": torch.nn.Linear(2, 2)})
    groups = parameter_groups(net, {"enc": 3.0})
    assert {id(p) for p in groups[-1]["params"]} == {id(net["enc"].weight), id(net["enc"].bias)}
    with pytest.raises(ConfigError, match="'encoder' names no parameter"):
        parameter_groups(net, {"encoder": 2.0})
    with pytest.raises(ConfigError, match="needs a number >= 0"):
        parameter_groups(net, {"enc": -1.0})
    with pytest.raises(ConfigError, match="freezes every parameter"):
        parameter_groups(net, {"enc": 0, "enc1": 0})


def test_set_lr_multiplies_each_group():
    cfg = TrainConfig()
    cfg.optim.lr_scales = {"1": 4.0}
    optimizer = build_optimizer(_net(), cfg)
    set_lr(optimizer, 0.01)
    assert sorted(g["lr"] for g in optimizer.param_groups) == pytest.approx([0.01, 0.04])


def test_training_leaves_frozen_parts_unchanged(tiny_cache, tiny_ckpt, tmp_path):
    """Three steps from a checkpoint with the encoders frozen: they keep its weights, the rest moves."""
    cfg = config_io.load(TrainConfig, REPO_ROOT / "configs" / "unet.yaml",
                         [f"data.path={tiny_cache}", *TINY, "run.max_steps=3", "run.eval_every=3",
                          "optim.lr=0.01", "optim.lr_scales={encoders: 0}", f"run.init_from={tiny_ckpt}"])
    start = load_checkpoint(tiny_ckpt)["state_dict"]
    train(cfg, tmp_path / "frozen")
    end = load_checkpoint(tmp_path / "frozen" / "last.pt")["state_dict"]
    frozen = [k for k in start if k.startswith("encoders.") and k.endswith(("weight", "bias"))]
    moved = [k for k in start if k.startswith(("decoders.", "head.")) and k.endswith(("weight", "bias"))]
    assert frozen and moved
    assert all(torch.equal(start[k], end[k]) for k in frozen)
    assert any(not torch.equal(start[k], end[k]) for k in moved)
