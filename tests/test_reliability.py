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

from conftest import REPO_ROOT as REPO
from conftest import cli_env, noisy_speech, run_cli
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
def ckpt(tiny_ckpt) -> Path:
    """The shared small random U-Net (tests/conftest.py)."""
    return tiny_ckpt


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


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.parametrize("options, words", [
    # item 9: free space is checked first (the memory-mapped write died of SIGBUS)
    ("size=2m", "MB are free"),
    # item 9: a disk that runs out while writing (here: of inodes, after the space check)
    ("size=200m,nr_inodes=6", "cannot write the cache (No space left on device)"),
    ("size=200m,nr_inodes=9", "cannot write the cache (No space left on device)"),
], ids=["full", "inodes-6", "inodes-9"])
def test_preprocess_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_corpus, tmp_path, options, words):
    """A disk too small before or during the write: one line, and the partial cache is removed."""
    disk = tmp_path / "small_disk"
    if not _mount_tmpfs(disk, options):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        proc = run_cli("preprocess", tiny_corpus, "--out", disk / "cache", "--no-progress", check=False)
        assert proc.returncode == 1
        assert words in one_line(proc.stderr)
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


# --- 4. API: (samples, channels) arrays ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(ckpt) -> Denoiser:
    return Denoiser.from_checkpoint(ckpt, threads=1)


def test_api_channels_last_layout(tiny, speech):
    x = speech(1.2, 22050, channels=2)  # (2, n)
    first = tiny(x, 22050)
    last = tiny(np.ascontiguousarray(x.T), 22050)  # what soundfile.read returns for stereo
    assert last.shape == x.T.shape
    np.testing.assert_allclose(last, first.T, atol=1e-6)
    np.testing.assert_allclose(tiny(x.T, 22050, layout="channels_last"), first.T, atol=1e-6)
    tall = tiny(torch.from_numpy(np.ascontiguousarray(x.T)), 22050)
    np.testing.assert_allclose(tall.numpy(), first.T, atol=1e-6)


def test_api_n_by_1_is_one_channel(tiny, speech):
    x = speech(0.8, 16000)
    np.testing.assert_allclose(tiny(x[:, None], 16000)[:, 0], tiny(x, 16000), atol=1e-6)
    np.testing.assert_allclose(tiny(x[None, :], 16000)[0], tiny(x, 16000), atol=1e-6)


def test_api_ambiguous_or_unknown_layout_is_refused(tiny):
    with pytest.raises(ConfigError, match="ambiguous"):
        tiny(np.zeros((4, 4), np.float32), 16000)
    assert tiny(np.zeros((4, 4), np.float32), 16000, layout="channels_first").shape == (4, 4)
    with pytest.raises(ConfigError, match="layout"):
        tiny(np.zeros((2, 100), np.float32), 16000, layout="rows")


# --- 7. API dtypes and rates ---------------------------------------------------------------------


def test_api_integer_pcm_is_scaled_like_soundfile(tiny, speech, tmp_path):
    x = speech(1.0, 16000)
    for subtype, dtype in (("PCM_16", "int16"), ("PCM_32", "int32"), ("PCM_U8", "uint8")):
        path = wav(tmp_path / f"{subtype}.wav", x, subtype=subtype)
        ints, _ = sf.read(path, dtype=dtype if dtype != "uint8" else "int16")
        if dtype == "uint8":  # soundfile reads 8-bit WAV as int16 only: build the unsigned bytes
            ints = (ints // 256 + 128).astype(np.uint8)
        floats, _ = sf.read(path, dtype="float32")
        y = tiny(ints, 16000)
        assert y.dtype == np.float32 and np.abs(y).max() < 1.5, subtype
        np.testing.assert_allclose(y, tiny(floats, 16000), atol=1e-5, err_msg=subtype)
    y = tiny(torch.from_numpy((x * 32767).astype(np.int16)), 16000)
    assert y.dtype == torch.float32 and y.abs().max() < 1.5


@pytest.mark.parametrize("bad, match", [(np.zeros(100, np.complex64), "complex"), (np.zeros(100, bool), "dtype"),
                                        (np.array(["a"] * 100), "dtype"), (torch.zeros(100, dtype=torch.complex64), "complex")])
def test_api_non_audio_dtypes_are_refused(tiny, bad, match):
    with pytest.raises(ConfigError, match=match):
        tiny(bad, 16000)


@pytest.mark.parametrize("rate", [2**31, 10**9, 999, 1, 1e12])
def test_api_absurd_rates_are_refused(tiny, rate):
    with pytest.raises(ConfigError, match="sample_rate"):
        tiny(np.zeros(1000, np.float32), rate)


def test_api_bfloat16_tensor(tiny, speech):
    x = torch.from_numpy(speech(0.5, 16000)).to(torch.bfloat16)
    y = tiny(x, 16000)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape


# --- 6. NaN/Inf weights ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nan_model():
    torch.manual_seed(0)
    model = build_model("unet", depth=2, base_channels=4).eval()
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    return model


def test_nan_checkpoint_is_refused_by_name_and_nothing_is_written(capsys, nan_model, speech, tmp_path):
    bad = save_checkpoint(tmp_path / "diverged.pt", serialize(nan_model))
    src = wav(tmp_path / "in" / "x.wav", speech(1.0, seed=9))
    rc, _, err = denoise(capsys, bad, src, "-o", tmp_path / "out")
    line = one_line(err)
    assert rc == 1 and "diverged.pt" in line and "NaN" in line
    assert not (tmp_path / "out").exists()


def test_non_finite_model_output_is_an_error_and_nothing_is_written(nan_model, speech, tmp_path):
    denoiser = Denoiser(nan_model)  # the API can be handed such a model directly
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        denoiser(speech(0.5), 16000)
    src = wav(tmp_path / "x.wav", speech(1.0, seed=10))
    with pytest.raises(CheckpointError, match="unet"):
        denoise_file(denoiser, src, tmp_path / "out" / "x.wav")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_nan_checkpoint_is_not_exported(nan_model, tmp_path):
    from specdenoise.models.registry import export_for_release

    bad = save_checkpoint(tmp_path / "diverged.pt", serialize(nan_model))
    with pytest.raises(CheckpointError, match="not exported.*NaN"):
        export_for_release(bad, tmp_path / "release.pt")
    assert not (tmp_path / "release.pt").exists()


# --- 8. SIGTERM cleans up like SIGINT ----------------------------------------------------------


def _wait_for(predicate, proc, seconds=120.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def _default_sigint() -> None:
    """Children of a background job inherit an ignored SIGINT, and Python then installs no Ctrl-C
    handler: restore the default so the test measures the CLI, not how pytest was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_denoise_leaves_no_temp_file(ckpt, speech, tmp_path, sig, code):
    src = wav(tmp_path / "in" / "long.wav", np.tile(speech(10.0, seed=11), 36))  # 6 minutes: still running when signalled
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "specdenoise", "denoise", str(src), "-o", str(out), "--model",
                             str(ckpt), "--threads", "1", "--no-progress"], stderr=subprocess.PIPE, text=True, env=cli_env(),
                            preexec_fn=_default_sigint)
    assert _wait_for(lambda: out.exists() and any(p.name.endswith(".tmp") for p in out.iterdir()), proc), \
        proc.communicate()[1]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_synth_leaves_no_partial_and_no_tracebacks(user_data, tmp_path, sig, code):
    out = tmp_path / "corpus"
    partial = tmp_path / "corpus.partial"
    proc = subprocess.Popen([sys.executable, "-m", "specdenoise", "synth", "--speech", str(user_data / "speech"),
                             "--noise", str(user_data / "noise"), "--out", str(out), "--hours", "0.5",
                             "--clip-seconds", "2", "--workers", "2", "--no-progress"],
                            stderr=subprocess.PIPE, text=True, env=cli_env(), start_new_session=True,
                            preexec_fn=_default_sigint)
    assert _wait_for(lambda: (partial / "train" / "clean").is_dir() and any((partial / "train" / "clean").iterdir()),
                     proc), proc.communicate()[1]
    if sig == signal.SIGINT:  # Ctrl-C reaches the whole process group, workers included
        os.killpg(proc.pid, sig)
    else:  # kill, timeout and container stops signal the main process only
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not partial.exists() and not out.exists()


# --- 11. symlink loops; 13. names that are not UTF-8; 18. messages ------------------------------


def test_symlink_loop_is_one_bad_input_not_the_end_of_the_batch(capsys, ckpt, speech, tmp_path):
    folder = tmp_path / "in"
    wav(folder / "good.wav", speech(1.0, seed=12))
    os.symlink("l2.wav", folder / "l1.wav")
    os.symlink("l1.wav", folder / "l2.wav")
    os.symlink("missing.wav", folder / "dangling.wav")
    rc, _, err = denoise(capsys, ckpt, folder, "-o", tmp_path / "out")
    assert rc == 1
    skipped = [line for line in err.splitlines() if "skipped" in line]
    assert len(skipped) == 3 and all("symbolic link" in line for line in skipped), err
    assert "3 of 4 file(s) failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.wav"]
    rc, _, err = denoise(capsys, ckpt, folder / "l1.wav", "-o", tmp_path / "one.wav")  # named explicitly
    assert rc == 1 and "symbolic link loop" in one_line(err)


def test_non_utf8_file_name_is_denoised(capsys, ckpt, speech, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.wav")
    os.rename(wav(folder / "plain.wav", speech(1.0, seed=13)), folder / name)
    rc, out, err = denoise(capsys, ckpt, folder, "-o", tmp_path / "out")
    assert rc == 0, err
    assert sf.info(os.fsencode(tmp_path / "out" / name)).frames == 16000
    assert "caf\\xe9.wav" in out
    rc, _, err = denoise(capsys, ckpt, folder / name, "-o", tmp_path / "out")  # exists: one readable line
    assert rc == 1 and "caf\\xe9.wav" in one_line(err) and "--force" in err


@pytest.mark.parametrize("name, out, shown", [("corrupt.wav", "out", "corrupt.wav"),
                                               ("two\nlines.wav", "out.wav", "two\\nlines.wav")],
                         ids=["plain-name", "name-with-newline"])
def test_single_unreadable_file_is_one_line_naming_it(capsys, ckpt, tmp_path, name, out, shown):
    """One failed file prints one line, even when its name holds a newline (shown escaped)."""
    bad = tmp_path / name
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + os.urandom(500))
    rc, _, err = denoise(capsys, ckpt, bad, "-o", tmp_path / out)
    line = one_line(err)
    assert rc == 1 and shown in line and "unreadable" in line, line
    assert not (tmp_path / out).exists()


def test_same_file_twice_is_done_once(capsys, ckpt, speech, tmp_path):
    src = wav(tmp_path / "in" / "x.wav", speech(1.0, seed=14))
    rc, out, err = denoise(capsys, ckpt, src, tmp_path / "in" / ".." / "in" / "x.wav", tmp_path / "in",
                           "-o", tmp_path / "out")
    assert rc == 0 and err == "", err
    assert len(out.splitlines()) == 1 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.wav"]


@pytest.mark.parametrize("name, existing, words", [
    ("out.mp3", None, "cannot write"), ("out.m4a", None, "cannot write"), ("out.opus", None, "cannot write"),
    ("notes", "mine", "not a folder"),  # an existing file that is not audio
])
def test_output_we_cannot_or_must_not_write_is_refused(capsys, ckpt, speech, tmp_path, name, existing, words):
    src = wav(tmp_path / "x.wav", speech(0.5, seed=15))
    if existing is not None:
        (tmp_path / name).write_text(existing)
    rc, _, err = denoise(capsys, ckpt, src, "-o", tmp_path / name)
    assert rc == 1 and words in one_line(err)
    if existing is None:
        assert not (tmp_path / name).exists()
    else:
        assert (tmp_path / name).read_text() == existing
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"x.wav", name} if existing else {"x.wav"})


# --- 12. sizes that crash: threads, model depth ------------------------------------------------


def test_threads_out_of_range_are_refused(capsys, ckpt, speech, tmp_path):
    src = wav(tmp_path / "x.wav", speech(0.5, seed=17))
    rc, _, err = denoise(capsys, ckpt, src, "-o", tmp_path / "out", "--threads", "100000")
    assert rc == 1 and "--threads" in one_line(err)
    assert not (tmp_path / "out").exists()


def test_unet_deeper_than_the_frequency_bins_is_refused():
    with pytest.raises(ConfigError, match="too deep for 257 frequency bins"):
        build_model("unet", depth=12)
    with pytest.raises(ConfigError, match="too deep for 129"):
        build_model("unet", depth=8, stft={"n_fft": 256, "hop_length": 64})
    assert build_model("unet", depth=8, base_channels=2).depth == 8
    with pytest.raises(ConfigError, match="8192"):
        build_model("unet", depth=6, base_channels=256)
    with pytest.raises(ConfigError, match="cnn needs"):
        build_model("cnn", channels=[4] * 100, freq_kernels=[3] * 100)


# --- 14. checkpoint errors in words --------------------------------------------------------------


class Pickled:
    """Any class: pickled by reference, which torch's weights_only loader refuses to import."""


def _bad_checkpoints(folder: Path) -> dict[str, str]:
    good = serialize(build_model("unet", depth=2, base_channels=4))
    (folder / "empty.pt").write_bytes(b"")
    torch.save({"x": Pickled()}, folder / "objects.pt")
    torch.save({**good, "model": {"name": "cnn", "config": {}}}, folder / "other_arch.pt")
    torch.save({k: v for k, v in good.items() if k != "state_dict"}, folder / "no_weights.pt")
    torch.save({**good, "state_dict": {k: v for i, (k, v) in enumerate(good["state_dict"].items()) if i}},
               folder / "missing_key.pt")
    torch.save({**good, "model": {"name": "transformer", "config": {}}}, folder / "unknown.pt")
    (folder / "cut.pt").write_bytes((folder / "other_arch.pt").read_bytes()[:2000])
    (folder / "dir.pt").mkdir()
    return {"empty.pt": "empty file", "objects.pt": "Python objects", "other_arch.pt": "do not fit",
            "no_weights.pt": "weights (state_dict) are missing", "missing_key.pt": "1 missing",
            "unknown.pt": "model.name must be one of", "cut.pt": "damaged", "dir.pt": "folder"}


def test_every_checkpoint_error_names_the_file_in_words(capsys, speech, tmp_path):
    src = wav(tmp_path / "x.wav", speech(0.5, seed=18))
    for name, words in _bad_checkpoints(tmp_path).items():
        rc, _, err = denoise(capsys, tmp_path / name, src, "-o", tmp_path / "out")
        line = one_line(err)
        assert rc == 1 and name in line and words in line, line
        assert line.startswith("specdenoise denoise: error: ") and "weights_only" not in line, line
    assert not (tmp_path / "out").exists()


# --- 15. train --resume with overrides -----------------------------------------------------------

TINY_TRAIN = ["model.depth=2", "model.base_channels=4", "data.batch_size=2", "data.val_clips=2",
              "data.crop_seconds=1.0", "run.pesq_stoi_clips=0", "run.log_every=1", "optim.warmup_steps=1",
              "run.threads=1", "run.progress=false"]


def test_resume_applies_overrides_on_the_saved_config_or_refuses_them(capsys, tiny_cache, tmp_path):
    run = tmp_path / "run"
    run_cli("train", "--config", REPO / "configs" / "unet.yaml", "--data", tiny_cache, "--out", run,
            "--max-steps", "2", "--tracker", "none", "run.eval_every=2", *TINY_TRAIN)
    before = md5_tree(run)
    for args, words in ((["model.depth=3"], "cannot change model.depth"),
                        (["optim.lr=0.1", "data.batch_size=3"], "cannot change data.batch_size, optim.lr"),
                        (["--config", REPO / "configs" / "unet.yaml"], "--config cannot be combined"),
                        (["--max-steps", "-5"], "run.max_steps must be")):
        rc, _, err = main(capsys, "train", "--out", run, "--resume", *args)
        assert rc == 1 and words in one_line(err), (args, err)
    assert md5_tree(run) == before
    proc = run_cli("train", "--out", run, "--resume", "--max-steps", "4", "run.eval_every=4")
    assert "stopped after 4 steps" in proc.stdout
    assert "resuming with run.max_steps = 4 (was 2)" in proc.stderr
    saved = torch.load(run / "last.pt", weights_only=True)
    assert saved["model"]["config"]["depth"] == 2 and saved["config"]["data"]["batch_size"] == 2


# --- 16. range checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("extra, words", [
    (["--hours", "0"], "--hours must be positive"), (["--hours", "-1"], "--hours must be positive"),
    (["--hours", "nan"], "--hours must be a finite number"), (["--snr-range", "nan", "5"], "--snr-range"),
    (["--snr-range", "10", "5"], "snr_range"), (["--proportions", "0", "0", "0"], "--proportions"),
    (["--proportions", "1", "-1", "1"], "--proportions"), (["--sample-rate", "0"], "--sample-rate"),
    (["--sample-rate", "2147483647"], "--sample-rate"), (["--simulate-rir", "-5"], "--simulate-rir"),
    (["--clip-seconds", "0"], "clip_seconds"), (["--workers", "0"], "--workers"),
    (["--workers", "100000"], "--workers"), (["--rir-probability", "nan"], "rir"),
])
def test_synth_ranges(capsys, user_data, tmp_path, extra, words):
    rc, _, err = main(capsys, *_synth(user_data, tmp_path / "c"), *extra)
    assert rc == 1 and words in one_line(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, words", [
    (["data.batch_size=0"], "data.batch_size"), (["--max-steps", "-5"], "run.max_steps"),
    (["--max-steps", "0"], "run.max_steps"), (["run.threads=100000"], "run.threads"),
    (["run.eval_every=0"], "run.eval_every"), (["optim.lr=nan"], "optim.lr"), (["model.depth=12"], "too deep"),
])
def test_train_ranges_fail_before_a_run_folder_exists(capsys, tiny_cache, tmp_path, extra, words):
    out = tmp_path / "run"
    rc, _, err = main(capsys, "train", "--config", REPO / "configs" / "unet.yaml", "--data", tiny_cache,
                      "--out", out, "--tracker", "none", *extra)
    assert rc == 1 and words in one_line(err)
    assert not out.exists()


def test_tune_binary_search_space_is_one_line(capsys, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_bytes(bytes(range(256)) * 4)
    rc, _, err = main(capsys, "tune", "--search-space", space, "--study", "s", "--out", tmp_path / "o")
    assert rc == 1 and "not a text (YAML) file" in one_line(err)


def test_tune_derived_expressions_are_bounded(tmp_path):
    """``9**9**9`` once never returned: run it in a child with a deadline."""
    code = ("from specdenoise.tuning import evaluate_expression as e\n"
            "for x in ('9**9**9', '10**20', '2**1000', '(2**40)*(2**40)'):\n"
            "    try:\n        e(x, lambda k: 1)\n        print('accepted', x)\n"
            "    except Exception as exc:\n        print(type(exc).__name__, exc)\n"
            "print(e('2**10 * min(3, 4)', lambda k: 1))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(line.startswith("ConfigError") and "too large" in line for line in lines[:4]), lines
    assert lines[4] == "3072"


# --- 17. demo --force ----------------------------------------------------------------------------


def test_demo_does_not_overwrite_without_force(capsys, ckpt, tmp_path):
    out = tmp_path / "demo_out"
    out.mkdir()
    (out / "denoised.wav").write_bytes(b"my earlier result")
    rc, _, err = main(capsys, "demo", "--out", out, "--model", ckpt)
    assert rc == 1 and "--force" in one_line(err)
    assert (out / "denoised.wav").read_bytes() == b"my earlier result"
    rc, _, err = main(capsys, "demo", "--out", out, "--model", ckpt, "--force")
    assert rc == 0, err
    assert sf.info(out / "denoised.wav").frames > 0 and (out / "spectrograms.png").is_file()
