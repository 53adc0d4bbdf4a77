"""``specdenoise tune``: hyperparameter / STFT search with Optuna over ``specdenoise train``."""
from __future__ import annotations

HELP = "search hyperparameters or STFT settings with Optuna (SQLite, or PostgreSQL for several workers)"

EPILOG = """\
examples:
  specdenoise tune --search-space tuning/unet.yaml --data PREPROCESSED --study unet1 --trials 30
  specdenoise tune --search-space tuning/unet.yaml --data PREPROCESSED --study unet1 --resume --trials 10
  specdenoise tune --search-space tuning/stft.yaml --data CORPUS --study stft --sampler grid
several workers on one study (run the same command on each process or machine):
  specdenoise tune ... --study unet1 --trials 0 --storage postgresql+psycopg2://USER:PASS@HOST/DB
  specdenoise tune ... --study unet1 --resume --trials 20 --storage postgresql+psycopg2://USER:PASS@HOST/DB
see docs/TUNING.md"""


def add_arguments(parser) -> None:
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--search-space", required=True, metavar="YAML", help="search space (e.g. tuning/unet.yaml)")
    parser.add_argument("--data", metavar="PATH", help="a PREPROCESSED cache or a synthesized corpus (data.path)")
    parser.add_argument("--study", required=True, metavar="NAME", help="study name in the storage")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna RDB URL (default sqlite:///<parent of --out>/optuna.db, i.e. runs/optuna.db); "
                             "postgresql+psycopg2://USER:PASS@HOST:5432/DB for several workers")
    parser.add_argument("--out", metavar="DIR", help="folder for trial runs and results (default runs/NAME)")
    parser.add_argument("--trials", type=int, metavar="N",
                        help="trials this process runs (default 20; the grid size with --sampler grid; "
                             "0 = create the study only)")
    parser.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S seconds")
    parser.add_argument("--budget-steps", type=int, metavar="K",
                        help="training steps per trial (run.max_steps; default from the search space)")
    parser.add_argument("--eval-every", type=int, metavar="E",
                        help="steps between validations, each reported to the pruner (default from the search space)")
    parser.add_argument("--pruner", choices=["median", "hyperband", "halving", "threshold", "none"], default="median",
                        help="stop poor trials early (default median; halving = successive halving)")
    parser.add_argument("--prune-threshold", type=float, metavar="V",
                        help="with --pruner threshold: stop a trial whose metric is worse than V")
    parser.add_argument("--pruner-startup", type=int, default=2, metavar="N",
                        help="median pruner: completed trials before it prunes (default 2)")
    parser.add_argument("--pruner-warmup", type=int, default=0, metavar="STEPS",
                        help="median/threshold pruner: never prune before this step (default 0)")
    parser.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe", help="default tpe (seeded)")
    parser.add_argument("--startup-trials", type=int, default=10, metavar="N",
                        help="TPE: random trials before it models the space (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (joining workers derive their own)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an existing study, or join it as another worker (created if missing)")
    parser.add_argument("--heartbeat", type=int, default=30, metavar="S",
                        help="seconds between trial heartbeats; a trial silent for --grace is failed and "
                             "re-queued (default 30; 0 = off)")
    parser.add_argument("--grace", type=int, metavar="S", help="heartbeat grace period (default 2 x --heartbeat)")
    parser.add_argument("--max-retry", type=int, default=2, metavar="N",
                        help="re-queue a crashed trial at most N times (default 2)")
    parser.add_argument("--measure-cost", action="store_true",
                        help="after each trial, time a training step and inference (real-time factor) on one thread")
    parser.add_argument("--tracker", choices=["wandb", "none"], help="override tracking.tracker")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides for every trial (a searched key given here is pinned)")


def run(args) -> int:
    import os

    from ..tuning import TuneOptions, run_study

    os.environ.setdefault("WANDB_SILENT", "true")  # one W&B banner per trial is noise here
    overrides = list(args.overrides)
    if args.tracker:
        overrides.append(f"tracking.tracker={args.tracker}")
    opts = TuneOptions(
        search_space=args.search_space, study=args.study, data=args.data, storage=args.storage, out=args.out,
        trials=args.trials, timeout=args.timeout, budget_steps=args.budget_steps, eval_every=args.eval_every,
        pruner=args.pruner, prune_threshold=args.prune_threshold, pruner_startup=args.pruner_startup,
        pruner_warmup=args.pruner_warmup, sampler=args.sampler, startup_trials=args.startup_trials,
        seed=args.seed, resume=args.resume, heartbeat=args.heartbeat, grace=args.grace,
        max_retry=args.max_retry, measure_cost=args.measure_cost, overrides=overrides,
    )
    run_study(opts, log=print)
    return 0
