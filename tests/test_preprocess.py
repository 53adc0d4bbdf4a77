"""The PREPROCESSED cache: round trip against a fresh STFT, refusal of other settings, loader."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli
from specdenoise.data.datasets import CachedSpectrogramDataset
from specdenoise.errors import SpecdenoiseError
from specdenoise.stft import StftConfig, stft_np


def test_cache_equals_fresh_stft_of_stored_wavs(tiny_corpus, tiny_cache):
    info = json.loads((tiny_cache / "stft.json").read_text())
    cfg = StftConfig.from_dict(info["stft"])
    for split in ("train", "validation", "test"):
        names = (tiny_cache / split / "clips.txt").read_text().split()
        noisy = np.load(tiny_cache / split / "noisy.npy", mmap_mode="r")
        clean = np.load(tiny_cache / split / "clean.npy", mmap_mode="r")
        assert noisy.dtype == np.complex64 and len(names) == len(noisy)
        for i in (0, len(names) - 1):
            for kind, arr in (("noisy", noisy), ("clean", clean)):
                wav, _ = sf.read(tiny_corpus / split / kind / f"{names[i]}.wav", dtype="float32")
                np.testing.assert_allclose(arr[i], stft_np(wav, cfg), atol=1e-5)


def test_merged_split_holds_train_and_validation(tiny_cache):
    def n(split):
        return len((tiny_cache / split / "clips.txt").read_text().split())
    assert n("train+validation") == n("train") + n("validation")


def test_other_stft_settings_are_refused(tiny_corpus, tiny_cache, tmp_path):
    proc = run_cli("preprocess", tiny_corpus, "--out", tiny_cache, "--n-fft", "1024", "--hop", "256", check=False)
    assert proc.returncode == 1 and "STFT" in proc.stderr and "--force" in proc.stderr
    with pytest.raises(SpecdenoiseError, match="differs"):
        CachedSpectrogramDataset(tiny_cache, "train", 10, expect_stft=StftConfig(n_fft=1024, hop_length=256))
    # a separate cache with other settings is fine
    other = tmp_path / "PRE1024"
    run_cli("preprocess", tiny_corpus, "--out", other, "--n-fft", "1024", "--hop", "256", "--window", "hamming", "--no-progress")
    assert json.loads((other / "stft.json").read_text())["stft"]["window"] == "hamming"
    assert np.load(other / "test" / "noisy.npy", mmap_mode="r").shape[1] == 513


def test_loader_crops_are_random_but_reproducible(tiny_cache):
    ds = CachedSpectrogramDataset(tiny_cache, "train", crop_frames=50, seed=1)
    a = ds[0]
    assert a["noisy"].shape == (257, 50) and a["noisy"].is_complex()
    assert np.array_equal(ds[0]["noisy"].numpy(), a["noisy"].numpy())
    starts = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        crop = ds[0]["clean"].numpy()
        full = ds.clean[0]
        for s in range(full.shape[-1] - 49):
            if np.array_equal(full[:, s:s + 50], crop):
                starts.add(s)
                break
    assert len(starts) > 1
    whole = CachedSpectrogramDataset(tiny_cache, "validation", crop_frames=None)
    assert whole[0]["noisy"].shape[-1] == whole.noisy.shape[-1]


def test_not_a_corpus(tmp_path):
    proc = run_cli("preprocess", tmp_path, "--out", tmp_path / "P", check=False)
    assert proc.returncode == 1 and "corpus.json" in proc.stderr
