"""Live denoising: microphone -> :class:`streaming.StreamingDenoiser` -> speakers (PortAudio via
``sounddevice``), optionally recorded, optionally as a **virtual microphone** for call apps.

The audio callback does the denoising itself (a block is a few STFT hops and costs about a
millisecond or two), so no extra queue delay is added; the recording is handed to the main thread
through a queue and written to a temp file that is renamed at the end (an interrupted session
still leaves a complete WAV). Dropped or late buffers are counted from PortAudio's status flags
(input overflow, output underflow) and from callbacks whose processing took longer than the
block lasts.

Virtual microphone (PulseAudio, or PipeWire's PulseAudio server, through ``pactl``): a null sink
``NAME_sink`` receives the denoised audio and ``NAME`` (a remap of its monitor) is the source a call
app records from. Both carry a property naming specdenoise, so modules left by a crashed session are
found and unloaded at the next start; both are unloaded on exit.
"""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SpecdenoiseError, first_line

OWNER = "specdenoise.live.pid"  # module property that marks what we load, with the loading process's id


class DeviceError(SpecdenoiseError):
    pass


# --- virtual microphone (pactl) ----------------------------------------------------------------

def _pactl(*args: str) -> str:
    if shutil.which("pactl") is None:
        raise DeviceError("--virtual-mic needs PulseAudio or PipeWire's pactl, which is not installed")
    proc = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        reason = first_line(proc.stderr) or "no sound server"
        raise DeviceError(f"pactl {args[0]} failed: {reason}")
    return proc.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_modules() -> list[str]:
    """Ids of pactl modules loaded by a specdenoise session whose process is gone (a crash);
    another session still running keeps its own."""
    import re

    ids = []
    for line in _pactl("list", "short", "modules").splitlines():
        parts = line.split("\t")
        found = re.search(re.escape(OWNER) + r"=(\d+)", parts[2]) if len(parts) >= 3 else None
        if found and (int(found.group(1)) == os.getpid() or not _alive(int(found.group(1)))):
            ids.append(parts[0])
    return ids


def remove_stale() -> int:
    gone = 0
    for mid in reversed(stale_modules()):  # the source remaps the sink's monitor: unload it first
        try:
            _pactl("unload-module", mid)
            gone += 1
        except DeviceError:
            pass
    return gone


class VirtualMic:
    """Create ``NAME_sink`` (null sink, our output) and source ``NAME`` (its monitor, remapped)."""

    def __init__(self, name: str, rate: int, channels: int = 1):
        if not name or any(c in name for c in " \t\n'\"=") or len(name) > 64:
            raise DeviceError(f"virtual microphone name {name!r} must be one word (no spaces, quotes or '=')")
        self.name, self.sink = name, f"{name}_sink"
        self.rate, self.channels = rate, channels
        self.modules: list[str] = []
        self.removed_stale = 0

    def __enter__(self) -> "VirtualMic":
        self.removed_stale = remove_stale()
        taken = {line.split("\t")[1] for kind in ("sources", "sinks")
                 for line in _pactl("list", "short", kind).splitlines() if "\t" in line}
        if self.name in taken or self.sink in taken:
            raise DeviceError(f"a source named {self.name!r} already exists (not ours): choose another --virtual-mic name")
        mark = f"{OWNER}={os.getpid()}"
        props = f"device.description={self.name}-denoised-output {mark}"
        self.modules.append(_pactl("load-module", "module-null-sink", f"sink_name={self.sink}",
                                   f"rate={self.rate}", f"channels={self.channels}", "norewinds=1",
                                   f"sink_properties='{props}'").strip())
        self.modules.append(_pactl("load-module", "module-remap-source", f"master={self.sink}.monitor",
                                   f"source_name={self.name}",
                                   f"source_properties='device.description={self.name} {mark}'").strip())
        return self

    def __exit__(self, *exc) -> None:
        for mid in reversed(self.modules):
            try:
                _pactl("unload-module", mid)
            except DeviceError:
                pass
        self.modules = []


# --- the live loop -----------------------------------------------------------------------------

@dataclass
class LiveStats:
    blocks: int = 0
    overflows: int = 0  # input samples lost (PortAudio input overflow)
    underflows: int = 0  # output ran dry (PortAudio output underflow)
    slow: int = 0  # callbacks whose processing took longer than the block lasts (buffers absorb a few)
    busy: list = field(default_factory=list)  # processing seconds / block seconds, recent blocks
    peak_in: float = 0.0
    peak_out: float = 0.0
    max_write: float = 0.0  # longest wait writing to the output (pacat), seconds
    device_latency: float = 0.0  # seconds of buffering in PortAudio and our FIFO, on top of the algorithm

    @property
    def dropped(self) -> int:
        return self.overflows + self.underflows  # audio lost, or played late (a gap)

    def record_block(self, took: float, samples: int, rate: int, x: np.ndarray, y: np.ndarray) -> None:
        """Account one processed block (both audio paths): CPU share, slow blocks, decaying peaks."""
        self.blocks += 1
        self.busy.append(took * rate / samples)
        if len(self.busy) > 200:
            del self.busy[:100]
        if took > samples / rate:
            self.slow += 1
        self.peak_in = max(self.peak_in * 0.9, float(np.abs(x).max(initial=0)))
        self.peak_out = max(self.peak_out * 0.9, float(np.abs(y).max(initial=0)))


def list_devices() -> str:
    sd = _sounddevice()
    return str(sd.query_devices())


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as exc:  # libportaudio2 missing
        raise DeviceError(f"PortAudio is not available ({exc}); install libportaudio2") from None
    return sd


def _device(spec: str | None):
    if spec is None:
        return None
    return int(spec) if spec.isdigit() else spec


def _open(sd, kind: str, device, rate: int, channels: int, block: int, latency, callback):
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    cls = sd.InputStream if kind == "input" else sd.OutputStream
    try:
        check(device=device, channels=channels, samplerate=rate, dtype="float32")
        return cls(samplerate=rate, blocksize=block, device=device, channels=channels, dtype="float32",
                   latency=latency, callback=callback)
    except (sd.PortAudioError, ValueError) as exc:
        text = first_line(exc)
        lowered = text.lower()
        if "sample rate" in lowered:
            raise DeviceError(f"the {kind} device does not support {rate} Hz ({text}); try another --rate") from None
        if "busy" in lowered or "unavailable" in lowered:
            raise DeviceError(f"the {kind} device is busy ({text})") from None
        if "device -1" in lowered:  # PortAudio has no default device of this kind
            raise DeviceError(f"no {kind} device found (no sound card or sound server); "
                              "see specdenoise live --list-devices") from None
        if "no such" in lowered or "no input" in lowered or "no output" in lowered or "matching" in lowered \
                or "not found" in lowered or "invalid device" in lowered or "channels" in lowered:
            raise DeviceError(f"no usable {kind} device ({text}); see specdenoise live --list-devices") from None
        raise DeviceError(f"cannot open the {kind} device ({text})") from None


class _PlayoutFifo:
    """Denoised blocks from the input callback to the output callback. Playing starts (and
    starts again after running dry) only once ``prefill`` samples are queued: a cushion."""

    def __init__(self, prefill: int):
        import collections

        self.blocks: collections.deque = collections.deque()
        self.lock = threading.Lock()
        self.queued, self.started, self.prefill = 0, False, prefill

    def put(self, y: np.ndarray) -> None:
        with self.lock:
            self.blocks.append(y)
            self.queued += len(y)

    def fill(self, outdata: np.ndarray, frames: int) -> bool:
        """Fill ``outdata`` with what is queued, silence for the rest; True on an underflow."""
        with self.lock:
            if not self.started and self.queued < self.prefill:
                outdata.fill(0)
                return False
            self.started = True
            filled = 0
            while filled < frames and self.blocks:
                head = self.blocks[0]
                n = min(frames - filled, len(head))
                outdata[filled : filled + n] = head[:n]
                filled += n
                if n == len(head):
                    self.blocks.popleft()
                else:
                    self.blocks[0] = head[n:]
            self.queued -= filled
        if filled < frames:
            outdata[filled:] = 0
            self.started = False  # build the cushion up again
            return True
        return False


def run_live(denoiser, rate: int, channels: int = 1, input_dev: str | None = None, output_dev: str | None = None,
             record: Path | None = None, seconds: float | None = None, block: int | None = None,
             latency: float | str = 0.2, display=None, stop: threading.Event | None = None) -> LiveStats:
    """Run until ``seconds`` pass, ``stop`` is set, or KeyboardInterrupt; returns the counts.

    Input and output are separate PortAudio streams joined by a FIFO (one duplex stream stalled
    both sides whenever one did, measured through PulseAudio's ALSA plugin). The input callback
    denoises; the output callback plays what is ready and counts an underflow when nothing is.
    The recording is the denoised stream as produced, finished and renamed into place however
    the loop ends."""
    sd = _sounddevice()
    block = block or max(1, int(round(rate * 0.016)))
    stats = LiveStats()
    recq: queue.Queue = queue.Queue()
    fifo = _PlayoutFifo(prefill=2 * block)

    def on_input(indata, frames, when, status):
        started = time.perf_counter()
        if status.input_overflow:
            stats.overflows += 1
        y = denoiser.push(indata if channels > 1 else indata[:, 0]).reshape(frames, channels)
        fifo.put(y)
        if record is not None:
            recq.put(y)
        stats.record_block(time.perf_counter() - started, frames, rate, indata, y)

    def on_output(outdata, frames, when, status):
        if status.output_underflow:
            stats.underflows += 1
        if fifo.fill(outdata, frames):
            stats.underflows += 1

    writer = _Recording(record, rate, channels) if record is not None else None
    ok = False
    try:
        out_stream = _open(sd, "output", _device(output_dev), rate, channels, block, latency, on_output)
        in_stream = _open(sd, "input", _device(input_dev), rate, channels, block, latency, on_input)
        block_s = block / rate
        # the input may arrive in bursts as large as its buffer: play once that much is queued
        fifo.prefill = int(round(float(in_stream.latency) * rate)) + 2 * block
        stats.device_latency = float(in_stream.latency) + float(out_stream.latency) + fifo.prefill / rate
        with out_stream, in_stream:
            t0 = time.monotonic()
            while not (stop is not None and stop.is_set()):
                if seconds is not None and time.monotonic() - t0 >= seconds:
                    break
                _drain(recq, writer)
                if display is not None:
                    display(stats)
                time.sleep(min(0.1, block_s * 4))
        ok = True
    finally:
        _drain(recq, writer)
        if writer is not None:
            writer.finish(keep=bool(stats.blocks or ok))
    return stats


def run_pulse(denoiser, rate: int, channels: int = 1, source: str | None = None, sink: str | None = None,
              record: Path | None = None, seconds: float | None = None, block: int | None = None,
              latency_ms: int = 30, display=None, stop: threading.Event | None = None) -> LiveStats:
    """The same loop as :func:`run_live` through PulseAudio's own clients (``parec`` -> denoise ->
    ``pacat``), for PulseAudio/PipeWire systems and the virtual microphone: PortAudio reaches
    PulseAudio only through ALSA's plugin, whose input streams lost or repeated samples here
    (measured), while the native protocol delivered every sample. Output underruns are counted
    from ``pacat --verbose``, from half a second after the first block (the two streams start
    at different moments); a block read more than ``8 * latency_ms`` behind the wall clock
    counts as late (the server held it back, or we were slow). One loop of about 60 lines on
    purpose: the order of reading, the start-up baseline, playing and the late-block clock is the
    timing contract, and it reads best in one place."""
    for tool in ("parec", "pacat"):
        if shutil.which(tool) is None:
            raise DeviceError(f"{tool} is missing: install pulseaudio-utils (or use --audio portaudio)")
    block = block or max(1, int(round(rate * 0.016)))
    rec_cmd, play_cmd = _pulse_commands(rate, channels, latency_ms, source, sink)
    stats = LiveStats()
    writer = _Recording(record, rate, channels) if record is not None else None
    errlog = tempfile.TemporaryFile("w+")
    player = _start_player(play_cmd, errlog, sink)
    reader = subprocess.Popen(rec_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    baseline = None  # pacat's underrun count half a second after the first block (start-up over)
    nbytes = block * channels * 4
    ok = False
    try:
        t0 = time.monotonic()
        n_in = 0
        while not (stop is not None and stop.is_set()):
            if seconds is not None and time.monotonic() - t0 >= seconds:
                break
            data = reader.stdout.read(nbytes)
            if n_in == block * int(0.5 * rate / block):  # start-up settled: count underruns from here
                errlog.seek(0)
                baseline = errlog.read().lower().count("underrun")
            if n_in == 0:
                t0 = time.monotonic()  # the clock runs from the first sample (parec takes a while to start)
                player.stdin.write(np.zeros((rate * 2 * latency_ms // 1000, channels), np.float32).tobytes())
            if len(data) < nbytes:
                err = reader.stderr.read().decode(errors="replace").strip().splitlines()
                raise DeviceError(f"cannot record from {source or 'the default source'}: "
                                  f"{err[0] if err else 'parec stopped'}")
            started = time.perf_counter()
            x = np.frombuffer(data, np.float32).reshape(block, channels)
            y = denoiser.push(x if channels > 1 else x[:, 0]).reshape(block, channels)
            took = time.perf_counter() - started  # the denoising itself (writing may wait for pacat)
            _play(player, errlog, y, sink)
            if writer is not None:
                writer.write(y)
            stats.max_write = max(stats.max_write, time.perf_counter() - started - took)
            n_in += block
            stats.record_block(took, block, rate, x, y)
            if stats.blocks > 50 and (time.monotonic() - t0) * rate - n_in > 8 * latency_ms * rate / 1000:
                stats.overflows += 1
                t0 = time.monotonic() - n_in / rate  # count each fall-behind once
            if display is not None and stats.blocks % 8 == 0:
                display(stats)
        ok = True
    finally:
        _stop_pulse(reader, player, errlog, stats, baseline)
        if writer is not None:
            writer.finish(keep=bool(stats.blocks or ok))
    stats.device_latency = 4 * latency_ms / 1000
    return stats


def _pulse_commands(rate: int, channels: int, latency_ms: int, source: str | None, sink: str | None
                    ) -> tuple[list[str], list[str]]:
    """``parec`` and ``pacat`` command lines: raw float32 at our rate and channel count."""
    spec = ["--raw", "--format=float32le", f"--rate={rate}", f"--channels={channels}"]
    rec_cmd = ["parec", *spec, f"--latency-msec={latency_ms}"] + ([f"--device={source}"] if source else [])
    # playback gets three times the cushion: a slow block must not empty it (an underrun is a gap)
    play_cmd = ["pacat", "--playback", "--verbose", *spec, f"--latency-msec={3 * latency_ms}"] + (
        [f"--device={sink}"] if sink else [])
    return rec_cmd, play_cmd


def _play(player: subprocess.Popen, errlog, y: np.ndarray, sink: str | None) -> None:
    """One block to ``pacat``; a player gone is a DeviceError with its last words."""
    try:
        player.stdin.write(y.astype(np.float32).tobytes())
        player.stdin.flush()
    except BrokenPipeError:
        errlog.seek(0)
        err = errlog.read().strip().splitlines()
        raise DeviceError(f"cannot play to {sink or 'the default sink'}: {err[-1] if err else 'pacat stopped'}") from None


def _start_player(play_cmd: list[str], errlog, sink: str | None) -> subprocess.Popen:
    """Start ``pacat`` and wait until it is connected: the player is ready before the first
    block (a player still connecting blocked our writes for a second, measured), so underruns
    before the first block are only the wait for it."""
    player = subprocess.Popen(play_cmd, stdin=subprocess.PIPE, stderr=errlog)
    ready_by = time.monotonic() + 20
    while time.monotonic() < ready_by and player.poll() is None:
        errlog.seek(0)
        if "Connected to device" in errlog.read():
            break
        time.sleep(0.02)
    if player.poll() is not None:
        errlog.seek(0)
        err = [line for line in errlog.read().strip().splitlines() if line.strip()]
        raise DeviceError(f"cannot play to {sink or 'the default sink'}: {err[-1] if err else 'pacat stopped'}")
    return player


def _stop_pulse(reader: subprocess.Popen, player: subprocess.Popen, errlog, stats: LiveStats,
                baseline: int | None) -> None:
    """Count the underruns since ``baseline``, then stop ``parec`` and ``pacat``."""
    time.sleep(0.05)
    errlog.seek(0)  # underruns while running (closing the pipe lets pacat run dry on purpose)
    stats.underflows += max(0, errlog.read().lower().count("underrun") - (baseline or 0)) if baseline is not None else 0
    reader.terminate()
    try:
        player.stdin.close()
    except OSError:
        pass
    for proc in (p for p in (reader, player) if p is not None):
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    errlog.close()


class _Recording:
    """The denoised stream saved as it is produced: PCM_16 WAV in a temp file next to ``path``,
    renamed into place at the end (a complete header even after Ctrl-C / SIGTERM)."""

    def __init__(self, path: str | Path, rate: int, channels: int):
        import soundfile as sf

        from .fileio import new_temp

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = new_temp(self.path)
        self.file = sf.SoundFile(self.tmp, "w", rate, channels, subtype="PCM_16", format="WAV")

    def write(self, data: np.ndarray) -> None:
        self.file.write(data)

    def finish(self, keep: bool) -> None:
        """Close; move into place when ``keep`` (anything recorded), else remove the temp file."""
        self.file.close()
        if keep:
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)


def _drain(recq: queue.Queue, writer) -> None:
    while True:
        try:
            data = recq.get_nowait()
        except queue.Empty:
            return
        if writer is not None:
            writer.write(data)


def meter(stats: LiveStats, stream=sys.stderr) -> None:
    """One status line, rewritten in place: input/output levels, CPU share, dropped buffers."""
    def db(x):
        return f"{20 * np.log10(max(x, 1e-5)):6.1f}"

    cpu = 100 * float(np.mean(stats.busy[-50:])) if stats.busy else 0.0
    stream.write(f"\rin {db(stats.peak_in)} dB  out {db(stats.peak_out)} dB  CPU {cpu:5.1f} %  "
                 f"dropped/late {stats.dropped}  slow {stats.slow}   ")
    stream.flush()
