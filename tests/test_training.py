"""The trainer: both families from the CLI, determinism, exact resume, SIGKILL resume, W&B
offline logs, and DDP with two gloo processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO_ROOT, cli_env, run_cli
from specdenoise import config as config_io
from specdenoise.errors import SpecdenoiseError
from specdenoise.models import load_checkpoint
from specdenoise.training.config import TrainConfig
from specdenoise.training.trainer import train

TINY = ["model.depth=2", "model.base_channels=4", "data.batch_size=2", "data.val_clips=2", "data.crop_seconds=1.0",
        "run.pesq_stoi_clips=1", "run.log_every=1", "optim.warmup_steps=2", "run.threads=1"]
TINY_CNN = ["model.channels=[4,6,4]", "model.freq_kernels=[5,3,5]", "data.batch_size=2", "data.val_clips=2",
            "data.crop_seconds=1.0", "run.pesq_stoi_clips=1", "run.log_every=1", "run.threads=1"]


def _cfg(data, *overrides) -> TrainConfig:
    return config_io.load(TrainConfig, REPO_ROOT / "configs" / "unet.yaml",
                          [f"data.path={data}", "tracking.tracker=none", "run.progress=false", *TINY, *overrides])


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train/total"] for r in rows if "train/total" in r]


@pytest.mark.parametrize("family,extra", [("unet", TINY), ("cnn", TINY_CNN)])
def test_cli_trains_both_families(family, extra, tiny_cache, tmp_path):
    out = tmp_path / family
    proc = run_cli("train", "--config", REPO_ROOT / "configs" / f"{family}.yaml", "--data", tiny_cache,
                   "--out", out, "--max-steps", "4", "run.eval_every=2", *extra)
    assert "stopped after 4 steps" in proc.stdout
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl"):
        assert (out / name).exists(), name
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["model"]["name"] == family and resolved["run"]["max_steps"] == 4
    package = torch.load(out / "best.pt", weights_only=True)
    assert package["model"]["name"] == family and package["stft"]["n_fft"] == 512
    assert package["train_state"]["step"] in (2, 4)
    assert len(_losses(out)) == 4


def test_training_from_a_corpus_and_from_dynamic_mixing(tiny_corpus, shared_data, tmp_path):
    summary = train(_cfg(tiny_corpus, "run.max_steps=2", "run.eval_every=2"), tmp_path / "corpus_run")
    assert summary["steps"] == 2 and summary["best"] is not None
    speech = shared_data / "speech" / "librispeech_train-clean-100"
    cfg = config_io.load(TrainConfig, REPO_ROOT / "configs" / "unet.yaml", [
        "tracking.tracker=none", "run.progress=false", *TINY, "data.dynamic_mix=true",
        f"data.speech=[{speech}]", f"data.noise=[{shared_data / 'noise' / 'music'}]", "data.examples_per_epoch=8",
        "run.max_steps=3", "run.eval_every=3"])
    summary = train(cfg, tmp_path / "dynamic_run")
    assert summary["steps"] == 3 and summary["history"][0]["si_sdr_noisy"] < 30


def test_same_seed_same_first_losses(tiny_cache, tmp_path):
    train(_cfg(tiny_cache, "run.max_steps=3", "run.eval_every=3"), tmp_path / "a")
    train(_cfg(tiny_cache, "run.max_steps=3", "run.eval_every=3"), tmp_path / "b")
    train(_cfg(tiny_cache, "run.max_steps=3", "run.eval_every=3", "run.seed=5"), tmp_path / "c")
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    assert _losses(tmp_path / "a") != _losses(tmp_path / "c")


class _Crash(Exception):
    pass


@pytest.mark.parametrize("ema", [[], ["optim.ema_decay=0.9"]], ids=["plain", "ema"])
def test_resume_continues_exactly(ema, tiny_cache, tmp_path):
    steps = ["run.max_steps=6", "run.eval_every=3", "optim.schedule=cosine", *ema]
    train(_cfg(tiny_cache, *steps), tmp_path / "straight")

    def crash(step, metrics):
        if step == 3:
            raise _Crash()

    with pytest.raises(_Crash):
        train(_cfg(tiny_cache, *steps), tmp_path / "crashed", report=crash)
    with pytest.raises(SpecdenoiseError, match="--resume"):
        train(_cfg(tiny_cache, *steps), tmp_path / "crashed")
    train(_cfg(tiny_cache, *steps), tmp_path / "crashed", resume=True)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "crashed" / "last.pt")
    assert a["train_state"]["step"] == b["train_state"]["step"] == 6
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert _losses(tmp_path / "straight") == _losses(tmp_path / "crashed")
    if ema:  # the saved weights are the average; the trained ones resume from train_state and match too
        raw_a, raw_b = a["train_state"]["raw_state_dict"], b["train_state"]["raw_state_dict"]
        assert all(torch.equal(raw_a[k], raw_b[k]) for k in raw_a)
        assert any(not torch.equal(raw_a[k], a["state_dict"][k]) for k in raw_a)
    else:
        assert "raw_state_dict" not in a["train_state"]


def test_weight_average_follows_its_formula_and_validation_scores_it(tiny_cache, tmp_path):
    from specdenoise.training.ema import WeightAverage

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    ema = WeightAverage(model, 0.75)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked += 5
    ema.update()
    assert torch.allclose(ema.shadow["0.weight"], start["0.weight"] + 0.25)
    assert int(ema.shadow["1.num_batches_tracked"]) == 5  # integer buffers are copied, not averaged
    trained = model[0].weight.detach().clone()
    with ema.swapped_in() as raw:
        assert torch.equal(model[0].weight, ema.shadow["0.weight"]) and torch.equal(raw["0.weight"], trained)
    assert torch.equal(model[0].weight, trained)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, 1.0)
    # in a run the average changes what is validated and saved, never what is trained
    plain = train(_cfg(tiny_cache, "run.max_steps=4", "run.eval_every=4"), tmp_path / "plain")
    averaged = train(_cfg(tiny_cache, "run.max_steps=4", "run.eval_every=4", "optim.ema_decay=0.5"), tmp_path / "ema")
    assert _losses(tmp_path / "plain") == _losses(tmp_path / "ema")
    p, e = load_checkpoint(tmp_path / "plain" / "last.pt"), load_checkpoint(tmp_path / "ema" / "last.pt")
    assert all(torch.equal(p["state_dict"][k], e["train_state"]["raw_state_dict"][k]) for k in p["state_dict"])
    assert plain["history"][-1]["si_sdr"] != averaged["history"][-1]["si_sdr"]
    # the release holds the average; --trained-weights exports what the optimizer reached
    from specdenoise.models.registry import CheckpointError, export_for_release

    released = load_checkpoint(export_for_release(tmp_path / "ema" / "last.pt", tmp_path / "avg.pt"))
    trained = load_checkpoint(export_for_release(tmp_path / "ema" / "last.pt", tmp_path / "raw.pt", trained_weights=True))
    assert all(torch.equal(released["state_dict"][k], e["state_dict"][k]) for k in e["state_dict"])
    assert all(torch.equal(trained["state_dict"][k], p["state_dict"][k]) for k in p["state_dict"])
    with pytest.raises(CheckpointError, match="plain.*no trained weights besides"):
        export_for_release(tmp_path / "plain" / "last.pt", tmp_path / "none.pt", trained_weights=True)
    assert not (tmp_path / "none.pt").exists()


def test_sigkill_then_resume_loses_at_most_one_interval(tiny_cache, tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "specdenoise", "train", "--config", str(REPO_ROOT / "configs" / "unet.yaml"),
            "--data", str(tiny_cache), "--out", str(out), "--max-steps", "400", "--tracker", "none",
            *TINY, "run.eval_every=3", "run.progress=false"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cli_env())
    deadline = time.time() + 240
    while time.time() < deadline:
        if (out / "last.pt").exists() and load_checkpoint(out / "last.pt")["train_state"]["step"] >= 6:
            break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("no checkpoint at step 6 within 240 s: " + proc.stderr.read().decode()[-2000:])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    logged = len(_losses(out))
    rows_before = len((out / "metrics.jsonl").read_text().splitlines())
    saved = load_checkpoint(out / "last.pt")["train_state"]["step"]
    # checkpoints come every 3 steps, each after the steps before it were logged: at most the
    # 3 steps of one interval are lost (3 when SIGKILL lands while the next one is being written)
    assert saved % 3 == 0 and saved >= 6 and 0 <= logged - saved <= 3, (saved, logged)
    proc = run_cli("train", "--out", out, "--resume", "--max-steps", str(saved + 2), "--tracker", "none", *TINY,
                   "run.eval_every=3", f"data.path={tiny_cache}")
    assert f"stopped after {saved + 2} steps" in proc.stdout
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    resumed_steps = [r["step"] for r in rows[rows_before:] if "train/total" in r]
    assert resumed_steps[0] == saved + 1


def test_wandb_offline_run_holds_logged_keys(tiny_cache, tmp_path):
    out = tmp_path / "tracked"
    run_cli("train", "--config", REPO_ROOT / "configs" / "unet.yaml", "--data", tiny_cache, "--out", out,
            "--max-steps", "2", "--tracker", "wandb", *TINY, "run.eval_every=2", "run.media_every=1",
            env={"WANDB_MODE": "offline"})
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    blob = next(runs[0].glob("run-*.wandb")).read_bytes()
    for key in ("train/total", "train/lr", "val/si_sdr", "val/pesq", "val/stoi", "audio/noisy", "audio/denoised",
                "spectrograms", "data_wait_share"):
        assert key.encode() in blob, key
    media = runs[0] / "files" / "media"
    assert list(media.rglob("*.wav")) and list(media.rglob("*.png"))
    assert (out / "media").is_dir() and list((out / "media").glob("spectrograms_step*.png"))


def test_ddp_two_gloo_processes_end_identical(tiny_cache, tmp_path):
    script = tmp_path / "ddp_train.py"
    # each rank saves its own final weights through a hook on the trainer's model factory
    script.write_text("""
import os, sys, torch
import torch.distributed as dist
from specdenoise import config as config_io
from specdenoise.training import trainer
from specdenoise.training.config import TrainConfig

captured = {}
original = trainer.build_model
def capture(*a, **k):
    captured["model"] = original(*a, **k)
    return captured["model"]
trainer.build_model = capture
cfg = config_io.load(TrainConfig, sys.argv[1], sys.argv[3:])
trainer.train(cfg, sys.argv[2])
rank = int(os.environ["RANK"])
torch.save(captured["model"].state_dict(), os.path.join(sys.argv[2], f"rank{rank}.pt"))
""")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           str(script), str(REPO_ROOT / "configs" / "unet.yaml"), str(out), f"data.path={tiny_cache}",
           "tracking.tracker=none", "run.progress=false", *TINY, "run.max_steps=3", "run.eval_every=3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(out / "rank0.pt", weights_only=True)
    b = torch.load(out / "rank1.pt", weights_only=True)
    saved = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
        assert torch.equal(a[key], saved[key]), key  # rank 0 checkpoint = final weights
    assert any(not torch.equal(a[k], torch.zeros_like(a[k])) for k in a)
    assert (out / "metrics.jsonl").exists() and not (out / "rank1").exists()
