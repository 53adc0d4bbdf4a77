"""Scoring speed of ``specdenoise evaluate``: clips scored per minute with N worker processes.

    nice -n 19 .venv/bin/python bench/scoring_speed.py SPLIT --clips 12 --workers 2

SPLIT is a folder with noisy/ and clean/ (e.g. a test split made by ``specdenoise synth``, 8-s
clips). The run evaluates the ``noisy`` system (the input itself, so enhancement costs nothing
and the number is the scoring alone: PESQ-WB, STOI, ESTOI, SI-SDR, DNSMOS P.835 for each clip)
and reads the scoring phase's wall time from the evaluation's log. Scoring cost per clip does not
depend on which system made the estimate, so a whole evaluation's scoring time is about
``clips x systems / (clips per minute)`` minutes.

The machine is shared, so wall time depends on what else runs. The script also reads the CPU time
the scoring worker processes used (``RUSAGE_CHILDREN``, collected when the pool shuts down;
includes each worker's start-up) and reports ``cpu_clips_per_minute`` = clips per minute that
``--workers`` processes would score with a free core each: a load-independent figure.

``--per-metric`` instead times each metric in this process on the first ``--clips`` clips
(CPU time, median over clips), including DNSMOS both ways (``shared=False`` is the reference's
per-window computation, what older versions ran).

To measure an older version for comparison, put its source first on the path (the worker
processes inherit it)::

    git archive COMMIT src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/src nice -n 19 .venv/bin/python bench/scoring_speed.py SPLIT ...
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", type=Path)
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--per-metric", action="store_true", help="CPU seconds per metric and clip, in this process")
    args = parser.parse_args()
    if args.per_metric:
        per_metric(args.split, args.clips)
        return

    import specdenoise
    from specdenoise.evaluation import evaluate, make_baseline

    source = Path(specdenoise.__file__).resolve().parents[1]
    for repeat in range(args.repeats):
        lines: list[str] = []
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            result = evaluate(args.split, [("noisy", make_baseline("noisy"))], out, limit=args.clips, workers=args.workers, log=lines.append)
            total = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        scoring = next(float(m.group(1)) for line in lines if (m := re.match(r"scoring done in ([0-9.]+) s", line)))
        scored = sum(1 for row in result.rows if row.ok)
        seconds_audio = sum(row.duration_s for row in result.rows)
        print(json.dumps({
            "source": str(source),
            "repeat": repeat,
            "clips": len(result.rows),
            "scored": scored,
            "audio_s": round(seconds_audio, 1),
            "workers": args.workers,
            "scoring_s": scoring,
            "total_s": round(total, 1),
            "clips_per_minute": round(60 * scored / scoring, 1),
            "worker_cpu_s": round(cpu, 1),
            "cpu_clips_per_minute": round(args.workers * 60 * scored / cpu, 1) if cpu > 0 else None,
        }), flush=True)


def per_metric(split: Path, clips: int) -> None:
    import statistics

    from specdenoise import audio, metrics
    from specdenoise.evaluation import discover

    pairs = discover(split, clips).pairs
    timings: dict[str, list[float]] = {}
    for index, pair in enumerate(pairs):
        clean, _ = audio.read(pair.clean, sample_rate=16000)
        noisy, _ = audio.read(pair.noisy, sample_rate=16000)
        runs = {
            "pesq_wb": lambda: metrics.pesq_wb(clean, noisy),
            "stoi": lambda: metrics.stoi(clean, noisy),
            "estoi": lambda: metrics.stoi(clean, noisy, extended=True),
            "si_sdr": lambda: metrics.si_sdr(clean, noisy),
            "dnsmos (shared windows)": lambda: metrics.dnsmos(noisy),
            "dnsmos (per window, reference)": lambda: metrics.dnsmos(noisy, shared=False),
            "dnsmos p808 extra": lambda: metrics.dnsmos(noisy, p808=True),
        }
        for name, run in runs.items():
            if index == 0:
                run()  # warm-up: imports, ONNX sessions
            start = time.process_time()
            run()
            timings.setdefault(name, []).append(time.process_time() - start)
    shared = statistics.median(timings["dnsmos (shared windows)"])
    for name, values in timings.items():
        value = statistics.median(values) - (shared if name == "dnsmos p808 extra" else 0.0)
        print(json.dumps({"metric": name, "clips": len(values), "cpu_s_median": round(value, 3)}), flush=True)


if __name__ == "__main__":
    main()
