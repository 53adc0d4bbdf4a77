"""Grow a CRN checkpoint into a larger model with the same output (models/grow.py), to continue training.

    .venv/bin/python scripts/grow_model.py src/specdenoise/pretrained/default.pt runs/grown.pt --set dual_path_blocks=3
    specdenoise train --config configs/crn.yaml --init-from runs/grown.pt model.dual_path_blocks=3 ...
    (``--set filter_taps=4`` turns the mask into a 4-tap causal deep filter the same way;
    ``--set lookahead=1`` moves a deep filter's taps one frame later: a warm start, not the same output;
    ``--set filter_taps=5 --set lookahead=2`` on a 4-tap, 1-frame model adds a tap, then a frame of look-ahead)
"""
import argparse
import sys

from specdenoise.config import apply_overrides
from specdenoise.errors import SpecdenoiseError
from specdenoise.models.grow import GROWABLE, grow_crn, with_lookahead
from specdenoise.models.registry import model_from_checkpoint, save_release, serialize

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a crn checkpoint (training or release form)")
    parser.add_argument("out", help="where to write the grown model (written atomically)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", required=True,
                        help=f"a larger value for one of: {', '.join(GROWABLE)}, or lookahead; repeatable")
    parser.add_argument("--seed", type=int, default=0, help="draws the new parameters' initial values")
    args = parser.parse_args()
    try:
        changes = apply_overrides({}, args.set)
        lookahead = changes.pop("lookahead", None)
        grown = model_from_checkpoint(args.checkpoint)
        if changes:
            grown = grow_crn(grown, seed=args.seed, **changes)
        if lookahead is not None:
            grown = with_lookahead(grown, lookahead)
        path = save_release(serialize(grown.eval(), {"grown_from": str(args.checkpoint)}), args.out)
    except SpecdenoiseError as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {path} ({sum(p.numel() for p in grown.parameters()):,} parameters)")
