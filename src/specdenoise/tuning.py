"""Hyperparameter and STFT search with Optuna, over the very same :func:`train` as ``specdenoise train``.

A *search space* is a small YAML file (``tuning/*.yaml``)::

    base_config: ../configs/unet.yaml   # relative to this file (or to the working directory)
    fixed:                              # applied to every trial and kept in best.yaml
      optim.warmup_steps: 50
    tuning_only:                        # applied to trials only; best.yaml keeps the base value
      run.patience: 0
    budget: {steps: 300, eval_every: 50}  # defaults for --budget-steps / --eval-every
    params:                             # sampled in this order
      optim.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
      model.depth: {type: int, low: 2, high: 4}
      model.mask: {type: categorical, choices: [magnitude, complex]}
      model.power: {type: float, low: 0.2, high: 0.5, when: {model.feature: power}}
      hop_fraction: {type: categorical, choices: [0.25, 0.5]}   # no dot: a variable, not a key
    derived:                            # computed after sampling, in this order
      stft.hop_length: stft.n_fft * hop_fraction

A parameter whose name holds a dot is a config key (``section.key``) and is written into the
trial's config; a name without a dot is a search variable, usable in ``when`` and ``derived``
only. ``when`` maps keys or variables to a value or a list of allowed values; a parameter whose
condition fails is not sampled (Optuna's define-by-run conditional spaces). ``categorical``
choices are plain scalars, or a mapping ``label: value`` when the values are lists or sections.
``derived`` values are arithmetic expressions (``+ - * / // % **``, ``int round min max``) over
keys and variables; integral results become integers.

Each trial trains in ``OUT/trial_NNNN`` with ``run.max_steps`` set to the budget, reports the
validation ``run.early_stop_metric`` to Optuna after each validation so the pruner can stop it,
and is tracked in W&B (group = study, name = trial folder). The study lives in an RDB storage
(SQLite by default, PostgreSQL for several workers); heartbeats turn trials of a killed worker
into FAIL and re-queue them, and the retry resumes from the crashed trial's last checkpoint when
its folder is reachable. At the end, ``OUT/best.yaml`` is the best trial's resolved config with
the base config's ``run.max_steps`` (ready for ``specdenoise train --config``), ``OUT/summary.json``
and PNG plots summarise the study.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import hashlib
import json
import math
import operator
import os
import random
import re
import shutil
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from . import config as config_io
from .errors import ConfigError, SpecdenoiseError
from .fileio import atomic_write, atomic_write_json, atomic_write_text

SPACE_KEYS = ("description", "base_config", "fixed", "tuning_only", "budget", "params", "derived")
PARAM_TYPES = ("float", "int", "categorical")
PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "when"}
PRUNERS = ("median", "hyperband", "halving", "threshold", "none")
SAMPLERS = ("tpe", "random", "grid")
# Trials never need progress bars or audio/spectrogram media; a search space or a key=value
# override can turn them back on.
TUNING_DEFAULTS = {"run.progress": False, "run.media_every": 0}
_MISSING = object()


# --------------------------------------------------------------------------------------------
# Nested-dict helpers (config keys are dotted paths)
# --------------------------------------------------------------------------------------------

def get_key(data: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is _MISSING:
                raise KeyError(key)
            return default
        node = node[part]
    return node


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {part!r} is not a section")
    node[parts[-1]] = value


def override_keys(overrides: list[str]) -> set[str]:
    return {item.split("=", 1)[0].strip() for item in overrides if "=" in item}


# --------------------------------------------------------------------------------------------
# The search space
# --------------------------------------------------------------------------------------------

@dataclass
class Param:
    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    labels: list[Any] = field(default_factory=list)  # categorical: what Optuna sees
    values: dict[Any, Any] | None = None  # categorical with a mapping: label -> value
    when: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def is_key(self) -> bool:
        return "." in self.name

    def value_of(self, raw: Any) -> Any:
        """The config value for what Optuna stored (a categorical label maps to its value)."""
        if self.values is not None:
            return copy.deepcopy(self.values[raw])
        return raw

    def suggest(self, trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.name, self.labels)

    def corners(self) -> list[Any]:
        """Values (Optuna's representation) that exercise every edge of the range."""
        if self.type == "categorical":
            return list(self.labels)
        values = self.grid_values(limit=8)
        if values is not None and self.type == "int":
            return values
        return [self.low, self.high]

    def grid_values(self, limit: int = 64) -> list[Any] | None:
        """Every value, for a grid search; None when the range is continuous or too large."""
        if self.type == "categorical":
            return list(self.labels)
        if self.type == "int":
            step = self.step or 1
            values = list(range(int(self.low), int(self.high) + 1, int(step)))
            return values if len(values) <= limit else None
        if self.step is not None:
            n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            return [self.low + i * self.step for i in range(n)] if n <= limit else None
        return None

    def describe(self) -> str:
        if self.type == "categorical":
            return f"{self.name} in {self.labels}"
        scale = " (log)" if self.log else ""
        step = f" step {self.step}" if self.step is not None else ""
        return f"{self.name} in [{self.low}, {self.high}]{scale}{step}"


@dataclass
class SearchSpace:
    path: Path
    base_config: Path
    fixed: dict[str, Any]
    tuning_only: dict[str, Any]
    params: list[Param]
    derived: dict[str, str]
    budget_steps: int | None = None
    eval_every: int | None = None
    description: str = ""
    digest: str = ""

    def active_params(self, pinned: set[str]) -> list[Param]:
        return [p for p in self.params if p.name not in pinned]


def _where(path: Path, key: str) -> str:
    return f"{path}: {key}"


def load_search_space(path: str | Path) -> SearchSpace:
    """Read and check a search-space YAML file (see the module docstring for the schema)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: search-space file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (YAML) file") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a mapping with base_config and params")
    unknown = sorted(set(data) - set(SPACE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; known: {list(SPACE_KEYS)}")
    if not data.get("base_config"):
        raise ConfigError(f"{path}: base_config is missing (e.g. base_config: ../configs/unet.yaml)")
    base = _resolve_base(path, str(data["base_config"]))

    def mapping(key: str) -> dict[str, Any]:
        value = data.get(key) or {}
        if not isinstance(value, dict):
            raise ConfigError(_where(path, f"{key} must be a mapping of dotted config keys to values"))
        for k in value:
            if not isinstance(k, str) or "." not in k:
                raise ConfigError(_where(path, f"{key}: {k!r} is not a dotted config key (e.g. optim.lr)"))
        return dict(value)

    fixed, tuning_only = mapping("fixed"), mapping("tuning_only")
    raw_params = data.get("params") or {}
    if not isinstance(raw_params, dict) or not raw_params:
        raise ConfigError(_where(path, "params must be a non-empty mapping of name -> {type: ...}"))
    params = [_parse_param(path, str(name), spec) for name, spec in raw_params.items()]
    known = {p.name for p in params}
    for p in params:
        for cond in p.when:
            if "." not in cond and cond not in known:
                raise ConfigError(_where(path, f"params.{p.name}.when: {cond!r} is neither a config key nor a parameter"))
    derived = data.get("derived") or {}
    if not isinstance(derived, dict):
        raise ConfigError(_where(path, "derived must be a mapping of dotted key -> expression"))
    for key, expr in derived.items():
        if not isinstance(key, str) or "." not in key:
            raise ConfigError(_where(path, f"derived: {key!r} is not a dotted config key"))
        if isinstance(expr, bool) or not isinstance(expr, (str, int, float)):
            raise ConfigError(_where(path, f"derived.{key} must be an expression, got {expr!r}"))
        _parse_expression(str(expr), f"{path}: derived.{key}")
    budget = data.get("budget") or {}
    if not isinstance(budget, dict) or set(budget) - {"steps", "eval_every"}:
        raise ConfigError(_where(path, "budget takes steps and eval_every"))
    for k, v in budget.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(_where(path, f"budget.{k} must be a positive integer, got {v!r}"))
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return SearchSpace(path=path, base_config=base, fixed=fixed, tuning_only=tuning_only, params=params,
                       derived={k: str(v) for k, v in derived.items()}, budget_steps=budget.get("steps"),
                       eval_every=budget.get("eval_every"), description=str(data.get("description") or ""),
                       digest=digest)


def _resolve_base(space_path: Path, base: str) -> Path:
    candidate = Path(base)
    if candidate.is_absolute():
        tried = [candidate]
    else:
        tried = [space_path.parent / candidate, Path.cwd() / candidate]
    for path in tried:
        if path.is_file():
            return path.resolve()
    raise ConfigError(f"{space_path}: base_config {base!r} not found (tried {', '.join(str(t) for t in tried)})")


def _number(path: Path, name: str, key: str, value: Any, integer: bool) -> float | int:
    if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(_where(path, f"params.{name}.{key} must be a number, got {value!r}"))
    if integer:
        if float(value) != int(value):
            raise ConfigError(_where(path, f"params.{name}.{key} must be an integer, got {value!r}"))
        return int(value)
    return float(value)


def _parse_param(path: Path, name: str, spec: Any) -> Param:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
        raise ConfigError(_where(path, f"params: {name!r} is not a valid name (section.key or a variable)"))
    if not isinstance(spec, dict):
        raise ConfigError(_where(path, f"params.{name} must be a mapping like {{type: float, low: ..., high: ...}}"))
    unknown = sorted(set(spec) - PARAM_KEYS)
    if unknown:
        raise ConfigError(_where(path, f"params.{name}: unknown key(s) {unknown}; known: {sorted(PARAM_KEYS)}"))
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise ConfigError(_where(path, f"params.{name}.type must be one of {list(PARAM_TYPES)}, got {kind!r}"))
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise ConfigError(_where(path, f"params.{name}.when must map keys to a value or a list of values"))
    when = {str(k): (list(v) if isinstance(v, list) else [v]) for k, v in when.items()}
    if kind == "categorical":
        if set(spec) & {"low", "high", "log", "step"}:
            raise ConfigError(_where(path, f"params.{name}: categorical takes choices, not low/high/log/step"))
        choices = spec.get("choices")
        if isinstance(choices, dict) and choices:
            labels = list(choices)
            for label in labels:
                if not isinstance(label, (str, int, float, bool)) or label is None:
                    raise ConfigError(_where(path, f"params.{name}.choices: label {label!r} must be a scalar"))
            return Param(name, kind, labels=labels, values=dict(choices), when=when)
        if not isinstance(choices, list) or not choices:
            raise ConfigError(_where(path, f"params.{name}.choices must be a non-empty list (or a label: value mapping)"))
        for c in choices:
            if c is not None and not isinstance(c, (str, int, float, bool)):
                raise ConfigError(_where(path, f"params.{name}.choices: {c!r} is not a scalar; use a mapping "
                                               "label: value for lists or sections"))
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(_where(path, f"params.{name}.choices has duplicates"))
        return Param(name, kind, labels=list(choices), when=when)
    if "choices" in spec:
        raise ConfigError(_where(path, f"params.{name}: {kind} takes low/high, not choices"))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(_where(path, f"params.{name}: {kind} needs low and high"))
    integer = kind == "int"
    low = _number(path, name, "low", spec["low"], integer)
    high = _number(path, name, "high", spec["high"], integer)
    if not low < high:
        raise ConfigError(_where(path, f"params.{name}: low ({low}) must be below high ({high})"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(_where(path, f"params.{name}.log must be true or false"))
    if log and low <= 0:
        raise ConfigError(_where(path, f"params.{name}: log scale needs low > 0, got {low}"))
    step = spec.get("step")
    if step is not None:
        step = _number(path, name, "step", step, integer)
        if step <= 0:
            raise ConfigError(_where(path, f"params.{name}.step must be positive"))
        if log and not (integer and step == 1):
            raise ConfigError(_where(path, f"params.{name}: step and log cannot be combined"))
        if log:
            step = None
    return Param(name, kind, low=low, high=high, log=log, step=step, when=when)


# --- derived expressions: a tiny, safe arithmetic evaluator -----------------------------------

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_FUNCS = {"int": int, "round": round, "min": min, "max": max}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _parse_expression(expr: str, where: str) -> ast.Expression:
    if len(expr) > MAX_EXPRESSION:
        raise ConfigError(f"{where}: expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise ConfigError(f"{where}: {expr!r} is not an expression") from None
    for node in ast.walk(tree):
        ok = isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Name,
                               ast.Attribute, ast.Load, ast.Call, *_BINOPS)) or (
            isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool))
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCS
                                               and not node.keywords):
            ok = False
        if not ok:
            raise ConfigError(f"{where}: {expr!r} may only use numbers, keys, + - * / // % ** and "
                              f"{', '.join(_FUNCS)}")
    return tree


MAX_MAGNITUDE = 1e15  # no config value is larger; bounds the work too ("9**9**9" never returned)
MAX_EXPRESSION = 500  # characters: also bounds the parser's recursion


def _check_power(base: Any, exponent: Any, expr: str, where: str) -> None:
    if not isinstance(base, (int, float)) or not isinstance(exponent, (int, float)):
        return
    if abs(base) in (0, 1):
        return
    if abs(exponent) > 64 or (exponent > 0 and exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE)):
        raise ConfigError(f"{where}: {expr!r} is too large (values are limited to {MAX_MAGNITUDE:g})")


def _bounded(value: Any, expr: str, where: str) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_MAGNITUDE:
        raise ConfigError(f"{where}: {expr!r} is too large (values are limited to {MAX_MAGNITUDE:g})")
    return value


def evaluate_expression(expr: str, lookup: Callable[[str], Any], where: str = "expression") -> Any:
    """Evaluate a ``derived`` expression: numbers, keys, arithmetic and a few functions only,
    every intermediate value bounded (so no expression can run for long or exhaust memory)."""
    tree = _parse_expression(expr, where)

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Call):
            return _FUNCS[node.func.id](*[ev(a) for a in node.args])
        name = _dotted(node)
        if name is not None and (isinstance(node, ast.Name) or "." in name):
            return lookup(name)
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow):
                _check_power(left, right, expr, where)
            return _bounded(_BINOPS[type(node.op)](left, right), expr, where)
        if isinstance(node, ast.UnaryOp):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        raise ConfigError(f"{where}: cannot evaluate {ast.dump(node)}")

    try:
        value = ev(tree)
    except (TypeError, ZeroDivisionError, OverflowError) as exc:
        raise ConfigError(f"{where}: {expr!r} failed ({exc})") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


# --------------------------------------------------------------------------------------------
# From a search space and choices to configs
# --------------------------------------------------------------------------------------------

def base_dict(space: SearchSpace, overrides: list[str] | None = None) -> dict[str, Any]:
    """Base config file <- fixed <- key=value overrides, as a plain dict (before sampling)."""
    try:
        data = yaml.safe_load(space.base_config.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{space.base_config}: not a text (YAML) file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{space.base_config}: not valid YAML ({str(exc).splitlines()[0]})") from None
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
    """A checked TrainConfig from a dict (STFT settings and model name validated too)."""
    from .models import available
    from .stft import StftConfig
    from .training.config import TrainConfig

    cfg = config_io.from_dict(TrainConfig, copy.deepcopy(data))
    StftConfig.from_dict(cfg.stft)
    unknown = set(cfg.stft) - {"n_fft", "hop_length", "win_length", "window", "center"}
    if unknown:
        raise ConfigError(f"unknown stft key(s) {sorted(unknown)}")
    if cfg.model.get("name", "unet") not in available():
        raise ConfigError(f"model.name must be one of {available()}, got {cfg.model.get('name')!r}")
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
    from .models import build_model

    samples, _ = corner_samples(space, overrides, limit)
    for n, (final, sampled) in enumerate(samples):
        try:
            cfg = build_train_config(final)
            if n < build_models:
                kwargs = {k: v for k, v in cfg.model.items() if k != "name"}
                build_model(cfg.model.get("name", "unet"), stft=cfg.stft, **kwargs)
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


# --------------------------------------------------------------------------------------------
# Storage, sampler, pruner
# --------------------------------------------------------------------------------------------

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
def _creation_lock(url: str) -> Iterator[None]:
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
    worker died. Call inside :func:`_creation_lock` when several local processes may start at once."""
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
    message = str(getattr(last, "orig", last)).strip().splitlines()[0] if last else "unknown error"
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


# --------------------------------------------------------------------------------------------
# Costs: training seconds per step and inference real-time factor
# --------------------------------------------------------------------------------------------

def measure_costs(cfg, checkpoint: str | Path | None = None, threads: int = 1, clip_seconds: float = 8.0,
                  train_steps: int = 5) -> dict[str, float]:
    """Time one training step (STFT + forward + loss + backward + optimizer, no data loading) at
    the config's batch size and crop, and ``model.enhance`` on a ``clip_seconds`` clip, both on
    ``threads`` threads after a warm-up. Returns ``train_s_per_step`` and ``rtf``."""
    import torch

    from .models import build_model, model_from_checkpoint
    from .training.trainer import train_step

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        kwargs = {k: v for k, v in cfg.model.items() if k != "name"}
        name = cfg.model.get("name", "unet")
        if checkpoint is not None and Path(checkpoint).exists():
            model = model_from_checkpoint(checkpoint)
        else:
            model = build_model(name, stft=cfg.stft, **kwargs).eval()
        sr = model.sample_rate
        gen = torch.Generator().manual_seed(0)
        clip = 0.1 * torch.randn(int(round(clip_seconds * sr)), generator=gen)
        times = []
        with torch.inference_mode():
            model.enhance(clip)
            for _ in range(3):
                t0 = time.perf_counter()
                model.enhance(clip)
                times.append(time.perf_counter() - t0)
        rtf = sorted(times)[len(times) // 2] / clip_seconds

        net = build_model(name, stft=cfg.stft, **kwargs)
        if cfg.run.channels_last:
            net = net.to(memory_format=torch.channels_last)
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        crop = int(round(cfg.data.crop_seconds * sr))
        clean = 0.1 * torch.randn(cfg.data.batch_size, crop, generator=gen)
        noisy = clean + 0.05 * torch.randn(cfg.data.batch_size, crop, generator=gen)
        stft_cfg = net.stft_config

        def step() -> None:
            train_step(net, opt, {"noisy": noisy, "clean": clean}, cfg, stft_cfg, torch.device("cpu"))

        step()
        step_times = []
        for _ in range(train_steps):
            t0 = time.perf_counter()
            step()
            step_times.append(time.perf_counter() - t0)
        return {"train_s_per_step": sorted(step_times)[len(step_times) // 2], "rtf": rtf}
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------------

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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:500]


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run_study(opts: TuneOptions, log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Create or continue (``resume``) a study and run up to ``opts.trials`` trials in this
    process; then write best.yaml, summary.json and plots. Returns the summary."""
    import optuna

    from .training.trainer import HIGHER_IS_BETTER

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
    metric = base.run.early_stop_metric
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"run.early_stop_metric must be one of {sorted(HIGHER_IS_BETTER)}")
    direction = "maximize" if HIGHER_IS_BETTER[metric] else "minimize"
    budget = int(opts.budget_steps or space.budget_steps or base.run.max_steps)
    eval_every = int(opts.eval_every or space.eval_every or max(1, budget // 4))
    if budget < 1 or eval_every < 1:
        raise ConfigError("--budget-steps and --eval-every must be positive")
    if eval_every > budget:
        raise ConfigError(f"--eval-every ({eval_every}) exceeds --budget-steps ({budget}): nothing to prune on")

    out = Path(opts.out) if opts.out else Path("runs") / opts.study
    url = opts.storage or default_storage(out)
    grid = grid_search_space(space, pinned) if opts.sampler == "grid" else None
    if grid is not None and opts.trials is None:
        opts.trials = math.prod(len(v) for v in grid.values())

    with _creation_lock(url):
        storage = open_storage(url, opts.heartbeat, opts.grace, opts.max_retry)
        try:
            storage.get_study_id_from_name(opts.study)
            exists = True
        except KeyError:
            exists = False
        if exists and not opts.resume:
            n = len(optuna.load_study(study_name=opts.study, storage=storage).trials)
            raise SpecdenoiseError(f"study {opts.study!r} already exists in {mask_url(url)} ({n} trials); "
                                   "pass --resume to continue it (or join it as another worker), or choose another --study")
        if not exists:
            stale = sorted(out.glob("trial_*")) if out.is_dir() else []
            if stale and not opts.resume:
                raise SpecdenoiseError(f"{out} already holds trial folders of another study; choose another --out")
        created = not exists
        seed = opts.seed
        if not created:  # another worker or an earlier run: draw different points than it did
            seed = int.from_bytes(hashlib.sha256(
                f"{opts.seed}/{socket.gethostname()}/{os.getpid()}/{time.time_ns()}".encode()).digest()[:4], "little")
        sampler = make_sampler(opts.sampler, seed, grid, opts.startup_trials)
        pruner = make_pruner(opts.pruner, direction, budget, eval_every, opts.pruner_startup, opts.pruner_warmup,
                             opts.prune_threshold)
        try:
            study = optuna.create_study(storage=storage, study_name=opts.study, direction=direction,
                                        sampler=sampler, pruner=pruner, load_if_exists=opts.resume)
        except optuna.exceptions.DuplicatedStudyError:
            raise SpecdenoiseError(f"study {opts.study!r} was just created by another process; pass --resume to join it") from None
    if study.direction.name.lower() != direction:
        raise SpecdenoiseError(f"study {opts.study!r} {study.direction.name.lower()}s, but {metric} calls for {direction}")
    attrs = {"metric": metric, "search_space": str(space.path), "space_digest": space.digest,
             "budget_steps": budget, "eval_every": eval_every, "base_max_steps": base.run.max_steps,
             "overrides": overrides}
    if created:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
    else:
        previous = study.user_attrs
        for key in ("metric", "space_digest", "budget_steps", "eval_every"):
            if key in previous and previous[key] != attrs[key]:
                log(f"warning: study {opts.study!r} was started with {key}={previous[key]!r}, now {attrs[key]!r}")
    out.mkdir(parents=True, exist_ok=True)
    log(f"study {opts.study!r} ({'new' if created else f'resumed, {len(study.trials)} trials so far'}) in "
        f"{mask_url(url)}: {direction} validation {metric}; budget {budget} steps, validation every {eval_every}; "
        f"sampler {opts.sampler} (seed {seed}), pruner {opts.pruner}; {len(space.active_params(pinned))} "
        f"parameter(s), {n_checked} corner configuration(s) checked; trials in {out}")

    objective = _Objective(space, overrides, out, opts.study, budget, eval_every, metric, opts.measure_cost, log)
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
    summary = write_report(study, out, space, url, metric, direction, budget, eval_every, log)
    if interrupted is not None:
        raise interrupted
    if objective.ran and objective.ran == objective.failed:
        raise SpecdenoiseError(f"all {objective.ran} trial(s) of this worker failed; first error: {objective.first_error}")
    return summary


class _Objective:
    def __init__(self, space: SearchSpace, overrides: list[str], out: Path, study_name: str, budget: int,
                 eval_every: int, metric: str, measure_cost: bool, log: Callable[[str], None]):
        self.space, self.overrides, self.out, self.study_name = space, overrides, out, study_name
        self.budget, self.eval_every, self.metric, self.measure_cost, self.log = budget, eval_every, metric, measure_cost, log
        self.ran = self.failed = 0
        self.first_error: str | None = None

    def __call__(self, trial) -> float:
        import optuna

        from .training.trainer import HIGHER_IS_BETTER, train

        self.ran += 1
        name = f"trial_{trial.number:04d}"
        trial_dir = self.out / name
        crashed_dir = trial.user_attrs.get("dir")  # copied from a crashed trial by the retry callback
        try:
            final, _ = resolve_config(self.space, lambda p: p.suggest(trial), self.overrides)
            data = trial_dict(self.space, final, self.overrides, self.budget, self.eval_every, self.study_name, name)
            cfg = build_train_config(data)
        except SpecdenoiseError as exc:
            return self._fail(trial, exc)
        trial.set_user_attr("dir", str(trial_dir.resolve()))
        trial.set_user_attr("config", _json_safe(final))
        resume = self._adopt_checkpoint(trial, crashed_dir, trial_dir)
        higher = HIGHER_IS_BETTER[self.metric]
        seen: list[dict[str, float]] = []

        def report(step: int, metrics: dict[str, float]) -> None:
            seen.append({"step": step, **metrics})
            value = metrics.get(self.metric)
            if value is None or not math.isfinite(value):
                return
            trial.report(float(value), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{self.metric} {value:.4f} at step {step}")

        t0 = time.perf_counter()
        try:
            result = train(cfg, trial_dir, resume=resume, report=report)
        except optuna.TrialPruned:
            self._record(trial, t0, seen, higher, steps=seen[-1]["step"] if seen else 0)
            raise
        except Exception as exc:
            self._record(trial, t0, seen, higher, steps=seen[-1]["step"] if seen else 0)
            return self._fail(trial, exc)
        self._record(trial, t0, result["history"] or seen, higher, steps=result["steps"])
        if result["best"] is None or not math.isfinite(result["best"]):
            return self._fail(trial, SpecdenoiseError(f"no finite validation {self.metric} was measured"))
        if self.measure_cost:
            costs = measure_costs(cfg, result["best_checkpoint"], threads=max(1, cfg.run.threads or 1))
            for key, value in costs.items():
                trial.set_user_attr(key, value)
        return float(result["best"])

    def _fail(self, trial, exc: BaseException):
        self.failed += 1
        message = _one_line(exc)
        self.first_error = self.first_error or message
        trial.set_user_attr("error", message)
        raise exc

    def _adopt_checkpoint(self, trial, crashed_dir: str | None, trial_dir: Path) -> bool:
        """A retry of a crashed trial continues from its last checkpoint when the folder is here."""
        if not crashed_dir or Path(crashed_dir).resolve() == trial_dir.resolve():
            return False
        source = Path(crashed_dir)
        if not (source / "last.pt").is_file() or (trial_dir / "last.pt").exists():
            return False
        trial_dir.mkdir(parents=True, exist_ok=True)
        for name in ("last.pt", "best.pt", "metrics.jsonl"):
            if (source / name).is_file():
                shutil.copy2(source / name, trial_dir / name)
        trial.set_user_attr("resumed_from", str(source))
        self.log(f"trial {trial.number} retries a crashed trial: resuming from {source / 'last.pt'}")
        return True

    def _record(self, trial, t0: float, history: list[dict[str, Any]], higher: bool, steps: int) -> None:
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        trial.set_user_attr("steps", int(steps))
        scored = [h for h in history if h.get(self.metric) is not None and math.isfinite(h[self.metric])]
        if scored:
            best = (max if higher else min)(scored, key=lambda h: h[self.metric])
            trial.set_user_attr("val", {k: float(v) for k, v in best.items() if k != "step"} | {"step": int(best["step"])})


# --------------------------------------------------------------------------------------------
# Report: best.yaml, summary.json, plots
# --------------------------------------------------------------------------------------------

def _trial_row(t) -> dict[str, Any]:
    row = {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
           "steps": t.user_attrs.get("steps"), "seconds": t.user_attrs.get("seconds"),
           "val": t.user_attrs.get("val")}
    for key in ("train_s_per_step", "rtf", "error", "resumed_from", "dir"):
        if key in t.user_attrs:
            row[key] = t.user_attrs[key]
    retried = t.system_attrs.get("failed_trial")
    if retried is not None:
        row["retry_of"] = retried
    return row


def _save_figure(ax, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = ax.figure if hasattr(ax, "figure") else ax
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def write_plots(study, out: Path) -> tuple[dict[str, str | None], list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    plots: dict[str, str | None] = {"history": None, "intermediate": None, "importances": None}
    notes: list[str] = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        jobs = [("history", "optimization_history.png", ovm.plot_optimization_history, 1),
                ("intermediate", "intermediate_values.png", ovm.plot_intermediate_values, 0),
                ("importances", "param_importances.png", ovm.plot_param_importances, 2)]
        for key, filename, fn, need in jobs:
            if len(complete) < need:
                notes.append(f"{key} plot skipped: needs {need} completed trial(s), have {len(complete)}")
                continue
            if key == "intermediate" and not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
                notes.append("intermediate plot skipped: no trial reported a value yet")
                continue
            try:
                _save_figure(fn(study), out / filename)
                plots[key] = filename
            except Exception as exc:  # a plot must never lose the study's results
                notes.append(f"{key} plot skipped: {_one_line(exc)}")
    return plots, notes


def write_report(study, out: Path, space: SearchSpace, url: str, metric: str, direction: str, budget: int,
                 eval_every: int, log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    summary: dict[str, Any] = {
        "study": study.study_name, "storage": mask_url(url), "direction": direction, "metric": metric,
        "search_space": str(space.path), "budget_steps": budget, "eval_every": eval_every, "out": str(out),
        "n_trials": len(trials), "states": states, "best": None, "best_config": None,
    }
    if complete:
        best = study.best_trial
        final = best.user_attrs.get("config")
        if final is None:  # a trial recorded without its config: rebuild it from its parameters
            final, _ = resolve_config(space, lambda p: best.params[p.name], study.user_attrs.get("overrides", []))
        final = copy.deepcopy(final)
        base_steps = study.user_attrs.get("base_max_steps")
        if base_steps:
            set_key(final, "run.max_steps", int(base_steps))
        cfg = build_train_config(final)
        header = (f"# Best trial {best.number} of study {study.study_name!r}: validation {metric} = {best.value:.4f}\n"
                  f"# after {best.user_attrs.get('steps', budget)} of a {budget}-step budget; run.max_steps is the "
                  f"base config's.\n# Train it: specdenoise train --config {out / 'best.yaml'} --out runs/NAME\n")
        atomic_write_text(out / "best.yaml", header + yaml.safe_dump(config_io.to_dict(cfg), sort_keys=False))
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params,
                           "val": best.user_attrs.get("val"), "dir": best.user_attrs.get("dir")}
        summary["best_config"] = str(out / "best.yaml")
    plots, notes = write_plots(study, out)
    summary["plots"] = plots
    summary["notes"] = notes
    summary["trials"] = [_trial_row(t) for t in trials]
    atomic_write_json(out / "summary.json", _json_safe(summary))
    for line in format_summary(summary):
        log(line)
    return summary


def format_summary(summary: dict[str, Any], top: int = 10) -> list[str]:
    states = summary["states"]
    counts = ", ".join(f"{n} {s.lower()}" for s, n in states.items() if n)
    lines = [f"study {summary['study']!r}: {summary['n_trials']} trial(s) ({counts or 'none'})"]
    metric = summary["metric"]
    rows = [r for r in summary["trials"] if r["value"] is not None]
    sign = -1 if summary["direction"] == "maximize" else 1
    rows.sort(key=lambda r: (r["state"] != "COMPLETE", sign * r["value"]))  # pruned: value when stopped
    if rows:
        lines.append(f"  {'trial':>5}  {'state':<8}  {metric:>8}  {'steps':>5}  params")
        for r in rows[:top]:
            params = ", ".join(f"{k}={_short(v)}" for k, v in r["params"].items())
            lines.append(f"  {r['number']:>5}  {r['state'].lower():<8}  {r['value']:>8.4f}  {r['steps'] or '':>5}  {params}")
    best = summary["best"]
    if best:
        lines.append(f"best trial {best['number']}: {metric} = {best['value']:.4f}; "
                     f"train it with: specdenoise train --config {summary['best_config']} --out runs/NAME")
    else:
        lines.append("no completed trial yet: best.yaml not written")
    written = [p for p in summary["plots"].values() if p]
    lines.append(f"summary.json{' and ' + ', '.join(written) if written else ''} written in {summary['out']}")
    for note in summary["notes"]:
        lines.append(f"  ({note})")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
