"""``specdenoise preprocess``: corpus WAVs -> memory-mapped complex spectrograms, once.

Layout::

    PREPROCESSED/stft.json                 StftConfig + sample rate + corpus digest + version
    PREPROCESSED/{split}/noisy.npy         complex64 [clips, n_freqs, frames], np.load(mmap_mode="r")
    PREPROCESSED/{split}/clean.npy
    PREPROCESSED/{split}/clips.txt         clip names, one per line, in row order

The complex STFT is cached (not a magnitude feature) so that every model feature (log1p or
power-law magnitude, phase, complex masks) and the waveform (by ISTFT) derive from it exactly.
A cache made with other STFT settings is refused, never silently mixed.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from . import __version__, audio
from .data.sources import SPLITS
from .errors import SpecdenoiseError
from .fileio import atomic_write_json
from .stft import StftConfig, stft_np

MERGED = "train+validation"


def read_cache_info(root: str | Path) -> dict:
    path = Path(root) / "stft.json"
    if not path.exists():
        raise SpecdenoiseError(f"{root}: not a PREPROCESSED cache (stft.json missing)")
    return json.loads(path.read_text())


def preprocess(corpus: str | Path, out: str | Path, config: StftConfig,
               merge_train_validation: bool = False, force: bool = False, progress: bool = True) -> dict:
    from tqdm import tqdm

    corpus, out = Path(corpus), Path(out)
    corpus_json = corpus / "corpus.json"
    if not corpus_json.exists():
        raise SpecdenoiseError(f"{corpus}: not a corpus made by `specdenoise synth` (corpus.json missing)")
    corpus_info = json.loads(corpus_json.read_text())
    sample_rate = int(corpus_info["config"]["mix"]["sample_rate"])
    if (out / "stft.json").exists() and not force:
        existing = read_cache_info(out)
        if existing["stft"] != config.to_dict():
            raise SpecdenoiseError(
                f"{out}: cache was made with STFT {existing['stft']}, not {config.to_dict()}; "
                "choose another --out or pass --force to rebuild")
        if existing.get("corpus_digest") != corpus_info["source_digest"] or existing.get("corpus_seed") != corpus_info["seed"]:
            raise SpecdenoiseError(f"{out}: cache belongs to another corpus; use --force to rebuild")
    wanted = list(SPLITS) + ([MERGED] if merge_train_validation else [])
    # a rebuild must never leave new splits beside an old stft.json, or stale splits behind
    (out / "stft.json").unlink(missing_ok=True)
    for stale in (MERGED,) if not merge_train_validation else ():
        shutil.rmtree(out / stale, ignore_errors=True)
    for split in wanted:
        parts = ["train", "validation"] if split == MERGED else [split]
        names = []
        for part in parts:
            names += sorted(p.stem for p in (corpus / part / "clean").glob("*.wav"))
        if not names:
            raise SpecdenoiseError(f"{corpus}/{split}: no clips")
        tmp = out / f".{split}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        arrays = {}
        try:
            for i, name in enumerate(tqdm(names, desc=f"preprocess {split}", unit="clip", disable=not progress)):
                part = name.split("_")[0]
                for kind in ("noisy", "clean"):
                    wav, _ = audio.read(corpus / part / kind / f"{name}.wav", sample_rate=sample_rate)
                    spec = stft_np(wav, config).astype(np.complex64)
                    if kind not in arrays:
                        arrays[kind] = np.lib.format.open_memmap(
                            tmp / f"{kind}.npy", mode="w+", dtype=np.complex64, shape=(len(names), *spec.shape))
                    if spec.shape != arrays[kind].shape[1:]:
                        raise SpecdenoiseError(f"{name}: clip length differs from the others; corpus clips must share one length")
                    arrays[kind][i] = spec
            for arr in arrays.values():
                arr.flush()
            del arrays
            (tmp / "clips.txt").write_text("\n".join(names) + "\n")
            shutil.rmtree(out / split, ignore_errors=True)
            tmp.rename(out / split)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    info = {"version": __version__, "stft": config.to_dict(), "sample_rate": sample_rate,
            "corpus": str(corpus), "corpus_digest": corpus_info["source_digest"],
            "corpus_seed": corpus_info["seed"], "splits": wanted}
    atomic_write_json(out / "stft.json", info)
    return info
