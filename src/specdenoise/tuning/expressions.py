"""``derived`` expressions: a tiny, safe arithmetic evaluator (no ``eval``; bounded magnitude and
length, so a search space can never hang or exhaust the machine)."""
from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable

from ..errors import ConfigError


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


def parse_expression(expr: str, where: str) -> ast.Expression:
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
    tree = parse_expression(expr, where)

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
