"""Evaluation: score our models against reference denoisers on clean/noisy test pairs.

``evaluate(data, systems, out_dir)`` runs everything and writes the report;
``build_systems(models, baselines)`` makes the ``(name, callable)`` list it takes. Heavy
packages (torch, the peers, onnxruntime) load only when a system or metric needs them.
"""
from __future__ import annotations

from .evaluate import EVAL_RATE, METRICS, Dataset, EvaluationResult, Pair, Row, discover, evaluate, score, snr_bucket
from .peers import BASELINES, build_systems, make_baseline, parse_baselines

__all__ = [
    "BASELINES",
    "EVAL_RATE",
    "METRICS",
    "Dataset",
    "EvaluationResult",
    "Pair",
    "Row",
    "build_systems",
    "discover",
    "evaluate",
    "make_baseline",
    "parse_baselines",
    "score",
    "snr_bucket",
]
