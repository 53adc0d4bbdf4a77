"""Evaluation: score our models against reference denoisers on clean/noisy test pairs.

``evaluate(data, systems, out_dir)`` runs everything and writes the report (``discover_noisy``
makes a dataset of recordings without references, scored with non-intrusive metrics only);
``build_systems(models, baselines)`` makes the ``(name, callable)`` list it takes. Heavy
packages (torch, the peers, onnxruntime) load only when a system or metric needs them.
"""
from __future__ import annotations

from .data import EVAL_RATE, METRICS, NO_REFERENCE_METRICS, Dataset, EvaluationResult, Pair, Row, snr_bucket
from .discover import discover, discover_noisy
from .evaluate import evaluate, score
from .peers import BASELINES, build_systems, make_baseline, parse_baselines

__all__ = [
    "BASELINES",
    "EVAL_RATE",
    "METRICS",
    "NO_REFERENCE_METRICS",
    "Dataset",
    "EvaluationResult",
    "Pair",
    "Row",
    "build_systems",
    "discover",
    "discover_noisy",
    "evaluate",
    "make_baseline",
    "parse_baselines",
    "score",
    "snr_bucket",
]
