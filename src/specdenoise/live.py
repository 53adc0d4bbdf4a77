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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SpecdenoiseError

OWNER = "specdenoise.live"  # module property that marks what we load


class DeviceError(SpecdenoiseError):
    pass


# --- virtual microphone (pactl) ----------------------------------------------------------------

def _pactl(*args: str) -> str:
    if shutil.which("pactl") is None:
        raise DeviceError("--virtual-mic needs PulseAudio or PipeWire's pactl, which is not installed")
    proc = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no sound server"])[0]
        raise DeviceError(f"pactl {args[0]} failed: {reason}")
    return proc.stdout


def stale_modules() -> list[str]:
    """Ids of pactl modules a specdenoise session loaded (still there after a crash)."""
    ids = []
    for line in _pactl("list", "short", "modules").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and OWNER in parts[2]:
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
        taken = {line.split("\t")[1] for line in _pactl("list", "short", "sources").splitlines() if "\t" in line}
        if self.name in taken or self.sink in taken:
            raise DeviceError(f"a source named {self.name!r} already exists (not ours): choose another --virtual-mic name")
        props = f"device.description={self.name}-denoised-output {OWNER}=1"
        self.modules.append(_pactl("load-module", "module-null-sink", f"sink_name={self.sink}",
                                   f"rate={self.rate}", f"channels={self.channels}",
                                   f"sink_properties='{props}'").strip())
        self.modules.append(_pactl("load-module", "module-remap-source", f"master={self.sink}.monitor",
                                   f"source_name={self.name}",
                                   f"source_properties='device.description={self.name} {OWNER}=1'").strip())
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
    late: int = 0  # callbacks whose processing took longer than the block lasts
    busy: list = field(default_factory=list)  # processing seconds / block seconds, recent blocks
    peak_in: float = 0.0
    peak_out: float = 0.0

    @property
    def dropped(self) -> int:
        return self.overflows + self.underflows + self.late


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


def _open_stream(sd, input_dev, output_dev, rate: int, channels: int, block: int, latency, callback):
    try:
        sd.check_input_settings(device=input_dev, channels=channels, samplerate=rate, dtype="float32")
        sd.check_output_settings(device=output_dev, channels=channels, samplerate=rate, dtype="float32")
        return sd.Stream(samplerate=rate, blocksize=block, device=(input_dev, output_dev), channels=channels,
                         dtype="float32", latency=latency, callback=callback)
    except (sd.PortAudioError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Invalid sample rate" in text:
            raise DeviceError(f"the audio device does not support {rate} Hz ({text}); try --rate") from None
        if "No such device" in text or "No input device" in text or "No output device" in text or "matching" in text:
            raise DeviceError(f"no such audio device ({text}); see specdenoise live --list-devices") from None
        if "busy" in text.lower() or "Device unavailable" in text:
            raise DeviceError(f"the audio device is busy ({text})") from None
        raise DeviceError(f"cannot open the audio device ({text})") from None


def run_live(denoiser, rate: int, channels: int = 1, input_dev: str | None = None, output_dev: str | None = None,
             record: Path | None = None, seconds: float | None = None, block: int | None = None,
             latency: float | str = 0.2, display=None, stop: threading.Event | None = None) -> LiveStats:
    """Run until ``seconds`` pass, ``stop`` is set, or KeyboardInterrupt; returns the counts. The
    recording (what was played) is finished and renamed into place however the loop ends."""
    import soundfile as sf

    from .fileio import new_temp

    sd = _sounddevice()
    block = block or max(1, int(round(rate * 0.016)))
    stats = LiveStats()
    recq: queue.Queue = queue.Queue()
    block_s = block / rate

    def callback(indata, outdata, frames, when, status):
        started = time.perf_counter()
        if status.input_overflow:
            stats.overflows += 1
        if status.output_underflow:
            stats.underflows += 1
        y = denoiser.push(indata if channels > 1 else indata[:, 0])
        outdata[:] = y.reshape(frames, channels)
        if record is not None:
            recq.put(outdata.copy())
        took = time.perf_counter() - started
        stats.blocks += 1
        stats.busy.append(took * rate / frames)
        if len(stats.busy) > 200:
            del stats.busy[:100]
        if took > frames / rate:
            stats.late += 1
        stats.peak_in = max(stats.peak_in * 0.9, float(np.abs(indata).max(initial=0)))
        stats.peak_out = max(stats.peak_out * 0.9, float(np.abs(outdata).max(initial=0)))

    writer = tmp = None
    if record is not None:
        record = Path(record)
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = new_temp(record)
        writer = sf.SoundFile(tmp, "w", rate, channels, subtype="PCM_16", format="WAV")
    stream = _open_stream(sd, _device(input_dev), _device(output_dev), rate, channels, block, latency, callback)
    ok = False
    try:
        with stream:
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
            writer.close()  # a complete header even after Ctrl-C / SIGTERM
            if stats.blocks or ok:
                os.replace(tmp, record)
            elif os.path.exists(tmp):
                os.unlink(tmp)
    return stats


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
                 f"dropped/late {stats.dropped}   ")
    stream.flush()
