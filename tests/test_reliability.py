"""Issue 15 ("never lose a user's data"): one regression test per case of the adversarial sweep.

The data-loss cases (1-3) run on real folders built from ``../shared/data`` recordings plus
files of the user's own (notes, other projects), and compare the md5 of every file before and
after. docs/RELIABILITY.md lists every bad input, the expected behaviour and the test here.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import noisy_speech, run_cli
from specdenoise import cli
from specdenoise.enhance import Denoiser, denoise_file
from specdenoise.errors import CheckpointError, ConfigError
from specdenoise.models import build_model, save_checkpoint, serialize


# --- helpers -----------------------------------------------------------------------------------


def md5_tree(*folders: Path) -> dict[str, str]:
    """path -> md5 of every file under ``folders`` (hidden ones included)."""
    out = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file() and not p.is_symlink():
                out[str(p)] = hashlib.md5(p.read_bytes()).hexdigest()
    return out


def main(capsys, *args: str) -> tuple[int, str, str]:
    """``specdenoise ARGS`` in this process (the refusals happen before any heavy work)."""
    capsys.readouterr()
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def user_data(tmp_path_factory, shared_data) -> Path:
    """A user's folder: real speech (3 speakers) and noise recordings, plus notes of their own."""
    root = tmp_path_factory.mktemp("user") / "data"
    speech_src = sorted((shared_data / "speech" / "librispeech_train-clean-100").rglob("*.flac"))
    by_speaker: dict[str, list[Path]] = {}
    for f in speech_src:
        by_speaker.setdefault(f.name.split("-")[0], []).append(f)
    speakers = sorted(by_speaker)[:6]
    for spk in speakers:
        for f in by_speaker[spk][:2]:
            dst = root / "speech" / spk / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst)
    for f in sorted((shared_data / "noise").rglob("*.flac"))[:6]:
        dst = root / "noise" / f.parent.name / f.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dst)
    (root / "NOTES.txt").write_text("my notes: not a specdenoise file\n")
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_model("unet", depth=2, base_channels=4).eval()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", serialize(model))


@pytest.fixture(scope="module")
def speech(shared_data):
    def make(seconds: float, rate: int = 16000, channels: int | None = None, seed: int = 0) -> np.ndarray:
        return noisy_speech(shared_data, np.random.default_rng(seed), seconds, rate, channels)
    return make


def wav(path: Path, x: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.T if x.ndim == 2 else x, rate, subtype=subtype)
    return path


def denoise(capsys, ckpt, *args):
    return main(capsys, "denoise", "--model", ckpt, "--threads", "1", "--no-progress", *args)


# --- 1. synth --force deletes whatever --out names --------------------------------------------


def _synth(user_data: Path, out: Path, *extra: str) -> list[str]:
    return ["synth", "--speech", user_data / "speech", "--noise", user_data / "noise", "--out", out,
            "--hours", "0.01", "--clip-seconds", "2", "--workers", "1", "--no-progress", *extra]


@pytest.mark.parametrize("where", ["data", "data/speech", "data/speech/1034", "data/noise/sub"])
def test_synth_force_never_touches_an_input_folder(capsys, user_data, where):
    before = md5_tree(user_data)
    out = user_data.parent / where
    for extra in ([], ["--force"]):
        rc, _, err = main(capsys, *_synth(user_data, out, *extra))
        line = one_line(err)
        assert rc == 1 and "input" in line, line
    assert md5_tree(user_data) == before
    assert not list(user_data.parent.rglob("*.partial"))


def test_synth_force_never_replaces_a_folder_that_is_not_a_corpus(capsys, user_data, tmp_path):
    project = tmp_path / "project"
    (project / "test").mkdir(parents=True)
    (project / "test" / "results.csv").write_text("a,b\n1,2\n")
    (project / "README").write_text("mine")
    before = md5_tree(project, user_data)
    rc, _, err = main(capsys, *_synth(user_data, project, "--force"))
    assert rc == 1 and "corpus.json missing" in one_line(err)
    assert md5_tree(project, user_data) == before


def test_synth_out_an_existing_file_is_refused_before_any_work(capsys, user_data, tmp_path):
    """Item 10: refused at once, no CORPUS.partial left."""
    target = tmp_path / "corpus"
    target.write_text("a file")
    for extra in ([], ["--force"]):
        rc, _, err = main(capsys, *_synth(user_data, target, *extra))
        assert rc == 1 and "not a folder" in one_line(err)
    assert target.read_text() == "a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_synth_partial_folder_of_someone_else_is_not_deleted(capsys, user_data, tmp_path):
    theirs = tmp_path / "corpus.partial"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("not ours")
    rc, _, err = main(capsys, *_synth(user_data, tmp_path / "corpus"))
    assert rc == 1 and "not made by specdenoise" in one_line(err)
    assert (theirs / "keep.txt").read_text() == "not ours"


def test_synth_force_replaces_its_own_corpus(capsys, user_data, tmp_path):
    out = tmp_path / "corpus"
    before = md5_tree(user_data)
    rc, _, err = main(capsys, *_synth(user_data, out))
    assert rc == 0, err
    first = md5_tree(out)
    rc, _, err = main(capsys, *_synth(user_data, out))
    assert rc == 1 and "--force" in one_line(err)
    rc, _, err = main(capsys, *_synth(user_data, out, "--force", "--seed", "3"))
    assert rc == 0, err
    assert md5_tree(out) != first and (out / "corpus.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no .partial, no .old left
    assert md5_tree(user_data) == before


# --- 2. preprocess deletes train/ validation/ test/ under --out --------------------------------


def test_preprocess_never_writes_into_the_corpus(capsys, tiny_corpus):
    before = md5_tree(tiny_corpus)
    for out in (tiny_corpus, tiny_corpus / "cache", tiny_corpus / "train"):
        for extra in ([], ["--force"]):
            rc, _, err = main(capsys, "preprocess", tiny_corpus, "--out", out, "--no-progress", *extra)
            assert rc == 1 and "input" in one_line(err), (out, err)
    assert md5_tree(tiny_corpus) == before
    assert not (tiny_corpus / "cache").exists()


def test_preprocess_never_replaces_a_folder_that_is_not_a_cache(capsys, tiny_corpus, tmp_path):
    project = tmp_path / "proj"
    for split in ("train", "test"):
        (project / split).mkdir(parents=True)
        (project / split / "mine.txt").write_text(split)
    before = md5_tree(project, tiny_corpus)
    for extra in ([], ["--force"]):
        rc, _, err = main(capsys, "preprocess", tiny_corpus, "--out", project, "--no-progress", *extra)
        assert rc == 1 and "stft.json missing" in one_line(err)
    assert md5_tree(project, tiny_corpus) == before
    # a folder holding the corpus is refused too
    rc, _, err = main(capsys, "preprocess", tiny_corpus, "--out", tiny_corpus.parent, "--force", "--no-progress")
    assert rc == 1 and "contains the input" in one_line(err)
    assert md5_tree(project, tiny_corpus) == before


def test_preprocess_replaces_its_own_cache_only_with_force(capsys, tiny_corpus, tmp_path):
    out = tmp_path / "cache"
    out.mkdir()  # an empty folder holds nothing to lose
    rc, _, err = main(capsys, "preprocess", tiny_corpus, "--out", out, "--no-progress")
    assert rc == 0, err
    first = md5_tree(out)
    rc, _, err = main(capsys, "preprocess", tiny_corpus, "--out", out, "--no-progress")
    assert rc == 1 and "--force" in one_line(err)
    assert md5_tree(out) == first
    rc, _, err = main(capsys, "preprocess", tiny_corpus, "--out", out, "--no-progress", "--force",
                      "--merge-train-validation")
    assert rc == 0, err
    assert (out / "train+validation" / "noisy.npy").is_file()
    assert {k: v for k, v in md5_tree(out).items() if "train+validation" not in k and "stft.json" not in k} == {
        k: v for k, v in first.items() if "stft.json" not in k}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_preprocess_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_corpus, tmp_path):
    """Item 9: free space is checked first (the memory-mapped write died of SIGBUS)."""
    disk = tmp_path / "small_disk"
    if not _mount_tmpfs(disk, "2m"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        proc = run_cli("preprocess", tiny_corpus, "--out", disk / "cache", "--no-progress", check=False)
        assert proc.returncode == 1
        assert "MB are free" in one_line(proc.stderr)
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# --- 3. denoise --force overwrites another input of the batch ----------------------------------


def test_denoise_output_that_is_another_input_is_refused(capsys, ckpt, speech, tmp_path):
    a = wav(tmp_path / "A" / "x.wav", speech(1.0, seed=1))
    b = wav(tmp_path / "B" / "x.wav", speech(1.0, seed=2))
    before = md5_tree(tmp_path)
    rc, _, err = denoise(capsys, ckpt, tmp_path / "A", b, "-o", tmp_path / "B", "--force")
    assert rc == 1
    skipped = [line for line in err.splitlines() if "skipped" in line]
    assert len(skipped) == 2 and all("is an input of this batch" in line for line in skipped), err
    assert md5_tree(tmp_path) == before
    assert a.exists() and not list(tmp_path.rglob("*.tmp"))


def test_denoise_input_folder_inside_out_is_denoised_not_skipped(capsys, ckpt, speech, tmp_path):
    a = wav(tmp_path / "A" / "y.wav", speech(1.0, seed=3))
    sub = wav(tmp_path / "B" / "sub" / "y.wav", speech(1.0, seed=4))
    before = md5_tree(tmp_path)
    rc, _, err = denoise(capsys, ckpt, tmp_path / "A", tmp_path / "B" / "sub", "-o", tmp_path / "B", "--force")
    assert rc == 1  # both map to B/y.wav: the first is written, the second refused
    line = next(line for line in err.splitlines() if "skipped" in line)
    assert str(sub) in line and str(a) in line and "also the output" in line
    after = md5_tree(tmp_path)
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == [str(tmp_path / "B" / "y.wav")]


def test_denoise_rec_raw_into_rec(capsys, ckpt, speech, tmp_path):
    rec = tmp_path / "rec"
    wav(rec / "raw" / "x.wav", speech(1.0, seed=5))
    wav(rec / "raw" / "raw" / "x.wav", speech(1.0, seed=6))  # its output would be rec/raw/x.wav: an input
    before = md5_tree(rec)
    rc, _, err = denoise(capsys, ckpt, rec / "raw", "-o", rec, "--force")
    assert rc == 1
    line = one_line([x for x in err.splitlines() if "skipped" in x][0])
    assert "raw/raw/x.wav" in line and "is an input" in line
    after = md5_tree(rec)
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == [str(rec / "x.wav")]
    assert sf.info(rec / "x.wav").frames == 16000
