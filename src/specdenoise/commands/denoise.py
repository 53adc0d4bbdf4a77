"""`specdenoise denoise` (placeholder until implemented)."""
from __future__ import annotations

HELP = "denoise (not implemented yet)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from ..cli import not_implemented

    return not_implemented("denoise")
