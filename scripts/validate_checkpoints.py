"""Score checkpoints side by side on fixed validation mixtures (never the test split).

    python scripts/validate_checkpoints.py --clips 64 default runs/x/best.pt
    python scripts/validate_checkpoints.py --clips 40 --categories electrical_hum,refrigerator_hum default runs/x/best.pt

The mixtures are the trainer's own validation mixtures (``validate()`` on the validation split's
sources, configs/crn.yaml, PESQ-WB and STOI on every clip), made *without* the procedural
synthetic noise so numbers stay comparable across model versions. ``--categories`` keeps only
the validation noise files of those categories (recorded noise alone: no babble, no second
source), to look at one kind of noise. Extra ``key=value`` overrides go after ``--set``.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from specdenoise.config import load
from specdenoise.data.datasets import DynamicMixDataset
from specdenoise.data.mixing import Mixer, Pools
from specdenoise.enhance import pretrained_path
from specdenoise.models.registry import model_from_checkpoint
from specdenoise.training.config import TrainConfig
from specdenoise.training.trainer import build_datasets, dynamic_mix_pools, validate, validation_mix

ROOT = Path(__file__).resolve().parents[1]


def only_categories(pools: Pools, categories: set[str]) -> Pools:
    keep = [i for i, c in enumerate(pools.noise_categories) if c in categories]
    if not keep:
        raise SystemExit(f"no validation noise file in categories {sorted(categories)}")
    return replace(pools, noise=[pools.noise[i] for i in keep], noise_names=[pools.noise_names[i] for i in keep],
                   noise_categories=[pools.noise_categories[i] for i in keep])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="shipped model names (default, unet) or .pt files")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--categories", help="comma-separated noise categories of the validation split")
    parser.add_argument("--config", default=str(ROOT / "configs" / "crn.yaml"))
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = [f"data.val_clips={args.clips}", f"run.pesq_stoi_clips={args.clips}",
                 "data.mix.synthetic_noise_probability=0"] + args.set
    if args.categories:
        overrides += ["data.mix.babble_probability=0", "data.mix.noise2_probability=0"]
    cfg = load(TrainConfig, args.config, overrides)
    val = None
    for name in args.checkpoints:
        model = model_from_checkpoint(name if name.endswith(".pt") else pretrained_path(name))
        if val is None:
            if args.categories:
                _, pools, mix = dynamic_mix_pools(cfg, model.sample_rate)
                pools = only_categories(pools, set(args.categories.split(",")))
                print("noise files:", ", ".join(pools.noise_names))
                clip_samples = int(round(mix.clip_seconds * model.sample_rate))
                val = DynamicMixDataset(Mixer(pools, validation_mix(mix)), args.clips, clip_samples,
                                        seed=10_000 + cfg.data.split_seed)
            else:
                _, val = build_datasets(cfg, model.stft_config, model.sample_rate)
        with torch.no_grad():
            metrics, _ = validate(model, val, cfg, torch.device("cpu"))
        print(name, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)


if __name__ == "__main__":
    main()
