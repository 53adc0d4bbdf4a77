"""GPU training-step speed of the CRN sizes: fp32 vs cuDNN autotuning vs bf16 autocast.

    python bench/gpu_train_step.py [--batch 256] [--steps 8] [--sizes 64] [--json probe.json]

Times the trainer's own ``train_step`` (the one every run calls) on random 3-s waveforms, after
warm-up steps, with the GPU synchronised around each step; prints a Markdown table and, with
``--json``, writes ``{"<size>": {"<variant>": examples_per_s, ...}}`` so that
scripts/device_train.sh can pick the fastest precision before it spends its minutes. bf16 counts
only if its loss is finite. Data loading is not part of it (docs/BENCHMARKS.md has the loader).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from specdenoise import config as config_io
from specdenoise.models import build_model
from specdenoise.training.config import TrainConfig
from specdenoise.training.trainer import train_step

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"48": {"channels": 48, "first_channels": 24, "gru_hidden": 48},
         "64": {"channels": 64, "first_channels": 32, "gru_hidden": 64}}
VARIANTS = {"fp32": (False, False), "fp32+autotune": (False, True), "bf16+autotune": (True, True)}


def time_variant(size: str, bf16: bool, autotune: bool, batch: int, steps: int, warmup: int,
                 device: torch.device) -> tuple[float, float]:
    """Median seconds per step and the last loss."""
    torch.backends.cudnn.benchmark = autotune
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cfg = config_io.load(TrainConfig, str(ROOT / "configs" / "crn.yaml"), [f"run.bf16={str(bf16).lower()}"])
    torch.manual_seed(0)
    model = build_model("crn", stft=cfg.stft.given(), **SIZES[size]).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    n = int(cfg.data.crop_seconds * model.sample_rate)
    data = {"noisy": torch.randn(batch, n, device=device) * 0.05, "clean": torch.randn(batch, n, device=device) * 0.05}
    times, loss = [], float("nan")
    for i in range(warmup + steps):
        sync()
        t = time.perf_counter()
        terms, _ = train_step(model, opt, data, cfg, model.stft_config, device)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t)
        loss = float(terms["total"].detach())
    return sorted(times)[len(times) // 2], loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sizes", default="64", help="comma-separated: 48, 64")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu to try the script out")
    parser.add_argument("--json", help="write examples/s per size and variant here")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, batch {args.batch} x 3 s, "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    print("| crn size | variant | step (s) | examples/s | loss finite |")
    print("|---|---|---|---|---|")
    result: dict[str, dict[str, float]] = {}
    for size in args.sizes.split(","):
        for name, (bf16, autotune) in VARIANTS.items():
            step, loss = time_variant(size, bf16, autotune, args.batch, args.steps, args.warmup, device)
            ok = math.isfinite(loss)
            result.setdefault(size, {})[name] = args.batch / step if ok else 0.0
            print(f"| {size} | {name} | {step:.3f} | {args.batch / step:.0f} | {ok} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
