"""Weight-space interpolation of a fine-tuned checkpoint with the one it started from.

    python scripts/average_weights.py BASE.pt FINETUNED.pt --alpha 0.5 --out runs/mix50.pt

Writes (1 - alpha) * BASE + alpha * FINETUNED, with FINETUNED's config (the robust fine-tuning of
Wortsman et al., "WiSE-FT", 2022: a fine-tune's new skill is mostly kept while what it forgot of
the base comes back). Both must be the same architecture; integer buffers (BatchNorm counters)
come from FINETUNED. Choose alpha on validation mixtures (scripts/validate_checkpoints.py).
"""
from __future__ import annotations

import argparse

from specdenoise.errors import CheckpointError
from specdenoise.models.registry import architecture_differences, load_checkpoint, save_release


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("finetuned")
    parser.add_argument("--alpha", type=float, required=True, help="weight of FINETUNED, 0..1")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not 0.0 <= args.alpha <= 1.0:
        raise SystemExit(f"--alpha must lie in [0, 1], got {args.alpha}")
    base, tuned = load_checkpoint(args.base), load_checkpoint(args.finetuned)
    # weight-free output options may differ (FINETUNED's are kept); anything else may not
    if architecture_differences(base["model"], tuned["model"]) or base["state_dict"].keys() != tuned["state_dict"].keys():
        raise SystemExit(f"{args.base} and {args.finetuned} are not the same architecture")
    state = {}
    for key, t in tuned["state_dict"].items():
        b = base["state_dict"][key]
        state[key] = (1 - args.alpha) * b + args.alpha * t if t.is_floating_point() else t
    package = {**tuned, "state_dict": state,
               "averaged_from": {"base": args.base, "finetuned": args.finetuned, "alpha": args.alpha}}
    try:
        save_release(package, args.out)
    except CheckpointError as exc:
        raise SystemExit(f"{args.out}: not written: {exc}") from None
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
