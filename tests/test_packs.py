"""Training packs (`specdenoise pack`, data.pack): lossless round trip, the same mixtures as from
the source folders, Opus packs close to the original, capped validation pools, errors; and the
time budget of a run (run.max_minutes)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import yaml

from conftest import REPO_ROOT, run_cli
from specdenoise import config as config_io
from specdenoise.data.mixing import Mixer, Pools
from specdenoise.data.packs import join_pools, limit_pools, read_pack, trim_tail, write_pack
from specdenoise.errors import ConfigError, SpecdenoiseError
from specdenoise.training.config import TrainConfig
from specdenoise.training.trainer import dynamic_mix_pools, lr_at, train

RATE = 16000


def _pools(rng: np.random.Generator) -> Pools:
    q = lambda x: (np.round(np.clip(x, -1, 1) * 32767) / 32768).astype(np.float32)  # 16-bit values
    speech = [q(0.1 * rng.standard_normal(n)) for n in (8000, 12000, 5000, 9000)]
    noise = [q(0.05 * rng.standard_normal(n)) for n in (7000, 16000)]
    rirs = [np.concatenate([[1.0], 0.3 * np.exp(-np.arange(4000) / 400.0) * rng.standard_normal(4000)]).astype(np.float32)]
    return Pools(speech=speech, speech_groups={"speaker:a": [0, 1], "speaker:b": [2], "folder:x": [3]},
                 speech_names=["a1", "a2", "b1", "x1"], speech_speakers=["a", "a", "b", ""],
                 noise=noise, noise_names=["fan", "rain"], noise_categories=["fan", "rain"],
                 rirs=rirs, rir_names=["room"])


def test_flac_pack_round_trip_is_exact(tmp_path, rng):
    pools = _pools(rng)
    write_pack(tmp_path / "p", {"train": pools, "validation": pools}, RATE, {"why": "test"})
    back = read_pack(tmp_path / "p", "train", RATE)
    for a, b in zip(pools.speech + pools.noise, back.speech + back.noise):
        np.testing.assert_array_equal(a, b)
    assert back.speech_groups == pools.speech_groups and back.speech_speakers == pools.speech_speakers
    assert back.noise_categories == pools.noise_categories and back.rir_names == ["room"]
    np.testing.assert_allclose(back.rirs[0][:100], pools.rirs[0][:100], atol=1e-3)  # float16
    assert len(back.rirs[0]) < len(pools.rirs[0])  # the inaudible tail is trimmed
    assert json.loads((tmp_path / "p" / "pack.json").read_text())["provenance"] == {"why": "test"}


def test_opus_pack_is_close_and_smaller(tmp_path, rng):
    pools = _pools(rng)
    t = np.arange(20000) / RATE
    pools.speech[1] = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    write_pack(tmp_path / "flac", {"train": pools, "validation": pools}, RATE, {})
    write_pack(tmp_path / "opus", {"train": pools, "validation": pools}, RATE, {}, codec="opus", speech_quality=0.3)
    back = read_pack(tmp_path / "opus", "train", RATE)
    assert [len(x) for x in back.speech] == [len(x) for x in pools.speech]
    err = back.speech[1] - pools.speech[1]
    assert 10 * np.log10(np.sum(pools.speech[1] ** 2) / np.sum(err**2)) > 15
    size = lambda p: sum(f.stat().st_size for f in p.glob("train.*.*"))
    assert size(tmp_path / "opus") < size(tmp_path / "flac")


def test_limit_and_join_keep_groups_whole(rng):
    pools = _pools(rng)
    small = limit_pools(pools, max_speech_seconds=0.1, max_noise_seconds=0.1, sample_rate=RATE)
    assert len(small.speech_groups) == 1 and len(small.noise) == 1  # at least one of each
    group = next(iter(small.speech_groups))
    assert len(small.speech_groups[group]) == len(pools.speech_groups[group])  # whole speaker
    both = join_pools(pools, small)
    assert len(both.speech) == len(pools.speech) + len(small.speech)
    for g, members in both.speech_groups.items():
        assert all(0 <= i < len(both.speech) for i in members)
    assert len(both.speech_groups[group]) == 2 * len(pools.speech_groups[group])


def test_trim_tail_keeps_the_energy():
    rir = np.exp(-np.arange(20000) / 800.0).astype(np.float32)
    kept = trim_tail(rir, floor_db=-60.0)
    assert 4000 < len(kept) < 20000
    assert np.sum(rir[len(kept):] ** 2) <= 1e-6 * np.sum(rir**2) * 1.01


def test_pack_errors_name_the_problem(tmp_path, rng):
    with pytest.raises(SpecdenoiseError, match="pack.json missing"):
        read_pack(tmp_path, "train", RATE)
    write_pack(tmp_path / "p", {"train": _pools(rng)}, RATE, {})
    with pytest.raises(ConfigError, match="16000 Hz but the model is at 8000"):
        read_pack(tmp_path / "p", "train", 8000)
    with pytest.raises(SpecdenoiseError, match="no 'validation' split"):
        read_pack(tmp_path / "p", "validation", RATE)
    audio = tmp_path / "p" / "train.speech.flac"
    audio.write_bytes(audio.read_bytes()[:200])
    with pytest.raises(SpecdenoiseError, match="train.speech.flac"):
        read_pack(tmp_path / "p", "train", RATE)


def _source_overrides(shared_data) -> list[str]:
    return ["tracking.tracker=none", "run.progress=false", "data.dynamic_mix=true", "data.simulated_rirs=0",
            f"data.speech=[{shared_data / 'speech' / 'librispeech_train-clean-100'}]",
            f"data.noise=[{shared_data / 'noise' / 'music'}]", f"data.rir=[{shared_data / 'rir'}]"]


def test_cli_pack_gives_the_same_mixtures_and_trains(shared_data, tmp_path):
    config = tmp_path / "crn.yaml"
    raw = yaml.safe_load((REPO_ROOT / "configs" / "crn.yaml").read_text())
    config.write_text(yaml.safe_dump(raw))
    overrides = _source_overrides(shared_data)
    proc = run_cli("pack", "--config", config, "--out", tmp_path / "pack", *overrides)
    assert "flac pack" in proc.stdout and "train:" in proc.stdout
    provenance = json.loads((tmp_path / "pack" / "pack.json").read_text())["provenance"]
    assert (provenance["speech_min_bak"], provenance["speech_min_sig"]) == (0.0, 0.0)  # the floor it was built with
    again = run_cli("pack", "--config", config, "--out", tmp_path / "pack", *overrides, check=False)
    assert again.returncode != 0 and "use --force" in again.stderr
    cfg = config_io.load(TrainConfig, config, overrides)
    direct_train, direct_val, mix = dynamic_mix_pools(cfg, RATE)
    packed = config_io.load(TrainConfig, config, ["tracking.tracker=none", f"data.pack={tmp_path / 'pack'}"])
    pack_train, pack_val, _ = dynamic_mix_pools(packed, RATE)
    for a, b in zip(direct_train.speech + direct_train.noise, pack_train.speech + pack_train.noise):
        np.testing.assert_array_equal(a, b)  # 16-bit sources through FLAC: bit for bit
    for a, b in zip(direct_train.rirs, pack_train.rirs):
        assert len(b) <= len(a) and np.max(np.abs(a[: len(b)] - b)) < 1e-3 * np.max(np.abs(a))  # float16
    dry = replace(mix, rir_probability=0.0)
    for seed in range(3):  # the same seed: the same mixture
        a = Mixer(direct_train, dry).mix(np.random.default_rng(seed), length=RATE)
        b = Mixer(pack_train, dry).mix(np.random.default_rng(seed), length=RATE)
        np.testing.assert_array_equal(a.noisy, b.noisy)
        np.testing.assert_array_equal(a.clean, b.clean)
    assert len(pack_val.speech) == len(direct_val.speech)
    run = tmp_path / "run"
    out = run_cli("train", "--config", config, "--out", run, "--tracker", "none", f"data.pack={tmp_path / 'pack'}",
                  "model.channels=8", "model.first_channels=4", "model.gru_hidden=8", "data.batch_size=2",
                  "data.val_clips=1", "data.crop_seconds=1.0", "run.pesq_stoi_clips=0", "run.media_every=0",
                  "run.max_steps=2", "run.eval_every=2", "run.threads=1")
    assert "stopped after 2 steps" in out.stdout and (run / "best.pt").exists()
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["pack"] == str(tmp_path / "pack")


def test_pack_needs_sources_not_a_pack(tmp_path):
    proc = run_cli("pack", "--config", REPO_ROOT / "configs" / "crn.yaml", "--out", tmp_path / "p",
                   "data.pack=somewhere", check=False)
    assert proc.returncode != 0 and "without data.pack" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_time_budget_ends_the_cosine_and_the_run(tiny_cache, tmp_path):
    cfg = config_io.load(TrainConfig, REPO_ROOT / "configs" / "unet.yaml", [
        f"data.path={tiny_cache}", "tracking.tracker=none", "run.progress=false", "model.depth=2",
        "model.base_channels=4", "data.batch_size=2", "data.val_clips=1", "data.crop_seconds=1.0",
        "run.pesq_stoi_clips=0", "run.media_every=0", "run.threads=1", "optim.warmup_steps=0",
        "run.max_steps=100000", "run.eval_every=100000", "run.max_minutes=0.0001"])
    assert lr_at(cfg, 10, 1.0, time_used=0.0) == pytest.approx(cfg.optim.lr, rel=1e-3)
    assert lr_at(cfg, 10, 1.0, time_used=1.0) == pytest.approx(cfg.optim.lr * cfg.optim.min_lr_ratio)
    summary = train(cfg, tmp_path / "run")
    assert summary["stop_reason"] == "max_minutes" and summary["steps"] < 100
    assert (tmp_path / "run" / "best.pt").exists() and summary["history"]  # validated before stopping
