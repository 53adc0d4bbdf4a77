"""Where in frequency does a model leave its error? Residual power per band on a shipped example.

    python scripts/residual_bands.py runs/crn24.pt runs/crn25.pt --example example2

Denoises the example's noisy file with each model, removes the scaled clean reference (as SI-SDR
does) and prints the residual's power per band from a Welch spectrum, beside the output's SI-SDR.
A golden check that drops (tests/test_demo.py) says *that* a model got worse on a clip; this says
*where*: e.g. a model that stops removing slow drift shows it below 100 Hz only.
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy.signal import welch

from specdenoise.demo import load_example
from specdenoise.enhance import Denoiser
from specdenoise.metrics import si_sdr

EDGES_HZ = (0, 20, 100, 500, 2000, 8000)


def residual_bands(estimate: np.ndarray, clean: np.ndarray, sample_rate: int,
                   edges: tuple[int, ...] = EDGES_HZ) -> list[float]:
    """Power (dB) per band [edges[i], edges[i+1]) of ``estimate`` minus its projection on ``clean``
    (two signals of one length)."""
    estimate, clean = estimate.astype(np.float64), clean.astype(np.float64)
    residual = estimate - np.dot(estimate, clean) / np.dot(clean, clean) * clean
    freqs, power = welch(residual, sample_rate, nperseg=4096)
    return [float(10 * np.log10(power[(freqs >= lo) & (freqs < hi)].sum() + 1e-20))
            for lo, hi in zip(edges[:-1], edges[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="checkpoints or shipped names (default, realtime, unet)")
    parser.add_argument("--example", default="example2", help="a shipped example (example1, example2)")
    args = parser.parse_args()
    noisy, clean, rate, _ = load_example(args.example)
    bands = [f"{lo}-{hi} Hz" for lo, hi in zip(EDGES_HZ[:-1], EDGES_HZ[1:])]
    print("| model | SI-SDR dB | " + " | ".join(f"residual {b} dB" for b in bands) + " |")
    print("|---|---:|" + "---:|" * len(bands))
    for name in args.models:
        den = Denoiser.load(name)
        estimate = np.asarray(den(noisy, rate), dtype=np.float32)
        n = min(len(estimate), len(clean))
        power = residual_bands(estimate[:n], clean[:n], rate)
        print(f"| {name} | {si_sdr(clean[:n], estimate[:n]):.2f} | " + " | ".join(f"{p:.1f}" for p in power) + " |")


if __name__ == "__main__":
    main()
