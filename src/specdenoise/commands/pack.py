"""``specdenoise pack``: write the dynamic-mixing pools of a training config as a training pack."""
from __future__ import annotations

HELP = "write a training config's dynamic-mixing pools (speech, noise, rooms) as a pack for data.pack"


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, metavar="YAML", help="a training config with data.dynamic_mix")
    parser.add_argument("--out", required=True, metavar="PACK_DIR", help="folder to write (pack.json + audio)")
    parser.add_argument("--codec", choices=["flac", "opus"], default="flac",
                        help="flac: lossless (default); opus: about 4x smaller, lossy (PESQ-WB ~4.45 at the default quality)")
    parser.add_argument("--speech-quality", type=float, default=0.8, metavar="Q",
                        help="Opus compression level of speech, 0 (best) .. 1 (smallest); default 0.8 = ~57 kbit/s")
    parser.add_argument("--noise-quality", type=float, default=0.8, metavar="Q",
                        help="the same for noise (default 0.8); at 0.9 (~28 kbit/s) hums lost their harmonic fine "
                             "structure and a model trained on them stopped removing a buzzing hum (docs/MODEL_CARD.md)")
    parser.add_argument("--max-validation-seconds", type=float, default=0.0, metavar="S",
                        help="cap the validation speech (and noise) at about S seconds each (0 = all)")
    parser.add_argument("--force", action="store_true", help="replace an existing pack")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.simulated_rirs=100")


def run(args) -> int:
    import shutil
    from pathlib import Path

    from .. import __version__
    from .. import config as config_io
    from ..data.packs import limit_pools, write_pack
    from ..errors import ConfigError, shown
    from ..training.config import TrainConfig, build_model
    from ..training.trainer import dynamic_mix_pools

    for name in ("speech_quality", "noise_quality"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(args, name)}")
    cfg = config_io.load(TrainConfig, args.config, list(args.overrides))
    if not cfg.data.dynamic_mix or cfg.data.pack:
        raise ConfigError(f"{args.config}: a pack is written from data.dynamic_mix source folders (and without data.pack)")
    out = Path(args.out)
    if out.exists():
        if not (out / "pack.json").exists():
            raise ConfigError(f"{shown(out)}: exists and is not a training pack; choose another --out")
        if not args.force:
            raise ConfigError(f"{shown(out)}: pack exists (use --force to replace it)")
        shutil.rmtree(out)
    sample_rate = build_model(cfg).sample_rate
    train, val, _ = dynamic_mix_pools(cfg, sample_rate)
    if args.max_validation_seconds:
        val = limit_pools(val, args.max_validation_seconds, args.max_validation_seconds, sample_rate, cfg.data.split_seed)
    d = cfg.data
    provenance = {"specdenoise": __version__, "config": str(args.config), "speech": d.speech, "noise": d.noise,
                  "rir": d.rir, "split_seed": d.split_seed, "exclude_noise_categories": d.exclude_noise_categories,
                  "simulated_rirs": d.simulated_rirs, "simulated_rir_t60": list(d.simulated_rir_t60),
                  "speech_min_bak": d.speech_min_bak, "speech_min_sig": d.speech_min_sig,
                  "max_validation_seconds": args.max_validation_seconds}
    write_pack(out, {"train": train, "validation": val}, sample_rate, provenance, args.codec,
               args.speech_quality, args.noise_quality)
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    for split, pools in (("train", train), ("validation", val)):
        print(f"{split}: {sum(map(len, pools.speech)) / sample_rate / 60:.1f} min speech in {len(pools.speech_groups)} groups, "
              f"{sum(map(len, pools.noise)) / sample_rate / 60:.1f} min noise in {len(set(pools.noise_categories))} categories, "
              f"{len(pools.rirs)} rooms")
    print(f"{shown(out)}: {args.codec} pack, {size:.1f} MiB; train with data.pack={shown(out)}")
    return 0
