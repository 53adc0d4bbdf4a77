"""Training throughput: examples/s, peak memory and data-wait share per model, fp32 vs bf16.

    .venv/bin/python bench/train_throughput.py --threads 2 --steps 6

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

MODELS = {
    "unet-b8-d4 (shipped size)": {"name": "unet", "depth": 4, "base_channels": 8},
    "unet-b16-d4": {"name": "unet", "depth": 4, "base_channels": 16},
    "cnn (R-CED, 89k)": {"name": "cnn"},
    "cnn-wide": {"name": "cnn", "channels": [16, 24, 32, 48, 64, 48, 32, 24, 16],
                 "freq_kernels": [13, 11, 9, 7, 7, 7, 9, 11, 13]},
}

CHILD = r"""
import json, sys, time, resource, torch
from specdenoise.models import build_model
from specdenoise.stft import stft
from specdenoise.training.losses import LossConfig, compute_loss
spec_args = json.loads(sys.argv[1]); threads, steps, batch, bf16 = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
torch.set_num_threads(threads); torch.manual_seed(0)
name = spec_args.pop("name")
model = build_model(name, **spec_args).to(memory_format=torch.channels_last).train()
opt = torch.optim.AdamW(model.parameters(), 1e-3)
noisy, clean = torch.randn(batch, 32000) * 0.05, torch.randn(batch, 32000) * 0.05
cfg = LossConfig(mag_l1=1.0, si_sdr=0.1)
times = []
for i in range(steps + 1):
    t = time.perf_counter()
    ns, cs = stft(noisy, model.stft_config), stft(clean, model.stft_config)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        est = model(ns)
    from specdenoise.stft import istft
    terms = compute_loss(cfg, est, cs, istft(est, model.stft_config, 32000), clean)
    opt.zero_grad(); terms["total"].backward(); opt.step()
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
    parser.add_argument("--skip-data-wait", action="store_true")
    args = parser.parse_args()
    print(f"batch {args.batch} x 2 s crops, n_fft 512 / hop 128, {args.threads} thread(s), median of {args.steps} steps (bf16: 3)")
    print("| model | params | precision | step (s) | examples/s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for label, spec in MODELS.items():
        # bf16 runs only for the shipped size: without native bf16 on this CPU it is many times slower
        for bf16 in ((False, True) if label.startswith("unet-b8") else (False,)):
            steps = 3 if bf16 else args.steps
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), str(args.threads), str(steps),
                                  str(args.batch), "1" if bf16 else "0"], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {label} | {r['params'] / 1e6:.2f} M | {'bf16 autocast' if bf16 else 'fp32'} | {r['step_s']:.2f} | "
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
