"""``specdenoise live``: denoise a microphone in real time, to speakers or a virtual microphone."""
from __future__ import annotations

HELP = "denoise the microphone live (PortAudio), optionally as a virtual microphone for call apps"


def add_arguments(parser) -> None:
    parser.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    parser.add_argument("--model", default="default", help="a shipped model (default: 48 ms latency; realtime: strictly causal, 32 ms) or a checkpoint of a causal model")
    parser.add_argument("--input", metavar="DEV", help="input device (number or name; default: the system's)")
    parser.add_argument("--output", metavar="DEV", help="output device (number or name; default: the system's)")
    parser.add_argument("--virtual-mic", metavar="NAME",
                        help="send the denoised audio to a new PulseAudio/PipeWire source NAME (pick it in the call app)")
    parser.add_argument("--record", metavar="FILE.wav", help="also write what is output to this WAV file")
    parser.add_argument("--strength", type=float, default=1.0, help="0..1: how much noise to remove (1 = all)")
    parser.add_argument("--rate", type=int, default=16000, help="device sample rate in Hz (default 16000)")
    parser.add_argument("--channels", type=int, default=1, help="channels (default 1)")
    parser.add_argument("--audio", choices=("portaudio", "pulse"),
                        help="audio I/O: PortAudio (default; any sound card) or PulseAudio's own clients parec/pacat "
                             "(default with --virtual-mic; --input/--output are then PulseAudio source/sink names)")
    parser.add_argument("--latency", default="0.2",
                        help="PortAudio device buffering in seconds, or low/high (default 0.2 s, which "
                             "PulseAudio through ALSA needs to deliver input at full speed); with --audio pulse: "
                             "the server-side latency, default 30 ms")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="onnx",
                        help="inference back end (default onnx: several times faster per frame; the first start "
                             "with a model exports it, later starts load it from ~/.cache/specdenoise)")
    parser.add_argument("--quiet", action="store_true", help="no live level/CPU line")
    parser.add_argument("--force", action="store_true", help="replace an existing --record file")


def run(args) -> int:
    import sys

    from ..errors import ConfigError, shown

    if args.list_devices:
        from ..live import list_devices

        print(list_devices())
        return 0
    if args.seconds is not None and not args.seconds > 0:
        raise ConfigError(f"--seconds must be positive, got {args.seconds}")
    latency = args.latency if args.latency in ("low", "high") else _seconds(args.latency)
    record = _record_path(args)
    import contextlib

    from ..enhance import model_path
    from ..live import VirtualMic, meter, run_live, run_pulse
    from ..streaming import StreamingDenoiser

    model = model_path(args.model)
    denoiser = StreamingDenoiser(model, args.rate, channels=args.channels, strength=args.strength,
                                 backend=args.backend, threads=1)
    mic = VirtualMic(args.virtual_mic, args.rate, args.channels) if args.virtual_mic else contextlib.nullcontext()
    audio = args.audio or ("pulse" if args.virtual_mic else "portaudio")
    if args.virtual_mic and audio != "pulse":
        raise ConfigError("--virtual-mic works through PulseAudio: leave out --audio or use --audio pulse")
    with mic:
        output = args.output
        if args.virtual_mic:
            if mic.removed_stale:
                print(f"removed {mic.removed_stale} module(s) left by an earlier session", file=sys.stderr)
            if output:
                raise ConfigError("--virtual-mic is the output: leave out --output")
            output = mic.sink
            print(f"virtual microphone {args.virtual_mic!r} ready: choose it as the microphone in your call app",
                  file=sys.stderr)
        print(f"latency {denoiser.latency_ms:.1f} ms (window, no look-ahead, resampling) + device buffers; "
              "Ctrl-C to stop", file=sys.stderr)
        display = None if args.quiet or not sys.stderr.isatty() else meter
        stats = None
        try:
            if audio == "pulse":
                ms = 30 if args.latency == "0.2" else int(round(1000 * latency)) if isinstance(latency, float) else 30
                stats = run_pulse(denoiser, args.rate, args.channels, args.input, output, record=record,
                                  seconds=args.seconds, latency_ms=ms, display=display)
            else:
                stats = run_live(denoiser, args.rate, args.channels, args.input, output, record=record,
                                 seconds=args.seconds, latency=latency, display=display)
        finally:
            if display is not None:
                print(file=sys.stderr)
    _print_summary(stats, denoiser.latency_ms)
    if record is not None:
        print(f"recorded {shown(record)}")
    return 0


def _record_path(args):
    """``--record`` as a Path (None without it), refused before any device opens when unusable."""
    from pathlib import Path

    from ..errors import ConfigError, shown

    record = Path(args.record) if args.record else None
    if record is not None:
        if record.suffix.lower() != ".wav":
            raise ConfigError(f"{shown(record)}: --record writes WAV: the name must end in .wav")
        if record.exists() and not args.force:
            raise ConfigError(f"{shown(record)}: output exists (use --force to replace it)")
    return record


def _print_summary(stats, latency_ms: float) -> None:
    cpu = 100 * sum(stats.busy) / len(stats.busy) if stats.busy else 0.0
    print(f"{stats.blocks} blocks, dropped or late buffers: {stats.dropped} "
          f"(input overflows {stats.overflows}, output underflows {stats.underflows}); "
          f"slow callbacks {stats.slow}; CPU {cpu:.1f} % of real time; "
          f"latency {latency_ms:.1f} ms algorithmic + {1000 * stats.device_latency:.0f} ms device buffers"
          + (f"; longest output wait {1000 * stats.max_write:.0f} ms" if stats.max_write else ""))


def _seconds(text: str) -> float:
    from ..errors import ConfigError

    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--latency must be seconds or low/high, got {text!r}") from None
    if not 0 < value <= 2:
        raise ConfigError(f"--latency must lie in (0, 2] seconds, got {value}")
    return value
