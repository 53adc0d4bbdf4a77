"""ONNX export (issue 11): the streaming graph on onnxruntime equals PyTorch frame by frame within
1e-4 (state carried through the graph's inputs and outputs), the onnx back end of
StreamingDenoiser/Denoiser equals the torch one, and a non-causal model is refused in one line."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import noisy_speech, random_checkpoint, run_cli
from specdenoise.enhance import Denoiser
from specdenoise.models import build_model, save_checkpoint, serialize
from specdenoise.streaming import StreamingDenoiser


@pytest.fixture(scope="module", params=[(1, 0), (3, 1)], ids=["mask", "deep_filter_lookahead"])
def crn_ckpt(request, tmp_path_factory):
    """The plain-mask CRN and one with a 3-tap deep filter (one more state tensor: past frames) and
    one frame of look-ahead (the graph is the same frame-in, frame-out step; the engine shifts)."""
    taps, ahead = request.param
    return random_checkpoint(tmp_path_factory.mktemp("crn") / "crn.pt", "crn", seed=5, filter_taps=taps,
                             lookahead=ahead)


@pytest.fixture(scope="module")
def exported(crn_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "crn_stream.onnx"
    proc = run_cli("export", crn_ckpt, "--onnx", out, "--streaming")
    assert "streaming" in proc.stdout
    return out


def test_streaming_graph_round_trip(crn_ckpt, exported, rng):
    from specdenoise.models import model_from_checkpoint

    model = model_from_checkpoint(crn_ckpt)
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    state_t = model.initial_state(1)
    state_o = [np.zeros(s.shape, np.float32) for s in state_t]
    spec = torch.randn(1, model.stft_config.n_freqs, 40, dtype=torch.complex64)
    spec[:, :, 5] = 0  # digital silence: square roots of zero must stay finite
    worst = 0.0
    for t in range(spec.shape[2]):
        frame = spec[:, :, t : t + 1]
        with torch.inference_mode():
            ref, state_t = model.forward_frames(frame, state_t)
        res = session.run(None, {names[0]: torch.view_as_real(frame).numpy(), **dict(zip(names[1:], state_o))})
        out, state_o = res[0], res[1:]
        assert np.isfinite(out).all()
        worst = max(worst, float(np.abs(out - torch.view_as_real(ref).numpy()).max()))
        for a, b in zip(state_o, state_t):
            np.testing.assert_allclose(a, b.numpy(), atol=1e-4)
    assert worst <= 1e-4


def test_onnx_backend_equals_torch(crn_ckpt, shared_data, rng):
    x = noisy_speech(shared_data, rng, 1.5, rate=48000, channels=2).T
    a = StreamingDenoiser(crn_ckpt, 48000, channels=2)
    b = StreamingDenoiser(crn_ckpt, 48000, channels=2, backend="onnx")
    ya = np.concatenate([a.push(x[:1000]), a.push(x[1000:]), a.flush()])
    yb = np.concatenate([b.push(x[:333]), b.push(x[333:]), b.flush()])
    np.testing.assert_allclose(yb, ya, atol=1e-4)
    y = noisy_speech(shared_data, rng, 1.2, rate=16000)
    np.testing.assert_allclose(Denoiser.from_checkpoint(crn_ckpt, backend="onnx", chunk_seconds=0.5)(y, 16000),
                               Denoiser.from_checkpoint(crn_ckpt)(y, 16000), atol=1e-4)


def test_unet_streaming_export_refused(tmp_path):
    ckpt = tmp_path / "unet.pt"
    save_checkpoint(ckpt, serialize(build_model("unet", base_channels=4, depth=2)))
    out = tmp_path / "u.onnx"
    proc = run_cli("export", ckpt, "--onnx", out, "--streaming", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not causal" in lines[0], proc.stderr
    assert not out.exists()


def test_export_refuses_existing_output(crn_ckpt, tmp_path):
    out = tmp_path / "x.onnx"
    out.write_bytes(b"keep")
    proc = run_cli("export", crn_ckpt, "--onnx", out, "--streaming", check=False)
    assert proc.returncode == 1 and "exists" in proc.stderr
    assert out.read_bytes() == b"keep"


def test_unet_offline_graph_backend(tmp_path, shared_data, rng):
    """A non-causal model runs on onnxruntime through its offline graph (whole spectrogram)."""
    torch.manual_seed(2)
    model = build_model("unet", base_channels=4, depth=2).eval()
    x = noisy_speech(shared_data, rng, 1.3, rate=22050)
    np.testing.assert_allclose(Denoiser(model, backend="onnx", chunk_seconds=0.5)(x, 22050),
                               Denoiser(model, chunk_seconds=0.5)(x, 22050), atol=1e-4)


def test_crn_offline_export_points_to_streaming(crn_ckpt, tmp_path):
    """A causal model's offline graph would come out with the example's frame count frozen into its
    GRUs (measured: onnxruntime then fails on any other length), so ``export`` without
    ``--streaming`` refuses it in one line, names the fix and writes nothing."""
    out = tmp_path / "crn_offline.onnx"
    proc = run_cli("export", crn_ckpt, "--onnx", out, check=False)
    assert proc.returncode != 0 and "--streaming" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
