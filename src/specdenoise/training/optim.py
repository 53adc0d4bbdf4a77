"""The optimizer and its learning rate: AdamW over parameter groups, and the schedule.

Why groups: a grown model (``models/grow.py``) adds parts that start as no-ops, and at the
learning rate that suits the trained parts they barely move in a CPU run (measured: a new
dual-path block's LayerNorm scales reached 0.03 after 4,591 steps at 3e-4). ``optim.lr_scales``
maps parameter-name prefixes (``dual_path.2``, ``enc1``...) to a multiplier of the scheduled rate;
the longest matching prefix wins, 0 freezes a part's parameters (fine-tune only the decoder, say;
batch-norm statistics still follow the data). A prefix
that names no parameter is an error, so a typo cannot silently train everything at one rate.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .config import TrainConfig


def lr_at(cfg: TrainConfig, step: int, plateau_scale: float, time_used: float = 0.0) -> float:
    """The learning rate at ``step``. ``time_used`` is the share of ``run.max_minutes`` spent: the
    cosine follows whichever of steps and time runs out first, so a time-limited run (a GPU
    lease, say) still ends at the low learning rate."""
    o = cfg.optim
    if o.warmup_steps and step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "cosine":
        progress = min(1.0, max(time_used, (step - o.warmup_steps) / max(1, cfg.run.max_steps - o.warmup_steps)))
        return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    if o.schedule == "plateau":
        return o.lr * plateau_scale
    if o.schedule == "constant":
        return o.lr
    raise ConfigError(f"optim.schedule must be cosine, plateau or constant, got {o.schedule!r}")


def _under(name: str, prefix: str) -> bool:
    """Whether parameter ``name`` lies under ``prefix`` as a whole dotted part (``enc`` is not ``enc1``)."""
    return name == prefix or name.startswith(prefix + ".")


def _scale_of(name: str, scales: dict[str, float]) -> float:
    matches = [p for p in scales if _under(name, p)]
    return float(scales[max(matches, key=len)]) if matches else 1.0


def parameter_groups(model: torch.nn.Module, scales: dict[str, float]) -> list[dict]:
    """AdamW groups by learning-rate multiplier (each carries ``lr_scale``). Parameters scaled by
    0 are frozen (``requires_grad`` off) and left out of the optimizer."""
    names = [name for name, _ in model.named_parameters()]
    for prefix, scale in scales.items():
        if not any(_under(n, prefix) for n in names):
            raise ConfigError(f"optim.lr_scales: {prefix!r} names no parameter of the model "
                              f"(its top-level parts: {sorted({n.split('.')[0] for n in names})})")
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale < 0:
            raise ConfigError(f"optim.lr_scales: {prefix!r} needs a number >= 0, got {scale!r}")
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        scale = _scale_of(name, scales)
        if scale == 0:
            param.requires_grad_(False)
        else:
            groups.setdefault(scale, []).append(param)
    if not groups:
        raise ConfigError("optim.lr_scales freezes every parameter: nothing would train")
    return [{"params": params, "lr_scale": scale} for scale, params in sorted(groups.items())]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optim
    return torch.optim.AdamW(parameter_groups(model, dict(o.lr_scales)), lr=o.lr, betas=tuple(o.betas),
                             weight_decay=o.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every group the scheduled rate times its own multiplier."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
