"""The study runner: check the space, open or join the study, run trials, write the report."""
from __future__ import annotations

import hashlib
import math
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, SpecdenoiseError
from .objective import Objective
from .report import write_report
from .space import SearchSpace, load_search_space, override_keys
from .storage import creation_lock, default_storage, make_pruner, make_sampler, mask_url, open_storage
from .trials import base_dict, build_train_config, check_space, grid_search_space


@dataclass
class TuneOptions:
    search_space: str | Path
    study: str
    data: str | None = None
    storage: str | None = None
    out: str | Path | None = None
    trials: int | None = None
    timeout: float | None = None
    budget_steps: int | None = None
    eval_every: int | None = None
    pruner: str = "median"
    prune_threshold: float | None = None
    pruner_startup: int = 2
    pruner_warmup: int = 0
    sampler: str = "tpe"
    startup_trials: int = 10
    seed: int = 0
    resume: bool = False
    heartbeat: int = 30
    grace: int | None = None
    max_retry: int = 2
    measure_cost: bool = False
    overrides: list[str] = field(default_factory=list)
@dataclass
class _Plan:
    """Everything a study is run with, checked before any storage is opened."""

    space: SearchSpace
    overrides: list[str]
    pinned: set[str]
    base: Any  # the base TrainConfig
    metric: str
    direction: str
    budget: int
    eval_every: int
    out: Path
    url: str
    grid: dict[str, list[Any]] | None
    n_checked: int


def plan_study(opts: TuneOptions, log: Callable[[str], None] = lambda message: None) -> _Plan:
    """Check the options, the space (its corner configs) and the data; fix budget and direction."""
    from ..training.trainer import HIGHER_IS_BETTER

    if opts.trials is not None and opts.trials < 0:
        raise ConfigError("--trials must be >= 0")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", opts.study):
        raise ConfigError(f"--study {opts.study!r}: use letters, digits, '_', '-' and '.'")
    space = load_search_space(opts.search_space)
    overrides = list(opts.overrides)
    if opts.data:
        overrides.append(f"data.path={opts.data}")
    pinned = override_keys(overrides)
    for param in space.params:
        if param.name in pinned:
            log(f"note: {param.name} is fixed by an override and not searched")
    n_checked = check_space(space, overrides)
    base = build_train_config(base_dict(space, overrides))
    if base.data.path and not Path(base.data.path).exists():
        raise SpecdenoiseError(f"{base.data.path}: data not found (--data: a PREPROCESSED cache or a corpus)")
    metric = base.run.early_stop_metric  # one of HIGHER_IS_BETTER's keys: a Literal checked at load
    budget = int(opts.budget_steps or space.budget_steps or base.run.max_steps)
    eval_every = int(opts.eval_every or space.eval_every or max(1, budget // 4))
    if budget < 1 or eval_every < 1:
        raise ConfigError("--budget-steps and --eval-every must be positive")
    if eval_every > budget:
        raise ConfigError(f"--eval-every ({eval_every}) exceeds --budget-steps ({budget}): nothing to prune on")
    out = Path(opts.out) if opts.out else Path("runs") / opts.study
    grid = grid_search_space(space, pinned) if opts.sampler == "grid" else None
    return _Plan(space, overrides, pinned, base, metric, "maximize" if HIGHER_IS_BETTER[metric] else "minimize",
                 budget, eval_every, out, opts.storage or default_storage(out), grid, n_checked)


def _worker_seed(base: int) -> int:
    """A sampler seed of this process alone (host, pid, clock), so joining workers differ."""
    key = f"{base}/{socket.gethostname()}/{os.getpid()}/{time.time_ns()}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


def _open_study(opts: TuneOptions, plan: _Plan):
    """Create the study, or join it with ``resume``; returns it, whether it was created, and the
    sampler seed (a joining worker draws its own, so two workers never sample the same points)."""
    import optuna

    with creation_lock(plan.url):
        storage = open_storage(plan.url, opts.heartbeat, opts.grace, opts.max_retry)
        try:
            storage.get_study_id_from_name(opts.study)
            exists = True
        except KeyError:
            exists = False
        if exists and not opts.resume:
            n = len(optuna.load_study(study_name=opts.study, storage=storage).trials)
            raise SpecdenoiseError(f"study {opts.study!r} already exists in {mask_url(plan.url)} ({n} trials); "
                                   "pass --resume to continue it (or join it as another worker), or choose another --study")
        if not exists:
            stale = sorted(plan.out.glob("trial_*")) if plan.out.is_dir() else []
            if stale and not opts.resume:
                raise SpecdenoiseError(f"{plan.out} already holds trial folders of another study; choose another --out")
        # Joining an existing study (another worker or an earlier run): draw other points than it did
        seed = _worker_seed(opts.seed) if exists else opts.seed
        pruner = make_pruner(opts.pruner, plan.direction, plan.budget, plan.eval_every, opts.pruner_startup,
                             opts.pruner_warmup, opts.prune_threshold)

        def create(seed: int, load_if_exists: bool):
            return optuna.create_study(storage=storage, study_name=opts.study, direction=plan.direction,
                                       sampler=make_sampler(opts.sampler, seed, plan.grid, opts.startup_trials),
                                       pruner=pruner, load_if_exists=load_if_exists)

        try:  # a fresh study is created strictly: the database, not our earlier look, decides who made it
            study = create(seed, load_if_exists=exists)
        except optuna.exceptions.DuplicatedStudyError:
            # PostgreSQL/MySQL workers share no local lock: another one created it since we looked
            if not opts.resume:
                raise SpecdenoiseError(f"study {opts.study!r} was just created by another process; "
                                       "pass --resume to join it") from None
            exists, seed = True, _worker_seed(opts.seed)
            study = create(seed, load_if_exists=True)
    if study.direction.name.lower() != plan.direction:
        raise SpecdenoiseError(f"study {opts.study!r} {study.direction.name.lower()}s, but {plan.metric} calls for {plan.direction}")
    return study, not exists, seed


def _record_attributes(study, plan: _Plan, created: bool, log: Callable[[str], None]) -> None:
    """A new study stores what it was started with; a resumed one warns where that changed."""
    attrs = {"metric": plan.metric, "search_space": str(plan.space.path), "space_digest": plan.space.digest,
             "budget_steps": plan.budget, "eval_every": plan.eval_every, "base_max_steps": plan.base.run.max_steps,
             "overrides": plan.overrides}
    if created:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        return
    previous = study.user_attrs
    for key in ("metric", "space_digest", "budget_steps", "eval_every"):
        if key in previous and previous[key] != attrs[key]:
            log(f"warning: study {study.study_name!r} was started with {key}={previous[key]!r}, now {attrs[key]!r}")


def run_study(opts: TuneOptions, log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Create or continue (``resume``) a study and run up to ``opts.trials`` trials in this
    process; then write best.yaml, summary.json and plots. Returns the summary."""
    import optuna

    plan = plan_study(opts, log)
    if plan.grid is not None and opts.trials is None:
        opts.trials = math.prod(len(v) for v in plan.grid.values())
    study, created, seed = _open_study(opts, plan)
    _record_attributes(study, plan, created, log)
    plan.out.mkdir(parents=True, exist_ok=True)
    log(f"study {opts.study!r} ({'new' if created else f'resumed, {len(study.trials)} trials so far'}) in "
        f"{mask_url(plan.url)}: {plan.direction} validation {plan.metric}; budget {plan.budget} steps, validation "
        f"every {plan.eval_every}; sampler {opts.sampler} (seed {seed}), pruner {opts.pruner}; "
        f"{len(plan.space.active_params(plan.pinned))} parameter(s), {plan.n_checked} corner configuration(s) "
        f"checked; trials in {plan.out}")

    objective = Objective(plan.space, plan.overrides, plan.out, opts.study, plan.budget, plan.eval_every,
                          plan.metric, opts.measure_cost, log)
    n_trials = opts.trials if (opts.trials is not None or opts.timeout is not None) else 20
    interrupted = None
    if n_trials != 0:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(objective, n_trials=n_trials, timeout=opts.timeout,
                               catch=(SpecdenoiseError, RuntimeError, ValueError), gc_after_trial=True)
        except KeyboardInterrupt as exc:
            interrupted = exc
    summary = write_report(study, plan.out, plan.space, plan.url, plan.metric, plan.direction, plan.budget,
                           plan.eval_every, log)
    if interrupted is not None:
        raise interrupted
    if objective.ran and objective.ran == objective.failed:
        raise SpecdenoiseError(f"all {objective.ran} trial(s) of this worker failed; first error: {objective.first_error}")
    return summary
