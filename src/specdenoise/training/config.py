"""The training configuration: typed sections, loaded from YAML (configs/*.yaml) + overrides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.mixing import MixConfig
from .losses import LossConfig


@dataclass
class DataConfig:
    path: str = ""  # a PREPROCESSED cache or a synthesized corpus ("" with dynamic sources only)
    dynamic_mix: bool = False  # train on a fresh mixture per example from raw sources
    speech: list[str] = field(default_factory=list)  # raw sources for dynamic mixing
    noise: list[str] = field(default_factory=list)
    rir: list[str] = field(default_factory=list)
    split_seed: int = 0  # seeds the speaker/noise split of raw sources
    examples_per_epoch: int = 2000  # dynamic mixing: examples per epoch
    crop_seconds: float = 2.0
    batch_size: int = 8
    num_workers: int = 0
    merge_train_validation: bool = False  # final fit on train+validation
    val_clips: int = 32  # validation clips used (0 = all)
    simulated_rirs: int = 0  # dynamic mixing: add this many pyroomacoustics rooms to the training rooms
    simulated_rir_t60: tuple[float, float] = (0.1, 1.0)  # their reverberation times (s)
    exclude_noise_categories: list[str] = field(default_factory=list)  # never trained on (held out)
    mix: MixConfig = field(default_factory=MixConfig)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 200
    schedule: str = "cosine"  # cosine | plateau | constant
    min_lr_ratio: float = 0.05
    plateau_patience: int = 3  # evaluations without improvement before the LR halves
    grad_clip: float = 5.0


@dataclass
class RunConfig:
    max_steps: int = 5000
    eval_every: int = 500  # steps between validations (and checkpoints)
    log_every: int = 20
    patience: int = 0  # evaluations without improvement before stopping (0 = never)
    early_stop_metric: str = "si_sdr"  # si_sdr | pesq | stoi | loss
    pesq_stoi_clips: int = 4  # validation clips scored with PESQ and STOI
    media_every: int = 2  # evaluations between audio / spectrogram logging
    seed: int = 0
    threads: int = 0  # torch.set_num_threads (0 = leave default)
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = False  # bf16 autocast (fast only on CPUs with native bf16, and on GPUs)
    channels_last: bool = True
    progress: bool = True
    init_from: str = ""  # "default" (the shipped model) or a checkpoint: fine-tune from its weights


@dataclass
class TrackingConfig:
    tracker: str = "wandb"  # wandb | none
    project: str = "specdenoise"
    group: str | None = None
    name: str | None = None


@dataclass
class TrainConfig:
    model: dict[str, Any] = field(default_factory=lambda: {"name": "unet"})
    stft: dict[str, Any] = field(default_factory=lambda: {"n_fft": 512, "hop_length": 128, "window": "hann"})
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def check_ranges(cfg: TrainConfig) -> None:
    """Refuse values that crash late (batch_size 0 divided by zero after the run folder existed),
    end at once with success (max_steps -5) or exhaust the machine (threads 100000 segfaulted),
    before anything is written. Model sizes are checked by the models themselves."""
    import math
    import os

    from ..errors import ConfigError

    cpus = os.cpu_count() or 1
    whole = [("data.batch_size", cfg.data.batch_size, 1, 65536), ("run.max_steps", cfg.run.max_steps, 1, 10**9),
             ("run.eval_every", cfg.run.eval_every, 1, 10**9), ("run.log_every", cfg.run.log_every, 1, 10**9),
             ("run.threads", cfg.run.threads, 0, 4 * cpus), ("data.num_workers", cfg.data.num_workers, 0, 4 * cpus),
             ("data.val_clips", cfg.data.val_clips, 0, 10**7), ("data.examples_per_epoch", cfg.data.examples_per_epoch, 1, 10**9),
             ("run.patience", cfg.run.patience, 0, 10**9), ("optim.warmup_steps", cfg.optim.warmup_steps, 0, 10**9),
             ("run.pesq_stoi_clips", cfg.run.pesq_stoi_clips, 0, 10**6), ("run.media_every", cfg.run.media_every, 0, 10**9)]
    for key, value, lo, hi in whole:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            why = f" (4 x the {cpus} CPUs)" if key in ("run.threads", "data.num_workers") else ""
            raise ConfigError(f"{key} must be a whole number from {lo} to {hi}{why}, got {value!r}")
    real = [("data.crop_seconds", cfg.data.crop_seconds, 0.0, 600.0, False), ("optim.lr", cfg.optim.lr, 0.0, 10.0, False),
            ("optim.weight_decay", cfg.optim.weight_decay, 0.0, 10.0, True),
            ("optim.grad_clip", cfg.optim.grad_clip, 0.0, 1e9, True), ("optim.min_lr_ratio", cfg.optim.min_lr_ratio, 0.0, 1.0, True)]
    for key, value, lo, hi, lo_ok in real:
        if not math.isfinite(value) or not (lo <= value if lo_ok else lo < value) or value > hi:
            raise ConfigError(f"{key} must lie in {'[' if lo_ok else '('}{lo}, {hi}], got {value!r}")
