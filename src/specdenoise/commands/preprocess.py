"""``specdenoise preprocess``: cache STFT spectrograms of a corpus for training and tuning."""
from __future__ import annotations

HELP = "compute spectrograms of a corpus once and cache them under PREPROCESSED/{split}"


def add_arguments(parser) -> None:
    parser.add_argument("corpus", metavar="CORPUS", help="a corpus made by `specdenoise synth`")
    parser.add_argument("--out", required=True, metavar="PREPROCESSED")
    # Defaults live in specdenoise.stft.StftConfig alone (None here = "not given"); training on
    # the cache then takes its STFT from the cache's stft.json.
    parser.add_argument("--n-fft", type=int, default=None, help="FFT size in samples (default: StftConfig's)")
    parser.add_argument("--hop", type=int, default=None, help="hop length in samples (default: StftConfig's)")
    parser.add_argument("--win", type=int, default=None, help="window length in samples (default n_fft)")
    parser.add_argument("--window", default=None, help="hann, hamming, blackman or sqrt_hann (default: StftConfig's)")
    parser.add_argument("--merge-train-validation", action="store_true",
                        help="also write a merged 'train+validation' split for the final fit")
    parser.add_argument("--force", action="store_true", help="rebuild a cache made with other settings")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from ..preprocess import preprocess
    from ..stft import StftConfig

    given = {"n_fft": args.n_fft, "hop_length": args.hop, "win_length": args.win, "window": args.window}
    config = StftConfig(**{k: v for k, v in given.items() if v is not None})
    info = preprocess(args.corpus, args.out, config, merge_train_validation=args.merge_train_validation,
                      force=args.force, progress=not args.no_progress)
    print(f"cached {', '.join(info['splits'])} with STFT {info['stft']} at {args.out}")
    return 0
