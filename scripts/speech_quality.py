"""How clean is the "clean" speech? DNSMOS P.835 of one split's speech files, per source folder.

    python scripts/speech_quality.py --speech ../shared/data/speech --split train --floor-bak 3.8

Splits speakers exactly as `synth` and `train` do (``--seed`` = ``data.split_seed``), scores every
file of the split (cached, see src/specdenoise/data/quality.py), and prints a Markdown table per
folder below each ``--speech`` root plus what a BAK floor (``data.speech_min_bak``) would keep.
Use it to choose the floor on the training split, never on the test split.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from specdenoise.data.quality import filter_speech, score_speech
from specdenoise.data.rooms import default_cache_dir
from specdenoise.data.sources import SPLITS, assign_splits, scan


def _folder(path: Path, roots: list[Path]) -> str:
    for root in roots:
        if path.is_relative_to(root):
            return path.relative_to(root).parts[0]
    return path.parent.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speech", nargs="+", required=True, help="speech folders (as data.speech)")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--seed", type=int, default=0, help="the split seed (data.split_seed)")
    parser.add_argument("--floor-bak", type=float, nargs="*", default=[3.5, 3.8, 4.0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    roots = [Path(s).resolve() for s in args.speech]
    files = assign_splits(scan(args.speech, "speech"), args.seed)[args.split]
    scores = score_speech(files, default_cache_dir(), args.workers)
    groups = defaultdict(list)
    for f in files:
        groups[_folder(f.path.resolve(), roots)].append(f)

    def row(label, members):
        n = len(members)
        mean = lambda key: sum(getattr(scores[f.path], key) for f in members) / max(n, 1)  # noqa: E731
        minutes = sum(f.duration for f in members) / 60
        return f"| {label} | {n} | {minutes:.1f} | {mean('sig'):.3f} | {mean('bak'):.3f} | {mean('ovrl'):.3f} |"

    print(f"| {args.split} speech (seed {args.seed}) | files | minutes | SIG | BAK | OVRL |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in sorted(groups):
        print(row(name, groups[name]))
    print(row("**all**", files))
    for floor in args.floor_bak:
        kept, _ = filter_speech(files, scores, min_bak=floor)
        print(row(f"kept at BAK >= {floor}", kept))


if __name__ == "__main__":
    main()
