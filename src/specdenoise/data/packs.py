"""Training packs: the in-memory pools of dynamic mixing, written once to a few files.

Dynamic mixing reads every source file of a split, resamples it and simulates a few hundred rooms
before the first step (about a minute here). A pack stores the result: per split, one audio file
of all speech, one of all noise (FLAC, lossless, or Ogg/Opus when the pack must be small, e.g. to
carry to a GPU machine), the room responses as float16, and ``pack.json`` with the names, speakers,
categories and sample offsets. ``data.pack`` in a training config then replaces the source folders:
the same :class:`~specdenoise.data.mixing.Mixer` draws from the same pools, and neither the
source tree nor pyroomacoustics is needed where training runs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..errors import ConfigError, SpecdenoiseError
from ..fileio import atomic_write, atomic_write_text
from .mixing import Pools

PACK_VERSION = 1
CODECS = {"flac": ("FLAC", "PCM_16", "flac"), "opus": ("OGG", "OPUS", "ogg")}


def limit_pools(pools: Pools, max_speech_seconds: float, max_noise_seconds: float, sample_rate: int,
                seed: int = 0) -> Pools:
    """A smaller pool: whole speech groups and whole noise files, drawn in a seeded order until the
    caps are reached (at least one of each), so a capped validation pool keeps its variety."""
    rng = np.random.default_rng(seed)
    groups = sorted(pools.speech_groups)
    rng.shuffle(groups)
    keep_speech: list[int] = []
    total = 0
    for group in groups:
        if keep_speech and total >= max_speech_seconds * sample_rate:
            break
        keep_speech += pools.speech_groups[group]
        total += sum(len(pools.speech[i]) for i in pools.speech_groups[group])
    keep_noise: list[int] = []
    total = 0
    for k in rng.permutation(len(pools.noise)):
        if keep_noise and total >= max_noise_seconds * sample_rate:
            break
        keep_noise.append(int(k))
        total += len(pools.noise[k])
    keep_speech.sort()
    keep_noise.sort()
    new_index = {old: new for new, old in enumerate(keep_speech)}
    new_groups: dict[str, list[int]] = {}
    for group, members in pools.speech_groups.items():
        kept = [new_index[i] for i in members if i in new_index]
        if kept:
            new_groups[group] = kept
    return Pools(
        speech=[pools.speech[i] for i in keep_speech], speech_groups=new_groups,
        speech_names=[pools.speech_names[i] for i in keep_speech],
        speech_speakers=[pools.speech_speakers[i] for i in keep_speech],
        noise=[pools.noise[i] for i in keep_noise], noise_names=[pools.noise_names[i] for i in keep_noise],
        noise_categories=[pools.noise_categories[i] for i in keep_noise],
        rirs=list(pools.rirs), rir_names=list(pools.rir_names))


def join_pools(a: Pools, b: Pools) -> Pools:
    """Both pools as one (train + validation for a final fit); ``b``'s indices shift past ``a``'s."""
    shift = len(a.speech)
    groups = {g: list(m) for g, m in a.speech_groups.items()}
    for g, members in b.speech_groups.items():
        groups.setdefault(g, []).extend(i + shift for i in members)
    return Pools(a.speech + b.speech, groups, a.speech_names + b.speech_names, a.speech_speakers + b.speech_speakers,
                 a.noise + b.noise, a.noise_names + b.noise_names, a.noise_categories + b.noise_categories,
                 a.rirs + b.rirs, a.rir_names + b.rir_names)


def trim_tail(rir: np.ndarray, floor_db: float = -70.0) -> np.ndarray:
    """``rir`` without the tail whose remaining energy lies below ``floor_db`` of the total: it
    changes a convolution by less than float16 storage does, and often halves the size."""
    energy = np.cumsum(np.square(rir[::-1], dtype=np.float64))[::-1]  # energy from each sample on
    if energy[0] <= 0:
        return rir[:1]
    keep = int(np.searchsorted(-energy, -energy[0] * 10 ** (floor_db / 10)))
    return rir[: max(1, keep)]


def _spans(parts: list[np.ndarray]) -> list[list[int]]:
    """[start, length] of each part in their concatenation."""
    starts = np.cumsum([0] + [len(p) for p in parts[:-1]]) if parts else []
    return [[int(start), len(p)] for start, p in zip(starts, parts)]


def _write_audio(path: Path, parts: list[np.ndarray], sample_rate: int, codec: str, quality: float) -> list[list[int]]:
    """All ``parts`` joined into one file; returns their [start, length] in samples."""
    fmt, subtype, _ = CODECS[codec]
    joined = np.concatenate(parts).astype(np.float32) if parts else np.zeros(1, np.float32)
    kwargs: dict[str, Any] = {"compression_level": quality} if codec == "opus" else {}
    atomic_write(path, lambda tmp: sf.write(tmp, np.clip(joined, -1.0, 1.0), sample_rate, format=fmt,
                                            subtype=subtype, **kwargs))
    return _spans(parts)


def write_pack(folder: str | Path, splits: dict[str, Pools], sample_rate: int, provenance: dict[str, Any],
               codec: str = "flac", speech_quality: float = 0.8, noise_quality: float = 0.8) -> Path:
    """Write ``splits`` (name -> pools) under ``folder``. ``*_quality`` are Opus compression levels
    (0 = best, 1 = smallest; 0.8 is about 57 kbit/s, PESQ-WB 4.45 against the original speech).
    Opus keeps band energies but not the fine structure of tonal noise at low rates: a model
    trained on noise coded at 0.9 stopped removing a buzzing hum (docs/MODEL_CARD.md), so code
    noise losslessly when the pack's size allows."""
    if codec not in CODECS:
        raise ConfigError(f"pack codec must be one of {sorted(CODECS)}, got {codec!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = CODECS[codec][2]
    index: dict[str, Any] = {"version": PACK_VERSION, "sample_rate": sample_rate, "codec": codec,
                             "provenance": provenance, "splits": {}}
    for name, pools in splits.items():
        group_of = {i: g for g, members in pools.speech_groups.items() for i in members}
        speech_spans = _write_audio(folder / f"{name}.speech.{suffix}", pools.speech, sample_rate, codec, speech_quality)
        noise_spans = _write_audio(folder / f"{name}.noise.{suffix}", pools.noise, sample_rate, codec, noise_quality)
        rirs_kept = [trim_tail(r) for r in pools.rirs]
        rir_spans = _spans(rirs_kept)
        rirs = np.concatenate(rirs_kept).astype(np.float16) if rirs_kept else np.zeros(0, np.float16)
        atomic_write(folder / f"{name}.rirs.npy", lambda tmp, rirs=rirs: _save_npy(tmp, rirs))
        index["splits"][name] = {
            "speech": [{"name": n, "speaker": s, "group": group_of[i], "span": sp} for i, (n, s, sp)
                       in enumerate(zip(pools.speech_names, pools.speech_speakers, speech_spans))],
            "noise": [{"name": n, "category": c, "span": sp}
                      for n, c, sp in zip(pools.noise_names, pools.noise_categories, noise_spans)],
            "rirs": [{"name": n, "span": sp} for n, sp in zip(pools.rir_names, rir_spans)],
        }
    atomic_write_text(folder / "pack.json", json.dumps(index, indent=1))
    return folder


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would append .npy to a bare name
        np.save(fh, array)


def pack_info(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "pack.json"
    if not path.exists():
        raise SpecdenoiseError(f"{folder}: not a training pack (pack.json missing; write one with `specdenoise pack`)")
    info = json.loads(path.read_text())
    if info.get("version") != PACK_VERSION:
        raise SpecdenoiseError(f"{path}: pack version {info.get('version')} is not {PACK_VERSION}; write the pack again")
    return info


def read_pack(folder: str | Path, split: str, sample_rate: int) -> Pools:
    """The pools of ``split`` as they were written (Opus packs: decoded, lossy)."""
    folder = Path(folder)
    info = pack_info(folder)
    if info["sample_rate"] != sample_rate:
        raise ConfigError(f"{folder}: pack is at {info['sample_rate']} Hz but the model is at {sample_rate} Hz")
    if split not in info["splits"]:
        raise SpecdenoiseError(f"{folder}: pack has no {split!r} split (it has {', '.join(info['splits'])})")
    entry, suffix = info["splits"][split], CODECS[info["codec"]][2]

    def audio(kind: str) -> np.ndarray:
        path = folder / f"{split}.{kind}.{suffix}"
        try:
            data, _ = sf.read(path, dtype="float32", always_2d=False)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise SpecdenoiseError(f"{path}: cannot read pack audio ({exc})") from None
        need = max((s + n for s, n in (e["span"] for e in entry[kind])), default=0)
        if len(data) < need:
            raise SpecdenoiseError(f"{path}: pack audio is truncated ({len(data)} of {need} samples)")
        return data

    speech, noise = audio("speech"), audio("noise")
    rirs = np.load(folder / f"{split}.rirs.npy").astype(np.float32)
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(entry["speech"]):
        groups.setdefault(e["group"], []).append(i)

    def cut(data: np.ndarray, span: list[int]) -> np.ndarray:
        return data[span[0]: span[0] + span[1]]

    return Pools(
        speech=[cut(speech, e["span"]) for e in entry["speech"]], speech_groups=groups,
        speech_names=[e["name"] for e in entry["speech"]], speech_speakers=[e["speaker"] for e in entry["speech"]],
        noise=[cut(noise, e["span"]) for e in entry["noise"]], noise_names=[e["name"] for e in entry["noise"]],
        noise_categories=[e["category"] for e in entry["noise"]],
        rirs=[cut(rirs, e["span"]) for e in entry["rirs"]], rir_names=[e["name"] for e in entry["rirs"]])
