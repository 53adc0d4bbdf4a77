"""``specdenoise train``: train a CNN or U-Net denoiser."""
from __future__ import annotations

HELP = "train a CNN or U-Net denoiser (one CPU/GPU, or several GPUs under torchrun)"


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="YAML", help="config file (e.g. configs/unet.yaml)")
    parser.add_argument("--data", metavar="PATH", help="a PREPROCESSED cache or a synthesized corpus (data.path)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (checkpoints, logs)")
    parser.add_argument("--max-steps", type=int, help="override run.max_steps")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("--init-from", metavar="default|CKPT",
                        help="fine-tune: start from the shipped model's or a checkpoint's weights (run.init_from)")
    parser.add_argument("--merge-train-validation", action="store_true", help="final fit on train+validation")
    parser.add_argument("--tracker", choices=["wandb", "none"], help="override tracking.tracker")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=3e-4")


def build_config(args):
    from .. import config as config_io
    from ..training.config import TrainConfig

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.path={args.data}")
    if getattr(args, "init_from", None):
        overrides.append(f"run.init_from={args.init_from}")
    if args.max_steps is not None:
        overrides.append(f"run.max_steps={args.max_steps}")
    if args.merge_train_validation:
        overrides.append("data.merge_train_validation=true")
    if args.tracker:
        overrides.append(f"tracking.tracker={args.tracker}")
    if args.resume and not args.config and not overrides:
        from pathlib import Path

        return config_io.load(TrainConfig, Path(args.out) / "config.yaml")
    return config_io.load(TrainConfig, args.config, overrides)


def run(args) -> int:
    from ..training.trainer import train

    cfg = build_config(args)
    summary = train(cfg, args.out, resume=args.resume)
    best = summary["best"]
    print(f"stopped after {summary['steps']} steps ({summary['stop_reason']}); best validation "
          f"{summary['metric']} = {best if best is None else round(best, 4)}; checkpoints in {args.out}")
    return 0
