"""Real-time denoising: push audio in blocks of any size, get denoised audio back at a fixed delay.

Two layers:

- :class:`FrameEngine` runs a **causal** model (``model.causal``; ``initial_state`` and
  ``forward_frames``) at the model's rate. It frames the stream exactly as :func:`stft.stft` frames a
  whole file (centred frames, reflect padding at both ends: the start is reflected once ``n_fft``
  samples have arrived, the end at :meth:`FrameEngine.flush`), carries the model state between
  calls and overlap-adds like :func:`stft.istft`. So its output *is* ``model.enhance(x)``, whatever
  the block sizes; a sample is final ``n_fft - 1`` samples after it arrived (the window), plus
  ``lookahead_frames`` hops for a model that looks ahead (its frames come out that many steps late;
  :meth:`FrameEngine.flush` feeds it that many silent frames to finish the stream).
- :class:`StreamingDenoiser` adds any input rate (:class:`resampling.StreamResampler`, fixed
  delay), channels, the ``strength`` mix and a constant latency: ``push`` returns as many samples
  as it was given, the first ``latency_samples`` of the stream are silence, and after that the output
  equals offline processing shifted by exactly ``latency_samples``; ``flush`` returns that tail.

Both back ends (PyTorch, or onnxruntime on the exported streaming graph) plug in as a *step*:
``step(spec [C, F, T] complex, state) -> (enhanced spec, new state)``.
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import ConfigError, SpecdenoiseError
from .resampling import StreamResampler
from .stft import window as stft_window
from .threads import torch_threads

Step = Callable[[torch.Tensor, list], tuple[torch.Tensor, list]]

BACKENDS = ("torch", "onnx")


class NotCausalError(SpecdenoiseError):
    """The model looks at future frames (or keeps no state), so it cannot run frame by frame."""


class NonFiniteOutput(SpecdenoiseError):
    """The model produced NaN or Inf (diverged weights): never to be played or written."""


def is_causal(model) -> bool:
    """Whether ``model`` can run frame by frame with state (it says it is causal and has ``forward_frames``)."""
    return bool(getattr(model, "causal", False)) and hasattr(model, "forward_frames")


def require_causal(model, what: str = "streaming") -> None:
    if not is_causal(model):
        raise NotCausalError(
            f"model {getattr(model, 'name', type(model).__name__)!r} is not causal (it looks at future frames), "
            f"so it cannot be used for {what}; use a causal model such as 'crn'")


def torch_step(model, threads: int | None = None) -> Step:
    """The model's own frame-state forward, without autograd."""
    def step(spec: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        with torch.inference_mode(), torch_threads(threads):
            return model.forward_frames(spec, state)
    return step


def make_step(model, backend: str = "torch", threads: int | None = None) -> Step:
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    require_causal(model)
    if backend == "onnx":
        from .export import OnnxStreamingStep

        return OnnxStreamingStep(model, threads=threads)
    return torch_step(model, threads)


class FrameEngine:
    """Causal model on a stream at the model's rate: ``(samples, channels)`` in, finished samples out.

    ``max_frames`` bounds the frames handed to the model per call (memory stays bounded however
    large a push is). Output is float32 ``(samples, channels)``; after :meth:`flush` the engine has
    returned exactly as many samples as it received.
    """

    def __init__(self, model, channels: int = 1, step: Step | None = None, max_frames: int = 256):
        require_causal(model)
        self.model = model
        self.cfg = model.stft_config
        self.channels = channels
        self.step = step or torch_step(model)
        self.max_frames = max(1, int(max_frames))
        self.lookahead = int(getattr(model, "lookahead_frames", 0))
        n_fft = self.cfg.n_fft
        self.left = n_fft // 2
        win = np.zeros(n_fft, np.float32)
        off = (n_fft - self.cfg.win_length) // 2
        win[off : off + self.cfg.win_length] = stft_window(self.cfg).numpy()
        self.window = torch.from_numpy(win)  # the window placed in n_fft as torch.stft/istft place it
        self.window_sq = win.astype(np.float64) ** 2
        self.reset()

    @property
    def delay(self) -> int:
        """Samples (model rate) from a sample's arrival to its output being final: the window and
        the model's look-ahead."""
        return self.cfg.n_fft - 1 + self.lookahead * self.cfg.hop_length

    def reset(self) -> None:
        fresh = getattr(self.step, "initial_state", None) or self.model.initial_state  # a back end may keep its own
        self.state = fresh(self.channels, torch.device("cpu"))
        self.pending = np.zeros((self.channels, 0), np.float32)  # input before the first n_fft
        self.padded = None  # padded stream (stft coordinates) from index ``p_start``
        self.p_start = 0
        self.frames_done = 0
        self.acc = np.zeros((self.channels, 0), np.float64)  # overlap-add from index ``acc_start``
        self.env = np.zeros(0, np.float64)
        self.acc_start = 0
        self.n_in = 0
        self.n_out = 0
        self.finished = False

    def push(self, x: np.ndarray) -> np.ndarray:
        if self.finished:
            raise ConfigError("this stream was flushed; call reset() before pushing more audio")
        x = np.asarray(x, np.float32).reshape(-1, self.channels).T
        self.n_in += x.shape[1]
        if self.padded is None:
            self.pending = np.concatenate([self.pending, x], axis=1)
            if self.pending.shape[1] < self.cfg.n_fft:  # too short to know the padding mode yet
                return np.zeros((0, self.channels), np.float32)
            head = self.pending[:, 1 : self.left + 1][:, ::-1]  # reflect, as stft() pads
            self.padded, self.pending = np.concatenate([head, self.pending], axis=1), None
        else:
            self.padded = np.concatenate([self.padded, x], axis=1)
        p_total = self.p_start + self.padded.shape[1]
        ready = (p_total - self.cfg.n_fft) // self.cfg.hop_length + 1
        self._run_frames(ready)
        return self._emit((self.frames_done - self.lookahead) * self.cfg.hop_length - self.left)

    def flush(self) -> np.ndarray:
        """Pad the end as ``stft()`` does, run the last frames, return every remaining sample."""
        if self.finished:
            return np.zeros((0, self.channels), np.float32)
        self.finished = True
        n, cfg = self.n_in, self.cfg
        if n == 0:
            return np.zeros((0, self.channels), np.float32)
        _, right = cfg.padding(n)
        if self.padded is None:  # shorter than one window: the offline path, exactly
            from .stft import istft, stft

            x = torch.from_numpy(self.pending)
            spec = stft(x, cfg)
            ahead = spec.new_zeros(*spec.shape[:-1], self.lookahead)
            spec, _ = self.step(torch.cat([spec, ahead], dim=-1), self.state)
            spec = spec[..., self.lookahead :]
            self.n_out = n
            out = istft(spec, cfg, n).numpy().T.astype(np.float32)
            if not np.isfinite(out).all():
                raise NonFiniteOutput("the model's output is NaN or Inf (diverged weights?)")
            return out
        tail = self.padded[:, -right - 1 : -1][:, ::-1] if right else self.padded[:, :0]
        self.padded = np.concatenate([self.padded, tail], axis=1)
        self._run_frames(cfg.n_frames(n))
        if self.lookahead:  # silent frames push the last real ones out, as the model's forward() does
            silent = torch.zeros(self.channels, cfg.n_freqs, self.lookahead, dtype=torch.complex64)
            out, self.state = self.step(silent, self.state)
            self._add_frames(out, self.frames_done)
        return self._emit(n)

    def _run_frames(self, upto: int) -> None:
        hop, n_fft = self.cfg.hop_length, self.cfg.n_fft
        while self.frames_done < upto:
            k0 = self.frames_done
            k1 = min(upto, k0 + self.max_frames)
            seg = torch.from_numpy(np.ascontiguousarray(
                self.padded[:, k0 * hop - self.p_start : (k1 - 1) * hop + n_fft - self.p_start]))
            spec = torch.stft(seg, n_fft=n_fft, hop_length=hop, win_length=self.cfg.win_length,
                              window=stft_window(self.cfg), center=False, return_complex=True)
            out, self.state = self.step(spec, self.state)
            self._add_frames(out, k0)
            self.frames_done = k1
            # keep the samples later frames need, and n_fft more for the reflected end
            keep_from = min(k1 * hop, self.p_start + self.padded.shape[1] - n_fft)
            if keep_from > self.p_start:
                self.padded = self.padded[:, keep_from - self.p_start :]
                self.p_start = keep_from

    def _add_frames(self, out: torch.Tensor, k0: int) -> None:
        """Overlap-add the model's output for input frames ``k0 ...``: with look-ahead L they are
        output frames ``k0 - L ...`` (those before frame 0 belong to no frame and are dropped)."""
        first = k0 - self.lookahead
        if first < 0:
            out, first = out[..., -first:], 0
        if out.shape[-1]:
            frames = (torch.fft.irfft(out, n=self.cfg.n_fft, dim=1) * self.window[None, :, None]).numpy()
            self._overlap_add(frames, first)  # [C, n_fft, T]

    def _overlap_add(self, frames: np.ndarray, k0: int) -> None:
        hop, n_fft = self.cfg.hop_length, self.cfg.n_fft
        t = frames.shape[2]
        end = (k0 + t - 1) * hop + n_fft  # stft coordinates
        grow = end - (self.acc_start + self.acc.shape[1])
        if grow > 0:
            self.acc = np.concatenate([self.acc, np.zeros((self.channels, grow))], axis=1)
            self.env = np.concatenate([self.env, np.zeros(grow)])
        for i in range(t):
            a = (k0 + i) * hop - self.acc_start
            self.acc[:, a : a + n_fft] += frames[:, :, i]
            self.env[a : a + n_fft] += self.window_sq

    def _emit(self, upto: int) -> np.ndarray:
        """Samples ``[n_out, upto)`` of the output (sample s sits at stft index ``s + n_fft//2``)."""
        upto = min(upto, self.n_in)
        if upto <= self.n_out:
            return np.zeros((0, self.channels), np.float32)
        a = self.n_out + self.left - self.acc_start
        b = upto + self.left - self.acc_start
        env = self.env[a:b]
        out = np.where(env > 1e-11, self.acc[:, a:b] / np.where(env > 1e-11, env, 1.0), 0.0)
        self.acc, self.env = self.acc[:, b:], self.env[b:]
        self.acc_start += b
        self.n_out = upto
        if not np.isfinite(out).all():
            raise NonFiniteOutput("the model's output is NaN or Inf (diverged weights?)")
        return out.T.astype(np.float32)


def _engine_complete(m: np.ndarray, n_fft: int, hop: int, lookahead: int = 0) -> np.ndarray:
    """Samples a :class:`FrameEngine` has finished after receiving ``m`` (vectorised)."""
    frames = np.where(m >= n_fft, (m + n_fft // 2 - n_fft) // hop + 1, 0)
    return np.clip((frames - lookahead) * hop - n_fft // 2, 0, m)


class StreamingDenoiser:
    """Denoise a live stream: ``push(block)`` returns the same number of samples, delayed by
    :attr:`latency_samples`; ``flush()`` returns the last ``latency_samples``; ``reset()`` starts over.

    ``sample_rate`` is the stream's rate (any; resampled to the model's and back), ``channels`` its
    channel count (blocks are ``(samples,)`` for mono or ``(samples, channels)``, as sounddevice and
    soundfile use), ``strength`` in [0, 1] mixes the (equally delayed) input back in.
    """

    def __init__(self, model, sample_rate: int, channels: int = 1, strength: float = 1.0,
                 backend: str = "torch", threads: int | None = None):
        from .enhance.denoiser import _check_rate, _finite_number

        if isinstance(model, (str, Path)):
            from .models import model_from_checkpoint

            model = model_from_checkpoint(model)
        require_causal(model)
        self.rate = _check_rate(sample_rate)
        if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or not 1 <= channels <= 64:
            raise ConfigError(f"channels must be a whole number from 1 to 64, got {channels!r}")
        self.channels = int(channels)
        self.strength = _finite_number("strength", strength)
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"strength must lie in [0, 1], got {strength}")
        self.model = model.eval()
        self.backend = backend
        self.engine = FrameEngine(self.model, self.channels, make_step(self.model, backend, threads))
        self.down = StreamResampler(self.rate, model.sample_rate, self.channels)
        self.up = StreamResampler(model.sample_rate, self.rate, self.channels)
        self.latency_samples = self._latency()
        self.reset()

    def _latency(self) -> int:
        """The largest lag of the chain's finished output behind its input, over a full period of
        the resamplers' and the frame grid's patterns (exact, not an estimate)."""
        cfg = self.model.stft_config
        period = self.down.down * cfg.hop_length * max(1, self.up.down)
        start = 4 * cfg.n_fft * max(1, self.down.down) // max(1, self.down.up)
        n = np.arange(0, start + 2 * period + 1, dtype=np.int64)
        ready = self._ready(n)
        return int((n - ready).max())

    def _ready(self, n: np.ndarray) -> np.ndarray:
        cfg = self.model.stft_config
        m = n if self.down.identity else np.maximum(n * self.down.up - 1 - self.down.half, -1) // self.down.down + 1
        e = _engine_complete(m, cfg.n_fft, cfg.hop_length, self.engine.lookahead)
        return e if self.up.identity else np.maximum(e * self.up.up - 1 - self.up.half, -1) // self.up.down + 1

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: the STFT window, the model's look-ahead (none for a strictly causal
        model), the resamplers."""
        return 1000.0 * self.latency_samples / self.rate

    def latency_budget(self) -> dict[str, float]:
        """Where the latency comes from, in milliseconds (the parts add up to :attr:`latency_ms`
        up to rounding to whole samples)."""
        ahead = 1000.0 * self.engine.lookahead * self.model.stft_config.hop_length / self.model.sample_rate
        window = 1000.0 * self.engine.delay / self.model.sample_rate - ahead
        resample = self.latency_ms - window - ahead
        return {"window_ms": window, "look_ahead_ms": ahead, "resampling_ms": resample, "total_ms": self.latency_ms}

    def reset(self) -> None:
        self.engine.reset()
        self.down.reset()
        self.up.reset()
        self.wet = np.zeros((0, self.channels), np.float32)  # chain output not yet returned
        self.dry = np.zeros((0, self.channels), np.float32)  # input not yet mixed back
        self.n_in = 0
        self.n_out = 0
        self.n_wet = 0  # chain samples produced so far
        self.flushed = False

    def _check(self, block) -> tuple[np.ndarray, bool]:
        x = np.asarray(block)
        if np.issubdtype(x.dtype, np.complexfloating) or not (np.issubdtype(x.dtype, np.floating)
                                                               or np.issubdtype(x.dtype, np.integer)):
            raise ConfigError(f"audio blocks must be real samples, got dtype {x.dtype}")
        mono = x.ndim == 1
        if mono and self.channels != 1:
            raise ConfigError(f"this stream has {self.channels} channels: push (samples, {self.channels}) blocks")
        if not mono and (x.ndim != 2 or x.shape[1] != self.channels):
            raise ConfigError(f"audio blocks must be (samples,) or (samples, {self.channels}), got shape {x.shape}")
        if np.issubdtype(x.dtype, np.integer):
            from .enhance.denoiser import _as_float

            x = _as_float(x)
        x = x.astype(np.float32, copy=False).reshape(-1, self.channels)
        if not np.isfinite(x).all():
            raise ConfigError("audio block contains NaN or Inf")
        return x, mono

    def push(self, block) -> np.ndarray:
        """Denoise the next block; returns exactly ``len(block)`` samples (same layout)."""
        if self.flushed:
            raise ConfigError("this stream was flushed; call reset() before pushing more audio")
        x, mono = self._check(block)
        self._chain(self.up.push(self.engine.push(self.down.push(x))))
        self.dry = np.concatenate([self.dry, x])
        self.n_in += len(x)
        out = self._take(self.n_in)
        return out[:, 0] if mono else out

    def flush(self) -> np.ndarray:
        """End of stream: the last :attr:`latency_samples` samples (mono blocks give 1-D output)."""
        if self.flushed:
            return np.zeros((0, self.channels) if self.channels > 1 else 0, np.float32)
        self.flushed = True
        e = self.engine.push(self.down.flush())
        e = np.concatenate([e, self.engine.flush()])
        self._chain(np.concatenate([self.up.push(e), self.up.flush()]))
        short = self.n_in - self.n_wet
        if short > 0:  # cannot happen with the exact counts above; kept for safety
            self._chain(np.zeros((short, self.channels), np.float32))
        out = self._take(self.n_in + self.latency_samples)
        return out[:, 0] if self.channels == 1 else out

    def _chain(self, y: np.ndarray) -> None:
        self.wet = np.concatenate([self.wet, y])
        self.n_wet += len(y)

    def _take(self, upto: int) -> np.ndarray:
        """Output samples ``[n_out, upto)``: silence for the first ``latency_samples``, then the
        chain's output ``i - latency`` mixed with input ``i - latency``."""
        lat = self.latency_samples
        n = upto - self.n_out
        if n <= 0:
            return np.zeros((0, self.channels), np.float32)
        silent = max(0, min(upto, lat) - self.n_out)
        k = n - silent
        if k > len(self.wet) or k > len(self.dry):
            raise RuntimeError(f"internal error: latency {lat} too small ({k} samples due, {len(self.wet)} ready)")
        wet, self.wet = self.wet[:k], self.wet[k:]
        dry, self.dry = self.dry[:k], self.dry[k:]
        mixed = wet if self.strength >= 1.0 else self.strength * wet + (1.0 - self.strength) * dry
        self.n_out = upto
        if silent:
            mixed = np.concatenate([np.zeros((silent, self.channels), np.float32), mixed])
        return mixed.astype(np.float32, copy=False)
