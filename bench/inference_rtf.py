"""Single-thread inference speed: real-time factor of ``Denoiser`` on an 8-s 16 kHz clip.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/inference_rtf.py

For each model (the shipped size, U-Net depth 4 / base 8; U-Net base 16; the default R-CED CNN)
the whole clip goes through ``Denoiser.__call__`` (STFT, network, ISTFT; one 8-s chunk plus
nothing else, since the default chunk is 10 s) once to warm up, then ``--repeats`` times; the
median wall time divided by 8 s is the real-time factor (lower is faster; 0.1 = ten times faster
than real time). fp32, and bf16 under ``torch.autocast("cpu")`` as a second column, with the
largest output difference from fp32. Speed does not depend on the weights: the shipped-size row
uses the shipped model when it is installed (so its bf16 difference is meaningful), the others
random weights (``--only`` picks rows by substring).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

RATE = 16000
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = {
    "U-Net depth 4, base 8 (shipped size)": ("unet", {"depth": 4, "base_channels": 8}),
    "U-Net depth 4, base 16": ("unet", {"depth": 4, "base_channels": 16}),
    "CNN (R-CED, default config)": ("cnn", {}),
}


def clip(seconds: float) -> np.ndarray:
    import soundfile as sf

    files = sorted((SHARED / "speech" / "librispeech_train-clean-100").rglob("*.flac"))
    n = int(seconds * RATE)
    if not files:  # speed does not depend on content; noise keeps the script usable without data
        return (np.random.default_rng(0).standard_normal(n) * 0.05).astype(np.float32)
    parts, total = [], 0
    for f in files:
        x, _ = sf.read(f, dtype="float32")
        parts.append(x)
        total += len(x)
        if total >= n:
            break
    x = np.concatenate(parts)[:n]
    return x + np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.01


def timed(fn, repeats: int) -> tuple[float, np.ndarray]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--only", default="", help="run only the models whose label contains this")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from specdenoise.enhance import Denoiser, pretrained_path
    from specdenoise.errors import ConfigError
    from specdenoise.models import build_model, model_from_checkpoint

    x = clip(args.seconds)
    flags = cpu_flags()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; avx2={'avx2' in flags}, "
          f"avx512f={'avx512f' in flags}, avx512_bf16={'avx512_bf16' in flags}, amx_bf16={'amx_bf16' in flags}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"clip {args.seconds:g} s at {RATE} Hz; median of {args.repeats} after one warm-up\n")
    print("| model | parameters | fp32 RTF | bf16-autocast RTF | bf16 / fp32 time | max abs diff bf16 vs fp32 |")
    print("|---|---|---|---|---|---|")
    for label, (name, kwargs) in MODELS.items():
        if args.only not in label:
            continue
        model = build_model(name, **kwargs).eval()
        if "shipped size" in label:
            try:
                shipped = model_from_checkpoint(pretrained_path())
                if shipped.config() == model.config():
                    model, label = shipped, label.replace("shipped size", "the shipped model")
            except ConfigError:
                pass  # not installed: random weights of the same size
        params = sum(p.numel() for p in model.parameters())
        den = Denoiser(model)
        fp32_s, y32 = timed(lambda: den(x, RATE), args.repeats)
        row = f"| {label} | {params / 1e3:.0f} k | {fp32_s / args.seconds:.4f} |"
        if args.no_bf16:
            row += " – | – | – |"
        else:
            def bf16():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return den(x, RATE)

            bf16_s, y16 = timed(bf16, args.repeats)
            row += (f" {bf16_s / args.seconds:.4f} | {bf16_s / fp32_s:.2f}x |"
                    f" {np.abs(y16 - y32).max():.1e} |")
        print(row, flush=True)


if __name__ == "__main__":
    main()
