"""Speech-quality metrics on numpy waveforms: SI-SDR, PESQ-WB, STOI/ESTOI and DNSMOS P.835.

Intrusive metrics (SI-SDR, PESQ, STOI) compare an estimate with the clean reference; DNSMOS is
non-intrusive (a neural MOS predictor) and scores the estimate alone, which is why it also
rewards systems that sound clean without matching the reference sample by sample.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from .errors import SpecdenoiseError

DNSMOS_RATE = 16000
# Window the DNSMOS P.835 model was trained on (seconds) and its hop; from Microsoft's
# dnsmos_local.py, reproduced by speechmos.
DNSMOS_INPUT_SECONDS = 9.01


def si_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-8) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., 2019), zero-mean signals.

    Every SI-SDR in the package (this one, the training loss in ``training.losses``) and every
    intrusive metric here (``pesq_wb``, ``stoi``) takes the reference first, then the estimate."""
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    n = min(len(ref), len(est))
    ref = ref[:n] - ref[:n].mean()
    est = est[:n] - est[:n].mean()
    alpha = np.dot(est, ref) / (np.dot(ref, ref) + eps)
    target = alpha * ref
    noise = est - target
    return float(10 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000) -> float:
    """Wide-band PESQ (ITU-T P.862.2). Raises ValueError when PESQ cannot score the pair."""
    from pesq import pesq

    if sample_rate != 16000:
        raise ValueError(f"PESQ-WB needs 16 kHz audio, got {sample_rate} Hz")
    n = min(len(reference), len(estimate))
    for label, signal in (("reference", reference), ("estimate", estimate)):
        if not np.any(np.asarray(signal[:n])):  # pesq would divide by a zero peak and fail obscurely
            raise ValueError(f"PESQ failed: the {label} is digital silence")
    try:
        return float(pesq(16000, np.asarray(reference[:n], np.float64), np.asarray(estimate[:n], np.float64), "wb"))
    except Exception as exc:  # pesq raises its own types, e.g. NoUtterancesError
        detail = exc.args[0] if exc.args else type(exc).__name__
        if isinstance(detail, bytes):  # the C extension passes its message as bytes
            detail = detail.decode(errors="replace")
        raise ValueError(f"PESQ failed: {detail}") from None


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000, extended: bool = False) -> float:
    """STOI (or ESTOI with ``extended=True``) via pystoi."""
    from pystoi import stoi as _stoi

    n = min(len(reference), len(estimate))
    return float(_stoi(np.asarray(reference[:n], np.float64), np.asarray(estimate[:n], np.float64), sample_rate, extended=extended))


def estoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000) -> float:
    """Extended STOI (Jensen & Taal, 2016): also sensitive to modulated noise STOI misses."""
    return stoi(reference, estimate, sample_rate, extended=True)


# --------------------------------------------------------------------------- DNSMOS P.835

# Polynomials mapping the network's raw outputs to P.835 MOS (non-personalised model), copied
# from Microsoft's DNS-Challenge dnsmos_local.py (identical in speechmos 0.0.1.1).
_DNSMOS_POLY_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_DNSMOS_POLY_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_DNSMOS_POLY_OVRL = np.poly1d([-0.06766283, 1.11546468, 0.04602535])

_dnsmos_lock = threading.Lock()
_dnsmos_sessions: dict = {}


DNSMOS_MODELS = {"p835": "sig_bak_ovr.onnx", "p808": "model_v8.onnx"}


def dnsmos_model_path(model: str = "p835") -> Path:
    """Path of a DNSMOS ONNX model shipped inside ``speechmos`` (``p835`` or ``p808``).

    Located without importing ``speechmos.dnsmos``, which needs librosa and requests at import
    time; only the model file is used, so no download and no librosa are needed.
    """
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise SpecdenoiseError("DNSMOS needs the 'speechmos' package (it ships the ONNX model): pip install speechmos")
    path = Path(list(spec.submodule_search_locations)[0]) / "dnsmos_models" / DNSMOS_MODELS[model]
    if not path.is_file():
        raise SpecdenoiseError(f"DNSMOS model not found at {path}; reinstall speechmos")
    return path


def onnx_session(path: Path):
    """An onnxruntime session limited to one thread, so parallel workers don't oversubscribe
    the cores (and so timings elsewhere stay honest)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _dnsmos_model(model: str = "p835"):
    """One session per model and process."""
    with _dnsmos_lock:
        if model not in _dnsmos_sessions:
            _dnsmos_sessions[model] = onnx_session(dnsmos_model_path(model))
        return _dnsmos_sessions[model]


# P.808 features, as speechmos computes them with librosa (0.10+ defaults): mel power spectrogram,
# n_fft 321, hop 160, 120 Slaney mel bands, periodic Hann, centred with zero padding; then
# (power_to_db(ref=max, top_db=80) + 40) / 40, frames first. Re-implemented in numpy so librosa
# (and numba) are not needed; tests/test_metrics.py compares it with librosa when installed.
_P808_N_FFT, _P808_HOP, _P808_MELS = 321, 160, 120
_p808_basis = None


def _slaney_mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.maximum(0.0, np.minimum(-ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]))
    weights *= (2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def p808_features(segment: np.ndarray) -> np.ndarray:
    """The P.808 model's input for one window: [frames, 120] float32."""
    global _p808_basis
    if _p808_basis is None:
        _p808_basis = _slaney_mel_basis(DNSMOS_RATE, _P808_N_FFT, _P808_MELS)
    y = np.pad(np.asarray(segment, np.float32), _P808_N_FFT // 2)
    frames = 1 + (len(y) - _P808_N_FFT) // _P808_HOP
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_P808_N_FFT) / _P808_N_FFT)).astype(np.float32)
    framed = np.lib.stride_tricks.sliding_window_view(y, _P808_N_FFT)[:: _P808_HOP][:frames]
    power = np.abs(np.fft.rfft(framed * window, axis=1).astype(np.complex64)) ** 2
    mel = power @ _p808_basis.T  # [frames, 120]
    db = 10.0 * np.log10(np.maximum(1e-10, mel))
    db -= 10.0 * np.log10(max(1e-10, float(mel.max())))
    db = np.maximum(db, db.max() - 80.0)
    return ((db + 40.0) / 40.0).astype(np.float32)


def dnsmos(audio: np.ndarray, sample_rate: int = DNSMOS_RATE, shared: bool = True, p808: bool = False) -> dict[str, float]:
    """DNSMOS P.835 scores ``{"sig", "bak", "ovrl"}`` (1–5) of a 16 kHz mono clip.

    Reproduces the reference framing exactly, so numbers compare with published DNSMOS results:
    clips shorter than 9.01 s are tiled by repeated self-concatenation; windows of 9.01 s hop by
    1 s; a window whose integer bounds come out one sample short is skipped (a float-rounding
    quirk of the reference, kept on purpose); raw outputs go through the fitted polynomials and
    are averaged over windows. Samples are clipped to [-1, 1], as writing the clip to a 16-bit
    file (what the reference scores) would do.

    ``shared=True`` computes what overlapping windows have in common once
    (:mod:`specdenoise.dnsmos`, 3-4x faster on 8-s clips, same numbers to float32 rounding);
    ``shared=False`` runs the whole network on every window, as the reference does.
    ``p808=True`` adds ``"p808"``, the P.808 overall MOS of the same windows (speechmos' ``p808_mos``).
    """
    if sample_rate != DNSMOS_RATE:
        raise ValueError(f"DNSMOS needs {DNSMOS_RATE} Hz audio, got {sample_rate} Hz")
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"DNSMOS needs a non-empty mono clip, got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("DNSMOS input contains NaN or Inf")
    audio = np.clip(audio, -1.0, 1.0)
    fs = sample_rate
    original = len(audio)
    len_samples = int(DNSMOS_INPUT_SECONDS * fs)
    while len(audio) < len_samples:
        audio = np.append(audio, audio)
    num_hops = int(np.floor(len(audio) / fs) - DNSMOS_INPUT_SECONDS) + 1
    hop = fs
    starts = [int(idx * hop) for idx in range(num_hops)
              if len(audio[int(idx * hop): int((idx + DNSMOS_INPUT_SECONDS) * hop)]) >= len_samples]
    if not starts:
        raise ValueError("DNSMOS found no complete window")
    clip = audio.astype(np.float32)
    if shared and importlib.util.find_spec("onnx") is None:
        shared = False  # the shared computation splits the ONNX graph and needs the onnx package
    if shared:
        from . import dnsmos as shared_windows

        period = original if original < len(audio) else None
        raw = shared_windows.raw_scores(clip, starts, dnsmos_model_path(), period=period)
    else:
        session = _dnsmos_model()
        raw = np.stack([session.run(None, {"input_1": clip[start: start + len_samples][np.newaxis, :]})[0][0] for start in starts])
    sig = [_DNSMOS_POLY_SIG(r[0]) for r in raw]
    bak = [_DNSMOS_POLY_BAK(r[1]) for r in raw]
    ovrl = [_DNSMOS_POLY_OVRL(r[2]) for r in raw]
    scores = {"sig": float(np.mean(sig)), "bak": float(np.mean(bak)), "ovrl": float(np.mean(ovrl))}
    if p808:
        session = _dnsmos_model("p808")
        values = [session.run(None, {"input_1": p808_features(clip[start: start + len_samples - 160])[np.newaxis]})[0][0][0]
                  for start in starts]
        scores["p808"] = float(np.mean(values))
    return scores
