"""``specdenoise synth``: build a noisy-speech corpus from speech, noise and room-response folders."""
from __future__ import annotations

import os

HELP = "build a noisy-speech corpus (MS-SNSD style) with leak-free train/validation/test splits"


def add_arguments(parser) -> None:
    parser.add_argument("--speech", nargs="+", default=[], metavar="DIR", help="clean speech folders")
    parser.add_argument("--noise", nargs="+", default=[], metavar="DIR", help="noise folders")
    parser.add_argument("--rir", nargs="+", default=[], metavar="DIR", help="room impulse response folders")
    parser.add_argument("--msnsd", metavar="ROOT", help="read an MS-SNSD tree (clean_train/, noise_test/, ...)")
    parser.add_argument("--out", required=True, metavar="CORPUS", help="output corpus folder")
    parser.add_argument("--hours", type=float, help="total hours (default: as much as the speech holds)")
    parser.add_argument("--proportions", type=float, nargs=3, default=(8.0, 4.0, 4.0),
                        metavar=("TRAIN", "VAL", "TEST"), help="split proportions (default 8 4 4)")
    parser.add_argument("--clip-seconds", type=float, default=8.0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--snr-range", type=float, nargs=2, metavar=("LO", "HI"), help="SNR range in dB (default -5 20)")
    parser.add_argument("--snr-preset", choices=["default", "challenging"], help="'challenging' is 0.1-0.5 dB")
    parser.add_argument("--level-range", type=float, nargs=2, default=(-35.0, -15.0), metavar=("LO", "HI"),
                        help="mixture level range in dBFS")
    parser.add_argument("--rir-probability", type=float, default=0.3, help="share of clips with a room response")
    parser.add_argument("--dry-target", action="store_true", help="target is the dry speech (dereverberate too)")
    parser.add_argument("--babble-probability", type=float, default=0.1, help="share of clips with derived babble")
    parser.add_argument("--simulate-rir", type=int, default=0, metavar="N", help="add N pyroomacoustics room responses")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--force", action="store_true", help="replace an existing corpus")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from ..data.corpus import SynthConfig, synthesize
    from ..data.mixing import SNR_PRESETS, MixConfig

    snr = tuple(args.snr_range) if args.snr_range else SNR_PRESETS[args.snr_preset or "default"]
    mix = MixConfig(sample_rate=args.sample_rate, clip_seconds=args.clip_seconds, snr_range=snr,
                    level_range_dbfs=tuple(args.level_range), rir_probability=args.rir_probability,
                    dry_target=args.dry_target, babble_probability=args.babble_probability)
    cfg = SynthConfig(speech_dirs=args.speech, noise_dirs=args.noise, rir_dirs=args.rir,
                      msnsd_root=args.msnsd, hours=args.hours, proportions=tuple(args.proportions),
                      simulate_rir=args.simulate_rir, seed=args.seed, mix=mix)
    summary = synthesize(cfg, args.out, workers=args.workers, force=args.force, progress=not args.no_progress)
    clips = summary["clips"]
    print(f"wrote {sum(clips.values())} clips ({summary['hours']:.2f} h) to {args.out}: "
          + ", ".join(f"{k} {v}" for k, v in clips.items()))
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} source file(s):")
        for line in summary["skipped"]:
            print(f"  {line}")
    return 0
