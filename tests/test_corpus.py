"""Corpus synthesis: leak-free splits, SNR accuracy, determinism, MS-SNSD layout, bad sources."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import run_cli
from specdenoise.data.corpus import SynthConfig, collect_sources, read_meta, synthesize
from specdenoise.data.mixing import MixConfig, active_power
from specdenoise.data.sources import SPLITS, read_msnsd_config


def measured_snr(speech: np.ndarray, noise: np.ndarray, sample_rate: int) -> float:
    """SNR as the mixer defines it: active speech power over mean noise power, in dB."""
    p_noise = float(np.mean(np.square(noise, dtype=np.float64)))
    return 10 * np.log10(active_power(speech, sample_rate) / max(p_noise, 1e-20))


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_shared_data_splits_do_not_leak(shared_data):
    cfg = SynthConfig(speech_dirs=[str(shared_data / "speech")], noise_dirs=[str(shared_data / "noise")],
                      rir_dirs=[str(shared_data / "rir")], seed=0)
    by_split, sources, _ = collect_sources(cfg)
    speakers = {s: {f.speaker for f in by_split[s]["speech"] if f.speaker} for s in SPLITS}
    speech_files = {s: {f.path for f in by_split[s]["speech"]} for s in SPLITS}
    noise_files = {s: {f.path for f in by_split[s]["noise"]} for s in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not speakers[a] & speakers[b], f"speakers shared by {a} and {b}"
            assert not speech_files[a] & speech_files[b]
            assert not noise_files[a] & noise_files[b], f"noise files shared by {a} and {b}"
    # every file is used exactly once, and the split hours follow 8:4:4 roughly
    assert sum(len(v) for v in speech_files.values()) == len(sources.speech)
    hours = {s: sum(f.duration for f in by_split[s]["speech"]) for s in SPLITS}
    total = sum(hours.values())
    assert abs(hours["train"] / total - 0.5) < 0.05 and abs(hours["test"] / total - 0.25) < 0.05
    # the LibriSpeech sample speakers 198 and 5703 also appear in train-clean-100: one split each
    for spk in ("198", "5703"):
        homes = [s for s in SPLITS if spk in speakers[s]]
        assert len(homes) == 1, (spk, homes)
    # noise is split per category (stratified): a category of n files reaches min(n, 3) splits,
    # and enough categories have three or more files for the test split to hold at least ten
    categories = {s: {f.category for f in by_split[s]["noise"]} for s in SPLITS}
    files_per_category = Counter(f.category for s in SPLITS for f in by_split[s]["noise"])
    for category, count in files_per_category.items():
        reached = [s for s in SPLITS if category in categories[s]]
        assert len(reached) == min(count, 3), (category, count, reached)
    assert len(categories["test"]) >= 10


def test_corpus_layout_snr_and_mixture(tiny_corpus):
    info = json.loads((tiny_corpus / "corpus.json").read_text())
    assert info["seed"] == 7 and info["config"]["mix"]["clip_seconds"] == 3
    for split in SPLITS:
        rows = read_meta(tiny_corpus / split)
        assert len(rows) == info["clips"][split] > 0
        for row in rows:
            clean, sr = sf.read(tiny_corpus / split / "clean" / f"{row['clip']}.wav", dtype="float32")
            noise, _ = sf.read(tiny_corpus / split / "noise" / f"{row['clip']}.wav", dtype="float32")
            noisy, _ = sf.read(tiny_corpus / split / "noisy" / f"{row['clip']}.wav", dtype="float32")
            assert sr == 16000 and len(clean) == len(noisy) == 3 * 16000
            assert abs(measured_snr(clean, noise, sr) - float(row["snr_db"])) < 0.1, row
            np.testing.assert_allclose(noisy, clean + noise, atol=1e-6)
            assert np.abs(noisy).max() <= 0.99 + 1e-6
            assert -5.0 <= float(row["snr_db"]) <= 20.0


def test_meta_speakers_and_noise_files_disjoint_across_splits(tiny_corpus):
    info = json.loads((tiny_corpus / "corpus.json").read_text())
    groups = {s: set(info["splits"][s]["speakers"]) for s in SPLITS}
    noises = {s: set(info["splits"][s]["noise_files"]) for s in SPLITS}
    used_noise = {s: {r["noise_file"].split("@")[0] for r in read_meta(tiny_corpus / s)
                      if r["noise_category"] != "babble_derived"} for s in SPLITS}
    for i, a in enumerate(SPLITS):
        assert used_noise[a] <= noises[a]
        for b in SPLITS[i + 1:]:
            assert not groups[a] & groups[b]
            assert not noises[a] & noises[b]


def test_same_seed_gives_byte_identical_corpus(tmp_path, shared_data):
    args = ["--speech", shared_data / "speech" / "librispeech_train-clean-100", "--noise", shared_data / "noise" / "music",
            shared_data / "noise" / "kitchen", "--hours", "0.01", "--clip-seconds", "2", "--seed", "3", "--no-progress",
            "--simulate-rir", "3"]
    run_cli("synth", *args, "--out", tmp_path / "a", "--workers", "1")
    run_cli("synth", *args, "--out", tmp_path / "b", "--workers", "2")
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    # no RIR folder: each split's pool is rooms simulated with pyroomacoustics, and a clip is dry
    # ("none") or reverberated by a room of its own split's pool; this seed gives both kinds
    info = json.loads((tmp_path / "a" / "corpus.json").read_text())
    used = []
    for s in SPLITS:
        pool = info["splits"][s]["rirs"]
        assert pool and all(n.startswith("simulated:pyroomacoustics:") for n in pool), (s, pool)
        rirs = [r["rir"] for r in read_meta(tmp_path / "a" / s)]
        assert set(rirs) <= {"none", *pool}, (s, rirs, pool)
        used += rirs
    assert "none" in used and any(r != "none" for r in used), used
    # another seed gives another corpus; an existing corpus is refused without --force
    proc = run_cli("synth", *args, "--out", tmp_path / "a", check=False)
    assert proc.returncode == 1 and "--force" in proc.stderr
    other = [str(a) for a in args]
    other[other.index("--seed") + 1] = "4"
    run_cli("synth", *other, "--out", tmp_path / "a", "--force")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "b")


def test_babble_uses_same_split_speakers(tmp_path, shared_data):
    cfg = SynthConfig(speech_dirs=[str(shared_data / "speech" / "librispeech_train-clean-100")],
                      noise_dirs=[str(shared_data / "noise" / "music")], hours=0.01, seed=1,
                      mix=MixConfig(clip_seconds=2.0, babble_probability=1.0, rir_probability=0.0))
    summary = synthesize(cfg, tmp_path / "c", workers=1, progress=False)
    for split in SPLITS:
        speakers = {g.split(":", 1)[1] for g in summary["splits"][split]["speakers"]}
        for row in read_meta(tmp_path / "c" / split):
            assert row["noise_category"] == "babble_derived"
            talkers = row["noise_file"][len("babble("):-1].split("+")
            assert 3 <= len(talkers) <= 8
            for t in talkers:  # librispeech_train-clean-100/SPEAKER/file.flac
                assert t.split("/")[1] in speakers


def _write(path: Path, data, sr: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, subtype=subtype)
    return path


def test_bad_sources_are_skipped_and_reported(tmp_path, shared_data):
    speech = tmp_path / "speech"
    good = sorted((shared_data / "speech" / "librispeech_train-clean-100").rglob("*.flac"))[:12]
    for i, f in enumerate(good):
        data, sr = sf.read(f)
        if i == 0:  # wrong rate: resampled, not skipped
            import soxr
            data, sr = soxr.resample(data, sr, 44100), 44100
        _write(speech / f"s{i}.wav", data, sr)
    (speech / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    _write(speech / "silent.wav", np.zeros(16000), 16000)
    _write(speech / "nan.wav", np.full(16000, np.nan, np.float32), 16000, "FLOAT")
    (speech / "empty.wav").write_bytes(b"")
    out = tmp_path / "c"
    proc = run_cli("synth", "--speech", speech, "--noise", shared_data / "noise" / "music", "--out", out,
                   "--hours", "0.01", "--clip-seconds", "2", "--workers", "1", "--no-progress")
    for name in ("corrupt.wav", "silent.wav", "nan.wav", "empty.wav"):
        assert name in proc.stdout, proc.stdout
    assert "s0.wav" not in proc.stdout
    info = json.loads((out / "corpus.json").read_text())
    assert len(info["skipped"]) == 4
    assert not list(tmp_path.glob("*.partial"))


def test_missing_source_folder_fails_cleanly(tmp_path):
    proc = run_cli("synth", "--speech", tmp_path / "nope", "--noise", tmp_path / "nope2", "--out", tmp_path / "c", check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "nope" in proc.stderr
    assert not (tmp_path / "c").exists() and not (tmp_path / "c.partial").exists()


def test_msnsd_layout(tmp_path, shared_data):
    root = tmp_path / "MS-SNSD"
    speech = sorted((shared_data / "speech" / "librispeech_train-clean-100").rglob("*.flac"))
    for i, f in enumerate(speech[:16]):
        data, sr = sf.read(f)
        _write(root / ("clean_test" if i < 4 else "clean_train") / f"clnsp{i}.wav", data[: 4 * sr], sr)
    cats = {"Babble": "crowd_babble", "Typing": "keyboard_typing", "Traffic": "traffic_road", "AirConditioner": "appliance"}
    for cat, folder in cats.items():
        files = sorted((shared_data / "noise" / folder).rglob("*.flac"))
        for j, f in enumerate(files[:3]):
            data, sr = sf.read(f)
            _write(root / ("noise_test" if j == 0 else "noise_train") / f"{cat}_{j}.wav", data, sr)
    (root / "noisyspeech_synthesizer.cfg").write_text(
        "[noisy_speech]\nsampling_rate: 16000\naudioformat: *.wav\naudio_length: 3\nsilence_length: 0.2\n"
        "total_hours: 0.02\nsnr_lower: 0\nsnr_upper: 40\ntotal_snrlevels: 5\nnoise_types_excluded: AirConditioner\n")
    cfg = read_msnsd_config(root)
    assert cfg.audio_length == 3 and cfg.total_snrlevels == 5 and cfg.noise_types_excluded == ("AirConditioner",)
    out = tmp_path / "corpus"
    run_cli("synth", "--msnsd", root, "--out", out, "--workers", "1", "--no-progress")  # hours from the cfg
    assert json.loads((out / "corpus.json").read_text())["clips"] == {"train": 12, "validation": 6, "test": 6}
    levels = set(np.linspace(0, 40, 5).round(4))
    for split in SPLITS:
        for row in read_meta(out / split):
            assert float(row["snr_db"]) in levels
            assert not row["noise_category"].startswith("AirConditioner")
            clean, _ = sf.read(out / split / "clean" / f"{row['clip']}.wav")
            assert len(clean) == 3 * 16000
            if row["noise_category"] != "babble_derived":
                in_test = "/noise_test/" in "/" + row["noise_file"]
                assert in_test == (split == "test"), row
            files = row["speech_files"].split(";")
            assert all(("clean_test/" in f) == (split == "test") for f in files), row


def test_active_power_ignores_pauses():
    sr = 16000
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)
    padded = np.concatenate([tone, np.zeros(3 * sr)])
    assert abs(10 * np.log10(active_power(padded, sr) / active_power(tone, sr))) < 0.05
    assert active_power(np.zeros(sr), sr) == 0.0
