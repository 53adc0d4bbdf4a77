"""Real-time streaming cost: per-hop processing time (p50/p99) of ``StreamingDenoiser`` and the
file real-time factor of ``Denoiser`` for a causal model, on both back ends (PyTorch and
onnxruntime), one thread; plus the latency budget at 16 and 48 kHz.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/streaming_rtf.py [--model CKPT] [--seconds 20]

Per hop: a 16 kHz stream is pushed one hop (256 samples = 16 ms) at a time, as a live audio
callback would; each push is timed (it runs one STFT frame, the model's frame step with its
state, and the overlap-add). The target (issue 11) is p99 <= 25 % of the hop's duration. The file
RTF runs ``Denoiser`` on the whole clip (causal path: the state is carried across chunks).
Speed does not depend on the weights: without ``--model``, a randomly initialised ``crn`` of the
default size is used (the shipped default when it is causal).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from inference_rtf import clip  # same real speech clip as the other inference benchmark


def load(path: str | None):
    from specdenoise.enhance import pretrained_path
    from specdenoise.models import build_model, model_from_checkpoint

    if path:
        return model_from_checkpoint(path), path
    shipped = model_from_checkpoint(pretrained_path("default"))
    if getattr(shipped, "causal", False):
        return shipped, "shipped default"
    torch.manual_seed(0)
    return build_model("crn").eval(), "crn, default size, random weights"


def per_hop(model, backend: str, x: np.ndarray) -> np.ndarray:
    from specdenoise.streaming import StreamingDenoiser

    stream = StreamingDenoiser(model, 16000, backend=backend, threads=1)
    hop = model.stft_config.hop_length
    for i in range(0, 40 * hop, hop):  # warm-up
        stream.push(x[i : i + hop])
    stream.reset()
    times = []
    for i in range(0, len(x) - hop + 1, hop):
        t = time.perf_counter()
        stream.push(x[i : i + hop])
        times.append(time.perf_counter() - t)
    return np.array(times)


def file_rtf(model, backend: str, x: np.ndarray, repeats: int = 3) -> float:
    from specdenoise.enhance import Denoiser

    den = Denoiser(model, backend=backend, threads=1)
    den(x[:16000], 16000)
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        den(x, 16000)
        best.append(time.perf_counter() - t)
    return float(np.median(best)) / (len(x) / 16000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint of a causal model (default: see above)")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, what = load(args.model)
    x = clip(args.seconds)
    hop_ms = 1000 * model.stft_config.hop_length / model.sample_rate
    print(f"model: {what}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; one thread")
    print("\n| back end | per hop p50 | per hop p99 | p99 / hop | file RTF |\n|---|---|---|---|---|")
    for backend in ("torch", "onnx"):
        t = per_hop(model, backend, x) * 1000
        p50, p99 = np.percentile(t, 50), np.percentile(t, 99)
        rtf = file_rtf(model, backend, x)
        print(f"| {backend} | {p50:.2f} ms | {p99:.2f} ms | {100 * p99 / hop_ms:.0f} % of {hop_ms:.0f} ms | {rtf:.3f} |")
    from specdenoise.streaming import StreamingDenoiser

    print("\n| stream rate | window | look-ahead | resampling | total |\n|---|---|---|---|---|")
    for rate in (16000, 48000, 44100):
        b = StreamingDenoiser(model, rate).latency_budget()
        print(f"| {rate} Hz | {b['window_ms']:.2f} ms | {b['look_ahead_ms']:.0f} ms | {b['resampling_ms']:.2f} ms | "
              f"{b['total_ms']:.2f} ms |")


if __name__ == "__main__":
    main()
