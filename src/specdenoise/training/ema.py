"""An exponential moving average (EMA) of a model's weights, kept beside the trained ones.

Why: the weights a run ends on are one noisy point of a small-batch optimisation, and averaging
recent ones smooths that noise out. docs/RESULTS.md measured it by hand before this existed (the
uniform average of three saves 1,000 steps apart beat the last save by +0.018 validation PESQ-WB,
and crn-0.9 shipped from it); ``optim.ema_decay`` does the same averaging every step, for every run.
(The first run with it, 105 minutes from crn-0.9, ended level with crn-0.9 on the test split.)

With the EMA on, validation scores the averaged weights and checkpoints carry them as their
``state_dict`` (so evaluate, export and ``--init-from`` use them unchanged); the trained weights,
which a resume continues, travel in ``train_state["raw_state_dict"]``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class WeightAverage:
    """``shadow = decay * shadow + (1 - decay) * weights`` after each step, for floating parameters
    and buffers; integer buffers (counters) are copied. Starts from the model's current weights,
    so a fine-tune's average starts at the weights it was initialised from."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.model = model
        self.decay = decay
        # the model's own storage: the optimizer and load_state_dict write into these tensors in place
        live = {k: v.detach() for k, v in model.state_dict().items()}
        self.shadow = {k: v.clone() for k, v in live.items()}
        self._floats = ([self.shadow[k] for k, v in live.items() if v.is_floating_point()],
                        [v for v in live.values() if v.is_floating_point()])
        self._others = [(self.shadow[k], v) for k, v in live.items() if not v.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        shadow, live = self._floats
        torch._foreach_lerp_(shadow, live, 1.0 - self.decay)  # one fused pass instead of a loop over ~100 tensors
        for average, value in self._others:
            average.copy_(value)

    def load_shadow(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Restore the average from a checkpoint (resume)."""
        for key, value in state_dict.items():
            self.shadow[key].copy_(value)

    @contextmanager
    def swapped_in(self) -> Iterator[dict[str, torch.Tensor]]:
        """Put the averaged weights into the model for the duration (validation, checkpointing);
        yields the trained weights, which are restored on exit."""
        raw = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.shadow)
        try:
            yield raw
        finally:
            self.model.load_state_dict(raw)
