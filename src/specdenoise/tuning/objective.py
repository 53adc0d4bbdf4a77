"""One trial: resolve its config, train it with the very same :func:`train`, report to the
pruner, record what it cost; and :func:`measure_costs`, the seconds per training step (through
``training.trainer.train_step``, the one training step) and real-time factor of a config."""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import SpecdenoiseError
from .report import json_safe, one_line
from .space import SearchSpace
from .trials import build_train_config, resolve_config, trial_dict

def measure_costs(cfg, checkpoint: str | Path | None = None, threads: int = 1, clip_seconds: float = 8.0,
                  train_steps: int = 5) -> dict[str, float]:
    """Time one training step (STFT + forward + loss + backward + optimizer, no data loading) at
    the config's batch size and crop, and ``model.enhance`` on a ``clip_seconds`` clip, both on
    ``threads`` threads after a warm-up. Returns ``train_s_per_step`` and ``rtf``."""
    import torch

    from ..models import model_from_checkpoint
    from ..threads import torch_threads
    from ..training.config import build_model
    from ..training.trainer import train_step

    with torch_threads(threads):
        if checkpoint is not None and Path(checkpoint).exists():
            model = model_from_checkpoint(checkpoint)
        else:
            model = build_model(cfg).eval()
        sr = model.sample_rate
        gen = torch.Generator().manual_seed(0)
        clip = 0.1 * torch.randn(int(round(clip_seconds * sr)), generator=gen)
        times = []
        with torch.inference_mode():
            model.enhance(clip)
            for _ in range(3):
                t0 = time.perf_counter()
                model.enhance(clip)
                times.append(time.perf_counter() - t0)
        rtf = sorted(times)[len(times) // 2] / clip_seconds

        net = build_model(cfg)
        if cfg.run.channels_last:
            net = net.to(memory_format=torch.channels_last)
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        crop = int(round(cfg.data.crop_seconds * sr))
        clean = 0.1 * torch.randn(cfg.data.batch_size, crop, generator=gen)
        noisy = clean + 0.05 * torch.randn(cfg.data.batch_size, crop, generator=gen)
        stft_cfg = net.stft_config

        def step() -> None:
            train_step(net, opt, {"noisy": noisy, "clean": clean}, cfg, stft_cfg, torch.device("cpu"))

        step()
        step_times = []
        for _ in range(train_steps):
            t0 = time.perf_counter()
            step()
            step_times.append(time.perf_counter() - t0)
        return {"train_s_per_step": sorted(step_times)[len(step_times) // 2], "rtf": rtf}

class Objective:
    def __init__(self, space: SearchSpace, overrides: list[str], out: Path, study_name: str, budget: int,
                 eval_every: int, metric: str, measure_cost: bool, log: Callable[[str], None]):
        self.space, self.overrides, self.out, self.study_name = space, overrides, out, study_name
        self.budget, self.eval_every, self.metric, self.measure_cost, self.log = budget, eval_every, metric, measure_cost, log
        self.ran = self.failed = 0
        self.first_error: str | None = None

    def __call__(self, trial) -> float:
        import optuna

        from ..training.trainer import HIGHER_IS_BETTER, train

        self.ran += 1
        name = f"trial_{trial.number:04d}"
        trial_dir = self.out / name
        crashed_dir = trial.user_attrs.get("dir")  # copied from a crashed trial by the retry callback
        try:
            final, _ = resolve_config(self.space, lambda p: p.suggest(trial), self.overrides)
            data = trial_dict(self.space, final, self.overrides, self.budget, self.eval_every, self.study_name, name)
            cfg = build_train_config(data)
        except SpecdenoiseError as exc:
            return self._fail(trial, exc)
        trial.set_user_attr("dir", str(trial_dir.resolve()))
        trial.set_user_attr("config", json_safe(final))
        resume = self._adopt_checkpoint(trial, crashed_dir, trial_dir)
        higher = HIGHER_IS_BETTER[self.metric]
        seen: list[dict[str, float]] = []

        def report(step: int, metrics: dict[str, float]) -> None:
            seen.append({"step": step, **metrics})
            value = metrics.get(self.metric)
            if value is None or not math.isfinite(value):
                return
            trial.report(float(value), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{self.metric} {value:.4f} at step {step}")

        t0 = time.perf_counter()
        try:
            result = train(cfg, trial_dir, resume=resume, report=report)
        except optuna.TrialPruned:
            self._record(trial, t0, seen, higher, steps=seen[-1]["step"] if seen else 0)
            raise
        except Exception as exc:
            self._record(trial, t0, seen, higher, steps=seen[-1]["step"] if seen else 0)
            return self._fail(trial, exc)
        self._record(trial, t0, result["history"] or seen, higher, steps=result["steps"])
        if result["best"] is None or not math.isfinite(result["best"]):
            return self._fail(trial, SpecdenoiseError(f"no finite validation {self.metric} was measured"))
        if self.measure_cost:
            costs = measure_costs(cfg, result["best_checkpoint"], threads=max(1, cfg.run.threads or 1))
            for key, value in costs.items():
                trial.set_user_attr(key, value)
        return float(result["best"])

    def _fail(self, trial, exc: BaseException):
        self.failed += 1
        message = one_line(exc)
        self.first_error = self.first_error or message
        trial.set_user_attr("error", message)
        raise exc

    def _adopt_checkpoint(self, trial, crashed_dir: str | None, trial_dir: Path) -> bool:
        """A retry of a crashed trial continues from its last checkpoint when the folder is here."""
        if not crashed_dir or Path(crashed_dir).resolve() == trial_dir.resolve():
            return False
        source = Path(crashed_dir)
        if not (source / "last.pt").is_file() or (trial_dir / "last.pt").exists():
            return False
        trial_dir.mkdir(parents=True, exist_ok=True)
        for name in ("last.pt", "best.pt", "metrics.jsonl"):
            if (source / name).is_file():
                shutil.copy2(source / name, trial_dir / name)
        trial.set_user_attr("resumed_from", str(source))
        self.log(f"trial {trial.number} retries a crashed trial: resuming from {source / 'last.pt'}")
        return True

    def _record(self, trial, t0: float, history: list[dict[str, Any]], higher: bool, steps: int) -> None:
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        trial.set_user_attr("steps", int(steps))
        scored = [h for h in history if h.get(self.metric) is not None and math.isfinite(h[self.metric])]
        if scored:
            best = (max if higher else min)(scored, key=lambda h: h[self.metric])
            trial.set_user_attr("val", {k: float(v) for k, v in best.items() if k != "step"} | {"step": int(best["step"])})
