"""The search space: the YAML schema (see the package docstring), its parsing and checks, and
the dotted-key helpers every other room uses on plain config dicts."""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import read_yaml_mapping
from ..errors import ConfigError
from .expressions import parse_expression


SPACE_KEYS = ("description", "base_config", "fixed", "tuning_only", "budget", "params", "derived")
PARAM_TYPES = ("float", "int", "categorical")
PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "when"}
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
    data = read_yaml_mapping(path, "search-space file", "a mapping with base_config and params")
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
        parse_expression(str(expr), f"{path}: derived.{key}")
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
