"""Export a training checkpoint as the shipped model (no optimizer state).

    .venv/bin/python scripts/export_pretrained.py runs/shipped/best.pt src/specdenoise/pretrained/default.pt
"""
import argparse
import sys

from specdenoise.models.registry import CheckpointError, export_for_release

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a training checkpoint (best.pt / last.pt)")
    parser.add_argument("out", help="where to write the release file (written atomically)")
    args = parser.parse_args()
    try:
        path = export_for_release(args.checkpoint, args.out)
    except CheckpointError as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
