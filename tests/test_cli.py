"""The command line: help, version, usage errors, and errors as one line on stderr."""
from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import specdenoise
from conftest import run_cli
from specdenoise import cli
from specdenoise.errors import AudioError, ConfigError

VERBS = ("synth", "preprocess", "pack", "train", "tune", "evaluate", "denoise", "demo", "serve", "live", "export")


def _run(*args: str) -> subprocess.CompletedProcess:
    """The real entry point; the exit status is checked by each test."""
    return run_cli(*args, check=False, timeout=120)


def _one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, f"expected exactly one line, got {len(lines)}:\n{text}"
    assert "Traceback" not in text
    return lines[0]


# --- subprocess: the real entry point ------------------------------------------------------


def test_help_lists_every_verb():
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for verb in VERBS:
        assert f"\n    {verb}" in result.stdout, f"{verb} missing from --help"
    assert "--version" in result.stdout


def test_version():
    result = _run("--version")
    assert result.returncode == 0
    expected = importlib.metadata.version("specdenoise")
    assert specdenoise.__version__ == expected
    assert result.stdout.strip() == f"specdenoise {expected}"


def test_no_verb_is_a_usage_error():
    result = _run()
    assert result.returncode == 2
    assert "COMMAND" in result.stdout + result.stderr


def test_unknown_verb_is_a_usage_error():
    result = _run("frobnicate")
    assert result.returncode == 2
    assert "frobnicate" in result.stderr and "Traceback" not in result.stderr


def test_missing_input_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "no_such_corpus"
    out = tmp_path / "cache"
    result = _run("preprocess", str(missing), "--out", str(out))
    assert result.returncode not in (0, 2), result.stderr  # a failure, not a usage error
    line = _one_line(result.stderr)
    assert line.startswith("specdenoise preprocess: error")
    assert str(missing) in line
    assert not out.exists()


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "specdenoise"
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable}")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"specdenoise {specdenoise.__version__}"


# --- in process ----------------------------------------------------------------------------


def test_main_help_in_process(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([verb, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"specdenoise {verb}" in out and "--debug" in out


def test_main_without_verb_returns_2(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_verbs_are_the_documented_ones():
    assert tuple(cli.VERBS) == VERBS
    for verb in VERBS:
        module = importlib.import_module(f"specdenoise.commands.{verb}")
        assert module.HELP and callable(module.add_arguments) and callable(module.run)


def _patch(monkeypatch, verb: str, exc: BaseException | None = None, code: int = 0):
    module = importlib.import_module(f"specdenoise.commands.{verb}")
    seen = {}

    def run(args):
        seen["args"] = args
        if exc is not None:
            raise exc
        return code

    monkeypatch.setattr(module, "run", run)
    return seen


def test_library_error_is_one_line(monkeypatch, capsys):
    _patch(monkeypatch, "denoise", AudioError("noisy/take 1.wav", "file not found"))
    assert cli.main(["denoise", "noisy/take 1.wav", "-o", "out"]) == 1
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert line == "specdenoise denoise: error: noisy/take 1.wav: file not found"
    assert captured.out == ""


def test_unexpected_error_is_one_line_with_its_type(monkeypatch, capsys):
    _patch(monkeypatch, "demo", RuntimeError("CUDA out of memory\nTried to allocate 2 GiB"))
    assert cli.main(["demo"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == "specdenoise demo: error (RuntimeError): CUDA out of memory"


def test_error_without_message(monkeypatch, capsys):
    _patch(monkeypatch, "demo", ValueError())
    assert cli.main(["demo"]) == 1
    assert _one_line(capsys.readouterr().err) == "specdenoise demo: error (ValueError): ValueError"


@pytest.mark.parametrize("argv", [["--debug", "denoise", "a.wav", "-o", "out"], ["denoise", "a.wav", "-o", "out", "--debug"]])
def test_debug_reraises(monkeypatch, argv):
    error = ConfigError("StftConfig.hop_length must be positive")
    _patch(monkeypatch, "denoise", error)
    with pytest.raises(ConfigError) as info:
        cli.main(argv)
    assert info.value is error


def test_keyboard_interrupt(monkeypatch, capsys):
    _patch(monkeypatch, "synth", KeyboardInterrupt())
    assert cli.main(["synth", "--out", "x"]) == 130
    assert _one_line(capsys.readouterr().err) == "specdenoise: interrupted"


def test_exit_code_comes_from_the_command(monkeypatch):
    seen = _patch(monkeypatch, "demo", code=0)
    assert cli.main(["demo"]) == 0
    assert seen["args"].verb == "demo" and seen["args"].debug is False
    _patch(monkeypatch, "demo", code=3)
    assert cli.main(["demo"]) == 3
