"""``specdenoise denoise`` end to end, through the real entry point, on odd inputs:
rates, channels, sample formats, containers, tiny/silent/clipped/corrupt/NaN files, folder
trees, output protection (--force, never the input, no temp files left behind), strength.

Inputs are real LibriSpeech speech mixed with real noise from ``../shared/data``, written to
``tmp_path``. A small random checkpoint keeps most tests fast; one test runs the shipped model.
"""
from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import noisy_speech, run_cli
from specdenoise.enhance import Denoiser

PACKAGE = Path(str(resources.files("specdenoise")))
SHIPPED_MODEL = PACKAGE / "pretrained" / "default.pt"


# --- helpers -----------------------------------------------------------------------------------


def _denoise(*args: str, model: Path | str):
    return run_cli("denoise", *args, "--model", model, "--threads", "1", "--no-progress", check=False, timeout=180)


def _cli(capsys, *args: str, model: Path | str) -> tuple[int, str, str]:
    """The same ``main()`` in this process (no interpreter start-up: ~0.1 s instead of ~4 s):
    used for the refusal and protection checks; the odd inputs go through the real entry point."""
    from specdenoise import cli

    capsys.readouterr()
    rc = cli.main(["denoise", "--model", str(model), "--threads", "1", "--no-progress", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def _tree(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder`` (hidden ones included)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _temps(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name]


def _skipped_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "skipped" in line]


@pytest.fixture(scope="module")
def ckpt(tiny_ckpt) -> Path:
    """The shared small random U-Net (tests/conftest.py)."""
    return tiny_ckpt


@pytest.fixture(scope="module")
def mix(shared_data):
    """``mix(seconds, rate, channels=None, seed=0)``: real speech + real noise at 5 dB SNR."""
    def make(seconds: float, rate: int, channels: int | None = None, seed: int = 0) -> np.ndarray:
        return noisy_speech(shared_data, np.random.default_rng(seed), seconds, rate, channels)

    return make


def _write(path: Path, x: np.ndarray, rate: int, subtype: str | None = None, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.T, rate, subtype=subtype, format=fmt)
    return path


# --- a folder of odd inputs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_tree(tmp_path_factory, mix) -> Path:
    root = tmp_path_factory.mktemp("odd") / "in"
    _write(root / "stereo44k_24bit.wav", mix(2.5, 44100, channels=2, seed=1), 44100, "PCM_24")
    _write(root / "sub" / "mono8k.wav", mix(2.0, 8000, seed=2), 8000, "PCM_16")
    _write(root / "sub" / "short.wav", mix(0.05, 16000, seed=3), 16000, "PCM_16")
    _write(root / "sub" / "deeper" / "silent.wav", np.zeros(16000, np.float32), 16000, "PCM_16")
    _write(root / "clipped.wav", np.clip(mix(1.5, 16000, seed=4) * 6, -1, 1), 16000, "PCM_16")
    _write(root / "speech.flac", mix(1.5, 16000, seed=5), 16000, "PCM_16", "FLAC")
    _write(root / "sub" / "speech.ogg", mix(1.5, 22050, seed=6), 22050, "VORBIS", "OGG")
    (root / "bad").mkdir()
    (root / "bad" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + os.urandom(2000))
    nan = mix(1.0, 16000, seed=7)
    nan[8000:8010] = np.nan
    _write(root / "bad" / "nan.wav", nan, 16000, "FLOAT")
    late = mix(12.0, 16000, seed=8)
    late[-5:] = np.nan  # found only in the second 10-s block, after output was written to the temp file
    _write(root / "bad" / "late_nan.wav", late, 16000, "FLOAT")
    (root / "notes.txt").write_text("not audio: ignored")
    return root


GOOD = ["stereo44k_24bit.wav", "sub/mono8k.wav", "sub/short.wav", "sub/deeper/silent.wav", "clipped.wav",
        "speech.flac", "sub/speech.ogg"]
BAD = {"bad/corrupt.wav": "unreadable", "bad/nan.wav": "NaN", "bad/late_nan.wav": "NaN"}


def test_folder_batch(ckpt, odd_tree, tmp_path):
    before = _tree(odd_tree)
    out = tmp_path / "out"
    result = _denoise(str(odd_tree), "-o", str(out), model=ckpt)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    # each bad file: one line naming it and saying why; the others are done
    skipped = _skipped_lines(result.stderr)
    assert len(skipped) == len(BAD), result.stderr
    for rel, reason in BAD.items():
        lines = [line for line in skipped if f"{rel}:" in line]
        assert len(lines) == 1 and reason in lines[0], result.stderr
    assert f"{len(BAD)} of {len(GOOD) + len(BAD)} file(s) failed" in result.stderr
    assert sorted(_tree(out)) == sorted(GOOD), "the input tree is kept in OUT, bad files leave nothing"
    assert _tree(odd_tree) == before, "inputs must never change"
    assert not _temps(out) and not _temps(odd_tree)
    for rel in GOOD:
        src, dst = sf.info(odd_tree / rel), sf.info(out / rel)
        assert (dst.samplerate, dst.channels, dst.frames, dst.format, dst.subtype) == (
            src.samplerate, src.channels, src.frames, src.format, src.subtype), rel
        y, _ = sf.read(out / rel, dtype="float32")
        assert np.isfinite(y).all(), rel
        assert rel in result.stdout
    assert np.abs(sf.read(out / "sub/deeper/silent.wav")[0]).max() < 1e-3


def test_folder_batch_through_the_python_api(ckpt, odd_tree, tmp_path):
    """denoise_paths is the CLI's batch policy: same outputs, same one-line problems, no temps."""
    from specdenoise.enhance import denoise_paths

    out = tmp_path / "out"
    outcomes = denoise_paths(Denoiser.from_checkpoint(ckpt), [odd_tree], out)
    assert len(outcomes) == len(GOOD) + len(BAD)
    problems = {o.job.source.relative_to(odd_tree).as_posix(): o.problem for o in outcomes if o.problem}
    assert sorted(problems) == sorted(BAD)
    for rel, reason in BAD.items():
        assert reason in problems[rel] and "\n" not in problems[rel]
    assert sorted(_tree(out)) == sorted(GOOD)
    for o in outcomes:
        if o.result is not None:
            assert o.result.target.exists() and sf.info(o.result.target).frames == sf.info(o.result.source).frames
    assert not _temps(out)


def test_stereo_24bit_single_file_matches_the_api(ckpt, odd_tree, tmp_path):
    src = odd_tree / "stereo44k_24bit.wav"
    dst = tmp_path / "clean.wav"
    result = _denoise(str(src), "-o", str(dst), model=ckpt)
    assert result.returncode == 0, result.stderr
    info = sf.info(dst)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 2, sf.info(src).frames, "PCM_24")
    x, _ = sf.read(src, dtype="float32", always_2d=True)
    expected = np.clip(Denoiser.from_checkpoint(ckpt)(x.T, 44100), -1, 1).T
    y, _ = sf.read(dst, dtype="float32", always_2d=True)
    np.testing.assert_allclose(y, expected, atol=1e-5)  # 24-bit quantisation: 6e-8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.wav"]


def test_mono(ckpt, odd_tree, tmp_path):
    src = odd_tree / "stereo44k_24bit.wav"
    result = _denoise(str(src), "-o", str(tmp_path), "--mono", model=ckpt)
    assert result.returncode == 0, result.stderr
    dst = tmp_path / src.name
    info = sf.info(dst)
    assert (info.samplerate, info.channels, info.frames) == (44100, 1, sf.info(src).frames)
    x, _ = sf.read(src, dtype="float32", always_2d=True)
    expected = np.clip(Denoiser.from_checkpoint(ckpt)(x.mean(axis=1), 44100), -1, 1)
    np.testing.assert_allclose(sf.read(dst, dtype="float32")[0], expected, atol=1e-5)


def test_strength_and_attenuation_limit(capsys, ckpt, mix, tmp_path):
    x = mix(2.0, 16000, seed=11)
    src = _write(tmp_path / "in" / "x.wav", x, 16000, "FLOAT")
    full = Denoiser.from_checkpoint(ckpt)(x, 16000)
    result = _denoise(str(src), "-o", str(tmp_path / "half"), "--strength", "0.5", model=ckpt)
    assert result.returncode == 0, result.stderr
    y, _ = sf.read(tmp_path / "half" / "x.wav", dtype="float32")
    np.testing.assert_allclose(y, 0.5 * full + 0.5 * x, atol=1e-5)
    rc, _, err = _cli(capsys, str(src), "-o", str(tmp_path / "6db"), "--atten-limit-db", "6", model=ckpt)
    assert rc == 0, err
    s = 1 - 10 ** (-6 / 20)
    y, _ = sf.read(tmp_path / "6db" / "x.wav", dtype="float32")
    np.testing.assert_allclose(y, s * full + (1 - s) * x, atol=1e-5)


def test_strength_zero_is_the_input_bit_for_bit(capsys, ckpt, mix, tmp_path):
    x = mix(1.3, 44100, channels=2, seed=12)
    src = _write(tmp_path / "in" / "x.wav", x, 44100, "FLOAT")
    rc, _, err = _cli(capsys, str(src), "-o", str(tmp_path / "out"), "--strength", "0", model=ckpt)
    assert rc == 0, err
    np.testing.assert_array_equal(sf.read(tmp_path / "out" / "x.wav", dtype="float32")[0], x.T)


def test_bad_options(capsys, ckpt, odd_tree, tmp_path):
    src = str(odd_tree / "speech.flac")
    for extra, word in ((["--strength", "2"], "strength"), (["--atten-limit-db", "-3"], "attenuation"),
                        (["--chunk-seconds", "0"], "chunk_seconds"), (["--threads", "-1"], "threads")):
        rc, _, err = _cli(capsys, src, "-o", str(tmp_path / "o"), *extra, model=ckpt)
        assert rc == 1 and word in err and len(err.splitlines()) == 1, (extra, err)
    rc, _, err = _cli(capsys, src, "-o", str(tmp_path / "o"), model=tmp_path / "missing.pt")
    assert rc == 1 and "missing.pt" in err and len(err.splitlines()) == 1
    rc, _, err = _cli(capsys, src, str(odd_tree / "clipped.wav"), "-o", str(tmp_path / "o.wav"), model=ckpt)
    assert rc == 1 and "folder" in err  # several inputs need an output folder
    with pytest.raises(SystemExit) as exit_info:  # argparse: --strength and --atten-limit-db exclude each other
        _cli(capsys, src, "-o", str(tmp_path / "o"), "--strength", "0.5", "--atten-limit-db", "6", model=ckpt)
    assert exit_info.value.code == 2
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.wav").exists()


# --- output protection ---------------------------------------------------------------------


def test_force_and_output_inside_the_input_folder(capsys, ckpt, mix, tmp_path):
    folder = tmp_path / "in"
    _write(folder / "a.wav", mix(1.0, 16000, seed=21), 16000, "PCM_16")
    dst = folder / "clean" / "a.wav"
    dst.parent.mkdir()
    dst.write_bytes(b"precious")  # an output from before, inside the input folder
    rc, _, err = _cli(capsys, str(folder), "-o", str(dst.parent), model=ckpt)
    assert rc == 1
    line, = _skipped_lines(err)  # the output folder's files are not taken as inputs
    assert str(dst) in line and "--force" in line
    assert dst.read_bytes() == b"precious"
    for _ in range(2):  # twice: the second run must not take the first run's outputs as inputs
        rc, _, err = _cli(capsys, str(folder), "-o", str(dst.parent), "--force", model=ckpt)
        assert rc == 0, err
    assert sf.info(dst).frames == 16000
    assert sorted(_tree(folder)) == ["a.wav", "clean/a.wav"]
    assert not _temps(tmp_path)


def test_never_overwrites_the_input(capsys, ckpt, mix, tmp_path):
    folder = tmp_path / "in"
    src = _write(folder / "a.wav", mix(1.0, 16000, seed=31), 16000, "PCM_16")
    _write(folder / "sub" / "b.flac", mix(0.5, 16000, seed=32), 16000, "PCM_16", "FLAC")
    before = _tree(folder)
    for args in ([str(src), "-o", str(src)],  # -o is the input file itself
                 [str(src), "-o", str(folder / "sub" / ".." / "a.wav")],  # the same file, spelled otherwise
                 [str(src), "-o", str(folder)],  # OUT is the folder the input file lies in
                 [str(folder), "-o", str(folder)],  # OUT equal to the input folder
                 [str(folder / "sub"), str(folder), "-o", str(folder / "sub")]):
        for extra in ([], ["--force"]):
            rc, _, err = _cli(capsys, *args, *extra, model=ckpt)
            assert rc != 0, args
            assert "input" in err, err
            assert _tree(folder) == before, args
    assert not _temps(tmp_path)


def test_same_name_from_two_folders_is_not_clobbered(capsys, ckpt, mix, tmp_path):
    a = _write(tmp_path / "a" / "x.wav", mix(0.5, 16000, seed=51), 16000)
    b = _write(tmp_path / "b" / "x.wav", mix(0.5, 16000, seed=52), 16000)
    out = tmp_path / "out"
    rc, _, err = _cli(capsys, str(a), str(b), "-o", str(out), "--force", model=ckpt)
    assert rc == 1
    line, = _skipped_lines(err)
    assert str(b) in line and str(a) in line
    y, _ = sf.read(out / "x.wav", dtype="float32")
    expected = Denoiser.from_checkpoint(ckpt)(sf.read(a, dtype="float32")[0], 16000)
    np.testing.assert_allclose(y, np.clip(expected, -1, 1), atol=1e-4)


# --- the shipped model (the demo command is tested in tests/test_demo.py) ----------------------


def test_default_model(odd_tree, tmp_path):
    assert SHIPPED_MODEL.is_file(), f"the shipped model {SHIPPED_MODEL} is missing"
    run_cli("denoise", odd_tree / "speech.flac", "-o", tmp_path, "--threads", "1", "--no-progress", timeout=180)
    assert sf.info(tmp_path / "speech.flac").frames == sf.info(odd_tree / "speech.flac").frames
