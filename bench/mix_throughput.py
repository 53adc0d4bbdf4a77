"""Dynamic-mixing throughput: training examples per second that one loader process makes.

    .venv/bin/python bench/mix_throughput.py [--examples 400] [--field infrasound_probability --probabilities 0,0.15,1]
        [--set 'data.mix.synthetic_kinds=[crackle,knock]']

Builds the training dataset of configs/crn.yaml (sources from ../shared/data, simulated rooms from
the cache) and times drawing ``--examples`` crops from it, after the pools are loaded. Each row is
one setting of one ``data.mix`` probability (``--field``: by default the procedural hum/whine/rumble;
``infrasound_probability`` the infrasonic drift), so the cost of that feature on the loader is
measured, not guessed.
"""
from __future__ import annotations

import argparse
import time

import torch

from specdenoise.config import load
from specdenoise.enhance import pretrained_path
from specdenoise.models.registry import model_from_checkpoint
from specdenoise.training.config import TrainConfig
from specdenoise.training.trainer import build_datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--field", default="synthetic_noise_probability", help="the data.mix probability to vary")
    parser.add_argument("--probabilities", default="0,0.2,1", help="values of --field to time")
    parser.add_argument("--set", action="append", default=[], help="a config override kept for every row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = model_from_checkpoint(pretrained_path())
    print(f"{args.examples} crops of configs/crn.yaml's dynamic mixing, one process, after loading the pools",
          *(f"with {o}" for o in args.set))
    print(f"| {args.field} | examples/s | ms per example |")
    print("|---|---:|---:|")
    for p in args.probabilities.split(","):
        cfg = load(TrainConfig, "configs/crn.yaml", [*args.set, f"data.mix.{args.field}={p}"])
        train, _ = build_datasets(cfg, model.stft_config, model.sample_rate)
        start = time.perf_counter()
        for i in range(args.examples):
            train[i]
        seconds = time.perf_counter() - start
        print(f"| {p} | {args.examples / seconds:.0f} | {1000 * seconds / args.examples:.1f} |", flush=True)


if __name__ == "__main__":
    main()
