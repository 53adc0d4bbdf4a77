"""`specdenoise demo` (placeholder until implemented)."""
from __future__ import annotations

HELP = "demo (not implemented yet)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from ..cli import not_implemented

    return not_implemented("demo")
