"""Spectrogram pictures of an upload and its result, computed while the audio streams past.

A server cannot hold an hour of audio to draw it, so frames are analysed block by block and
pooled (power-averaged) into at most ``2 * MAX_COLUMNS`` columns: memory stays the same for any
length. The pooled arrays are saved with the job and drawn on first request. Rendering uses matplotlib's object API with the Agg canvas (pyplot's global state is not
safe across worker threads) under one lock, with the magma colour map of ``specdenoise.plots``.
"""
from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import numpy as np

from ..fileio import atomic_write, new_temp
from ..plots import spectrogram_db
from ..stft import StftConfig

ANALYSIS_RATE = 16000
N_FFT, HOP = 512, 128
MAX_COLUMNS = 1200
DYNAMIC_RANGE_DB = 80.0
_RENDER_LOCK = threading.Lock()


class SpectrogramAccumulator:
    """Mono mix-down at up to 16 kHz -> power spectrogram pooled to a bounded number of columns."""

    def __init__(self, rate: int, expected_frames: int | None):
        import soxr

        self.rate = min(int(rate), ANALYSIS_RATE)
        self.resampler = None if self.rate == rate else soxr.ResampleStream(rate, self.rate, 1, dtype="float32")
        expected = (expected_frames or 0) * self.rate / rate / HOP
        self.pool = max(1, int(np.ceil(expected / MAX_COLUMNS)))
        self.window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        self.buf = np.zeros(N_FFT // 2, np.float32)  # centred analysis: half a window of zeros first
        self.columns: list[np.ndarray] = []
        self.pending: list[np.ndarray] = []  # frames not yet pooled
        self.samples = 0

    def push(self, block: np.ndarray, last: bool = False) -> None:
        mono = block.mean(axis=0) if block.ndim == 2 else block
        mono = np.asarray(mono, np.float32)
        if self.resampler is not None:
            mono = self.resampler.resample_chunk(mono, last=last)
        self.samples += len(mono)
        self.buf = np.concatenate([self.buf, mono])
        if last:
            self.buf = np.concatenate([self.buf, np.zeros(N_FFT // 2, np.float32)])
        n = (len(self.buf) - N_FFT) // HOP + 1 if len(self.buf) >= N_FFT else 0
        if n > 0:
            idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
            power = np.abs(np.fft.rfft(self.buf[idx] * self.window, axis=1)) ** 2
            self.pending.extend(power.astype(np.float32))
            self.buf = self.buf[n * HOP:]
        while len(self.pending) >= self.pool:
            self.columns.append(np.mean(self.pending[: self.pool], axis=0))
            del self.pending[: self.pool]
        if last and self.pending:
            self.columns.append(np.mean(self.pending, axis=0))
            self.pending = []
        if len(self.columns) > 2 * MAX_COLUMNS:  # longer than announced: pool pairs
            pairs = [(a + b) / 2 for a, b in zip(self.columns[0::2], self.columns[1::2])]
            if len(self.columns) % 2:
                pairs.append(self.columns[-1])
            self.columns, self.pool = pairs, self.pool * 2

    def db(self) -> np.ndarray:
        """(freq bins, columns) in dB."""
        if not self.columns:
            return np.full((N_FFT // 2 + 1, 1), -160.0, np.float32)
        return 10 * np.log10(np.stack(self.columns, axis=1) + 1e-16)


def save_pair(noisy: SpectrogramAccumulator, denoised: SpectrogramAccumulator, path: Path) -> None:
    """Keep both pooled spectrograms (float16 dB, a few hundred kB at most) for drawing later:
    pictures cost more than denoising a short clip, and API clients may never ask for them."""
    data = {"noisy": noisy.db().astype(np.float16), "denoised": denoised.db().astype(np.float16),
            "rate": np.array(noisy.rate), "seconds": np.array(noisy.samples / noisy.rate)}

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **data)

    atomic_write(path, write)


def render_saved(path: Path, which: str, target: Path) -> Path:
    """Draw one of the saved spectrograms; both share one colour scale and one time axis."""
    with np.load(path) as data:
        specs = {k: data[k].astype(np.float32) for k in ("noisy", "denoised")}
        rate, seconds = int(data["rate"]), float(data["seconds"])
    vmax = max(float(s.max()) for s in specs.values())
    title = {"noisy": "Noisy (your upload)", "denoised": "Denoised"}[which]
    png = render_png(specs[which], rate, seconds, title, vmax - DYNAMIC_RANGE_DB, vmax)
    tmp = new_temp(target)  # FileNotFoundError, not a re-created folder, if the job is gone
    try:
        Path(tmp).write_bytes(png)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def render_png(spec_db: np.ndarray, rate: int, seconds: float, title: str, vmin: float, vmax: float) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _RENDER_LOCK:
        fig = Figure(figsize=(9.0, 2.4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.065, 0.2, 0.86, 0.68))
        cax = fig.add_axes((0.935, 0.2, 0.015, 0.68))
        image = ax.imshow(spec_db, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                          extent=(0, max(seconds, 1e-3), 0, rate / 2000), interpolation="nearest")
        ax.set_ylabel("kHz")
        ax.set_xlabel("time (s)")
        ax.set_title(title, loc="left", fontsize=11)
        fig.colorbar(image, cax=cax, label="dB")
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()


def reference_db(wave: np.ndarray) -> np.ndarray:
    """The whole-signal spectrogram of ``specdenoise.plots`` with this module's framing (power in
    dB, centred Hann frames); tests compare the streamed accumulator against it."""
    return spectrogram_db(wave, StftConfig(n_fft=N_FFT, hop_length=HOP))
