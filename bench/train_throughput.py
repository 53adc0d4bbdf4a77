"""Training throughput: examples/s, peak memory and data-wait share per model, fp32 vs bf16.

    .venv/bin/python bench/train_throughput.py --threads 2 --steps 6 [--crop 3] [--only crn] [--compile]

Each configuration runs in a fresh subprocess (so peak RSS is its own). The data-wait share is
measured with the real trainer on dynamic mixing from ../shared/data (fresh mixtures per example).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

MODELS = {
    "crn-48 (shipped since 0.3)": {"name": "crn", "channels": 48, "first_channels": 24, "gru_hidden": 48},
    "crn-48, 3 dual-path blocks (grown)": {"name": "crn", "channels": 48, "first_channels": 24, "gru_hidden": 48,
                                           "dual_path_blocks": 3},
    "crn-48, time GRU 96 (grown)": {"name": "crn", "channels": 48, "first_channels": 24, "gru_hidden": 96},
    "crn-48, 3 blocks + time GRU 64 (grown)": {"name": "crn", "channels": 48, "first_channels": 24, "gru_hidden": 64,
                                               "dual_path_blocks": 3},
    "crn-48, 4-tap deep filter": {"name": "crn", "channels": 48, "first_channels": 24, "gru_hidden": 48,
                                  "filter_taps": 4},
    "crn-48, 4-tap deep filter + 1 frame look-ahead (crn-1.0)": {"name": "crn", "channels": 48, "first_channels": 24,
                                                                 "gru_hidden": 48, "filter_taps": 4, "lookahead": 1},
    "crn-32": {"name": "crn", "channels": 32, "first_channels": 16, "gru_hidden": 32},
    "unet-b8-d4 (previous shipped)": {"name": "unet", "depth": 4, "base_channels": 8},
    "unet-b16-d4": {"name": "unet", "depth": 4, "base_channels": 16},
    "cnn (R-CED, 89k)": {"name": "cnn"},
    "cnn-wide": {"name": "cnn", "channels": [16, 24, 32, 48, 64, 48, 32, 24, 16],
                 "freq_kernels": [13, 11, 9, 7, 7, 7, 9, 11, 13]},
}

CHILD = r"""
import json, sys, time, resource, torch
from specdenoise import config as config_io
from specdenoise.models import build_model
from specdenoise.training.config import TrainConfig
from specdenoise.training.trainer import train_step
spec_args = json.loads(sys.argv[1]); threads, steps, batch, bf16 = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
crop, compiled = int(float(sys.argv[6]) * 16000), sys.argv[7] == "1"
torch.set_num_threads(threads); torch.manual_seed(0)
name = spec_args.pop("name")
base = "configs/crn.yaml" if name == "crn" else "configs/shipped.yaml"  # each family with its own STFT and loss
cfg = config_io.load(TrainConfig, base, [f"run.bf16={str(bf16).lower()}"])
model = build_model(name, stft=cfg.stft.given() if name == "crn" else {"n_fft": 512, "hop_length": 128}, **spec_args)
if name != "crn":
    model = model.to(memory_format=torch.channels_last)
model.train()
opt = torch.optim.AdamW(model.parameters(), 1e-3)
run = torch.compile(model, dynamic=False) if compiled else model  # the first (excluded) step compiles
batch_data = {"noisy": torch.randn(batch, crop) * 0.05, "clean": torch.randn(batch, crop) * 0.05}
times = []
for i in range(steps + 1):
    t = time.perf_counter()
    train_step(run, opt, batch_data, cfg, model.stft_config, torch.device("cpu"))
    times.append(time.perf_counter() - t)
step = sorted(times[1:])[len(times[1:]) // 2]
print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "step_s": step,
                  "examples_per_s": batch / step, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=float, default=3.0, help="crop seconds per example")
    parser.add_argument("--skip-data-wait", action="store_true")
    parser.add_argument("--only", help="run only models whose label contains this text")
    parser.add_argument("--compile", action="store_true",
                        help="fp32 eager against fp32 under torch.compile (inductor) instead of fp32 against bf16")
    args = parser.parse_args()
    print(f"batch {args.batch} x {args.crop:g} s crops, each family's own STFT and loss (crn: 512/256, unet/cnn: 512/128), "
          f"{args.threads} thread(s), median of {args.steps} steps (bf16: 3), the trainer's own train_step")
    print("| model | params | precision | step (s) | examples/s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for label, spec in MODELS.items():
        if args.only and args.only not in label:
            continue
        # bf16 runs only for the shipped sizes (without native bf16 on a CPU it is many times slower)
        variants = ((False, False), (False, True)) if args.compile else \
            ((False, False), (True, False)) if "shipped" in label else ((False, False),)
        for bf16, compiled in variants:
            steps = 3 if bf16 else args.steps
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), str(args.threads), str(steps),
                                  str(args.batch), "1" if bf16 else "0", str(args.crop), "1" if compiled else "0"],
                                 capture_output=True, text=True, check=True, cwd=str(Path(__file__).resolve().parents[1]))
            r = json.loads(out.stdout.strip().splitlines()[-1])
            precision = "fp32 + torch.compile" if compiled else "bf16 autocast" if bf16 else "fp32"
            print(f"| {label} | {r['params'] / 1e6:.2f} M | {precision} | {r['step_s']:.2f} | "
                  f"{r['examples_per_s']:.1f} | {r['peak_rss_mb']:.0f} |", flush=True)
    if not args.skip_data_wait:
        data_wait(args.threads)


def data_wait(threads: int) -> None:
    """Share of step time spent waiting for data, with the real trainer on dynamic mixing."""
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shared = root.parent / "shared" / "data"
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (0, 1):
            out = Path(tmp) / f"w{workers}"
            cmd = [sys.executable, "-m", "specdenoise", "train", "--config", str(root / "configs" / "shipped.yaml"),
                   "--out", str(out), "--max-steps", "30", "--tracker", "none", f"run.threads={threads}",
                   f"data.speech=[{shared / 'speech'}]", f"data.noise=[{shared / 'noise'}]", f"data.rir=[{shared / 'rir'}]",
                   "run.eval_every=1000", "run.log_every=30", f"data.num_workers={workers}", "run.progress=false"]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            share = [r["train/data_wait_share"] for r in rows if "train/data_wait_share" in r][-1]
            print(f"data wait share, dynamic mixing, num_workers={workers}: {100 * share:.1f}% "
                  f"(30 steps in {time.perf_counter() - t:.0f} s incl. loading sources and the final validation)")


if __name__ == "__main__":
    main()
