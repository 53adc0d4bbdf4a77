"""`specdenoise evaluate`: score models and reference denoisers on clean/noisy test pairs."""
from __future__ import annotations

HELP = "score models and baselines (PESQ, STOI, ESTOI, SI-SDR, DNSMOS, RTF) on clean/noisy pairs"

BASELINE_NAMES = "noisy,noisereduce,logmmse,rnnoise,deepfilternet3"


def add_arguments(parser) -> None:
    parser.add_argument(
        "data",
        metavar="DATA",
        help="folder with noisy/ and clean/ holding same-named files (a synth split, optionally with meta.csv), "
        "or VoiceBank-DEMAND's noisy_testset_wav/ and clean_testset_wav/",
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
        "pip install 'specdenoise[peers]' (default: noisy)",
    )
    parser.add_argument("--out", required=True, metavar="REPORT_DIR", help="folder for per_file.csv, metrics.json, report.md, comparison.png (replaced if present)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N files (sorted by name)")
    parser.add_argument("--workers", type=int, default=None, metavar="N", help="processes computing metrics (default: min(2, CPUs))")


def run(args) -> int:
    import sys

    from ..errors import SpecdenoiseError
    from ..evaluation import build_systems, discover, evaluate, parse_baselines
    from ..evaluation.report import markdown_table

    if args.workers is not None and args.workers < 1:
        raise SpecdenoiseError(f"--workers must be at least 1, got {args.workers}")
    dataset = discover(args.data, args.limit)  # cheap: fail on bad data before loading any model
    models = [m for m in (args.model or ["default"]) if m.strip().lower() != "none"]
    systems = build_systems(models, parse_baselines(args.baselines))

    def log(message: str) -> None:
        print(f"evaluate: {message}", file=sys.stderr, flush=True)

    result = evaluate(dataset, systems, args.out, workers=args.workers, log=log)
    print(markdown_table(result.summary))
    failed = sum(entry["n_failed"] for entry in result.summary.values())
    if failed:
        log(f"{failed} system/file result(s) failed and were left out of the means; see {result.files['per_file']}")
    log(f"report written to {args.out}")
    if all(entry["n_files"] == 0 for entry in result.summary.values()):
        raise SpecdenoiseError(f"no file could be scored by any system; see {result.files['per_file']}")
    return 0
