"""Find speech, noise and room-response files; read MANIFEST.tsv and the MS-SNSD layout; split.

Splitting keeps every speaker (or, where no speaker is known, every file) and every noise file in
exactly one of train / validation / test, so no voice or noise recording leaks across splits.
"""
from __future__ import annotations

import configparser
import csv
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..audio import AUDIO_SUFFIXES, info
from ..errors import AudioError, SpecdenoiseError

SPLITS = ("train", "validation", "test")
DEFAULT_PROPORTIONS = (8.0, 4.0, 4.0)  # hours, as in the seed corpus


@dataclass(frozen=True)
class SourceFile:
    """One source recording. ``group`` decides the split: the speaker, else the file itself."""

    path: Path
    kind: str  # speech | noise | rir
    category: str
    speaker: str | None = None
    duration: float = 0.0
    license: str = ""
    split: str | None = None  # forced split (MS-SNSD's train/test folders), else assigned

    @property
    def group(self) -> str:
        return f"speaker:{self.speaker}" if self.speaker else f"file:{self.path}"


@dataclass
class SourceSet:
    speech: list[SourceFile] = field(default_factory=list)
    noise: list[SourceFile] = field(default_factory=list)
    rir: list[SourceFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason"

    def digest(self) -> str:
        h = hashlib.sha256()
        for f in sorted(self.speech + self.noise + self.rir, key=lambda s: (s.kind, str(s.path))):
            h.update(f"{f.kind}\t{f.path.name}\t{f.category}\t{f.speaker}\t{f.duration:.3f}\n".encode())
        return h.hexdigest()[:16]


def _find_manifest(folder: Path) -> Path | None:
    for parent in [folder, *folder.parents]:
        candidate = parent / "MANIFEST.tsv"
        if candidate.exists():
            return candidate
    return None


def _read_manifest(path: Path) -> dict[Path, dict[str, str]]:
    rows = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            rows[(path.parent / row["path"]).resolve()] = row
    return rows


def scan(folders: list[str | Path], kind: str, skipped: list[str] | None = None,
         exclude_categories: tuple[str, ...] = ()) -> list[SourceFile]:
    """All audio files under ``folders`` (recursive), described from MANIFEST.tsv when present.

    Without a manifest the category is the parent folder's name and the speaker is unknown.
    Unreadable files are listed in ``skipped`` instead of stopping the scan.
    """
    out: list[SourceFile] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise SpecdenoiseError(f"{folder}: {kind} folder not found")
        manifest_path = _find_manifest(folder.resolve())
        manifest = _read_manifest(manifest_path) if manifest_path else {}
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
            row = manifest.get(path.resolve(), {})
            category = row.get("category") or path.parent.name
            if any(category.lower().startswith(x.lower()) for x in exclude_categories):
                continue
            try:
                meta = info(path)
                if meta.frames == 0:
                    raise AudioError(path, "empty file (zero samples)")
            except AudioError as exc:
                if skipped is None:
                    raise
                skipped.append(str(exc))
                continue
            out.append(SourceFile(
                path=path, kind=kind, category=category, speaker=row.get("speaker") or None,
                duration=meta.frames / meta.samplerate, license=row.get("license", ""),
            ))
    if not out:
        raise SpecdenoiseError(f"no {kind} audio files found under {', '.join(map(str, folders))}")
    return out


@dataclass(frozen=True)
class MsSnsdConfig:
    """The keys of MS-SNSD's noisyspeech_synthesizer.cfg that we honour."""

    sample_rate: int = 16000
    audio_length: float = 10.0
    silence_length: float = 0.2
    total_hours: float | None = None
    snr_lower: float = 0.0
    snr_upper: float = 40.0
    total_snrlevels: int = 5
    noise_types_excluded: tuple[str, ...] = ()


def read_msnsd_config(root: Path) -> MsSnsdConfig:
    path = root / "noisyspeech_synthesizer.cfg"
    if not path.exists():
        return MsSnsdConfig()
    parser = configparser.ConfigParser()
    parser.read(path)
    section = parser[parser.sections()[0]] if parser.sections() else {}

    def get(key, cast, default):
        raw = section.get(key) if section else None
        if raw is None or str(raw).strip().lower() in ("", "none"):
            return default
        return cast(str(raw).strip())

    excluded = get("noise_types_excluded", str, "")
    return MsSnsdConfig(
        sample_rate=get("sampling_rate", int, 16000),
        audio_length=get("audio_length", float, 10.0),
        silence_length=get("silence_length", float, 0.2),
        total_hours=get("total_hours", float, None),
        snr_lower=get("snr_lower", float, 0.0),
        snr_upper=get("snr_upper", float, 40.0),
        total_snrlevels=get("total_snrlevels", int, 5),
        noise_types_excluded=tuple(x.strip() for x in excluded.split(",") if x.strip() and x.strip().lower() != "none"),
    )


def scan_msnsd(root: str | Path, skipped: list[str] | None = None) -> tuple[SourceSet, MsSnsdConfig]:
    """Read the MS-SNSD tree: clean_train/, clean_test/, noise_train/, noise_test/.

    Its test folders become our test split; its train folders are divided into train and
    validation. MS-SNSD names noise files ``Category_N.wav``: the prefix is the category.
    """
    root = Path(root)
    cfg = read_msnsd_config(root)
    for sub in ("clean_train", "clean_test", "noise_train", "noise_test"):
        if not (root / sub).is_dir():
            raise SpecdenoiseError(f"{root}: not an MS-SNSD tree ({sub}/ missing)")
    skipped = skipped if skipped is not None else []
    sources = SourceSet(skipped=skipped)
    for sub, kind, split in (("clean_train", "speech", None), ("clean_test", "speech", "test"),
                             ("noise_train", "noise", None), ("noise_test", "noise", "test")):
        files = scan([root / sub], kind, skipped)
        for f in files:
            category = f.path.stem.split("_")[0] if kind == "noise" else "msnsd_clean"
            if kind == "noise" and any(category.lower() == x.lower() for x in cfg.noise_types_excluded):
                continue
            f = replace(f, category=category, split=split or "trainval")
            getattr(sources, kind).append(f)
    return sources, cfg


def assign_splits(files: list[SourceFile], seed: int,
                  proportions: tuple[float, float, float] = DEFAULT_PROPORTIONS,
                  stratify: bool = False) -> dict[str, list[SourceFile]]:
    """Assign whole groups (speakers, or files) to splits so durations follow ``proportions``.

    Groups are shuffled with ``seed`` and given, largest first, to the split furthest below its
    share. ``stratify`` does this per category, so every noise category reaches every split that
    it can. Files with a forced split keep it ("trainval" means train or validation).
    """
    rng = np.random.default_rng(seed)
    share = np.asarray(proportions, dtype=float) / float(sum(proportions))
    result: dict[str, list[SourceFile]] = {s: [] for s in SPLITS}
    buckets: dict[str, list[SourceFile]] = {}
    for f in files:
        key = f.category if stratify else "all"
        buckets.setdefault(key, []).append(f)
    for key in sorted(buckets):
        groups: dict[str, list[SourceFile]] = {}
        for f in buckets[key]:
            groups.setdefault(f.group, []).append(f)
        # a group lands where its forced split says, when any member has one
        names = sorted(groups)
        rng.shuffle(names)
        names.sort(key=lambda g: -sum(f.duration for f in groups[g]))
        filled = np.zeros(3)
        for name in names:
            members = groups[name]
            forced = next((f.split for f in members if f.split), None)
            allowed = [0, 1, 2] if forced is None else ([0, 1] if forced == "trainval" else [SPLITS.index(forced)])
            weights = share[allowed] / share[allowed].sum()
            deficit = weights * (filled[allowed].sum() + 1e-9) - filled[allowed]
            # first groups of a small bucket: fill train first, then validation, then test
            choice = allowed[int(np.argmax(deficit + 1e-6 * weights))]
            filled[choice] += sum(f.duration for f in members)
            result[SPLITS[choice]].extend(replace(f, split=SPLITS[choice]) for f in members)
    for split in SPLITS:
        result[split].sort(key=lambda f: str(f.path))
    return result
