"""``specdenoise denoise``: clean speech out of any recordings, files or folders."""
from __future__ import annotations

HELP = "denoise audio files or folders with the shipped model or a checkpoint"


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files (WAV/FLAC/OGG) or folders (recursive)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT",
                        help="output folder (the input tree is kept), or a file name for a single input file")
    parser.add_argument("--model", default="default", help="a shipped model (default = the CRN with 16 ms look-ahead, realtime = the strictly causal CRN, unet = the previous U-Net) or a checkpoint path")
    strength = parser.add_mutually_exclusive_group()
    strength.add_argument("--strength", type=float, default=1.0, help="0..1: how much noise to remove (1 = all)")
    strength.add_argument("--atten-limit-db", type=float, help="cap the noise attenuation at this many dB (instead of --strength)")
    parser.add_argument("--mono", action="store_true", help="mix channels down to mono")
    parser.add_argument("--force", action="store_true", help="replace existing outputs (never inputs)")
    parser.add_argument("--chunk-seconds", type=float, default=10.0,
                        help="processing chunk in seconds (bounds memory; the output does not depend on it)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import os
    import sys

    import torch

    from ..enhance import Denoiser, plan_batch, run_batch
    from ..errors import ConfigError, shown

    cpus = os.cpu_count() or 1
    if not 0 <= args.threads <= 4 * cpus:
        raise ConfigError(f"--threads must be 0 (torch's default) to {4 * cpus} (4 x the {cpus} CPUs), got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    strength = (Denoiser.attenuation_to_strength(args.atten_limit_db) if args.atten_limit_db is not None
                else args.strength)
    kwargs = {"strength": strength, "chunk_seconds": args.chunk_seconds, "threads": args.threads or None}
    jobs = plan_batch(args.inputs, args.out)  # every output decided before anything is written
    denoiser = Denoiser.load(args.model, **kwargs)
    from tqdm import tqdm

    failures = 0
    show = not args.no_progress and sys.stderr.isatty()
    bar = tqdm(jobs, desc="denoise", unit="file", disable=not show or len(jobs) == 1)
    for outcome in run_batch(denoiser, bar, mono=args.mono, force=args.force, progress=show and len(jobs) == 1):
        if outcome.problem is not None:
            failures += 1
            print(f"specdenoise denoise: skipped {outcome.problem}", file=sys.stderr)
            continue
        result = outcome.result
        print(f"{shown(result.source)} -> {shown(result.target)} ({result.duration:.1f} s audio in {result.seconds:.1f} s)")
    if failures:
        if len(jobs) > 1:  # one file: its own line says it all
            print(f"specdenoise denoise: {failures} of {len(jobs)} file(s) failed", file=sys.stderr)
        return 1
    return 0
