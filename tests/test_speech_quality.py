"""The DNSMOS floor on training speech (data/quality.py, data.speech_min_bak / speech_min_sig):
noisy speech scores lower and is dropped, scores are cached by content (rescored when a file
changes, not when it is copied or touched), and the trainer's pools leave out exactly the files below the floor."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO_ROOT, cli_env
from specdenoise import audio
from specdenoise import config as config_io
from specdenoise.data import quality
from specdenoise.data.quality import SpeechQuality, filter_speech, score_speech
from specdenoise.data.sources import SourceFile, assign_splits, scan
from specdenoise.errors import ConfigError
from specdenoise.training.config import TrainConfig
from specdenoise.training.trainer import dynamic_mix_pools

RATE = 16000


def _clean_and_noisy(shared_data, folder, rng) -> list[SourceFile]:
    source = sorted((shared_data / "speech" / "librispeech_train-clean-100").rglob("*.flac"))[0]
    clean, _ = audio.read(source, sample_rate=RATE)
    clean = clean[: 6 * RATE]
    noise = rng.standard_normal(len(clean)).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-5 / 20)  # 5 dB SNR
    folder.mkdir()
    files = []
    for name, data in (("clean.wav", clean), ("noisy.wav", clean + noise)):
        sf.write(folder / name, data, RATE, subtype="PCM_16")
        files.append(SourceFile(folder / name, "speech", "test", duration=len(data) / RATE))
    return files


def test_noisy_speech_scores_lower_is_dropped_and_cached(shared_data, tmp_path, rng, monkeypatch):
    clean, noisy = _clean_and_noisy(shared_data, tmp_path / "speech", rng)
    scores = score_speech([clean, noisy], tmp_path / "cache", workers=1)
    assert scores[noisy.path].bak < scores[clean.path].bak - 0.5
    floor = (scores[noisy.path].bak + scores[clean.path].bak) / 2
    kept, dropped = filter_speech([clean, noisy], scores, min_bak=floor)
    assert kept == [clean] and dropped == [noisy]
    assert filter_speech([clean, noisy], scores)[1] == []  # no floor: nothing dropped
    assert len((tmp_path / "cache" / quality.CACHE_NAME).read_text().splitlines()) == 3  # header + 2

    rescored = []

    def fake(path):
        rescored.append(path)
        return SpeechQuality(1.0, 1.0, 1.0)

    monkeypatch.setattr(quality, "_score_file", fake)
    assert score_speech([clean, noisy], tmp_path / "cache", workers=1) == scores  # from the cache
    assert rescored == []
    sf.write(noisy.path, np.zeros(RATE, dtype=np.float32), RATE, subtype="PCM_16")  # the file changed
    again = score_speech([clean, noisy], tmp_path / "cache", workers=1)
    assert rescored == [str(noisy.path.resolve())] and again[noisy.path].bak == 1.0
    assert again[clean.path] == scores[clean.path]

    moved = tmp_path / "copied" / "clean.wav"  # a re-synced data folder: same bytes, new path and mtime
    moved.parent.mkdir()
    moved.write_bytes(clean.path.read_bytes())
    copy = SourceFile(moved, "speech", "test", duration=clean.duration)
    assert score_speech([copy], tmp_path / "cache", workers=1)[moved] == scores[clean.path]
    assert len(rescored) == 1


def test_trainer_pools_leave_out_speech_below_the_floor(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECDENOISE_CACHE", str(tmp_path / "cache"))
    speech = [shared_data / "speech" / "fsdd", shared_data / "speech" / "cmu_arctic"]
    base = ["tracking.tracker=none", "data.dynamic_mix=true", "data.simulated_rirs=0", "run.threads=1",
            f"data.speech=[{','.join(str(s) for s in speech)}]", f"data.noise=[{shared_data / 'noise' / 'music'}]"]
    everything, _, _ = dynamic_mix_pools(config_io.load(TrainConfig, None, base), RATE, with_validation=False)
    floored, _, _ = dynamic_mix_pools(config_io.load(TrainConfig, None, [*base, "data.speech_min_bak=3.8"]), RATE,
                                      with_validation=False)
    cached = quality._read_cache(tmp_path / "cache" / quality.CACHE_NAME)
    bak = {path: q.bak for path, q in cached.values()}
    by_name = {name: next(b for p, b in bak.items() if p.endswith(name)) for name in everything.speech_names}
    assert set(floored.speech_names) == {n for n, b in by_name.items() if b >= 3.8}
    assert 0 < len(floored.speech_names) < len(everything.speech_names)  # these sources hold both kinds


def test_a_floor_with_a_pack_is_refused(tmp_path):
    cfg = config_io.load(TrainConfig, None, ["data.dynamic_mix=true", f"data.pack={tmp_path}", "data.speech_min_bak=3.5"])
    with pytest.raises(ConfigError, match="speech_min_bak"):
        dynamic_mix_pools(cfg, RATE)


def test_report_script_tables_a_split_and_its_floors(shared_data, tmp_path):
    script = REPO_ROOT / "scripts" / "speech_quality.py"
    speech = [shared_data / "speech" / "fsdd", shared_data / "speech" / "cmu_arctic"]
    proc = subprocess.run([sys.executable, str(script), "--speech", *map(str, speech), "--floor-bak", "3.8",
                           "--workers", "1"], capture_output=True, text=True, env=cli_env(SPECDENOISE_CACHE=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("|")[1].strip(): line.split("|")[2:] for line in proc.stdout.splitlines()[2:]}
    files = assign_splits(scan(speech, "speech"), 0)["train"]
    kept, _ = filter_speech(files, score_speech(files, tmp_path, workers=1), min_bak=3.8)  # cached: same scores
    assert int(rows["**all**"][0]) == len(files) and int(rows["kept at BAK >= 3.8"][0]) == len(kept)
    folders = [k for k in rows if k != "**all**" and not k.startswith("kept")]  # speaker folders below the roots
    assert sum(int(rows[k][0]) for k in folders) == len(files) and len(folders) > 1
