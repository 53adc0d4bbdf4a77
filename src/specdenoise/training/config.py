"""The training configuration: typed sections, loaded from YAML (configs/*.yaml) + overrides.

Every key is checked when the config is loaded, before any folder, dataset or W&B run exists: an
unknown key (``stft.nfft=1024``) or a value outside an enumeration (``optim.schedule=cosin``) is
one ConfigError naming it. The model section is checked against the named family's constructor,
so each family keeps its own arguments without a second list of them here.
"""
from __future__ import annotations

import inspect
import json
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from ..data.mixing import MixConfig
from ..errors import ConfigError
from ..stft import WINDOWS, StftConfig
from .losses import LossConfig

Schedule = Literal["cosine", "plateau", "constant"]
Device = Literal["auto", "cpu", "cuda"]
Tracker = Literal["wandb", "none"]
EarlyStopMetric = Literal["si_sdr", "pesq", "stoi", "loss"]
# Arguments every spectral-mask family shares whose values form an enumeration (models/base.py
# checks them too, but only once the model is built, after the datasets were).
_MODEL_ENUMS = {"feature": Literal["log", "log1p", "power"], "mask": Literal["magnitude", "complex"]}


@dataclass
class StftSection:
    """The STFT as a config gives it; ``None`` means "not given".

    A key not given comes from the preprocessed cache's ``stft.json`` when training on one, else
    from :class:`~specdenoise.stft.StftConfig`'s defaults (its own, the only place they are
    written). A key given that differs from the cache is an error, never silently one or the other.
    """

    n_fft: int | None = None
    hop_length: int | None = None
    win_length: int | None = None
    window: Literal[WINDOWS] | None = None  # type: ignore[valid-type]
    center: bool | None = None

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def resolve(self, cache: dict[str, Any] | None = None, where: str = "the cache") -> StftConfig:
        """The StftConfig to train with; ``cache`` is the ``stft`` entry of a cache's stft.json."""
        given = self.given()
        if cache is None:
            return StftConfig.from_dict(given)
        ours = StftConfig.from_dict({**cache, **given})
        theirs = StftConfig.from_dict(cache)
        for key, value in given.items():
            if getattr(ours, key) != getattr(theirs, key):
                raise ConfigError(f"stft.{key}={value!r} conflicts with {where} ({getattr(theirs, key)!r}); "
                                  "leave stft out (or pass stft=null) to train with the cache's STFT")
        if ours != theirs:  # e.g. n_fft given equal, win_length left to follow it
            raise ConfigError(f"stft {given} conflicts with {where} ({theirs.to_dict()}); "
                              "leave stft out (or pass stft=null) to train with the cache's STFT")
        return theirs


@dataclass
class ModelConfig:
    """The model family and its constructor arguments, flat in YAML: ``model: {name: crn, channels: 48}``.

    The keys a family accepts are its class's constructor arguments (found through the registry),
    so a typo such as ``model.chanels`` is refused at load time; values are checked against the
    constructor's annotations. The STFT is not a model key: it has its own section.
    """

    name: str = "unet"
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..config import coerce
        from ..models.registry import available, model_class

        if not isinstance(self.name, str):
            raise ConfigError(f"model.name must be one of {available()}, got {self.name!r}")
        cls = model_class(self.name)
        params = inspect.signature(cls.__init__).parameters
        known = [p for p in params if p not in ("self", "stft")]
        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # an annotation this Python cannot evaluate: keys are still checked
            hints = {}
        args = {}
        for key, value in self.args.items():
            if key == "stft":
                raise ConfigError("model.stft: the STFT is its own section (stft.n_fft, stft.hop_length, ...)")
            if key not in known:
                raise ConfigError(f"unknown config key 'model.{key}' for model {self.name!r}; known: {sorted(known)}")
            hint = _MODEL_ENUMS.get(key, hints.get(key, Any))
            args[key] = _plain(coerce(value, hint, f"model.{key}"))
        self.args = args

    @classmethod
    def from_config(cls, data: dict[str, Any], where: str = "model.") -> "ModelConfig":
        data = dict(data)
        return cls(name=data.pop("name", "unet"), args=data)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.args}


def _plain(value: Any) -> Any:
    """Lists stay lists (coercion makes tuples): a model's saved config compares equal to YAML's."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


@dataclass
class DataConfig:
    path: str = ""  # a PREPROCESSED cache or a synthesized corpus ("" with dynamic sources only)
    dynamic_mix: bool = False  # train on a fresh mixture per example from raw sources
    speech: list[str] = field(default_factory=list)  # raw sources for dynamic mixing
    noise: list[str] = field(default_factory=list)
    rir: list[str] = field(default_factory=list)
    pack: str = ""  # a training pack (`specdenoise pack`): dynamic mixing reads its pools, not the folders
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
    speech_min_bak: float = 0.0  # dynamic mixing: drop training speech whose DNSMOS BAK is lower (data/quality.py; 0 = keep all)
    speech_min_sig: float = 0.0  # ... and whose DNSMOS SIG is lower
    mix: MixConfig = field(default_factory=MixConfig)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 200
    schedule: Schedule = "cosine"
    min_lr_ratio: float = 0.05
    plateau_patience: int = 3  # evaluations without improvement before the LR halves
    grad_clip: float = 5.0
    ema_decay: float = 0.0  # >0: validate and save an average of the weights (training/ema.py); 0.999 ~ last 1,000 steps
    lr_scales: dict[str, float] = field(default_factory=dict)  # name prefix -> LR multiplier, 0 freezes (training/optim.py)


@dataclass
class RunConfig:
    max_steps: int = 5000
    max_minutes: float = 0.0  # also stop (validated, checkpointed) after this much training time; 0 = no limit
    eval_every: int = 500  # steps between validations (and checkpoints)
    log_every: int = 20
    patience: int = 0  # evaluations without improvement before stopping (0 = never)
    early_stop_metric: EarlyStopMetric = "si_sdr"
    pesq_stoi_clips: int = 4  # validation clips scored with PESQ and STOI
    media_every: int = 2  # evaluations between audio / spectrogram logging
    seed: int = 0
    threads: int = 0  # torch.set_num_threads (0 = leave default)
    device: Device = "auto"
    bf16: bool = False  # bf16 autocast (fast only on CPUs with native bf16, and on GPUs)
    cudnn_autotune: bool = True  # on a GPU, let cuDNN time its kernels for the fixed training shapes
    channels_last: bool = True
    progress: bool = True
    init_from: str = ""  # "default" (the shipped model) or a checkpoint: fine-tune from its weights


@dataclass
class TrackingConfig:
    tracker: Tracker = "wandb"
    project: str = "specdenoise"
    group: str | None = None
    name: str | None = None


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    stft: StftSection = field(default_factory=StftSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def cache_stft(cfg: TrainConfig) -> tuple[dict[str, Any], Path] | None:
    """The ``stft`` entry of ``data.path``'s stft.json when it is a preprocessed cache, else None."""
    if not cfg.data.path:
        return None
    info_path = Path(cfg.data.path) / "stft.json"
    if not info_path.exists():
        return None
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        stft = info["stft"]
        if not isinstance(stft, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{info_path}: not a readable cache description (no 'stft' entry)") from None
    return stft, info_path


def resolve_stft(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with every STFT key filled in (cache, else StftConfig defaults); what a run saves."""
    found = cache_stft(cfg)
    stft = cfg.stft.resolve(*found) if found else cfg.stft.resolve()
    return replace(cfg, stft=StftSection(**stft.to_dict()))


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
            ("optim.grad_clip", cfg.optim.grad_clip, 0.0, 1e9, True), ("optim.min_lr_ratio", cfg.optim.min_lr_ratio, 0.0, 1.0, True),
            ("optim.ema_decay", cfg.optim.ema_decay, 0.0, 0.99999, True), ("run.max_minutes", cfg.run.max_minutes, 0.0, 1e7, True)]
    for key, value, lo, hi, lo_ok in real:
        if not math.isfinite(value) or not (lo <= value if lo_ok else lo < value) or value > hi:
            raise ConfigError(f"{key} must lie in {'[' if lo_ok else '('}{lo}, {hi}], got {value!r}")


def build_model(cfg: TrainConfig):
    """The (untrained) model ``cfg`` describes, its STFT resolved as :func:`resolve_stft` does.

    The one place a model is built from a training config: the trainer, tuning's cost
    measurement and its space check all call it, so they build the same model."""
    from ..models import build_model as build_named

    return build_named(cfg.model.name, stft=resolve_stft(cfg).stft.given(), **cfg.model.args)
