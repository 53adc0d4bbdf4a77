"""How much of a DNSMOS gap is output level? Scores one system's output at several fixed gains.

    python scripts/dnsmos_level.py runs/corpus/validation --files 30 --system default --gains=-6,-3,0,3
    python scripts/dnsmos_level.py runs/corpus/validation --files 30 --system deepfilternet3 --gains 0

PESQ-WB, STOI and SI-SDR do not depend on the output's level (PESQ aligns levels, the others are
scale-invariant); DNSMOS, trained on listeners' ratings of unnormalised clips, does. Two
denoisers that differ only by a gain can therefore differ on DNSMOS OVRL and on nothing else, and a
DNSMOS gap should be read against the systems' levels. For each gain this prints the mean
SIG/BAK/OVRL over the first ``--files`` clips of a split, and once the system's level relative to
the clean reference over the reference's active frames (its speech; frames within 30 dB of the
loudest), so a peer's level can be compared with ours. Use a validation split: nothing here should
be chosen on the test split.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from specdenoise.enhance import PRETRAINED
from specdenoise.evaluation.peers import build_systems
from specdenoise.metrics import dnsmos

FRAME = 512


def active_level_db(estimate: np.ndarray, reference: np.ndarray, floor_db: float = 30.0) -> float:
    """Power of ``estimate`` over power of ``reference`` (dB) in the reference's active frames."""
    n = min(len(estimate), len(reference)) // FRAME * FRAME
    ref = reference[:n].astype(np.float64).reshape(-1, FRAME)
    est = estimate[:n].astype(np.float64).reshape(-1, FRAME)
    energy = (ref ** 2).sum(1)
    active = energy >= energy.max() * 10 ** (-floor_db / 10)
    return float(10 * np.log10((est[active] ** 2).sum() / max((ref[active] ** 2).sum(), 1e-20) + 1e-20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", type=Path, help="a synth split folder with clean/ and noisy/")
    parser.add_argument("--system", default="default", help="a checkpoint, a shipped name, or a baseline (deepfilternet3, ...)")
    parser.add_argument("--files", type=int, default=30, help="the first N clips by name")
    parser.add_argument("--gains", default="-6,-3,0,3", help="comma-separated gains in dB applied to the output (--gains=-6,0: a leading minus needs the =)")
    args = parser.parse_args()
    gains = [float(g) for g in args.gains.split(",")]
    is_model = args.system in PRETRAINED or Path(args.system).suffix == ".pt"
    [(name, system)] = build_systems([args.system] if is_model else [], [] if is_model else [args.system])
    scores = {g: [] for g in gains}
    levels = []
    for clean_path in sorted((args.split / "clean").iterdir())[: args.files]:
        clean, rate = sf.read(clean_path, dtype="float32")
        noisy, _ = sf.read(args.split / "noisy" / clean_path.name, dtype="float32")
        output = np.asarray(system(noisy, rate), np.float32)[: len(clean)]
        levels.append(active_level_db(output, clean))
        for g in gains:
            d = dnsmos(output * np.float32(10 ** (g / 20)), rate)
            scores[g].append((d["sig"], d["bak"], d["ovrl"]))
    print(f"{name}: {len(levels)} clips of {args.split}; level vs the reference in its speech: "
          f"{np.mean(levels):+.2f} dB (median {np.median(levels):+.2f})")
    print("| gain dB | SIG | BAK | OVRL |\n|---:|---:|---:|---:|")
    for g in gains:
        sig, bak, ovrl = np.mean(scores[g], axis=0)
        print(f"| {g:+.0f} | {sig:.3f} | {bak:.3f} | {ovrl:.3f} |")


if __name__ == "__main__":
    main()
