"""Torch datasets: random crops from the PREPROCESSED cache, corpus WAVs, or dynamic mixing.

Each item is ``{"noisy": x, "clean": y}`` where x, y are either complex spectrograms
``[n_freqs, frames]`` (cache) or waveforms ``[samples]`` (corpus, dynamic mixing); the trainer
takes the STFT of waveforms itself. Randomness comes from (seed, epoch, index), so an epoch is
reproducible with any number of loader workers.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import audio
from ..errors import SpecdenoiseError
from ..stft import StftConfig
from .mixing import Mixer, SilentSourceError


class _Epoched(Dataset):
    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


class CachedSpectrogramDataset(_Epoched):
    """Fixed-length random crops (``crop_frames``; None = whole clips) from a cache split."""

    def __init__(self, root: str | Path, split: str, crop_frames: int | None, seed: int = 0,
                 expect_stft: StftConfig | None = None):
        root = Path(root)
        info_path = root / "stft.json"
        if not info_path.exists():
            raise SpecdenoiseError(f"{root}: not a PREPROCESSED cache (stft.json missing)")
        self.info = json.loads(info_path.read_text())
        self.stft = StftConfig.from_dict(self.info["stft"])
        if expect_stft is not None and expect_stft != self.stft:
            raise SpecdenoiseError(
                f"{root}: cache STFT {self.stft.to_dict()} differs from the model's {expect_stft.to_dict()}")
        folder = root / split
        if not (folder / "noisy.npy").exists():
            raise SpecdenoiseError(f"{folder}: split not in the cache (run preprocess, maybe with --merge-train-validation)")
        self.noisy = np.load(folder / "noisy.npy", mmap_mode="r")
        self.clean = np.load(folder / "clean.npy", mmap_mode="r")
        self.names = (folder / "clips.txt").read_text().split()
        self.crop_frames = crop_frames
        self.seed = seed

    @property
    def sample_rate(self) -> int:
        return int(self.info["sample_rate"])

    def __len__(self) -> int:
        return len(self.noisy)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        frames = self.noisy.shape[-1]
        if self.crop_frames is None or self.crop_frames >= frames:
            start, stop = 0, frames
        else:
            start = int(self.rng(index).integers(0, frames - self.crop_frames + 1))
            stop = start + self.crop_frames
        return {"noisy": torch.from_numpy(np.array(self.noisy[index, :, start:stop])),
                "clean": torch.from_numpy(np.array(self.clean[index, :, start:stop]))}


class CorpusWaveDataset(_Epoched):
    """Random waveform crops (``crop_samples``; None = whole clips) from a synthesized corpus split."""

    def __init__(self, corpus: str | Path, split: str | list[str], crop_samples: int | None,
                 sample_rate: int, seed: int = 0, limit: int | None = None):
        corpus = Path(corpus)
        splits = [split] if isinstance(split, str) else list(split)
        self.files = []
        for s in splits:
            self.files += sorted((corpus / s / "noisy").glob("*.wav"))
        if limit is not None:
            self.files = self.files[:limit]
        if not self.files:
            raise SpecdenoiseError(f"{corpus}: no clips in split(s) {', '.join(splits)}")
        self.crop_samples = crop_samples
        self.sample_rate = sample_rate
        self.seed = seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        noisy_path = self.files[index]
        clean_path = noisy_path.parent.parent / "clean" / noisy_path.name
        noisy, _ = audio.read(noisy_path, sample_rate=self.sample_rate)
        clean, _ = audio.read(clean_path, sample_rate=self.sample_rate)
        n = min(len(noisy), len(clean))
        if self.crop_samples is not None and n > self.crop_samples:
            start = int(self.rng(index).integers(0, n - self.crop_samples + 1))
            noisy, clean = noisy[start : start + self.crop_samples], clean[start : start + self.crop_samples]
        return {"noisy": torch.from_numpy(noisy[:n].copy()), "clean": torch.from_numpy(clean[:n].copy())}


class DynamicMixDataset(_Epoched):
    """A fresh mixture for every (epoch, index): new speech excerpt, noise, SNR, level and room."""

    def __init__(self, mixer: Mixer, length: int, crop_samples: int, seed: int = 0):
        self.mixer = mixer
        self.length = length
        self.crop_samples = crop_samples
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        for _ in range(20):
            try:
                m = self.mixer.mix(rng, length=self.crop_samples)
                break
            except SilentSourceError:
                continue
        else:
            raise SpecdenoiseError("dynamic mixing drew silent speech 20 times in a row")
        return {"noisy": torch.from_numpy(m.noisy), "clean": torch.from_numpy(m.clean)}
