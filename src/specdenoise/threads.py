"""Torch's intra-op thread count, set for a block and restored after it.

Why one helper: denoising, streaming, evaluation and cost measurement each pin torch to a few
threads for a while (a server's workers, a fair timing) and must hand the process back as they
found it, also when the block raises. ``torch.set_num_threads`` is process-wide, so a forgotten
restore slows every later caller.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block on ``n`` torch threads (``None`` or 0: leave the count as it is)."""
    if not n:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
