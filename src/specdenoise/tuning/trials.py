"""From a search space and Optuna's choices to configs: the final config of a choice, a trial's
config (budget, tuning-only keys), and the corner checks that refuse an invalid space before
any training."""
from __future__ import annotations

import copy
import json
import random
from typing import Any, Callable, Iterator

from .. import config as config_io
from ..errors import ConfigError, SpecdenoiseError
from .expressions import evaluate_expression
from .space import Param, SearchSpace, get_key, override_keys, set_key


# Trials never need progress bars or audio/spectrogram media; a search space or a key=value
# override can turn them back on.
TUNING_DEFAULTS = {"run.progress": False, "run.media_every": 0}

def base_dict(space: SearchSpace, overrides: list[str] | None = None) -> dict[str, Any]:
    """Base config file <- fixed <- key=value overrides, as a plain dict (before sampling)."""
    data = config_io.read_yaml(space.base_config)
    if not isinstance(data, dict):
        raise ConfigError(f"{space.base_config}: must hold a mapping of config sections")
    for key, value in space.fixed.items():
        set_key(data, key, copy.deepcopy(value))
    config_io.apply_overrides(data, list(overrides or []))
    return data


def resolve_config(space: SearchSpace, choose: Callable[[Param], Any], overrides: list[str] | None = None,
                   base: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The final config dict (what best.yaml holds for this choice) and the sampled values.

    ``choose(param)`` returns Optuna's value for an active parameter (a trial's suggestion, a
    stored trial's params, or a corner during checks). Keys given as overrides are pinned: they
    are neither sampled nor derived. ``base`` is :func:`base_dict`'s result, when already known.
    """
    overrides = list(overrides or [])
    pinned = override_keys(overrides)
    data = copy.deepcopy(base) if base is not None else base_dict(space, overrides)
    variables: dict[str, Any] = {}

    def lookup(name: str) -> Any:
        if name in variables:
            return variables[name] if "." not in name else get_key(data, name)
        try:
            return get_key(data, name)
        except KeyError:
            raise ConfigError(f"{space.path}: {name!r} is neither a sampled parameter nor a key of the config") from None

    sampled: dict[str, Any] = {}
    for param in space.active_params(pinned):
        if not all(_condition_holds(lookup, variables, key, allowed) for key, allowed in param.when.items()):
            continue
        raw = choose(param)
        sampled[param.name] = raw
        value = param.value_of(raw)
        variables[param.name] = value
        if param.is_key:
            set_key(data, param.name, value)
    for key, expr in space.derived.items():
        if key in pinned:
            continue
        set_key(data, key, evaluate_expression(expr, lookup, f"{space.path}: derived.{key}"))
    return data, sampled


def _condition_holds(lookup, variables: dict[str, Any], key: str, allowed: list[Any]) -> bool:
    if "." not in key and key not in variables:
        return False  # a variable whose own condition failed
    try:
        value = lookup(key)
    except ConfigError:
        return False
    return value in allowed


def trial_dict(space: SearchSpace, final: dict[str, Any], overrides: list[str], budget_steps: int,
               eval_every: int, group: str | None, name: str | None) -> dict[str, Any]:
    """A trial's config: the final config plus tuning-only settings and the step budget."""
    pinned = override_keys(overrides)
    data = copy.deepcopy(final)
    for key, value in {**TUNING_DEFAULTS, **space.tuning_only}.items():
        if key not in pinned:
            set_key(data, key, copy.deepcopy(value))
    set_key(data, "run.max_steps", int(budget_steps))
    set_key(data, "run.eval_every", int(eval_every))
    set_key(data, "tracking.group", group)
    set_key(data, "tracking.name", name)
    return data


def build_train_config(data: dict[str, Any]):
    """A checked TrainConfig from a dict: keys, types and model arguments by loading it, the STFT
    by resolving it as training will (against the cache's stft.json when ``data.path`` is one)."""
    from ..training.config import TrainConfig, resolve_stft

    cfg = config_io.from_dict(TrainConfig, copy.deepcopy(data))
    resolve_stft(cfg)
    return cfg


def enumerate_corners(space: SearchSpace, overrides: list[str] | None = None, limit: int = 1024
                      ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Every combination of the parameters' corner values (every choice, every value of a small
    integer range, both ends of other ranges; conditions respected), up to ``limit``."""
    overrides = list(overrides or [])
    base = base_dict(space, overrides)
    emitted = 0

    def walk(prefix: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        nonlocal emitted
        pending: list[Param] = []

        def choose(param: Param) -> Any:
            if param.name in prefix:
                return prefix[param.name]
            pending.append(param)
            return param.corners()[0]

        final, sampled = resolve_config(space, choose, overrides, base)
        if not pending:
            emitted += 1
            yield final, sampled
            return
        first = pending[0]
        for value in first.corners():
            if emitted >= limit:
                return
            yield from walk({**prefix, first.name: value})

    yield from walk({})


def corner_samples(space: SearchSpace, overrides: list[str] | None = None, limit: int = 256
                   ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], bool]:
    """Configurations that exercise the space's edges; ``True`` when they are all of them.

    All corner combinations when there are at most ``limit``; otherwise each corner of each
    parameter with the others at their first corner, plus seeded random corner combinations.
    """
    overrides = list(overrides or [])
    exhaustive = list(enumerate_corners(space, overrides, limit + 1))
    if len(exhaustive) <= limit:
        return exhaustive, True
    base = base_dict(space, overrides)
    samples: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def add(choose: Callable[[Param], Any]) -> None:
        final, sampled = resolve_config(space, choose, overrides, base)
        samples.setdefault(json.dumps(sampled, sort_keys=True, default=str), (final, sampled))

    for param in space.params:
        for value in param.corners():
            add(lambda p, param=param, value=value: value if p is param else p.corners()[0])
    rng = random.Random(0)
    for _ in range(limit * 4):
        if len(samples) >= limit:
            break
        add(lambda p: rng.choice(p.corners()))
    return list(samples.values()), False


def check_space(space: SearchSpace, overrides: list[str] | None = None, limit: int = 256, build_models: int = 4
                ) -> int:
    """Build the config of the space's corner combinations (and a few models) to catch invalid
    spaces before any training; returns the number of configurations checked."""
    from ..training.config import build_model

    samples, _ = corner_samples(space, overrides, limit)
    for n, (final, sampled) in enumerate(samples):
        try:
            cfg = build_train_config(final)
            if n < build_models:
                build_model(cfg)
        except SpecdenoiseError as exc:
            shown = ", ".join(f"{k}={v}" for k, v in sampled.items())
            raise ConfigError(f"{space.path}: the combination {shown or '(no parameters)'} gives an invalid "
                              f"config: {exc}") from None
    return len(samples)


def grid_search_space(space: SearchSpace, pinned: set[str]) -> dict[str, list[Any]]:
    grid = {}
    for param in space.active_params(pinned):
        if param.when:
            raise ConfigError(f"{space.path}: the grid sampler cannot handle the conditional parameter {param.name}")
        values = param.grid_values()
        if values is None:
            raise ConfigError(f"{space.path}: the grid sampler needs discrete values; {param.describe()} "
                              "is continuous (give it a step) or too large")
        grid[param.name] = values
    return grid
