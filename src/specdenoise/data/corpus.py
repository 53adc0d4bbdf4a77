"""``specdenoise synth``: build a noisy-speech corpus, MS-SNSD style, split without leakage.

Output::

    CORPUS/corpus.json                        config, seed, source digest, version, split summary
    CORPUS/{train,validation,test}/clean|noisy|noise/NAME.wav
    CORPUS/{split}/meta.csv                   one row per clip

Clips are 24-bit PCM WAV: exact enough for SNRs to 0.001 dB, and unlike float WAV (whose PEAK
chunk holds a timestamp) byte-reproducible.

The corpus is built in ``CORPUS.partial`` and renamed at the end, so a failure leaves nothing
half-written; an existing folder is replaced only if it is a corpus (see ``fileio``).
Every clip has its own seed (corpus seed, split, index), so the same inputs and
seed give a byte-identical corpus with any number of workers.
"""
from __future__ import annotations

import csv
import math
import multiprocessing as mp
import numbers
import os
import signal
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import __version__, audio
from ..errors import AudioError, ConfigError, SpecdenoiseError
from ..fileio import atomic_write_json, check_output_folder, make_partial, remove_partial, swap_in
from .mixing import MixConfig, Mixer, Pools, SilentSourceError
from .sources import SPLITS, SourceFile, SourceSet, assign_splits, read_msnsd_config, scan, scan_msnsd

META_COLUMNS = ["clip", "speaker", "speech_files", "noise_file", "noise_category", "snr_db",
                "gain_db", "level_dbfs", "rir", "clip_guard"]


@dataclass
class SynthConfig:
    speech_dirs: list[str] = field(default_factory=list)
    noise_dirs: list[str] = field(default_factory=list)
    rir_dirs: list[str] = field(default_factory=list)
    msnsd_root: str | None = None
    hours: float | None = None  # None: as many hours as the speech sources hold
    proportions: tuple[float, float, float] = (8.0, 4.0, 4.0)
    simulate_rir: int = 0
    seed: int = 0
    mix: MixConfig = field(default_factory=MixConfig)


def collect_sources(cfg: SynthConfig) -> tuple[dict[str, dict[str, list[SourceFile]]], SourceSet, MixConfig]:
    """Scan the sources and split them. Returns per-split file lists, the set, and the mix config
    (updated from MS-SNSD's cfg file when reading an MS-SNSD tree)."""
    skipped: list[str] = []
    mix = cfg.mix
    if cfg.msnsd_root:
        sources, ms = scan_msnsd(cfg.msnsd_root, skipped)
        mix = replace(mix, sample_rate=ms.sample_rate, clip_seconds=ms.audio_length,
                      silence_seconds=ms.silence_length, snr_range=(ms.snr_lower, ms.snr_upper),
                      snr_levels=ms.total_snrlevels)
        if cfg.rir_dirs:
            sources.rir = scan(cfg.rir_dirs, "rir", skipped)
    else:
        if not cfg.speech_dirs or not cfg.noise_dirs:
            raise SpecdenoiseError("synth needs --speech and --noise folders (or --msnsd ROOT)")
        sources = SourceSet(
            speech=scan(cfg.speech_dirs, "speech", skipped),
            noise=scan(cfg.noise_dirs, "noise", skipped),
            rir=scan(cfg.rir_dirs, "rir", skipped) if cfg.rir_dirs else [],
            skipped=skipped,
        )
    splits = {
        "speech": assign_splits(sources.speech, cfg.seed, cfg.proportions),
        "noise": assign_splits(sources.noise, cfg.seed + 1, cfg.proportions, stratify=True),
        "rir": assign_splits(sources.rir, cfg.seed + 2, cfg.proportions) if sources.rir else {s: [] for s in SPLITS},
    }
    by_split = {s: {k: splits[k][s] for k in splits} for s in SPLITS}
    return by_split, sources, mix


def simulate_rirs(n: int, sample_rate: int, seed: int) -> list[np.ndarray]:
    """Room responses from pyroomacoustics' image-source method (shoebox rooms, RT60 0.2-0.8 s)."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        dims = rng.uniform([3, 3, 2.4], [10, 8, 4])
        rt60 = rng.uniform(0.2, 0.8)
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:
            continue
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption),
                           max_order=min(max_order, 12))
        margin = 0.5
        room.add_source(rng.uniform(margin, dims - margin))
        room.add_microphone(rng.uniform(margin, dims - margin))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float32)
        out.append(rir[: int(sample_rate * 1.0)])
    return out


def _read_audible(path: Path, sample_rate: int, skipped: list[str], floor: float, silent: str) -> np.ndarray | None:
    """``_read_ok``, and None (noted in ``skipped``) when the file peaks below ``floor``: a silent
    file has no level to mix at."""
    data = _read_ok(path, sample_rate, skipped)
    if data is not None and np.max(np.abs(data)) < floor:
        skipped.append(f"{path}: {silent}")
        return None
    return data


def load_pools(files: dict[str, list[SourceFile]], sample_rate: int, skipped: list[str],
               simulated_rirs: list[np.ndarray] | None = None) -> Pools:
    """Read one split's files into memory at ``sample_rate``; bad or silent files are skipped."""
    speech, names, speakers, groups = [], [], [], {}
    for f in files["speech"]:
        data = _read_audible(f.path, sample_rate, skipped, 1e-5, "silent speech file (cannot set an SNR)")
        if data is None:
            continue
        # draw groups: a speaker's utterances; speakerless files of one folder join each other
        draw_group = f.group if f.speaker else f"folder:{f.path.parent}"
        groups.setdefault(draw_group, []).append(len(speech))
        speech.append(data)
        names.append(_rel(f.path))
        speakers.append(f.speaker or "")
    noise, noise_names, cats = [], [], []
    for f in files["noise"]:
        data = _read_audible(f.path, sample_rate, skipped, 1e-6, "silent noise file")
        if data is None:
            continue
        noise.append(data)
        noise_names.append(_rel(f.path))
        cats.append(f.category)
    rirs, rir_names = [], []
    for f in files["rir"]:
        data = _read_ok(f.path, sample_rate, skipped)
        if data is not None and np.max(np.abs(data)) > 0:
            rirs.append(data)
            rir_names.append(_rel(f.path))
    for i, rir in enumerate(simulated_rirs or []):
        rirs.append(rir)
        rir_names.append(f"simulated:pyroomacoustics:{i}")
    return Pools(speech, groups, names, speakers, noise, noise_names, cats, rirs, rir_names)


def _read_ok(path: Path, sample_rate: int, skipped: list[str]) -> np.ndarray | None:
    try:
        data, _ = audio.read(path, sample_rate=sample_rate, mono=True)
        return data
    except AudioError as exc:
        skipped.append(str(exc))
        return None


def _rel(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[-3:])


# --- workers: module-level state is set once per worker process by the pool initializer ---
_WORKER: dict = {}


def _init_worker(mixers: dict[str, Mixer], root: str, seed: int, pool: bool = False) -> None:
    if pool:  # the parent handles Ctrl-C / SIGTERM and ends the pool: no worker tracebacks
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _WORKER.update(mixers=mixers, root=Path(root), seed=seed)


def _make_clip(job: tuple[str, int]) -> dict:
    split, index = job
    mixer: Mixer = _WORKER["mixers"][split]
    name = f"{split}_{index:06d}"
    for attempt in range(20):
        rng = np.random.default_rng([_WORKER["seed"], SPLITS.index(split), index, attempt])
        try:
            m = mixer.mix(rng)
            break
        except SilentSourceError:
            continue
    else:
        raise SpecdenoiseError(f"clip {name}: 20 silent speech draws in a row; check the speech sources")
    out = _WORKER["root"] / split
    for kind, data in (("clean", m.clean), ("noisy", m.noisy), ("noise", m.noise)):
        audio.write(out / kind / f"{name}.wav", data, mixer.config.sample_rate, subtype="PCM_24")
    return {"clip": name, **m.meta}


def check_config(cfg: SynthConfig, workers: int = 1) -> None:
    """Refuse values that would build nothing, loop forever or crash late (NaN, zero, negative)."""
    def finite(name, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        return float(value)

    if cfg.hours is not None and finite("--hours", cfg.hours) <= 0:
        raise ConfigError(f"--hours must be positive, got {cfg.hours}")
    props = [finite("--proportions", p) for p in cfg.proportions]
    if len(props) != 3 or min(props) < 0 or sum(props) <= 0:
        raise ConfigError(f"--proportions must be three non-negative numbers, not all zero, got {list(cfg.proportions)}")
    if isinstance(cfg.simulate_rir, bool) or not isinstance(cfg.simulate_rir, int) or not 0 <= cfg.simulate_rir <= 10000:
        raise ConfigError(f"--simulate-rir must be a whole number from 0 to 10000, got {cfg.simulate_rir!r}")
    cpus = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 4 * cpus:
        raise ConfigError(f"--workers must lie in 1..{4 * cpus} (4 x the {cpus} CPUs), got {workers!r}")
    mix = cfg.mix
    if isinstance(mix.sample_rate, bool) or not isinstance(mix.sample_rate, int) or not 1000 <= mix.sample_rate <= 384000:
        raise ConfigError(f"--sample-rate must be a whole number of Hz from 1000 to 384000, got {mix.sample_rate!r}")
    if not 0 < finite("--clip-seconds", mix.clip_seconds) <= 3600:
        raise ConfigError(f"--clip-seconds must lie in (0, 3600], got {mix.clip_seconds}")
    for name, pair in (("--snr-range", mix.snr_range), ("--level-range", mix.level_range_dbfs)):
        lo, hi = (finite(name, v) for v in pair)
        if lo > hi:
            raise ConfigError(f"{name} must be LO HI with LO <= HI, got {lo} {hi}")
    for name, value in (("--rir-probability", mix.rir_probability), ("--babble-probability", mix.babble_probability)):
        if not 0 <= finite(name, value) <= 1:
            raise ConfigError(f"{name} must lie in [0, 1], got {value}")


def synthesize(cfg: SynthConfig, out: str | Path, workers: int = 1, force: bool = False,
               progress: bool = True) -> dict:
    """Build the corpus at ``out``. Returns the summary also written to corpus.json.

    ``out`` may be replaced only when it is a corpus (corpus.json) and ``force`` is set, and never
    when it is, contains or lies inside a source folder (checked before any work is done).
    """
    out = Path(out)
    check_config(cfg, workers)
    inputs = [*cfg.speech_dirs, *cfg.noise_dirs, *cfg.rir_dirs, cfg.msnsd_root]
    check_output_folder(out, "corpus.json", "specdenoise corpus", inputs, force)
    by_split, sources, mix = collect_sources(cfg)
    skipped = sources.skipped
    hours = cfg.hours
    if hours is None and cfg.msnsd_root:
        hours = read_msnsd_config(Path(cfg.msnsd_root)).total_hours  # its cfg's total_hours
    if hours is None:
        hours = sum(f.duration for f in sources.speech) / 3600  # all the speech there is
    share = np.asarray(cfg.proportions, float) / sum(cfg.proportions)
    clips = {s: max(1, int(round(hours * 3600 * share[i] / mix.clip_seconds))) for i, s in enumerate(SPLITS)}
    mixers = _split_mixers(cfg, by_split, mix, share, skipped)

    check_output_folder(out, "corpus.json", "specdenoise corpus", inputs, force)  # again: time has passed
    partial = make_partial(out)
    jobs = [(s, i) for s in SPLITS for i in range(clips[s])]
    try:
        rows = _run_jobs(jobs, mixers, partial, cfg.seed, workers, progress)
        for split in SPLITS:
            split_rows = [r for r in rows if r["clip"].startswith(split + "_")]
            with open(partial / split / "meta.csv", "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=META_COLUMNS)
                writer.writeheader()
                writer.writerows(split_rows)
        summary = {
            "version": __version__,
            "seed": cfg.seed,
            "source_digest": sources.digest(),
            "config": _jsonable(asdict(cfg) | {"mix": asdict(mix)}),
            "hours": round(hours, 4),
            "clips": clips,
            "splits": {s: {"speakers": sorted({f.group for f in by_split[s]["speech"]}),
                           "noise_files": [_rel(f.path) for f in by_split[s]["noise"]],
                           "rirs": mixers[s].pools.rir_names} for s in SPLITS},
            "skipped": skipped,
        }
        atomic_write_json(partial / "corpus.json", summary)
    except BaseException:
        remove_partial(partial)
        raise
    swap_in(partial, out)
    for line in skipped:
        warnings.warn(f"skipped {line}", stacklevel=2)
    return summary


def _split_mixers(cfg: SynthConfig, by_split: dict, mix, share: np.ndarray, skipped: list[str]) -> dict:
    """One Mixer per split over that split's own sources (and its share of simulated rooms)."""
    mixers = {}
    for i, split in enumerate(SPLITS):
        n_sim = int(round(cfg.simulate_rir * share[i])) if cfg.simulate_rir else 0
        sims = simulate_rirs(n_sim, mix.sample_rate, cfg.seed * 1000 + i) if n_sim else []
        pools = load_pools(by_split[split], mix.sample_rate, skipped, sims)
        if not pools.speech or not pools.noise:
            raise SpecdenoiseError(
                f"split {split!r} got no usable speech or noise: too few source speakers/files for three splits")
        mixers[split] = Mixer(pools, mix)
    return mixers


def _run_jobs(jobs, mixers, root, seed, workers, progress) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="synth", unit="clip", disable=not progress)
    rows = []
    if workers <= 1:
        _init_worker(mixers, str(root), seed)
        for job in jobs:
            rows.append(_make_clip(job))
            bar.update()
    else:
        ctx = mp.get_context("fork")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(mixers, str(root), seed, True)) as pool:
            for row in pool.imap(_make_clip, jobs, chunksize=4):
                rows.append(row)
                bar.update()
    bar.close()
    return rows


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def read_meta(split_dir: str | Path) -> list[dict]:
    path = Path(split_dir) / "meta.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
