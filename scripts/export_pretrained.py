"""Export a training checkpoint as the shipped model (no optimizer state).

    .venv/bin/python scripts/export_pretrained.py runs/shipped/best.pt src/specdenoise/pretrained/default.pt
    .venv/bin/python scripts/export_pretrained.py old.pt new.pt --set low_cut_hz=62.5   # a weight-free option
    .venv/bin/python scripts/export_pretrained.py runs/ema/last.pt raw.pt --trained-weights  # not the run's average
"""
import argparse
import sys

from specdenoise.config import apply_overrides
from specdenoise.errors import SpecdenoiseError
from specdenoise.models.registry import export_for_release

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a training checkpoint (best.pt / last.pt)")
    parser.add_argument("out", help="where to write the release file (written atomically)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="set a weight-free output option of the model (e.g. low_cut_hz=62.5); repeatable")
    parser.add_argument("--trained-weights", action="store_true",
                        help="from a run with optim.ema_decay: export the trained weights, not their average")
    args = parser.parse_args()
    try:
        options = apply_overrides({}, args.set)
        path = export_for_release(args.checkpoint, args.out, options, trained_weights=args.trained_weights)
    except SpecdenoiseError as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
