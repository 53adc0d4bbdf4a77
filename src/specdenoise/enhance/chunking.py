"""The streaming machinery behind :class:`~specdenoise.enhance.Denoiser`: one channel of any
length through resampling, the model in chunks, and resampling back, in blocks of any size.

:class:`ChannelStream` chains a :class:`_Resampler` (to the model's rate), a chunker and a
:class:`_Resampler` (back), then mixes the input back in (``strength``). The chunker is
:class:`_Chunker` for a model with a finite receptive field (chunks with aligned context on both
sides, so the output equals whole-file output) or :class:`_CausalChunker` for a causal model with
state (:class:`~specdenoise.streaming.FrameEngine` carries the state from chunk to chunk).
Nothing here knows files or sample formats: :mod:`.files` does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import CheckpointError
from ..threads import torch_threads

if TYPE_CHECKING:
    from .denoiser import Denoiser


class _Chunker:
    """Feeds a mono stream through ``fn`` chunk by chunk with aligned context (streaming)."""

    def __init__(self, fn, chunk: int, context: int):
        self.fn, self.chunk, self.context = fn, chunk, context
        self.buf = np.zeros(0, np.float32)
        self.buf_start = 0  # global index of buf[0]
        self.next_out = 0  # global index of the next output sample
        self.total = 0

    def push(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        self.buf = np.concatenate([self.buf, np.asarray(x, np.float32)])
        self.total += len(x)
        outs = []
        while self.next_out < self.total:
            need = self.next_out + self.chunk + self.context
            if need > self.total and not last:
                break
            a = max(0, self.next_out - self.context)
            b = min(self.total, need)
            seg = self.buf[a - self.buf_start : b - self.buf_start]
            y = self.fn(seg)
            stop = min(self.total, self.next_out + self.chunk)
            outs.append(y[self.next_out - a : stop - a])
            self.next_out = stop
            keep_from = max(0, self.next_out - self.context)
            self.buf = self.buf[keep_from - self.buf_start :]
            self.buf_start = keep_from
        return np.concatenate(outs) if outs else np.zeros(0, np.float32)


class _CausalChunker:
    """A causal model over a mono stream with its state carried (no context needed): at most
    ``chunk`` samples of frames per model call, output aligned with the input, exact length."""

    def __init__(self, denoiser: "Denoiser"):
        from ..streaming import FrameEngine, NonFiniteOutput

        self.non_finite = NonFiniteOutput
        hop = denoiser.model.stft_config.hop_length
        self.engine = FrameEngine(denoiser.model, 1, denoiser.step, max_frames=denoiser.chunk // hop)
        self.source = denoiser.source

    def push(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        try:
            y = self.engine.push(np.asarray(x, np.float32))
            if last:
                y = np.concatenate([y, self.engine.flush()])
        except self.non_finite:
            raise CheckpointError(f"{self.source}: the model's output is NaN or Inf (diverged weights?); "
                                  "nothing was written") from None
        return y[:, 0]


class _Resampler:
    """Streaming soxr resampler that returns exactly round(n * out/in) samples in total."""

    def __init__(self, in_rate: int, out_rate: int):
        self.in_rate, self.out_rate = in_rate, out_rate
        self.stream = None
        if in_rate != out_rate:
            import soxr

            self.stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        self.n_in = self.n_out = 0

    def push(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        self.n_in += len(x)
        if self.stream is None:
            y = np.asarray(x, np.float32)
        else:
            y = self.stream.resample_chunk(np.asarray(x, np.float32), last=last)
        if last:
            want = int(round(self.n_in * self.out_rate / self.in_rate))
            missing = want - (self.n_out + len(y))
            if missing > 0:
                y = np.concatenate([y, np.zeros(missing, np.float32)])
            elif missing < 0:
                y = y[: len(y) + missing]
        self.n_out += len(y)
        return y


class ChannelStream:
    """One channel: resample in -> chunked model -> resample out -> strength mix, in any block
    sizes. Returns exactly as many samples in total as were pushed (once ``last`` is pushed)."""

    def __init__(self, denoiser: Denoiser, rate: int):
        self.down = _Resampler(rate, denoiser.sample_rate)
        self.chunker = (_CausalChunker(denoiser) if denoiser.causal
                        else _Chunker(denoiser.enhance_segment, denoiser.chunk, denoiser.context))
        self.up = _Resampler(denoiser.sample_rate, rate)
        self.strength = denoiser.strength
        self.threads = denoiser.threads
        self.dry = np.zeros(0, np.float32)  # input samples whose output is not out yet
        self.extra = np.zeros(0, np.float32)  # model output ahead of the input (rounding only)

    def push(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(-1)
        with torch_threads(self.threads):
            wet = self.up.push(self.chunker.push(self.down.push(x, last), last), last)
        self.dry = np.concatenate([self.dry, x])
        if len(self.extra):
            wet = np.concatenate([self.extra, wet])
        if last:  # the resampling round trip may miss or add a sample or two at the very end
            wet = np.concatenate([wet[: len(self.dry)], np.zeros(max(0, len(self.dry) - len(wet)), np.float32)])
        n = min(len(wet), len(self.dry))
        out, self.extra = wet[:n], wet[n:]
        dry, self.dry = self.dry[:n], self.dry[n:]
        if self.strength < 1.0:
            out = self.strength * out + (1.0 - self.strength) * dry
        return out
