"""Denoise anything: the :class:`Denoiser` API and the streaming file path behind ``denoise``.

Any length, rate and channel count: each channel is resampled to the model's rate, denoised in
chunks with context on both sides, resampled back and cut to the input's exact length. Chunk
starts are aligned to the model's frame grid (hop x 2**depth for a U-Net) and the context is
wider than the network's receptive field, so chunked output equals whole-file output to float
precision while memory stays bounded (``denoise_file`` streams from disk to disk).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch

from . import audio as audio_io
from .errors import AudioError, ConfigError
from .fileio import new_temp
from .models import from_serialized, load_checkpoint

PRETRAINED = {"default": "default.pt"}


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


class Denoiser:
    """A trained model wrapped for use on any waveform.

    ``strength`` in [0, 1] mixes the denoised signal with the input (1 = fully denoised); it
    caps attenuation at ``20*log10(1 - strength)`` dB, so users can keep some background.
    """

    def __init__(self, model, strength: float = 1.0, chunk_seconds: float = 10.0,
                 context_seconds: float = 1.0, threads: int | None = None):
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength must lie in [0, 1], got {strength}")
        self.model = model.eval()
        self.strength = strength
        self.threads = threads
        align = model.stft_config.hop_length * model.frame_multiple
        self.chunk = max(align, int(round(chunk_seconds * model.sample_rate / align)) * align)
        self.context = max(align, int(round(context_seconds * model.sample_rate / align)) * align)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> "Denoiser":
        return cls(from_serialized(load_checkpoint(path)), **kwargs)

    @classmethod
    def from_pretrained(cls, name: str = "default", **kwargs) -> "Denoiser":
        return cls.from_checkpoint(pretrained_path(name), **kwargs)

    @staticmethod
    def attenuation_to_strength(limit_db: float) -> float:
        """Strength whose mix-back caps attenuation at ``limit_db`` dB."""
        if limit_db <= 0:
            raise ConfigError(f"attenuation limit must be positive dB, got {limit_db}")
        return 1.0 - 10 ** (-limit_db / 20)

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @torch.inference_mode()
    def enhance_segment(self, x: np.ndarray) -> np.ndarray:
        """Whole-segment enhancement at the model's rate (no chunking)."""
        y = self.model.enhance(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])[0].numpy()
        if self.strength < 1.0:
            y = self.strength * y + (1.0 - self.strength) * x
        return y

    def stream(self, in_rate: int) -> "ChannelStream":
        return ChannelStream(self, in_rate)

    def __call__(self, waveform, sample_rate: int):
        """Denoise ``(samples,)`` or ``(channels, samples)`` at ``sample_rate``; same shape back."""
        if sample_rate is None or int(sample_rate) <= 0:
            raise ConfigError("sample_rate is required (the model never assumes one)")
        is_torch = isinstance(waveform, torch.Tensor)
        x = waveform.detach().cpu().numpy() if is_torch else np.asarray(waveform)
        x = x.astype(np.float32, copy=False)
        if x.ndim not in (1, 2):
            raise ConfigError(f"waveform must be (samples,) or (channels, samples), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ConfigError("waveform contains NaN or Inf")
        chans = x[None] if x.ndim == 1 else x
        out = np.stack([self._run_channel(c, int(sample_rate)) for c in chans])
        out = out[0] if x.ndim == 1 else out
        return torch.from_numpy(out) if is_torch else out

    def _run_channel(self, x: np.ndarray, rate: int) -> np.ndarray:
        s = self.stream(rate)
        return np.concatenate([s.push(x), s.push(np.zeros(0, np.float32), last=True)])[: len(x)]


class ChannelStream:
    """One channel: resample in -> chunked model -> resample out, in any block sizes."""

    def __init__(self, denoiser: Denoiser, rate: int):
        self.down = _Resampler(rate, denoiser.sample_rate)
        self.chunker = _Chunker(denoiser.enhance_segment, denoiser.chunk, denoiser.context)
        self.up = _Resampler(denoiser.sample_rate, rate)

    def push(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        with _threads(None):
            return self.up.push(self.chunker.push(self.down.push(x, last), last), last)


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


def _output_subtype(info) -> str:
    return info.subtype if info.subtype in ("PCM_16", "PCM_24", "FLOAT") else "PCM_16"


def denoise_file(denoiser: Denoiser, source: str | Path, target: str | Path, mono: bool = False,
                 force: bool = False, block_seconds: float = 10.0, progress: bool = False) -> FileResult:
    """Stream ``source`` through the denoiser into ``target`` (atomic, bounded memory).

    Keeps the input's rate, channels (unless ``mono``) and length; never overwrites the input,
    and an existing target only with ``force``.
    """
    source, target = Path(source), Path(target)
    meta = audio_io.info(source)
    if meta.frames == 0:
        raise AudioError(source, "empty file (zero samples)")
    if target.exists() and audio_io.same_file(source, target):
        raise AudioError(target, "refusing to overwrite the input file")
    if target.exists() and not force:
        raise AudioError(target, "output exists (use --force to replace it)")
    if target.exists() and target.is_dir():
        raise AudioError(target, "output is a folder")
    rate, channels = meta.samplerate, (1 if mono else meta.channels)
    fmt = {".flac": "FLAC", ".ogg": "OGG"}.get(target.suffix.lower(), "WAV")
    subtype = "VORBIS" if fmt == "OGG" else ("PCM_24" if fmt == "FLAC" and _output_subtype(meta) == "FLOAT" else _output_subtype(meta))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temp(target)
    started = time.perf_counter()
    streams = [denoiser.stream(rate) for _ in range(channels)]
    block = max(1, int(block_seconds * rate))
    written = 0
    try:
        from tqdm import tqdm

        with sf.SoundFile(str(source)) as fin, sf.SoundFile(tmp, "w", rate, channels, subtype=subtype, format=fmt) as fout:
            bar = tqdm(total=meta.frames, unit="sample", unit_scale=True, desc=source.name, disable=not progress, leave=False)
            while True:
                try:
                    data = fin.read(block, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise AudioError(source, f"unreadable or not audio ({audio_io._short(exc)})") from None
                last = len(data) < block
                if not np.isfinite(data).all():
                    raise AudioError(source, "contains NaN or Inf samples")
                x = data.mean(axis=1, keepdims=True) if mono else data
                outs = [s.push(x[:, c], last) for c, s in enumerate(streams)]
                n = min(len(o) for o in outs)
                n = min(n, meta.frames - written)
                if n > 0:
                    y = np.stack([o[:n] for o in outs], axis=1)
                    if subtype != "FLOAT":
                        y = np.clip(y, -1.0, 1.0)
                    fout.write(y)
                    written += n
                bar.update(len(data))
                if last:
                    break
            bar.close()
            if written < meta.frames:  # streams are exact-length; this only guards rounding
                fout.write(np.zeros((meta.frames - written, channels), np.float32))
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return FileResult(source, target, time.perf_counter() - started, meta.frames / rate)


def iter_inputs(inputs: list[str | Path]) -> Iterator[tuple[Path, Path]]:
    """(file, path relative to its input root) for files and folders (recursive)."""
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            for path in sorted(p for p in item.rglob("*") if p.is_file() and audio_io.is_audio_file(p)):
                yield path, path.relative_to(item)
        else:
            yield item, Path(item.name)
