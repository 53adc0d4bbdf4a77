"""Corpus synthesis and preprocessing throughput on the shared data.

    .venv/bin/python bench/data_throughput.py --hours 0.25 --workers 2

Reports audio-hours written per minute (synth) and clips per second (preprocess), wall clock,
including source scanning and loading.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=0.25)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    with tempfile.TemporaryDirectory() as tmp:
        corpus, pre = Path(tmp) / "corpus", Path(tmp) / "pre"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "specdenoise", "synth", "--speech", str(shared / "speech"), "--noise",
                        str(shared / "noise"), "--rir", str(shared / "rir"), "--out", str(corpus), "--hours", str(args.hours),
                        "--workers", str(args.workers), "--no-progress"], check=True, capture_output=True)
        synth_s = time.perf_counter() - t
        clips = len(list(corpus.rglob("noisy/*.wav")))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "specdenoise", "preprocess", str(corpus), "--out", str(pre), "--no-progress"],
                       check=True, capture_output=True)
        pre_s = time.perf_counter() - t
    print(f"synth: {args.hours} h ({clips} clips of 8 s) in {synth_s:.1f} s with {args.workers} workers "
          f"= {args.hours / (synth_s / 60):.2f} audio-hours per minute (incl. scanning and loading ~2 h of sources)")
    print(f"preprocess: {clips} clips in {pre_s:.1f} s = {clips / pre_s:.1f} clips/s "
          f"({args.hours / (pre_s / 60):.2f} audio-hours per minute)")


if __name__ == "__main__":
    main()
