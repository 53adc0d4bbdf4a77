"""How well does a model remove one strong low tone? SI-SDR on clean speech plus a pure tone.

    python scripts/tone_probe.py runs/corpus/validation/clean default runs/crn31.pt --files 12

Adds to each of the first ``--files`` clean recordings of a folder (use the validation split: the
test split stays for the final score) a tone at each ``--freqs`` (Hz, with a 10 % third harmonic)
at ``--snr`` dB, denoises it with each model and prints the mean SI-SDR per model and frequency.
Why: the test split's mains-hum clips are few, and a lone dominant tone near 50 Hz was removed
worse after the clean-target change than before (docs/RESULTS.md, "Tried on 2026-12-07 (nineteenth
session)"); this measures that weakness on material a recipe may be judged on.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from specdenoise import audio
from specdenoise.enhance import Denoiser
from specdenoise.errors import SpecdenoiseError
from specdenoise.metrics import si_sdr


def add_tone(clean: np.ndarray, sample_rate: int, freq_hz: float, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``clean`` plus a tone at ``freq_hz`` (and 10 % of its third harmonic), scaled so that the
    clean-to-tone power ratio over the whole file is ``snr_db``."""
    t = np.arange(len(clean)) / sample_rate
    tone = np.sin(2 * np.pi * freq_hz * t + rng.uniform(0, 2 * np.pi)) + 0.1 * np.sin(2 * np.pi * 3 * freq_hz * t)
    clean = clean.astype(np.float64)
    tone *= np.sqrt(np.mean(clean**2) / np.mean(tone**2) / 10 ** (snr_db / 10))
    return (clean + tone).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clean_dir", type=Path, help="a folder of clean recordings (a corpus split's clean/)")
    parser.add_argument("models", nargs="+", help="checkpoints or shipped names (default, realtime, unet)")
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--freqs", type=float, nargs="+", default=[45.0, 49.5, 55.0, 60.0])
    parser.add_argument("--snr", type=float, default=8.0)
    args = parser.parse_args()
    paths = sorted(p for p in args.clean_dir.iterdir() if p.suffix in (".wav", ".flac"))[: args.files]
    if not paths:
        raise SystemExit(f"{args.clean_dir}: no .wav or .flac files")
    models = [(m, Denoiser.load(m)) for m in args.models]
    print(f"| tone Hz ({len(paths)} files, {args.snr:g} dB) | " + " | ".join(m for m, _ in models) + " |")
    print("|---:|" + "---:|" * len(models))
    rng = np.random.default_rng(0)
    for freq in args.freqs:
        scores = {m: [] for m, _ in models}
        for path in paths:
            try:
                clean, rate = audio.read(path)
            except SpecdenoiseError as exc:  # names the file and the problem in one line
                raise SystemExit(str(exc)) from None
            noisy = add_tone(clean, rate, freq, args.snr, rng)
            for name, denoiser in models:
                scores[name].append(si_sdr(clean, denoiser(noisy, rate)))
        print(f"| {freq:g} | " + " | ".join(f"{np.mean(v):.2f}" for v in scores.values()) + " |")


if __name__ == "__main__":
    main()
