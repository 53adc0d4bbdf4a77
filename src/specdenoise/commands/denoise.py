"""``specdenoise denoise``: clean speech out of any recordings, files or folders."""
from __future__ import annotations

HELP = "denoise audio files or folders with the shipped model or a checkpoint"


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files (WAV/FLAC/OGG) or folders (recursive)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT",
                        help="output folder (the input tree is kept), or a file name for a single input file")
    parser.add_argument("--model", default="default", help="'default' (shipped) or a checkpoint path")
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
    import sys
    from pathlib import Path

    import torch

    from ..audio import is_audio_file
    from ..enhance import Denoiser, denoise_file, iter_inputs
    from ..errors import ConfigError, SpecdenoiseError

    if args.threads < 0:
        raise ConfigError(f"--threads must be 0 (torch's default) or more, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    strength = (Denoiser.attenuation_to_strength(args.atten_limit_db) if args.atten_limit_db is not None
                else args.strength)
    kwargs = {"strength": strength, "chunk_seconds": args.chunk_seconds, "threads": args.threads or None}
    out = Path(args.out)
    single = len(args.inputs) == 1 and not Path(args.inputs[0]).is_dir() and is_audio_file(out)
    if is_audio_file(out) and not single:
        raise ConfigError(f"-o {out} names a file, but the inputs are several files or a folder: give a folder")
    for item in args.inputs:
        if not single and Path(item).is_dir() and Path(item).resolve() == out.resolve():
            raise ConfigError(f"-o {out} is the input folder {item}: the outputs would replace the inputs")
    jobs = list(iter_inputs(args.inputs, exclude=None if single else out))
    if not jobs:
        raise SpecdenoiseError(f"no audio files found in {', '.join(args.inputs)}")
    denoiser = (Denoiser.from_pretrained(**kwargs) if args.model == "default"
                else Denoiser.from_checkpoint(args.model, **kwargs))
    from tqdm import tqdm

    failures = 0
    show = not args.no_progress and sys.stderr.isatty()
    claimed: dict[Path, Path] = {}
    for source, rel in tqdm(jobs, desc="denoise", unit="file", disable=not show or len(jobs) == 1):
        if not single and not is_audio_file(rel):  # an explicitly named file of another type
            rel = rel.with_suffix(".wav")
        target = out if single else out / rel
        key = target.resolve()
        if key in claimed:  # two inputs with one name (a/x.wav b/x.wav -o OUT): never clobber
            failures += 1
            print(f"specdenoise denoise: skipped {source}: its output {target} is also the output of "
                  f"{claimed[key]}", file=sys.stderr)
            continue
        claimed[key] = source
        try:
            result = denoise_file(denoiser, source, target, mono=args.mono, force=args.force,
                                  progress=show and len(jobs) == 1)
        except SpecdenoiseError as exc:
            failures += 1
            print(f"specdenoise denoise: skipped {exc}", file=sys.stderr)
            continue
        except Exception as exc:  # one broken file must not stop the batch
            failures += 1
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            print(f"specdenoise denoise: skipped {source}: {type(exc).__name__}: {reason}", file=sys.stderr)
            continue
        print(f"{result.source} -> {result.target} ({result.duration:.1f} s audio in {result.seconds:.1f} s)")
    if failures:
        print(f"specdenoise denoise: {failures} of {len(jobs)} file(s) failed", file=sys.stderr)
        return 1
    return 0
