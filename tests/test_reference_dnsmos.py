"""scripts/reference_dnsmos.py: systems' DNSMOS beside their clean references' own DNSMOS."""
from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, cli_env, load_script

SCRIPT = REPO_ROOT / "scripts" / "reference_dnsmos.py"
FIELDS = ("system", "file", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "status")


def _rows(system: str, values: dict[str, float]) -> list[dict[str, str]]:
    """Rows as evaluate's per_file.csv holds them (strings), OVRL = value, SIG/BAK derived from it."""
    return [{"system": system, "file": f, "dnsmos_sig": str(v + 0.5), "dnsmos_bak": str(v + 1.0),
             "dnsmos_ovrl": str(v), "status": "ok"} for f, v in values.items()]


def _split():
    names = [f"test_{i:06d}" for i in range(8)]
    refs = _rows("noisy", {n: 1.0 + i for i, n in enumerate(names)})  # BAK 2..9: quartiles of two clips each
    meta = [{"clip": n, "rir": "rir/a.flac" if i % 2 else "none"} for i, n in enumerate(names)]
    per_file = _rows("a", {n: 3.0 for n in names}) + _rows("b", {n: 2.0 + 0.1 * i for i, n in enumerate(names)})
    return per_file, refs, meta


def test_groups_split_rooms_and_reference_quality_quartiles():
    per_file, refs, meta = _split()
    rows = {r["group"]: r for r in load_script("reference_dnsmos").compare(per_file, refs, meta, ["a", "b"])}
    assert rows["all"]["clips"] == 8 and rows["dry"]["clips"] == 4 and rows["room"]["clips"] == 4
    assert rows["all"]["reference dnsmos_ovrl"] == pytest.approx(4.5)
    assert rows["dry"]["reference dnsmos_ovrl"] == pytest.approx((1 + 3 + 5 + 7) / 4)  # even clips are dry
    # quartiles by the references' own BAK: the two worst references first
    assert rows["reference BAK quartile 1"]["reference dnsmos_bak"] == pytest.approx(2.5)
    assert rows["reference BAK quartile 4"]["reference dnsmos_bak"] == pytest.approx(8.5)
    assert rows["reference BAK quartile 1"]["b dnsmos_ovrl"] == pytest.approx(2.05)
    assert rows["room"]["a dnsmos_ovrl"] == pytest.approx(3.0) and rows["room"]["a dnsmos_bak"] == pytest.approx(4.0)


def test_a_missing_score_is_an_error_not_a_smaller_mean():
    per_file, refs, meta = _split()
    with pytest.raises(ValueError, match="no score"):
        load_script("reference_dnsmos").compare(per_file[1:], refs, meta, ["a"])


def test_command_prints_a_markdown_table(tmp_path):
    per_file, refs, meta = _split()
    paths = {}
    for name, rows in (("per_file", per_file), ("refs", refs), ("meta", meta)):
        paths[name] = tmp_path / f"{name}.csv"
        with open(paths[name], "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    proc = subprocess.run([sys.executable, SCRIPT, paths["per_file"], paths["refs"], paths["meta"], "--systems", "a,b"],
                          capture_output=True, text=True, env=cli_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| group | clips | reference sig") and len(lines) == 2 + 7
    bad = subprocess.run([sys.executable, SCRIPT, paths["per_file"], paths["refs"], paths["meta"], "--systems", "c"],
                         capture_output=True, text=True, env=cli_env(), timeout=120)
    assert bad.returncode != 0 and "no score" in bad.stderr
