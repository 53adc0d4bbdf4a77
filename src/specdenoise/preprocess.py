"""``specdenoise preprocess``: corpus WAVs -> memory-mapped complex spectrograms, once.

Layout::

    PREPROCESSED/stft.json                 StftConfig + sample rate + corpus digest + version
    PREPROCESSED/{split}/noisy.npy         complex64 [clips, n_freqs, frames], np.load(mmap_mode="r")
    PREPROCESSED/{split}/clean.npy
    PREPROCESSED/{split}/clips.txt         clip names, one per line, in row order

The complex STFT is cached (not a magnitude feature) so that every model feature (log1p or
power-law magnitude, phase, complex masks) and the waveform (by ISTFT) derive from it exactly.
A cache made with other STFT settings is refused, never silently mixed; an existing cache is
replaced only with ``--force``, and no other folder ever.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from . import __version__, audio
from .data.sources import SPLITS
from .errors import SpecdenoiseError
from .fileio import atomic_write_json, check_output_folder, make_partial, remove_partial, swap_in
from .stft import StftConfig, stft_np

MERGED = "train+validation"


def read_cache_info(root: str | Path) -> dict:
    path = Path(root) / "stft.json"
    if not path.exists():
        raise SpecdenoiseError(f"{root}: not a PREPROCESSED cache (stft.json missing)")
    return json.loads(path.read_text())


def preprocess(corpus: str | Path, out: str | Path, config: StftConfig,
               merge_train_validation: bool = False, force: bool = False, progress: bool = True) -> dict:
    """Cache the corpus's spectrograms at ``out``; returns the info written to stft.json.

    The cache is built in ``OUT.partial`` and swapped in at the end. ``out`` may be new, an empty
    folder, or a cache (stft.json) to rebuild with ``force``; never the corpus, a folder inside it
    or one holding it, and never another folder (it could be the user's data). Free space is
    checked first, and the arrays are written with plain writes, not a memory map (a full disk
    then raises ENOSPC instead of killing the process with SIGBUS).
    """
    from tqdm import tqdm

    corpus, out = Path(corpus), Path(out)
    corpus_json = corpus / "corpus.json"
    if not corpus_json.exists():
        raise SpecdenoiseError(f"{corpus}: not a corpus made by `specdenoise synth` (corpus.json missing)")
    corpus_info = json.loads(corpus_json.read_text())
    sample_rate = int(corpus_info["config"]["mix"]["sample_rate"])
    check_output_folder(out, "stft.json", "PREPROCESSED cache", [corpus], force=True)
    if (out / "stft.json").exists() and not force:
        _refuse_existing(out, config, corpus_info)
    wanted = list(SPLITS) + ([MERGED] if merge_train_validation else [])
    names_by_split = {split: _clip_names(corpus, split) for split in wanted}
    first = names_by_split[wanted[0]][0]
    wav, _ = audio.read(corpus / first.split("_")[0] / "clean" / f"{first}.wav", sample_rate=sample_rate)
    row_bytes = stft_np(wav, config).astype(np.complex64).nbytes
    _check_free_space(out, 2 * row_bytes * sum(len(n) for n in names_by_split.values()))
    try:
        partial = make_partial(out)
    except OSError as exc:
        raise SpecdenoiseError(f"{out}: cannot write the cache ({exc.strerror or exc})") from None
    try:
        for split in wanted:
            _write_split(corpus, partial / split, names_by_split[split], config, sample_rate,
                         tqdm(names_by_split[split], desc=f"preprocess {split}", unit="clip", disable=not progress))
        info = {"version": __version__, "stft": config.to_dict(), "sample_rate": sample_rate,
                "corpus": str(corpus), "corpus_digest": corpus_info["source_digest"],
                "corpus_seed": corpus_info["seed"], "splits": wanted}
        atomic_write_json(partial / "stft.json", info)
        swap_in(partial, out)
    except OSError as exc:
        remove_partial(partial)
        raise SpecdenoiseError(f"{out}: cannot write the cache ({exc.strerror or exc})") from None
    except BaseException:
        remove_partial(partial)
        raise
    return info


def _refuse_existing(out: Path, config: StftConfig, corpus_info: dict) -> None:
    """An existing cache without --force: say how it differs, or that it is already there."""
    existing = read_cache_info(out)
    if existing["stft"] != config.to_dict():
        raise SpecdenoiseError(
            f"{out}: cache was made with STFT {existing['stft']}, not {config.to_dict()}; "
            "choose another --out or pass --force to rebuild")
    if existing.get("corpus_digest") != corpus_info["source_digest"] or existing.get("corpus_seed") != corpus_info["seed"]:
        raise SpecdenoiseError(f"{out}: cache belongs to another corpus; use --force to rebuild")
    raise SpecdenoiseError(f"{out}: cache exists with these settings (use --force to rebuild it)")


def _clip_names(corpus: Path, split: str) -> list[str]:
    """The clips of ``split`` (MERGED: train then validation), sorted within each part."""
    names: list[str] = []
    for part in (["train", "validation"] if split == MERGED else [split]):
        names += sorted(p.stem for p in (corpus / part / "clean").glob("*.wav"))
    if not names:
        raise SpecdenoiseError(f"{corpus}/{split}: no clips")
    return names


def _write_split(corpus: Path, folder: Path, names: list[str], config: StftConfig, sample_rate: int,
                 shown_names) -> None:
    """noisy.npy, clean.npy and clips.txt of one split; ``shown_names`` is ``names`` with a progress bar."""
    folder.mkdir()
    writers = {kind: _NpyWriter(folder / f"{kind}.npy", len(names)) for kind in ("noisy", "clean")}
    try:
        for name in shown_names:
            part = name.split("_")[0]
            for kind, writer in writers.items():
                wav, _ = audio.read(corpus / part / kind / f"{name}.wav", sample_rate=sample_rate)
                writer.append(name, stft_np(wav, config).astype(np.complex64))
    finally:
        for writer in writers.values():
            writer.close()
    (folder / "clips.txt").write_text("\n".join(names) + "\n")


def _check_free_space(out: Path, needed: int) -> None:
    parent = out.absolute()
    while not parent.exists():
        parent = parent.parent
    free = shutil.disk_usage(parent).free
    if needed * 1.02 + 1_000_000 > free:
        raise SpecdenoiseError(f"{out}: the cache needs {needed / 1e6:.1f} MB but only {free / 1e6:.1f} MB are free there")


class _NpyWriter:
    """Writes a ``[rows, *shape]`` complex64 .npy file row by row with ordinary writes."""

    def __init__(self, path: Path, rows: int):
        self.path, self.rows, self.shape, self.written = path, rows, None, 0
        self.fh = open(path, "wb")

    def append(self, name: str, row: np.ndarray) -> None:
        if self.shape is None:
            self.shape = row.shape
            header = {"descr": np.lib.format.dtype_to_descr(row.dtype), "fortran_order": False,
                      "shape": (self.rows, *row.shape)}
            np.lib.format.write_array_header_1_0(self.fh, header)
        if row.shape != self.shape:
            raise SpecdenoiseError(f"{name}: clip length differs from the others; corpus clips must share one length")
        self.fh.write(np.ascontiguousarray(row).tobytes())
        self.written += 1

    def close(self) -> None:
        self.fh.close()
