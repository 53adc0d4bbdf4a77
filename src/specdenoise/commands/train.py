"""``specdenoise train``: train a CNN or U-Net denoiser."""
from __future__ import annotations

import logging
import sys

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
    from ..training.config import TrainConfig, check_ranges

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
    if args.resume:
        return resume_config(args, overrides)
    cfg = config_io.load(TrainConfig, args.config, overrides)
    check_ranges(cfg)
    return cfg


# what a resumed run may change: how long and how it runs, never what it learns from or with
RESUMABLE = ("run.max_steps", "run.max_minutes", "run.eval_every", "run.log_every", "run.patience", "run.threads", "run.device",
             "run.progress", "run.pesq_stoi_clips", "run.media_every", "data.num_workers", "tracking.")


def resume_config(args, overrides: list[str]):
    """The run's saved config.yaml with ``overrides`` on top (they were once ignored). Changes a
    checkpoint cannot follow (model, STFT, data, optimizer, seed) are refused in one line; the
    accepted ones are listed on stderr."""
    from pathlib import Path

    from .. import config as config_io
    from ..errors import ConfigError, SpecdenoiseError
    from ..training.config import TrainConfig, check_ranges

    saved = Path(args.out) / "config.yaml"
    if not saved.is_file():
        raise SpecdenoiseError(f"{args.out}: nothing to resume (config.yaml missing)")
    if args.config:
        raise ConfigError("--config cannot be combined with --resume: the run continues with its saved "
                          f"{saved}; change what may change with key=value")
    old = _flat(config_io.to_dict(config_io.load(TrainConfig, saved)))
    cfg = config_io.load(TrainConfig, saved, overrides)
    new = _flat(config_io.to_dict(cfg))
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    fixed = [k for k in changed if not k.startswith(RESUMABLE) and k not in RESUMABLE]
    if fixed:
        raise ConfigError(f"cannot change {', '.join(fixed)} when resuming (the checkpoint was trained with the "
                          "saved value); start a new run in another --out")
    check_ranges(cfg)
    for key in changed:
        print(f"train: resuming with {key} = {new.get(key)!r} (was {old.get(key)!r})", file=sys.stderr)
    return cfg


def _flat(data, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _show_data_notes() -> None:
    """Let the data modules' INFO notes (e.g. what the speech-quality floor dropped) reach stderr."""
    logger = logging.getLogger("specdenoise.data")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("train: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def run(args) -> int:
    from ..training.trainer import train

    cfg = build_config(args)
    _show_data_notes()
    summary = train(cfg, args.out, resume=args.resume)
    best = summary["best"]
    print(f"stopped after {summary['steps']} steps ({summary['stop_reason']}); best validation "
          f"{summary['metric']} = {best if best is None else round(best, 4)}; checkpoints in {args.out}")
    return 0
