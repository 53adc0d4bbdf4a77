"""Cost of the weight average (``optim.ema_decay``, training/ema.py) per training step.

    .venv/bin/python bench/ema_update.py [--threads 1] [--updates 2000]

Times ``WeightAverage.update`` on each shipped model (median of 5 blocks of ``--updates`` calls),
to set against the trainer's step time in docs/BENCHMARKS.md ("CRN training throughput").
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from specdenoise.enhance import PRETRAINED, Denoiser
from specdenoise.training.ema import WeightAverage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--updates", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| model | parameters | update (ms) |\n|---|---:|---:|")
    for name in sorted(PRETRAINED):
        model = Denoiser.from_pretrained(name).model
        average = WeightAverage(model, 0.9995)
        blocks = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(args.updates):
                average.update()
            blocks.append((time.perf_counter() - start) / args.updates * 1e3)
        n = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {n:,} | {statistics.median(blocks):.3f} |")


if __name__ == "__main__":
    main()
