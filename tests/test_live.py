"""``specdenoise live`` through a real PulseAudio server with no hardware (issue 11).

The test starts its own ``pulseaudio`` daemon (private runtime folder) with two null sinks:
``sd_mic`` (a noisy file is played into it with ``paplay``; its monitor is the microphone) and
``sd_out`` (the speakers; its monitor is recorded with ``parec``). PortAudio reaches the server
through ALSA's pulse plugin (Debian's libasound2-plugins), steered with PULSE_SOURCE/PULSE_SINK.
What arrives is aligned with the offline output of the same model (the shipped default, a causal
CRN) and must match it, and it must improve SI-SDR by a fixed margin. The virtual microphone is
recorded from the source it creates, and nothing may be left behind after exit or SIGKILL.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from conftest import missing_data, random_checkpoint, wait_until
from specdenoise.enhance import Denoiser, pretrained_path
from specdenoise.models import model_from_checkpoint
from specdenoise.streaming import StreamingDenoiser

RATE = 16000
MATCH_DB = 25  # what arrived vs the offline output of the same model: equal but for float rounding
pytestmark = pytest.mark.slow


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing in CI (.ci/run installs pulseaudio and pulseaudio-utils)")
        pytest.skip(f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)")


@pytest.fixture(scope="module")
def pulse(tmp_path_factory):
    """A private PulseAudio daemon; yields the environment that reaches it."""
    for tool in ("pulseaudio", "pactl", "paplay", "parec"):
        _need(tool)
    try:
        import sounddevice  # noqa: F401
    except OSError:
        pytest.fail("libportaudio2 is missing") if os.environ.get("CI") else pytest.skip("libportaudio2 is missing")
    runtime = tmp_path_factory.mktemp("pulse")
    runtime.chmod(0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime), "PULSE_RUNTIME_PATH": str(runtime / "pulse")}
    env.pop("PULSE_SERVER", None)
    sinks = [f"--load=module-null-sink sink_name={name} rate={RATE} channels=1 format=float32le norewinds=1"
             for name in ("sd_mic", "sd_out")]  # no rewinds when a client connects (as --virtual-mic)
    subprocess.run(["pulseaudio", "-n", "--daemonize=yes", "--exit-idle-time=-1", "--use-pid-file=yes",
                    "--load=module-native-protocol-unix", *sinks], env=env, check=True, timeout=30,
                   capture_output=True)
    assert wait_until(lambda: subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0, 10), \
        "the private PulseAudio server did not answer within 10 s"
    yield env
    subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def model_ckpt():
    """The shipped default model: a causal CRN, so live can run it and it denoises."""
    shipped = pretrained_path("default")
    assert model_from_checkpoint(shipped).causal, f"the shipped default model {shipped} is not causal"
    return shipped


@pytest.fixture(scope="module")
def mixture(shared_data, tmp_path_factory):
    """Real speech + real noise at 0 dB SNR, 16 kHz, 5 s: (noisy file, clean, noisy). The noise is
    a furnace/air-conditioning hum, the kind of background a call has (offline the shipped CRN gains
    +5.3 dB SI-SDR on this mixture). Café babble at 0 dB is a known weak spot of the model
    (+1.9 dB offline, docs/MODEL_CARD.md), too close to the 3-dB margin to test the live path with."""
    speech_files = sorted((shared_data / "speech" / "librispeech_test-clean").rglob("*.flac"))
    noise_files = sorted((shared_data / "noise" / "hvac_air_conditioning").rglob("*.flac")) or sorted(
        (shared_data / "noise").rglob("*.flac"))
    if not speech_files or not noise_files:
        missing_data(f"no LibriSpeech test-clean speech or noise recordings under {shared_data}")
    n = 5 * RATE
    parts, total = [], 0
    for f in speech_files:
        x, rate = sf.read(f, dtype="float32")
        assert rate == RATE
        parts.append(x)
        total += len(x)
        if total >= n:
            break
    clean = np.concatenate(parts)[:n]
    noise, _ = sf.read(noise_files[0], dtype="float32", always_2d=True)
    noise = np.tile(noise[:, 0], n // len(noise) + 1)[:n]
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2))
    scale = 0.5 / np.abs(clean + noise).max()
    clean, noisy = clean * scale, (clean + noise) * scale
    path = tmp_path_factory.mktemp("mix") / "noisy.wav"
    sf.write(path, noisy, RATE, subtype="FLOAT")
    return path, clean.astype(np.float32), noisy.astype(np.float32)


def _sisdr(est: np.ndarray, ref: np.ndarray) -> float:
    a = np.dot(est, ref) / np.dot(ref, ref)
    return float(10 * np.log10(np.sum((a * ref) ** 2) / np.sum((est - a * ref) ** 2)))


def _align(sig: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``sig`` cut to where ``ref`` lies in it (cross-correlation), ``len(ref)`` samples."""
    corr = scipy.signal.fftconvolve(sig, ref[::-1], mode="full")
    lag = int(np.argmax(np.abs(corr))) - (len(ref) - 1)
    assert 0 <= lag <= len(sig) - len(ref), f"the played file is not all in the recording (lag {lag})"
    return sig[lag : lag + len(ref)]


def _live(env, *args, pulse_source="sd_mic.monitor", pulse_sink="sd_out", log: Path):
    full = {**env, "PULSE_SOURCE": pulse_source, "PULSE_SINK": pulse_sink, "WANDB_MODE": "offline",
            "OMP_NUM_THREADS": "1"}
    out = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "specdenoise", "live", *map(str, args)], env=full,
                            stdout=out, stderr=subprocess.STDOUT, text=True)


def _wait_for(predicate, timeout: float, what: str) -> None:
    assert wait_until(predicate, timeout, 0.1), f"timed out waiting for {what}"


def _sources(env) -> str:
    return subprocess.run(["pactl", "list", "short", "sources"], env=env, capture_output=True, text=True).stdout


def _modules(env) -> str:
    return subprocess.run(["pactl", "list", "short", "modules"], env=env, capture_output=True, text=True).stdout


def _play_and_capture(env, proc, log: Path, source: str, noisy_file: Path, tmp_path: Path):
    """Once live is running: record ``source`` (what live output) and the microphone (what live
    heard: the server ramps a new stream's first samples, so it is not quite the file) with
    parec while paplay plays the file into sd_mic."""
    _wait_for(lambda: "latency" in log.read_text(), 300, "specdenoise live to start")  # may export ONNX first
    raws = [tmp_path / "captured.raw", tmp_path / "mic.raw"]
    recs = [subprocess.Popen(["parec", "-d", dev, "--raw", "--format=float32le", f"--rate={RATE}", "--channels=1"],
                             env=env, stdout=open(raw, "wb")) for dev, raw in zip((source, "sd_mic.monitor"), raws)]
    _wait_for(lambda: all(r.stat().st_size > 0 for r in raws), 60, "parec to start")
    time.sleep(1.5)  # silence first: live's model state settles as it does on the offline reference
    subprocess.run(["paplay", "-d", "sd_mic", str(noisy_file)], env=env, check=True, timeout=60)
    time.sleep(2.0)  # the device buffers hold up to about half a second
    for rec in recs:
        rec.terminate()
        rec.wait(timeout=10)
    assert proc.wait(timeout=60) == 0, log.read_text()
    return [np.fromfile(raw, dtype=np.float32) for raw in raws]


def _lag(sig: np.ndarray, ref: np.ndarray) -> int:
    corr = scipy.signal.fftconvolve(sig, ref[::-1], mode="full")
    return int(np.argmax(np.abs(corr))) - (len(ref) - 1)


def _reference(ckpt, mic: np.ndarray, noisy: np.ndarray, played: np.ndarray, latency: int) -> np.ndarray:
    """The model offline on what live heard: silence, then the microphone from the file's start
    (what the server delivered), placed at the same offset as in live's stream: a model on STFT
    frames is not shift-invariant, so the offset matters to the sample. ``played`` is live's own
    recording of its output (the offline output exactly ``latency`` samples late); the offset
    is the one, within 300 samples of the correlation peak, whose first 1.5 s match it."""
    start = _lag(mic, noisy)
    assert start >= RATE // 2 and start + len(noisy) <= len(mic), f"file not found whole in the microphone ({start})"
    heard = mic[start : start + len(noisy)]
    guess = _lag(played, noisy) - latency
    offsets = [o for o in range(max(0, guess - 300), guess + 300) if o + latency + len(heard) <= len(played)]
    assert offsets, "live's recording does not hold the whole file"
    model = model_from_checkpoint(ckpt)
    n, top = int(1.5 * RATE), max(offsets)
    batch = np.zeros((len(offsets), top + n), np.float32)
    for i, o in enumerate(offsets):
        batch[i, o : o + n] = heard[:n]
    with torch.inference_mode():  # in slices: the whole batch at once needed ~14 GB
        out = np.concatenate([model.enhance(torch.from_numpy(batch[i : i + 24])).numpy()
                              for i in range(0, len(batch), 24)])
    scores = [_sisdr(played[o + latency : o + latency + n - 512], out[i, o : o + n - 512]) for i, o in enumerate(offsets)]
    offset = offsets[int(np.argmax(scores))]
    den = Denoiser.from_checkpoint(ckpt)
    return den(np.concatenate([np.zeros(offset, np.float32), heard]), RATE)[offset:]


def _blockwise(captured: np.ndarray, offline: np.ndarray, block: int = RATE // 4, search: int = RATE // 2):
    """``offline`` found in ``captured`` block by block: (what arrived, stitched; each block's score).

    An output underrun makes the server play silence and then what was queued: the audio after it
    is the same, only later. So each block is taken at the lag of the one before, and where it does
    not match there its lag is searched again within ``search`` samples (the gap it follows). A
    block's score is the signal's mean power over the block's error power in dB: a quiet block
    (a pause, the end of the file, where the offline STFT pads) is not held to a ratio of its own."""
    power = float(np.mean(offline.astype(np.float64) ** 2))

    def score(piece, ref):
        return float(10 * np.log10(power / max(float(np.mean((piece - ref).astype(np.float64) ** 2)), 1e-20)))

    lag = _lag(captured, offline)
    pieces, scores = [], []
    for i in range(0, len(offline) - block + 1, block):
        ref = offline[i : i + block]
        piece = captured[max(0, lag + i) : lag + i + block]
        if len(piece) < block or score(piece, ref) < MATCH_DB:
            lo = max(0, lag + i - search)
            window = captured[lo : lag + i + block + search]
            if len(window) >= block:
                lag = lo + _lag(window, ref) - i
                piece = captured[max(0, lag + i) : lag + i + block]
        piece = np.pad(piece, (0, block - len(piece)))
        pieces.append(piece)
        scores.append(score(piece, ref))
    return np.concatenate(pieces), np.array(scores)


def _check_audio(captured, mic, played, ckpt, mixture, log_text: str):
    _, clean, noisy = mixture
    offline = _reference(ckpt, mic, noisy, played, StreamingDenoiser(ckpt, RATE).latency_samples)
    skip = RATE // 2  # leave the server's ramp at the start of the file out of the scores
    got, scores = _blockwise(captured, offline[skip:])
    # A sound server without hardware schedules by the host's clock: on a busy 2-core machine a
    # buffer or two in ~750 came late (a whole `make test`, or CI), and each late output buffer is
    # a gap of silence in what arrived. Real-time speed is measured in bench/streaming_rtf.py; here
    # a steady loss fails, and everything between the gaps must be the offline output exactly.
    late = re.search(r"dropped or late buffers: (\d+) ", log_text)
    assert late is not None and int(late.group(1)) <= 2, log_text
    spoiled = int(np.sum(scores <= MATCH_DB))  # a gap spoils the block it falls in (two where it straddles them)
    assert spoiled <= 2 * int(late.group(1)), \
        f"what arrived differs from the offline output (block scores dB {np.round(scores, 1).tolist()})\n{log_text}"
    ref = offline[skip : skip + len(got)]
    if spoiled == 0:
        assert _sisdr(got, ref) > MATCH_DB, f"what arrived differs from the offline output (SI-SDR {_sisdr(got, ref):.1f} dB)"
    keep = np.repeat(scores > MATCH_DB, len(got) // len(scores))  # the gain is scored on the blocks that arrived intact
    target, mixed = clean[skip : skip + len(got)][keep], noisy[skip : skip + len(got)][keep]
    gain = _sisdr(got[keep], target) - _sisdr(mixed, target)
    assert gain > 3.0, f"live output improves SI-SDR by only {gain:.1f} dB"


def test_live_speakers(pulse, model_ckpt, mixture, tmp_path):
    log = tmp_path / "live.log"
    record = tmp_path / "played.wav"
    proc = _live(pulse, "--model", model_ckpt, "--seconds", 12, "--record", record, "--audio", "pulse",
                 "--input", "sd_mic.monitor", "--output", "sd_out", log=log)
    captured, mic = _play_and_capture(pulse, proc, log, "sd_out.monitor", mixture[0], tmp_path)
    text = log.read_text()
    played, _ = sf.read(record, dtype="float32")
    _check_audio(captured, mic, played, model_ckpt, mixture, text)


def test_live_portaudio(pulse, model_ckpt, mixture, tmp_path):
    """PortAudio (sounddevice) reaches the server through ALSA's pulse plugin. Its input streams
    lose or repeat samples now and then in these containers (measured; the native path above
    does not), so this test asks for less than exactness: the stream runs, and most of what
    arrives at the sink is the offline output of the model, sample for sample."""
    log = tmp_path / "live.log"
    record = tmp_path / "played.wav"
    proc = _live(pulse, "--model", model_ckpt, "--seconds", 12, "--audio", "portaudio", "--record", record, log=log)
    captured, mic = _play_and_capture(pulse, proc, log, "sd_out.monitor", mixture[0], tmp_path)
    played, _ = sf.read(record, dtype="float32")
    offline = _reference(model_ckpt, mic, mixture[2], played, StreamingDenoiser(model_ckpt, RATE).latency_samples)
    got = _align(captured, offline)
    quarter = RATE // 4
    blocks = [_sisdr(got[i : i + quarter], offline[i : i + quarter]) for i in range(RATE, len(offline) - quarter, quarter)]
    assert np.median(blocks) > 25, (blocks, log.read_text())
    assert "dropped or late buffers:" in log.read_text()


def test_virtual_mic_and_cleanup(pulse, model_ckpt, mixture, tmp_path):
    log = tmp_path / "live.log"
    record = tmp_path / "played.wav"
    proc = _live(pulse, "--model", model_ckpt, "--seconds", 12, "--virtual-mic", "sd_denoised", "--record", record,
                 log=log)
    _wait_for(lambda: "sd_denoised\t" in _sources(pulse), 300, "the virtual microphone")
    captured, mic = _play_and_capture(pulse, proc, log, "sd_denoised", mixture[0], tmp_path)
    assert "sd_denoised" not in _sources(pulse) and "specdenoise" not in _modules(pulse)
    played, _ = sf.read(record, dtype="float32")
    _check_audio(captured, mic, played, model_ckpt, mixture, log.read_text())


def test_virtual_mic_stale_after_sigkill(pulse, model_ckpt, tmp_path):
    log = tmp_path / "killed.log"
    proc = _live(pulse, "--model", model_ckpt, "--virtual-mic", "sd_crash", log=log)
    _wait_for(lambda: "latency" in log.read_text(), 300, "specdenoise live to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert "sd_crash\t" in _sources(pulse)  # a crash leaves its modules behind ...
    log2 = tmp_path / "again.log"
    again = _live(pulse, "--model", model_ckpt, "--virtual-mic", "sd_crash", "--seconds", 1, log=log2)
    assert again.wait(timeout=300) == 0, log2.read_text()
    assert "removed 2 module(s)" in log2.read_text()  # ... the next start removes them
    assert "sd_crash" not in _sources(pulse) and "specdenoise" not in _modules(pulse)


def test_sigterm_finishes_the_recording(pulse, model_ckpt, tmp_path):
    log = tmp_path / "term.log"
    record = tmp_path / "rec.wav"
    proc = _live(pulse, "--model", model_ckpt, "--record", record, log=log)
    _wait_for(lambda: "latency" in log.read_text(), 300, "specdenoise live to start")
    # SIGTERM once the recording (a temp file until it is finished) holds half a second of audio
    _wait_for(lambda: any(p.name.startswith(".rec.wav.") and p.stat().st_size > 44 + RATE for p in tmp_path.iterdir()),
              60, "half a second in the recording")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143, log.read_text()
    info = sf.info(record)  # a complete WAV header
    assert info.frames > 0 and info.samplerate == RATE
    data, _ = sf.read(record)
    assert len(data) == info.frames
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or "tmp" in p.name]


def test_no_such_device_is_one_line(pulse, model_ckpt, tmp_path):
    log = tmp_path / "bad.log"
    proc = _live(pulse, "--model", model_ckpt, "--input", "no-such-device-xyz", "--seconds", 1, log=log)
    assert proc.wait(timeout=300) == 1
    errors = [line for line in log.read_text().splitlines() if line.startswith("specdenoise live:")]
    assert len(errors) == 1 and "device" in errors[0], log.read_text()


def test_unet_refused_for_live(pulse, tmp_path):
    ckpt = random_checkpoint(tmp_path / "unet.pt", "unet", base_channels=4, depth=2)
    log = tmp_path / "unet.log"
    proc = _live(pulse, "--model", ckpt, "--seconds", 1, log=log)
    assert proc.wait(timeout=120) == 1
    assert "not causal" in log.read_text()


def test_list_devices(pulse, tmp_path):
    log = tmp_path / "devices.log"
    proc = _live(pulse, "--list-devices", log=log)
    assert proc.wait(timeout=60) == 0, log.read_text()
    assert "pulse" in log.read_text()
