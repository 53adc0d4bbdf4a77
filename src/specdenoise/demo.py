"""The README's main job: denoise a shipped example and write a WAV and a spectrogram figure."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from . import audio
from .enhance import Denoiser
from .errors import ConfigError, SpecdenoiseError
from .metrics import pesq_wb, si_sdr, stoi
from .plots import plot_spectrograms


def examples_dir() -> Path:
    return Path(str(resources.files("specdenoise") / "examples"))


def load_example(name: str):
    folder = examples_dir()
    index_file = folder / "examples.json"
    if not index_file.is_file():
        raise ConfigError(f"the shipped examples are missing from this installation ({index_file} not found)")
    index = json.loads(index_file.read_text())
    if name not in index:
        raise ConfigError(f"unknown example {name!r}; available: {sorted(index)}")
    entry = index[name]
    noisy, sr = audio.read(folder / entry["noisy"])
    clean, _ = audio.read(folder / entry["clean"], sample_rate=sr)
    return noisy, clean, sr, entry


def scores(clean, estimate, sr) -> dict[str, float]:
    if sr != 16000:  # PESQ-WB is defined at 16 kHz; score every example there
        clean, estimate, sr = audio.resample(clean, sr, 16000), audio.resample(estimate, sr, 16000), 16000
    return {"pesq_wb": pesq_wb(clean, estimate, sr), "stoi": stoi(clean, estimate, sr), "si_sdr": si_sdr(clean, estimate)}


def run_demo(out: str | Path, example: str = "example1", model: str = "default", force: bool = False) -> dict:
    """Denoise a shipped example into ``out``; existing results are replaced only with ``force``
    (checked before any work, so a refusal costs nothing)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecdenoiseError(f"{out}: exists and is not a folder")
    for name in ("denoised.wav", "spectrograms.png"):
        if (out / name).exists() and not force:
            raise SpecdenoiseError(f"{out / name}: exists (use --force to replace it)")
    noisy, clean, sr, entry = load_example(example)
    denoiser = Denoiser.load(model)
    denoised = denoiser(noisy, sr)
    wav = audio.write(out / "denoised.wav", denoised, sr, overwrite=force)
    png = plot_spectrograms({"noisy input": noisy, "denoised (specdenoise)": denoised, "clean reference": clean},
                            sr, out / "spectrograms.png", title=entry["description"])
    return {"example": example, "description": entry["description"], "wav": str(wav), "png": str(png),
            "noisy": scores(clean, noisy, sr), "denoised": scores(clean, denoised, sr)}
