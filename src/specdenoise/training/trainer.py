"""The training loop: one function, :func:`train`, used by ``specdenoise train`` and by tuning.

A run folder holds ``config.yaml`` (resolved), ``metrics.jsonl``, ``last.pt`` / ``best.pt``
(atomic), ``media/`` and ``wandb/``. ``resume=True`` continues exactly: model, optimizer, LR
schedule, step, data position, RNG and early-stopping state all come back from ``last.pt``.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .. import audio as audio_io
from .. import config as config_io
from ..data.corpus import SynthConfig, collect_sources, load_pools
from ..data.datasets import CachedSpectrogramDataset, CorpusWaveDataset, DynamicMixDataset
from ..data.mixing import MixConfig, Mixer, Pools
from ..errors import ConfigError, SpecdenoiseError, first_line
from ..metrics import pesq_wb, si_sdr, stoi
from ..models import load_checkpoint, save_checkpoint, serialize
from ..models.registry import architecture_differences
from ..stft import StftConfig, istft, stft
from ..tracking import Tracker
from .config import TrainConfig, build_model, check_ranges, resolve_stft
from .ema import WeightAverage
from .distributed import DistInfo, ResumableShardedSampler, barrier, cleanup, init_distributed
from .losses import compute_loss
from .optim import build_optimizer, lr_at, set_lr

HIGHER_IS_BETTER = {"si_sdr": True, "pesq": True, "stoi": True, "loss": False}
ReportFn = Callable[[int, dict[str, float]], None]


def build_datasets(cfg: TrainConfig, stft_cfg: StftConfig, sample_rate: int) -> tuple[Dataset, Dataset]:
    """Training and validation datasets from a cache, a corpus, or raw sources (dynamic mixing)."""
    d = cfg.data
    crop_samples = int(round(d.crop_seconds * sample_rate))
    path = Path(d.path) if d.path else None
    val: Dataset | None = None
    if path is not None and (path / "stft.json").exists():
        train_split = "train+validation" if d.merge_train_validation else "train"
        train_ds = CachedSpectrogramDataset(path, train_split, stft_cfg.n_frames(crop_samples), cfg.run.seed, stft_cfg)
        val = CachedSpectrogramDataset(path, "validation", None, expect_stft=stft_cfg)
        if val.sample_rate != sample_rate:
            raise ConfigError(f"{path}: cache is at {val.sample_rate} Hz but the model is at {sample_rate} Hz")
    elif path is not None and (path / "corpus.json").exists():
        splits = ["train", "validation"] if d.merge_train_validation else ["train"]
        train_ds = CorpusWaveDataset(path, splits, crop_samples, sample_rate, cfg.run.seed)
        val = CorpusWaveDataset(path, "validation", None, sample_rate, limit=d.val_clips or None)
    elif path is not None:
        raise SpecdenoiseError(f"{path}: neither a PREPROCESSED cache (stft.json) nor a corpus (corpus.json)")
    else:
        train_ds = None
    if d.dynamic_mix:
        train_pools, val_pools, mix = dynamic_mix_pools(cfg, sample_rate, with_validation=val is None)
        train_ds = DynamicMixDataset(Mixer(train_pools, mix), d.examples_per_epoch, crop_samples, cfg.run.seed)
        if val_pools is not None:  # fixed validation mixtures from the validation split's own sources
            val = DynamicMixDataset(Mixer(val_pools, validation_mix(mix)), d.val_clips or 32,
                                    int(round(mix.clip_seconds * sample_rate)), seed=10_000 + d.split_seed)
    if train_ds is None or val is None:
        raise ConfigError("no training data: set data.path (cache or corpus) or data.dynamic_mix with sources")
    if d.val_clips and len(val) > d.val_clips and isinstance(val, CachedSpectrogramDataset):
        val = torch.utils.data.Subset(val, range(d.val_clips))
    return train_ds, val


def validation_mix(mix: MixConfig) -> MixConfig:
    """The validation mixtures' settings: the training ones without speed perturbation and noise
    recolouring. Why: they are augmentations (new voices and noise spectra from the training
    recordings), not conditions users meet, and with them off the fixed validation mixtures stay
    those that every earlier model was scored on. Procedural noise is a noise source, so it stays."""
    return replace(mix, speed_probability=0.0, noise_speed_probability=0.0, noise_eq_probability=0.0)


def dynamic_mix_pools(cfg: TrainConfig, sample_rate: int,
                      with_validation: bool = True) -> tuple[Pools, Pools | None, MixConfig]:
    """The training and validation pools of dynamic mixing: read from ``data.pack`` when set,
    else from the source folders (split by speaker and noise file, held-out categories removed,
    simulated rooms added to the training rooms). The validation pools are None unless
    ``with_validation`` or needed for ``merge_train_validation``."""
    d = cfg.data
    if d.mix.sample_rate != sample_rate:
        raise ConfigError(f"data.mix.sample_rate ({d.mix.sample_rate}) differs from the model's ({sample_rate})")
    if d.pack:
        from ..data.packs import join_pools, read_pack

        if d.speech_min_bak > 0 or d.speech_min_sig > 0:
            raise ConfigError("data.speech_min_bak / speech_min_sig filter source folders; set them when building "
                              "the pack (specdenoise pack ... data.speech_min_bak=3.8)")

        train = read_pack(d.pack, "train", sample_rate)
        val = read_pack(d.pack, "validation", sample_rate) if with_validation or d.merge_train_validation else None
        return (join_pools(train, val) if d.merge_train_validation else train), (val if with_validation else None), d.mix
    if not d.speech or not d.noise:
        raise ConfigError("data.dynamic_mix needs data.speech and data.noise folders (or data.pack)")
    synth = SynthConfig(speech_dirs=d.speech, noise_dirs=d.noise, rir_dirs=d.rir, seed=d.split_seed, mix=d.mix)
    by_split, sources, mix = collect_sources(synth)
    skipped = sources.skipped
    if d.exclude_noise_categories:  # held-out categories: in no split the model sees
        held_out = set(d.exclude_noise_categories)
        for split_files in by_split.values():
            split_files["noise"] = [f for f in split_files["noise"] if f.category not in held_out]
    if d.merge_train_validation:
        files = {k: by_split["train"][k] + by_split["validation"][k] for k in by_split["train"]}
    else:
        files = by_split["train"]
    from ..data.quality import keep_clean_speech  # returns the files as they are without a floor
    from ..data.rooms import default_cache_dir

    files = {**files, "speech": keep_clean_speech(files["speech"], d.speech_min_bak, d.speech_min_sig,
                                                  default_cache_dir(), workers=max(1, cfg.run.threads or 1))}
    pools = load_pools(files, sample_rate, skipped)
    if d.simulated_rirs:
        from ..data.rooms import simulate_room_bank

        bank = simulate_room_bank(d.simulated_rirs, sample_rate, d.split_seed, tuple(d.simulated_rir_t60),
                                  default_cache_dir())
        pools.rirs += bank
        pools.rir_names += [f"simulated:pyroomacoustics:{i}" for i in range(len(bank))]
    return pools, (load_pools(by_split["validation"], sample_rate, skipped) if with_validation else None), mix


def _specs(batch: dict[str, torch.Tensor], stft_cfg: StftConfig, device) -> tuple[torch.Tensor, ...]:
    noisy, clean = batch["noisy"].to(device), batch["clean"].to(device)
    if noisy.is_complex():
        n = (noisy.shape[-1] - 1) * stft_cfg.hop_length
        return noisy, clean, None, n
    return stft(noisy, stft_cfg), stft(clean, stft_cfg), clean, clean.shape[-1]


def train_step(model, optimizer, batch: dict[str, torch.Tensor], cfg: TrainConfig, stft_cfg: StftConfig,
               device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One optimisation step on a batch (waveforms or cached spectrograms): forward, loss,
    backward, gradient clipping, update. The trainer, tuning and bench/train_throughput.py all
    call this one function, so what is measured is what trains."""
    noisy_spec, clean_spec, clean_wave, n = _specs(batch, stft_cfg, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.run.bf16):
        est_spec = model(noisy_spec)
    est_wave = clean_ref = None
    if cfg.loss.needs_waveform:
        est_wave = istft(est_spec, stft_cfg, n)
        clean_ref = clean_wave if clean_wave is not None else istft(clean_spec, stft_cfg, n)
    terms = compute_loss(cfg.loss, est_spec, clean_spec, est_wave, clean_ref)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or float("inf"))
    optimizer.step()
    return terms, grad_norm


def _device(cfg: TrainConfig, dist_info: DistInfo) -> torch.device:
    want = cfg.run.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("run.device is 'cuda' but no GPU is available")
        return torch.device("cuda", dist_info.local_rank)
    return torch.device("cpu")


@torch.no_grad()
def validate(model, val: Dataset, cfg: TrainConfig, device) -> tuple[dict[str, float], dict]:
    """Validation loss, SI-SDR (and of the noisy input), PESQ-WB and STOI on the first clips."""
    model.eval()
    stft_cfg, sr = model.stft_config, model.sample_rate
    losses, sdr, sdr_noisy, pesqs, stois, media = [], [], [], [], [], {}
    for i in range(len(val)):
        item = val[i]
        batch = {k: v.unsqueeze(0) for k, v in item.items()}
        noisy_spec, clean_spec, clean_wave, n = _specs(batch, stft_cfg, device)
        est_spec = model(noisy_spec)
        est = istft(est_spec, stft_cfg, n)[0].float().cpu().numpy()
        clean = (clean_wave[0] if clean_wave is not None else istft(clean_spec, stft_cfg, n)[0]).float().cpu().numpy()
        noisy = istft(noisy_spec, stft_cfg, n)[0].float().cpu().numpy()
        losses.append(float(compute_loss(cfg.loss, est_spec, clean_spec,
                                         torch.from_numpy(est)[None], torch.from_numpy(clean)[None])["total"]))
        sdr.append(si_sdr(clean, est))
        sdr_noisy.append(si_sdr(clean, noisy))
        if i < cfg.run.pesq_stoi_clips:
            try:
                pesqs.append(pesq_wb(clean, est, sr))
            except ValueError:
                pass
            stois.append(stoi(clean, est, sr))
        if i == 0:
            media = {"noisy": noisy, "denoised": est, "clean": clean}
    metrics = {"loss": float(np.mean(losses)), "si_sdr": float(np.mean(sdr)),
               "si_sdr_noisy": float(np.mean(sdr_noisy))}
    metrics["si_sdr_improvement"] = metrics["si_sdr"] - metrics["si_sdr_noisy"]
    if pesqs:
        metrics["pesq"] = float(np.mean(pesqs))
    if stois:
        metrics["stoi"] = float(np.mean(stois))
    model.train()
    return metrics, media


def init_weights_from(model, source: str | Path) -> str:
    """Load weights of ``source`` (a shipped model's name such as "default", or a checkpoint) into
    ``model`` for fine-tuning. Architecture, STFT and sample rate must match; otherwise a
    one-line error names every difference. Weight-free output options (``model.output_options``,
    e.g. the CRN's ``low_cut_hz``) may differ: the configured value is kept. Returns the resolved source path."""
    from ..enhance import model_path

    path = model_path(source)
    package = load_checkpoint(path)
    theirs = package.get("model", {}) if isinstance(package, dict) else {}
    ours = {"name": model.name, "config": model.config()}
    diffs = architecture_differences(theirs, ours)  # weight-free output options: the new run's value wins
    if diffs:
        raise ConfigError(f"--init-from {source}: checkpoint differs from the configured model: " + "; ".join(diffs))
    try:
        model.load_state_dict(package["state_dict"])
    except (KeyError, RuntimeError) as exc:
        raise ConfigError(f"--init-from {source}: weights do not fit the model ({first_line(exc, 120)})") from None
    return str(path)


@dataclass
class TrainState:
    """Everything a resume needs besides the weights, the optimizer and the RNG.

    Saved inside each checkpoint's ``train_state`` entry under these field names (the keys
    checkpoints have always had), so older runs resume and the shipped models still load."""

    step: int = 0
    best: float | None = None  # best value of run.early_stop_metric so far
    evals_since_best: int = 0  # early stopping (run.patience)
    plateau_scale: float = 1.0  # LR factor of the "plateau" schedule
    plateau_bad: int = 0
    wandb_id: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # every validation's metrics

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> "TrainState":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})

    def to_saved(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def record(self, step: int, metrics: dict[str, float], cfg: TrainConfig) -> bool:
        """Book one validation: best value, patience counters, plateau LR; True if it improved."""
        value = metrics.get(cfg.run.early_stop_metric)
        higher = HIGHER_IS_BETTER[cfg.run.early_stop_metric]
        improved = value is not None and (self.best is None or (value > self.best if higher else value < self.best))
        if improved:
            self.best, self.evals_since_best, self.plateau_bad = value, 0, 0
        else:
            self.evals_since_best += 1
            self.plateau_bad += 1
            if cfg.optim.schedule == "plateau" and self.plateau_bad >= cfg.optim.plateau_patience:
                self.plateau_scale = max(cfg.optim.min_lr_ratio, self.plateau_scale * 0.5)
                self.plateau_bad = 0
        self.history.append({"step": step, **metrics})
        return improved


@dataclass
class _Run:
    """The pieces of one training run that every phase (loop, validation, checkpoint) uses."""

    cfg: TrainConfig  # with the STFT resolved: what the run folder's config.yaml says
    out: Path
    model: torch.nn.Module
    ddp_model: torch.nn.Module  # ``model`` itself unless distributed
    optimizer: torch.optim.Optimizer
    device: torch.device
    dist_info: DistInfo
    train_ds: Dataset
    val_ds: Dataset
    sampler: ResumableShardedSampler
    tracker: Tracker
    state: TrainState
    ema: WeightAverage | None  # optim.ema_decay > 0

    def checkpoint(self, name: str, metrics: dict[str, float], raw: dict[str, torch.Tensor] | None = None) -> None:
        """Save the model's current weights; ``raw`` (the trained weights while the EMA is swapped
        in) travels in ``train_state`` for a resume."""
        extra_state = {"raw_state_dict": {k: v.cpu() for k, v in raw.items()}} if raw is not None else {}
        save_checkpoint(self.out / name, serialize(self.model, extra={
            "config": config_io.to_dict(self.cfg), "metrics": metrics,
            "train_state": {"optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                            **self.state.to_saved(), **extra_state}}))


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, report: ReportFn | None = None) -> dict[str, Any]:
    """Train a model as ``cfg`` says; returns a summary (best metric, steps, paths).

    ``run.init_from`` ("default" or a checkpoint) starts from existing weights (fine-tuning); the
    optimizer and schedule start fresh. On ``resume`` the run's own weights win.

    ``report(step, val_metrics)`` is called after each validation on rank 0; tuning uses it to
    prune (an exception raised there ends the run cleanly and propagates).
    """
    run = _setup(cfg, Path(out_dir), resume)
    from tqdm import tqdm

    bar = tqdm(total=run.cfg.run.max_steps, initial=run.state.step, desc="train", unit="step",
               disable=not (run.cfg.run.progress and run.dist_info.is_main), dynamic_ncols=True)
    try:
        stop_reason = _loop(run, bar, report)
    finally:
        bar.close()
        if run.dist_info.is_main:
            run.tracker.summary({"best_" + run.cfg.run.early_stop_metric: run.state.best, "steps": run.state.step})
        run.tracker.finish()
    _finish_distributed(run)
    out = run.out
    return {"best": run.state.best, "metric": run.cfg.run.early_stop_metric, "steps": run.state.step,
            "stop_reason": stop_reason, "best_checkpoint": str(out / "best.pt"),
            "last_checkpoint": str(out / "last.pt"), "history": run.state.history}


def _setup(cfg: TrainConfig, out: Path, resume: bool) -> _Run:
    """Check the config, build model, data and optimizer, restore a run being resumed."""
    check_ranges(cfg)  # before anything is written (a bad batch_size once left a run folder)
    cfg = resolve_stft(cfg)  # the cache's STFT, else StftConfig's defaults; saved in full with the run
    dist_info = init_distributed(use_cuda=cfg.run.device != "cpu" and torch.cuda.is_available())
    if cfg.run.early_stop_metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"run.early_stop_metric must be one of {sorted(HIGHER_IS_BETTER)}")
    last_path = out / "last.pt"
    if resume and not last_path.exists():
        raise SpecdenoiseError(f"{out}: nothing to resume (last.pt missing)")
    if not resume and last_path.exists():
        raise SpecdenoiseError(f"{out}: a run exists here; pass --resume to continue it or choose another --out")
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    device = _device(cfg, dist_info)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.run.cudnn_autotune
    torch.manual_seed(cfg.run.seed)

    model = build_model(cfg).to(device)
    if cfg.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.run.init_from and not resume:
        init_weights_from(model, cfg.run.init_from)
    train_ds, val_ds = build_datasets(cfg, model.stft_config, model.sample_rate)
    optimizer = build_optimizer(model, cfg)
    state, saved = TrainState(), {}
    if resume:
        package = load_checkpoint(last_path)
        saved = package["train_state"]
        model.load_state_dict(saved.get("raw_state_dict", package["state_dict"]))  # with an EMA, state_dict is the average
        optimizer.load_state_dict(saved["optimizer"])
        state = TrainState.from_saved(saved)
        torch.set_rng_state(saved["torch_rng"])
    ema = WeightAverage(model, cfg.optim.ema_decay) if cfg.optim.ema_decay else None
    if ema is not None and "raw_state_dict" in saved:
        ema.load_shadow(package["state_dict"])
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        config_io.dump(cfg, out / "config.yaml")
    ddp_model = model
    if dist_info.enabled:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    sampler = ResumableShardedSampler(len(train_ds), cfg.data.batch_size, cfg.run.seed, dist_info.rank, dist_info.world_size)
    if sampler.batches_per_epoch == 0:
        raise ConfigError(f"data.batch_size ({cfg.data.batch_size}) exceeds the {len(train_ds)} training examples per rank")
    tracker = Tracker(out, config_io.to_dict(cfg), cfg.tracking.tracker, cfg.tracking.project, cfg.tracking.group,
                      cfg.tracking.name, enabled=dist_info.is_main, resume_id=state.wandb_id)
    state.wandb_id = tracker.run_id
    return _Run(cfg, out, model, ddp_model, optimizer, device, dist_info, train_ds, val_ds, sampler, tracker, state, ema)


def _epoch_loader(run: _Run) -> DataLoader:
    """The loader for the epoch ``state.step`` lies in, starting at that step's batch (resume)."""
    epoch, start = divmod(run.state.step, run.sampler.batches_per_epoch)
    run.sampler.set_epoch(epoch, start)
    if hasattr(run.train_ds, "set_epoch"):
        run.train_ds.set_epoch(epoch)
    return DataLoader(run.train_ds, batch_size=run.cfg.data.batch_size, sampler=run.sampler,
                      num_workers=run.cfg.data.num_workers, drop_last=True,
                      persistent_workers=False, pin_memory=run.device.type == "cuda")


def _loop(run: _Run, bar, report: ReportFn | None) -> str:
    """Step until ``run.max_steps``, ``run.max_minutes`` or early stopping (returned as the stop
    reason), validating every ``run.eval_every`` steps and at the end."""
    cfg, state = run.cfg, run.state
    started, budget = time.monotonic(), cfg.run.max_minutes * 60.0
    wait_time = step_time = 0.0  # data-loading vs compute share, logged as train/data_wait_share
    run.model.train()
    while state.step < cfg.run.max_steps:
        loader = _epoch_loader(run)
        t_wait = time.perf_counter()
        for batch in loader:
            t0 = time.perf_counter()
            wait_time += t0 - t_wait
            time_used = (time.monotonic() - started) / budget if budget else 0.0
            lr = lr_at(cfg, state.step, state.plateau_scale, time_used)
            set_lr(run.optimizer, lr)
            terms, grad_norm = train_step(run.ddp_model, run.optimizer, batch, cfg, run.model.stft_config, run.device)
            if run.ema is not None:
                run.ema.update()
            state.step = step = state.step + 1
            t_wait = time.perf_counter()
            step_time += t_wait - t0
            loss_value = float(terms["total"].detach())
            if not math.isfinite(loss_value):
                raise SpecdenoiseError(f"loss became {loss_value} at step {step}; lower optim.lr or check the data")
            bar.update()
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            if run.dist_info.is_main and (step % cfg.run.log_every == 0 or step == 1):
                logged = {f"train/{k}": float(v.detach()) for k, v in terms.items()}
                logged.update({"train/lr": lr, "train/grad_norm": float(grad_norm),
                               "train/data_wait_share": wait_time / max(1e-9, wait_time + step_time)})
                run.tracker.log(logged, step)
            out_of_time = bool(budget) and _agreed(run, time.monotonic() - started >= budget)
            if step % cfg.run.eval_every == 0 or step == cfg.run.max_steps or out_of_time:
                if _validate_and_checkpoint(run, report):
                    return "early_stopping"
            if out_of_time:
                return "max_minutes"
            if step >= cfg.run.max_steps:
                break
    return "max_steps"


def _validate_and_checkpoint(run: _Run, report: ReportFn | None) -> bool:
    """Rank 0 validates, logs, checkpoints; every rank learns whether to stop."""
    stop = False
    if run.dist_info.is_main:
        with run.ema.swapped_in() if run.ema is not None else nullcontext() as raw:
            stop = _validate_and_save(run, report, raw)
    return _agreed(run, stop)


def _validate_and_save(run: _Run, report: ReportFn | None, raw: dict[str, torch.Tensor] | None) -> bool:
    """Validate the model's current weights (the EMA's when on), log and checkpoint them; True to stop."""
    cfg, state, step = run.cfg, run.state, run.state.step
    metrics, media = validate(run.model, run.val_ds, cfg, run.device)
    improved = state.record(step, metrics, cfg)
    run.tracker.log({f"val/{k}": v for k, v in metrics.items()} | {"val/best": state.best or 0.0}, step)
    n_evals = step // cfg.run.eval_every
    if cfg.run.media_every and (n_evals % cfg.run.media_every == 1 or cfg.run.media_every == 1) and media:
        _log_media(media, run.model.sample_rate, run.out / "media", run.tracker, step)
    run.checkpoint("last.pt", metrics, raw)
    if improved:
        run.checkpoint("best.pt", metrics, raw)
    if report is not None:
        report(step, metrics)
    return bool(cfg.run.patience) and state.evals_since_best >= cfg.run.patience


def _agreed(run: _Run, flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (clocks differ; all ranks must stop at the same step)."""
    if not run.dist_info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=run.device)  # NCCL needs a device tensor
    torch.distributed.broadcast(t, src=0)
    return bool(t.item())


def _finish_distributed(run: _Run) -> None:
    if run.dist_info.enabled:  # DDP syncs buffers (BatchNorm statistics) at each forward: do it once more
        for buffer in run.model.buffers():
            torch.distributed.broadcast(buffer, src=0)
    barrier(run.dist_info)
    cleanup()


def _log_media(media: dict[str, np.ndarray], sr: int, folder: Path, tracker: Tracker, step: int) -> None:
    from ..plots import plot_spectrograms

    folder.mkdir(parents=True, exist_ok=True)
    png = plot_spectrograms(media, sr, folder / f"spectrograms_step{step:07d}.png", title=f"validation clip, step {step}")
    for name, wave in media.items():
        audio_io.write(folder / f"{name}_step{step:07d}.wav", wave, sr, overwrite=True)
    tracker.log_media({f"audio/{k}": (v, sr) for k, v in media.items()}, {"spectrograms": png}, step)
