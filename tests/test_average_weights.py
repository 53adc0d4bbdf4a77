"""scripts/average_weights.py: weight-space interpolation of a fine-tune with its base (WiSE-FT)."""
import subprocess
import sys
from pathlib import Path

import torch

from conftest import random_checkpoint
from specdenoise.models.registry import load_checkpoint, model_from_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "average_weights.py"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_interpolates_floats_and_keeps_the_finetuned_config(tmp_path):
    base = random_checkpoint(tmp_path / "base.pt", "crn", seed=1)
    tuned = random_checkpoint(tmp_path / "tuned.pt", "crn", seed=2)
    for alpha in (0.0, 0.3, 1.0):
        out = tmp_path / f"mix{alpha}.pt"
        proc = _run(base, tuned, "--alpha", alpha, "--out", out)
        assert proc.returncode == 0, proc.stderr
        a, b, m = (load_checkpoint(p)["state_dict"] for p in (base, tuned, out))
        for key, value in m.items():
            if value.is_floating_point():
                assert torch.allclose(value, (1 - alpha) * a[key] + alpha * b[key], atol=1e-6), key
            else:
                assert torch.equal(value, b[key])
        assert load_checkpoint(out)["averaged_from"]["alpha"] == alpha
        model_from_checkpoint(out)  # a complete, loadable checkpoint


def test_refuses_other_architectures_and_bad_alpha(tmp_path):
    crn = random_checkpoint(tmp_path / "crn.pt", "crn", seed=1)
    unet = random_checkpoint(tmp_path / "unet.pt", "unet", seed=1)
    proc = _run(crn, unet, "--alpha", 0.5, "--out", tmp_path / "x.pt")
    assert proc.returncode != 0 and "not the same architecture" in proc.stderr
    proc = _run(crn, crn, "--alpha", 1.5, "--out", tmp_path / "y.pt")
    assert proc.returncode != 0 and "--alpha" in proc.stderr
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()


def test_weight_free_options_may_differ_and_the_finetuned_one_is_kept(tmp_path):
    base = random_checkpoint(tmp_path / "base.pt", "crn", seed=1)
    tuned = tmp_path / "tuned.pt"
    subprocess.run([sys.executable, str(SCRIPT.parent / "export_pretrained.py"), base, tuned, "--set", "low_cut_hz=40"],
                   check=True, capture_output=True)
    proc = _run(base, tuned, "--alpha", 0.5, "--out", tmp_path / "mix.pt")
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(tmp_path / "mix.pt")["model"]["config"]["low_cut_hz"] == 40
