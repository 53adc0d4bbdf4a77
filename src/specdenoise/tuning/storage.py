"""Where a study lives and how it samples and prunes: RDB storage (SQLite by default, PostgreSQL
for several workers) with heartbeats and retries, Optuna samplers and pruners by name."""
from __future__ import annotations

import contextlib
import random
import re
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError, SpecdenoiseError, first_line


PRUNERS = ("median", "hyperband", "halving", "threshold", "none")
SAMPLERS = ("tpe", "random", "grid")

def mask_url(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def default_storage(out: Path) -> str:
    return f"sqlite:///{(out.parent / 'optuna.db').resolve()}"


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:"):
        return None
    rest = url.split(":///", 1)[1] if ":///" in url else ""
    if not rest or rest.startswith(":memory:"):
        return None
    return Path(rest)


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Serialise storage/study creation between local processes on one SQLite file (two workers
    creating the tables of a fresh file at once crash with 'table studies already exists')."""
    path = _sqlite_path(url)
    if path is None:
        yield
        return
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_storage(url: str, heartbeat_interval: int | None = 30, grace_period: int | None = None,
                 max_retry: int = 2):
    """An RDBStorage (SQLite, PostgreSQL, MySQL) with heartbeats and re-queueing of trials whose
    worker died. Call inside :func:`creation_lock` when several local processes may start at once."""
    import optuna
    import sqlalchemy

    from optuna.storages import RDBStorage

    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        engine_kwargs["connect_args"] = {"timeout": 30}
    else:
        engine_kwargs["pool_pre_ping"] = True
    kwargs: dict[str, Any] = {}
    if heartbeat_interval:
        kwargs["heartbeat_interval"] = int(heartbeat_interval)
        kwargs["grace_period"] = int(grace_period) if grace_period else 2 * int(heartbeat_interval)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = retry_cls(max_retry=max_retry) if max_retry > 0 else None
        if callback is not None:
            key = "heartbeat_stale_trial_callback" if retry_cls.__name__.startswith("RetryHeartbeat") else "failed_trial_callback"
            kwargs[key] = callback
    last: Exception | None = None
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except ModuleNotFoundError as exc:
            raise SpecdenoiseError(f"storage {mask_url(url)} needs the Python module {exc.name!r} "
                                   "(PostgreSQL: pip install psycopg2-binary, the 'postgres' extra)") from None
        except sqlalchemy.exc.ArgumentError as exc:
            raise SpecdenoiseError(f"storage URL {mask_url(url)} is not valid ({exc})") from None
        except sqlalchemy.exc.DBAPIError as exc:  # e.g. two workers creating the tables at once
            last = exc
            time.sleep(0.5 + random.random())
    message = first_line(getattr(last, "orig", last)) if last else "unknown error"
    raise SpecdenoiseError(f"cannot open storage {mask_url(url)}: {message}")


def make_sampler(kind: str, seed: int | None, grid: dict[str, list[Any]] | None = None, startup_trials: int = 10):
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(grid or {}, seed=seed)
    raise ConfigError(f"sampler must be one of {list(SAMPLERS)}, got {kind!r}")


def make_pruner(kind: str, direction: str, budget_steps: int, eval_every: int, startup_trials: int = 2,
                warmup_steps: int = 0, threshold: float | None = None):
    """``median`` (default), ``hyperband``, ``halving`` (successive halving), ``threshold`` or ``none``.

    Steps are training steps, so Hyperband's resources run from one validation (``eval_every``)
    to the budget.
    """
    import optuna

    if threshold is not None and kind != "threshold":
        raise ConfigError(f"--prune-threshold only applies to --pruner threshold, not {kind!r}")
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=eval_every, max_resource=budget_steps, reduction_factor=3)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=eval_every, reduction_factor=3)
    if kind == "threshold":
        if threshold is None:
            raise ConfigError("--pruner threshold needs --prune-threshold VALUE (trials worse than it stop)")
        bound = {"lower": threshold} if direction == "maximize" else {"upper": threshold}
        return optuna.pruners.ThresholdPruner(n_warmup_steps=warmup_steps, **bound)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"pruner must be one of {list(PRUNERS)}, got {kind!r}")
