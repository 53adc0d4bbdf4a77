"""Long-file denoising: wall time, real-time factor and peak memory of ``specdenoise denoise``.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/denoise_long.py --minutes 60

Writes ``--minutes`` of 16 kHz mono speech+noise (LibriSpeech utterances from ../shared/data
tiled end to end, mixed with tiled noise recordings at 0-15 dB SNR, 16-bit WAV) to a temporary
folder, then runs ``python -m specdenoise denoise IN -o OUT --threads 1`` as a child process and
reports its wall time, real-time factor (processing time / audio time) and peak resident memory
(``ru_maxrss`` of that child alone, from ``os.wait4``). The shipped model is used when present,
else a checkpoint of the same size (U-Net depth 4, base 8, random weights: speed and memory do
not depend on the weights). The input is generated block by block, so this script stays small too.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_long_input(path: Path, minutes: float, seed: int = 0) -> int:
    speech_files = sorted((SHARED / "speech" / "librispeech_train-clean-100").rglob("*.flac"))
    noise_files = sorted((SHARED / "noise").rglob("*.flac"))
    if not speech_files or not noise_files:
        sys.exit(f"need LibriSpeech speech and noise recordings under {SHARED}")
    rng = np.random.default_rng(seed)
    total = int(round(minutes * 60 * RATE))
    written = 0
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16", format="WAV") as out:
        i = 0
        while written < total:
            speech, _ = sf.read(speech_files[i % len(speech_files)], dtype="float32")
            i += 1
            noise, _ = sf.read(noise_files[int(rng.integers(len(noise_files)))], dtype="float32")
            noise = np.tile(noise, len(speech) // len(noise) + 1)[: len(speech)]
            snr = rng.uniform(0, 15)
            gain = np.sqrt(np.mean(speech**2) / (np.mean(noise**2) + 1e-12) / 10 ** (snr / 10))
            mix = speech + gain * noise
            mix *= 10 ** (rng.uniform(-30, -20) / 20) / (np.sqrt(np.mean(mix**2)) + 1e-12)
            mix = np.clip(mix[: total - written], -1, 1)
            out.write(mix)
            written += len(mix)
    return written


def run_child(cmd: list[str]) -> tuple[int, float, int, str]:
    """(exit code, wall seconds, peak RSS in KiB, stderr) of one child process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # os.wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the max over all children)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    return proc.returncode, wall, int(usage.ru_maxrss), err


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--model", default=None, help="checkpoint (default: shipped model, else same-size U-Net)")
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from specdenoise.enhance import PRETRAINED
    from specdenoise.models import build_model, save_checkpoint, serialize

    shipped = Path(__file__).resolve().parents[1] / "src" / "specdenoise" / "pretrained" / PRETRAINED["default"]
    with tempfile.TemporaryDirectory(prefix="specdenoise-bench-") as tmp:
        tmp = Path(tmp)
        if args.model:
            model, model_desc = args.model, f"checkpoint {args.model}"
        elif shipped.exists():
            model, model_desc = "default", "shipped model (pretrained/default.pt, U-Net depth 4, base 8)"
        else:
            model = str(save_checkpoint(tmp / "unet8.pt", serialize(build_model("unet", depth=4, base_channels=8))))
            model_desc = "same-size stand-in: build_model('unet', depth=4, base_channels=8), random weights"
        src, dst = tmp / "long.wav", tmp / "long_denoised.wav"
        t = time.perf_counter()
        frames = write_long_input(src, args.minutes)
        gen_s = time.perf_counter() - t
        audio_s = frames / RATE
        print(f"input: {audio_s / 60:.1f} min of 16 kHz mono speech+noise ({src.stat().st_size / 2**20:.0f} MiB), "
              f"written in {gen_s:.1f} s", flush=True)

        base_rc, base_wall, base_rss, _ = run_child(
            [sys.executable, "-c", "import torch, soxr, soundfile, specdenoise.enhance"])
        cmd = [sys.executable, "-m", "specdenoise", "denoise", str(src), "-o", str(dst), "--model", model,
               "--threads", "1", "--no-progress", "--chunk-seconds", str(args.chunk_seconds)]
        rc, wall, rss, err = run_child(cmd)
        if rc != 0:
            sys.exit(f"denoise failed ({rc}):\n{err}")
        out = sf.info(str(dst))
        assert out.frames == frames and out.samplerate == RATE, (out.frames, frames)
    result = {
        "audio_minutes": round(audio_s / 60, 2),
        "wall_s": round(wall, 1),
        "rtf": round(wall / audio_s, 4),
        "x_realtime": round(audio_s / wall, 1),
        "peak_rss_mib": round(rss / 1024, 1),
        "import_only_rss_mib": round(base_rss / 1024, 1),
        "model": model_desc,
        "chunk_seconds": args.chunk_seconds,
        "threads": 1,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "command": " ".join(["specdenoise"] + cmd[3:]).replace(str(src), "long.wav").replace(str(dst), "long_denoised.wav"),
    }
    print(json.dumps(result, indent=2))
    print(f"\n| audio | wall | RTF | peak RSS (child) | RSS of the imports alone | model |\n|---|---|---|---|---|---|\n"
          f"| {result['audio_minutes']:.0f} min | {wall:.0f} s | {result['rtf']:.4f} ({result['x_realtime']}x real time) "
          f"| {result['peak_rss_mib']:.0f} MiB | {result['import_only_rss_mib']:.0f} MiB | {model_desc} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if rss > 2**20:
        print(f"WARNING: peak RSS {rss / 1024:.0f} MiB is above the 1 GiB target", file=sys.stderr)


if __name__ == "__main__":
    main()
