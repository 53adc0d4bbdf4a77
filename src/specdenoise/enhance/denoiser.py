"""The :class:`Denoiser`: a trained model wrapped for use on any waveform (any length, rate,
channel count and sample type), and the shipped models it loads by name.

Each channel is resampled to the model's rate, denoised in chunks with context on both sides,
resampled back and cut to the input's exact length (:mod:`.chunking` does that). Chunk starts
are aligned to the model's frame grid (``model.frame_multiple``) and the context is never
narrower than the network's receptive field (``model.receptive_field_frames``, plus one STFT
window), so chunked output equals whole-file output to float precision while memory stays
bounded. A causal model with state (``model.causal``, e.g. the CRN) has no finite receptive
field: it runs on :class:`~specdenoise.streaming.FrameEngine`, which carries the model state
from chunk to chunk. ``strength`` mixes the input back in at the input's own rate, so the band
above the model's Nyquist frequency is attenuated no more than the rest.
"""
from __future__ import annotations

import math
import numbers
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, shown
from ..models import model_from_checkpoint
from .chunking import ChannelStream

# default: the CRN with a 4-tap deep filter and one frame (16 ms) of look-ahead (architecture of 1.0, weights of 1.1; 48 ms in all);
# realtime: the strictly causal CRN (0.9; 32 ms) for live use where every millisecond counts;
# unet: the previous default (the 2-D U-Net of 0.2), kept as the seed family's baseline.
PRETRAINED = {"default": "default.pt", "realtime": "realtime.pt", "unet": "unet.pt"}


def pretrained_path(name: str = "default") -> Path:
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model {name!r}; available: {sorted(PRETRAINED)}")
    path = Path(str(resources.files("specdenoise") / "pretrained" / PRETRAINED[name]))
    if not path.exists():
        raise ConfigError(f"the shipped model {path.name} is missing from this installation")
    return path


def model_path(name_or_path: str | Path) -> Path:
    """The file behind a model argument: a shipped model's name (a key of :data:`PRETRAINED`)
    or else a checkpoint path. Every ``--model`` option resolves through here."""
    return pretrained_path(str(name_or_path)) if str(name_or_path) in PRETRAINED else Path(name_or_path)


def _finite_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _ceil_to(n: float, step: int) -> int:
    return int(math.ceil(n / step - 1e-9)) * step


class Denoiser:
    """A trained model wrapped for use on any waveform.

    ``strength`` in [0, 1] mixes the denoised signal with the input (1 = fully denoised); it
    caps attenuation at ``20*log10(1 - strength)`` dB, so users can keep some background. The mix
    happens at the input's rate (the whole band keeps at least ``1 - strength`` of the input).
    ``chunk_seconds`` bounds memory; ``context_seconds`` is a minimum: the context is widened to
    the model's receptive field when that is larger, so chunking never changes the output.
    ``backend="onnx"`` runs the model exported to ONNX on onnxruntime (the streaming graph for a
    causal model, the whole-spectrogram graph otherwise; exported once, then cached).
    """

    def __init__(self, model, strength: float = 1.0, chunk_seconds: float = 10.0,
                 context_seconds: float = 1.0, threads: int | None = None, backend: str = "torch"):
        strength = _finite_number("strength", strength)
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength must lie in [0, 1], got {strength}")
        chunk_seconds = _finite_number("chunk_seconds", chunk_seconds)
        context_seconds = _finite_number("context_seconds", context_seconds)
        if chunk_seconds <= 0:
            raise ConfigError(f"chunk_seconds must be positive, got {chunk_seconds}")
        if context_seconds < 0:
            raise ConfigError(f"context_seconds must not be negative, got {context_seconds}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
            raise ConfigError(f"threads must be a positive integer (or 0/None for torch's default), got {threads!r}")
        self.model = model.eval()
        self.source = f"model {getattr(model, 'name', type(model).__name__)!r}"  # named in errors
        self.strength = strength
        self.threads = threads or None
        cfg = model.stft_config
        align = cfg.hop_length * model.frame_multiple
        rf = getattr(model, "receptive_field_frames", None)  # each model family states its own
        min_context = _ceil_to(rf * cfg.hop_length + cfg.n_fft, align) if rf is not None else 0
        self.chunk = max(align, int(round(chunk_seconds * model.sample_rate / align)) * align)
        self.context = max(align, min_context, _ceil_to(context_seconds * model.sample_rate, align))
        # "onnx": the same model exported and run on onnxruntime (streaming graph for causal models)
        from ..streaming import BACKENDS, is_causal, make_step

        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.causal = is_causal(model)
        self.step = make_step(model, backend) if self.causal else None
        self.onnx = None
        if backend == "onnx" and not self.causal:
            from ..export import OnnxOfflineModel

            self.onnx = OnnxOfflineModel(model)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> "Denoiser":
        denoiser = cls(model_from_checkpoint(path), **kwargs)
        denoiser.source = shown(path)
        return denoiser

    @classmethod
    def from_pretrained(cls, name: str = "default", **kwargs) -> "Denoiser":
        return cls.from_checkpoint(pretrained_path(name), **kwargs)

    @classmethod
    def load(cls, name_or_path: str | Path = "default", **kwargs) -> "Denoiser":
        """A shipped model by name ("default", "realtime", "unet") or any checkpoint by path."""
        return cls.from_checkpoint(model_path(name_or_path), **kwargs)

    @staticmethod
    def attenuation_to_strength(limit_db: float) -> float:
        """Strength whose mix-back caps attenuation at ``limit_db`` dB (0 dB: pass through)."""
        if isinstance(limit_db, bool) or not isinstance(limit_db, numbers.Real) or math.isnan(limit_db) or limit_db < 0:
            raise ConfigError(f"attenuation limit must be a non-negative number of dB, got {limit_db}")
        return 1.0 - 10 ** (-limit_db / 20)

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @torch.inference_mode()
    def enhance_segment(self, x: np.ndarray) -> np.ndarray:
        """Whole-segment enhancement at the model's rate (no chunking, no strength mix).

        A model with diverged weights can output NaN or Inf: that is an error naming the model
        (never audio written), since clipping would turn it into loud garbage."""
        wave = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]
        y = (self.onnx.enhance(wave) if self.onnx is not None else self.model.enhance(wave))[0].numpy()
        if not np.isfinite(y).all():
            raise CheckpointError(f"{self.source}: the model's output is NaN or Inf (diverged weights?); "
                                  "nothing was written")
        return y

    def stream(self, in_rate: int) -> ChannelStream:
        """One channel at ``in_rate`` through this denoiser, pushed in blocks of any size."""
        return ChannelStream(self, _check_rate(in_rate))

    def __call__(self, waveform, sample_rate: int, layout: str = "auto"):
        """Denoise ``(samples,)`` or a 2-D array of channels at ``sample_rate``; same shape back.

        ``layout`` says how a 2-D input holds its channels: ``"channels_first"`` is
        ``(channels, samples)``, ``"channels_last"`` is ``(samples, channels)`` (what
        ``soundfile.read`` returns), and ``"auto"`` (default) takes the shorter axis as channels
        and refuses a square shape, which could be either. numpy in, numpy out; torch in, torch
        out (same device). Floating inputs keep their dtype; integer PCM (int8/16/32, uint8) is
        scaled to [-1, 1) as soundfile does and returned as float32. Complex inputs are refused.
        """
        rate = _check_rate(sample_rate)
        is_torch = isinstance(waveform, torch.Tensor)
        if is_torch:
            device, tdtype = waveform.device, waveform.dtype
            t = waveform.detach().cpu()
            x = (t.to(torch.float32) if t.is_floating_point() else t).numpy()  # bf16 has no numpy type
        else:
            x = np.asarray(waveform)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float32)
        x = _as_float(x)
        if x.ndim not in (1, 2):
            raise ConfigError(f"waveform must be (samples,) or 2-D (channels and samples), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ConfigError("waveform contains NaN or Inf")
        last = x.ndim == 2 and _channels_last(x.shape, layout)
        chans = x[None] if x.ndim == 1 else (x.T if last else x)
        out = np.stack([self._run_channel(c, rate) for c in chans]) if len(chans) else np.zeros_like(chans)
        out = out[0] if x.ndim == 1 else (np.ascontiguousarray(out.T) if last else out)
        if is_torch:
            return torch.from_numpy(out).to(device=device, dtype=tdtype if tdtype.is_floating_point else torch.float32)
        return out.astype(dtype, copy=False)

    def _run_channel(self, x: np.ndarray, rate: int) -> np.ndarray:
        s = self.stream(rate)
        return np.concatenate([s.push(x), s.push(np.zeros(0, np.float32), last=True)])


MIN_RATE, MAX_RATE = 1000, 768000  # outside: not audio anyone records (2**31 Hz once returned zeros)
_INT_SCALE = {np.dtype(np.int8): 2.0**7, np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


def _check_rate(sample_rate) -> int:
    if sample_rate is None or isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real):
        raise ConfigError(f"sample_rate is required (the model never assumes one), got {sample_rate!r}")
    if not math.isfinite(sample_rate) or sample_rate <= 0 or sample_rate != int(sample_rate):
        raise ConfigError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise ConfigError(f"sample_rate must lie in [{MIN_RATE}, {MAX_RATE}] Hz, got {sample_rate!r}")
    return int(sample_rate)


def _as_float(x: np.ndarray) -> np.ndarray:
    """float32 samples: floats as they are, integer PCM scaled like ``soundfile`` reads it."""
    if np.issubdtype(x.dtype, np.complexfloating):
        raise ConfigError("waveform is complex: pass real samples (e.g. the real part, or a magnitude)")
    if x.dtype == np.uint8:  # 8-bit WAV: unsigned, silence at 128
        return ((x.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if x.dtype in _INT_SCALE:
        return (x.astype(np.float64) / _INT_SCALE[x.dtype]).astype(np.float32)
    if not np.issubdtype(x.dtype, np.floating):
        raise ConfigError(f"waveform dtype {x.dtype} is not audio: use float, or int8/uint8/int16/int32 PCM")
    return x.astype(np.float32, copy=False)


def _channels_last(shape: tuple[int, int], layout: str) -> bool:
    """True when a 2-D waveform is (samples, channels); see ``Denoiser.__call__``."""
    if layout == "channels_first":
        return False
    if layout == "channels_last":
        return True
    if layout != "auto":
        raise ConfigError(f"layout must be 'auto', 'channels_first' or 'channels_last', got {layout!r}")
    rows, cols = shape
    if rows == cols and rows > 1:
        raise ConfigError(f"waveform shape {shape} is ambiguous: pass layout='channels_first' for "
                          "(channels, samples) or layout='channels_last' for (samples, channels)")
    return rows > cols
