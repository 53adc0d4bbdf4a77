"""Denoise anything: the :class:`Denoiser` API and the streaming file path behind ``denoise``.

Any length, rate and channel count: each channel is resampled to the model's rate, denoised in
chunks with context on both sides, resampled back and cut to the input's exact length. Chunk
starts are aligned to the model's frame grid (hop x 2**depth for a U-Net) and the context is
never narrower than the network's receptive field (plus one STFT window), so chunked output
equals whole-file output to float precision while memory stays bounded (``denoise_file``
streams from disk to disk). A causal model with state (``model.causal``, e.g. the CRN) has no
finite receptive field: it runs on :class:`streaming.FrameEngine` instead, which carries the
model state from chunk to chunk (same output, bounded memory) and is aligned with the input. ``strength`` mixes the input back in at the input's own rate, so the
band above the model's Nyquist frequency is attenuated no more than the rest.
"""
from __future__ import annotations

import math
import numbers
import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from . import audio as audio_io
from .errors import AudioError, CheckpointError, ConfigError, shown
from .fileio import new_temp
from .models import model_from_checkpoint

# default: the causal CRN (0.3); realtime: the same causal model by the name live users look for;
# unet: the previous default (the 2-D U-Net of 0.2), kept as the seed family's baseline.
PRETRAINED = {"default": "default.pt", "realtime": "default.pt", "unet": "unet.pt"}


def pretrained_path(name: str = "default") -> Path:
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model {name!r}; available: {sorted(PRETRAINED)}")
    path = Path(str(resources.files("specdenoise") / "pretrained" / PRETRAINED[name]))
    if not path.exists():
        raise ConfigError(f"the shipped model {path.name} is missing from this installation")
    return path


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
        from .streaming import FrameEngine, NonFiniteOutput

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


def receptive_field_frames(model) -> int | None:
    """One-sided receptive field of ``model`` in STFT frames (an upper bound), if known.

    A model may say so itself (``receptive_field_frames`` attribute); the two built-in families
    are computed from their configs. U-Net, kernel k (r = k // 2), depth d: each level i (scale
    2**i) adds 2r (encoder convs) + 1 (pool) + 1 (upsampling) + 2r (decoder convs) frames at its
    scale, the bottleneck 2r at scale 2**d. R-CED: time_kernel // 2 per layer.
    """
    own = getattr(model, "receptive_field_frames", None)
    if own is not None:
        return int(own)
    cfg = model.config() if hasattr(model, "config") else {}
    if getattr(model, "name", None) == "unet":
        r, depth = int(cfg.get("kernel_size", 3)) // 2, int(cfg.get("depth", 4))
        return (4 * r + 2) * (2**depth - 1) + 2 * r * 2**depth
    if getattr(model, "name", None) == "cnn":
        return len(cfg.get("channels", ())) * (int(cfg.get("time_kernel", 3)) // 2)
    return None


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
        rf = receptive_field_frames(model)
        min_context = _ceil_to(rf * cfg.hop_length + cfg.n_fft, align) if rf is not None else 0
        self.chunk = max(align, int(round(chunk_seconds * model.sample_rate / align)) * align)
        self.context = max(align, min_context, _ceil_to(context_seconds * model.sample_rate, align))
        # "onnx": the same model exported and run on onnxruntime (streaming graph for causal models)
        from .streaming import BACKENDS, make_step

        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.causal = bool(getattr(model, "causal", False)) and hasattr(model, "forward_frames")
        self.step = make_step(model, backend) if self.causal else None
        self.onnx = None
        if backend == "onnx" and not self.causal:
            from .export import OnnxOfflineModel

            self.onnx = OnnxOfflineModel(model)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> "Denoiser":
        denoiser = cls(model_from_checkpoint(path), **kwargs)
        denoiser.source = shown(path)
        return denoiser

    @classmethod
    def from_pretrained(cls, name: str = "default", **kwargs) -> "Denoiser":
        return cls.from_checkpoint(pretrained_path(name), **kwargs)

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

    def stream(self, in_rate: int) -> "ChannelStream":
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
        with _threads(self.threads):
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


class _threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        if self.n:
            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.n:
            torch.set_num_threads(self.old)


@dataclass
class FileResult:
    source: Path
    target: Path
    seconds: float
    duration: float


_WAV_SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


def _output_subtype(input_subtype: str, fmt: str) -> str:
    """The input's sample format where the output container holds it, else the nearest one."""
    if fmt == "OGG":
        return "VORBIS"
    if fmt == "FLAC":
        if input_subtype in ("PCM_16", "PCM_24"):
            return input_subtype
        return "PCM_24" if input_subtype in ("PCM_32", "FLOAT", "DOUBLE") else "PCM_16"
    return input_subtype if input_subtype in _WAV_SUBTYPES else "PCM_16"


def _write_error(target: Path, exc: BaseException) -> AudioError:
    return AudioError(target, f"cannot write ({audio_io._short(exc)})")


def denoise_file(denoiser: Denoiser, source: str | Path, target: str | Path, mono: bool = False,
                 force: bool = False, block_seconds: float = 10.0, progress: bool = False) -> FileResult:
    """Stream ``source`` through the denoiser into ``target`` (atomic, bounded memory).

    Keeps the input's rate, channels (unless ``mono``), length and sample format (as far as the
    target's container allows); never overwrites the input, and an existing target only with
    ``force``. On any failure nothing is left behind (no partial output, no temp file).
    """
    source, target = Path(source), Path(target)
    block_seconds = _finite_number("block_seconds", block_seconds)
    if block_seconds <= 0:
        raise ConfigError(f"block_seconds must be positive, got {block_seconds}")
    meta = audio_io.info(source)
    if meta.frames == 0:
        raise AudioError(source, "empty file (zero samples)")
    if not MIN_RATE <= meta.samplerate <= MAX_RATE:
        raise AudioError(source, f"sample rate {meta.samplerate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    audio_io._check_wav_complete(source)
    if audio_io.same_file(source, target):
        raise AudioError(target, "refusing to overwrite the input file")
    if target.is_dir():
        raise AudioError(target, "output is a folder")
    if target.exists() and not force:
        raise AudioError(target, "output exists (use --force to replace it)")
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(target.suffix.lower())
    if fmt is None:
        raise AudioError(target, "output name must end in .wav, .flac or .ogg")
    rate, channels = meta.samplerate, (1 if mono else meta.channels)
    subtype = _output_subtype(meta.subtype, fmt)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = new_temp(target)
    except OSError as exc:
        raise _write_error(target, exc) from None
    started = time.perf_counter()
    block = max(1, int(block_seconds * rate))
    written = read = 0
    try:
        from tqdm import tqdm

        streams = [denoiser.stream(rate) for _ in range(channels)]
        try:
            fin = sf.SoundFile(audio_io.sf_name(source))
        except Exception as exc:
            raise AudioError(source, f"unreadable or not audio ({audio_io._short(exc)})") from None
        with fin:
            try:
                fout = sf.SoundFile(audio_io.sf_name(tmp), "w", rate, channels, subtype=subtype, format=fmt)
            except Exception as exc:
                raise _write_error(target, exc) from None
            bar = tqdm(total=meta.frames, unit="sample", unit_scale=True, desc=source.name,
                       disable=not progress, leave=False)
            done = False
            try:
                while True:
                    try:
                        data = fin.read(block, dtype="float32", always_2d=True)
                    except Exception as exc:
                        raise AudioError(source, f"unreadable or not audio ({audio_io._short(exc)})") from None
                    read += len(data)
                    last = len(data) == 0 or read >= meta.frames
                    if not np.isfinite(data).all():
                        raise AudioError(source, "contains NaN or Inf samples")
                    x = data.mean(axis=1, keepdims=True) if mono else data
                    outs = [s.push(x[:, c], last) for c, s in enumerate(streams)]
                    n = min(min(len(o) for o in outs), meta.frames - written)
                    if n > 0:
                        y = np.stack([o[:n] for o in outs], axis=1)
                        if subtype not in ("FLOAT", "DOUBLE"):
                            y = np.clip(y, -1.0, 1.0)
                        try:
                            fout.write(y)
                        except Exception as exc:
                            raise _write_error(target, exc) from None
                        written += n
                    bar.update(len(data))
                    if last:
                        break
                if read < meta.frames:
                    raise AudioError(source, f"truncated file ({read} of {meta.frames} samples present)")
                done = True
            finally:
                bar.close()
                try:
                    fout.close()  # flushes: a full disk shows here
                except Exception as exc:
                    if done:  # else the error already on its way is the one to report
                        raise _write_error(target, exc) from None
        if written != meta.frames:  # ChannelStream returns exactly what it was given
            raise RuntimeError(f"internal error: wrote {written} of {meta.frames} samples to {target}")
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise _write_error(target, exc) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return FileResult(source, target, time.perf_counter() - started, meta.frames / rate)
