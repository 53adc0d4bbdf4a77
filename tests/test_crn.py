"""The causal CRN (models/crn.py), its loss, the realistic dynamic mixing and fine-tuning:
registry round trip, causality, streaming = whole, --init-from, early-reflection targets,
clipping, channel filters, two noise sources, held-out categories, simulated rooms."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, random_model, run_cli
from specdenoise import config as config_io
from specdenoise.data.mixing import MixConfig, Mixer, Pools, apply_rir
from specdenoise.data.rooms import early_part, simulate_room_bank
from specdenoise.errors import ConfigError
from specdenoise.models import build_model, from_serialized, load_checkpoint, save_checkpoint, serialize
from specdenoise.stft import stft
from specdenoise.training.config import TrainConfig
from specdenoise.training.losses import LossConfig, compute_loss
from specdenoise.training.trainer import build_datasets, init_weights_from

SMALL = {"channels": 8, "first_channels": 4, "gru_hidden": 8}


def _trained_like(seed: int = 0, **kw):
    """A CRN with random (non-initial) weights and BatchNorm statistics, in eval mode."""
    return random_model("crn", seed, norms=True, jitter=0.2, **{**SMALL, **kw})


def _spec(rng, frames: int = 60, batch: int = 2) -> torch.Tensor:
    x = torch.from_numpy(rng.standard_normal((batch, 256 * (frames - 1))).astype(np.float32)) * 0.1
    return stft(x, build_model("crn", **SMALL).stft_config)


def test_round_trip_through_registry_and_file(tmp_path, rng):
    model = _trained_like(channels=12, first_channels=6, gru_hidden=10)
    spec = _spec(rng)
    with torch.no_grad():
        expected = model(spec)
    save_checkpoint(tmp_path / "crn.pt", serialize(model))
    package = load_checkpoint(tmp_path / "crn.pt")  # weights_only=True inside
    assert package["model"]["name"] == "crn" and package["stft"]["hop_length"] == 256
    again = from_serialized(package)
    assert again.config() == model.config()
    with torch.no_grad():
        assert torch.equal(again(spec), expected)


# (taps, lookahead): 3 taps read frames t-2..t, never later ones; with look-ahead 1 (and 2) the
# output at frame t may see frames up to t+1 (t+2) and no later
CAUSAL_CASES = [(1, 0), (3, 0), (3, 1), (3, 2)]


@pytest.mark.parametrize("taps, ahead", CAUSAL_CASES)
def test_output_before_a_change_minus_lookahead_is_unchanged(taps, ahead, rng):
    model = _trained_like(1, filter_taps=taps, lookahead=ahead)
    spec = _spec(rng, frames=50)
    changed = spec.clone()
    t = int(rng.integers(5, 45))
    changed[..., t:] = _spec(rng, frames=50)[..., t:]
    with torch.no_grad():
        a, b = model(spec), model(changed)
    assert torch.equal(a[..., : t - ahead], b[..., : t - ahead])
    assert (a[..., t - ahead] - b[..., t - ahead]).abs().max() > 1e-4  # the frame `ahead` before does react
    assert (a[..., t:] - b[..., t:]).abs().max() > 1e-3  # and so does the rest


@pytest.mark.parametrize("taps, ahead", CAUSAL_CASES)  # the state carries the deep filter's past noisy frames
def test_frame_by_frame_equals_whole(taps, ahead, rng):
    model = _trained_like(2, filter_taps=taps, lookahead=ahead)
    spec = _spec(rng, frames=40)
    with torch.no_grad():
        whole = model(spec)
        stream = torch.cat([spec, spec.new_zeros(*spec.shape[:-1], ahead)], dim=-1)  # silence pushes the end out
        state, outs, t = model.initial_state(spec.shape[0]), [], 0
        while t < stream.shape[-1]:  # uneven blocks of frames, the state carried between them
            n = int(rng.integers(1, 6))
            out, state = model.forward_frames(stream[..., t : t + n], state)
            outs.append(out)
            t += n
    streamed = torch.cat(outs, dim=-1)[..., ahead:]  # output frame n arrives at input frame n + ahead
    assert streamed.shape == whole.shape
    assert (streamed - whole).abs().max() <= 1e-5 * whole.abs().max()


def test_mask_is_bounded_and_bad_configs_are_refused(rng):
    model = _trained_like(3)
    spec = _spec(rng)
    with torch.no_grad():
        assert torch.all(model(spec).abs() <= spec.abs() * (1 + 1e-5) + 1e-7)
    with pytest.raises(ConfigError, match="erb"):
        build_model("crn", erb_low=300)
    with pytest.raises(ConfigError, match="4k \\+ 1"):
        build_model("crn", erb_bands=63)
    with pytest.raises(ConfigError, match="filter_taps >= 1"):
        build_model("crn", filter_taps=0)
    with pytest.raises(ConfigError, match="lookahead < filter_taps"):
        build_model("crn", filter_taps=2, lookahead=2)  # the filter would not reach the frame it cleans
    with pytest.raises(ConfigError, match="lookahead"):
        build_model("crn", filter_taps=3, lookahead=-1)


def test_deep_filter_taps_are_bounded_and_reach_back_exactly_taps_minus_one_frames(rng):
    """Each tap's coefficient has |c| < 1, so |out_t| < sum over the taps of |X_{t-k}|; and with
    every layer before the filter blind to the past (the encoder's and decoder's memories zeroed),
    a change at frame t reaches frames t..t+taps-1 of the output and no later ones."""
    model = _trained_like(7, filter_taps=3)
    spec = _spec(rng, frames=30)
    with torch.no_grad():
        out = model(spec)
        mags = spec.abs()
        bound = mags + torch.nn.functional.pad(mags, (1, 0))[..., :-1] + torch.nn.functional.pad(mags, (2, 0))[..., :-2]
        assert torch.all(out.abs() <= bound * (1 + 1e-5) + 1e-7)
    memoryless = build_model("crn", **{**SMALL, "filter_taps": 3, "dual_path_blocks": 0})
    memoryless.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("dual_path")},
                               strict=False)
    memoryless.enc2 = type(memoryless.enc2)(4, 8, 1, 3, stride_f=2)  # a one-frame kernel: no look back
    for block in (*memoryless.enc_temporal, *memoryless.dec_temporal):
        block.taps.data[:2] = 0.0
    memoryless.eval()
    changed = spec.clone()
    changed[..., 10] = spec[..., 10] * 3 + 0.1
    with torch.no_grad():
        diff = (memoryless(changed) - memoryless(spec)).abs().amax(dim=(0, 1))
    assert torch.all(diff[:10] == 0) and torch.all(diff[10:13] > 0) and torch.all(diff[13:] <= 1e-6 * diff[10])


def test_low_cut_is_a_fixed_ramp_on_the_lowest_bins_and_streams(rng, tmp_path):
    plain = _trained_like(6)
    cut = build_model("crn", **{**SMALL, "low_cut_hz": 62.5}).eval()
    cut.load_state_dict(plain.state_dict())  # weight-free: the same weights load
    spec = _spec(rng, frames=30)
    with torch.no_grad():
        a, b = plain(spec), cut(spec)
        streamed, state = [], cut.initial_state(spec.shape[0])
        for t in range(spec.shape[-1]):
            out, state = cut.forward_frames(spec[..., t : t + 1], state)
            streamed.append(out)
    assert a[:, 0].abs().max() > 1e-4 and torch.equal(b[:, 0], torch.zeros_like(b[:, 0]))  # DC: gone
    assert torch.allclose(b[:, 1], 0.5 * a[:, 1])  # 31.25 Hz: halved (ramp 0 -> 1 at 62.5 Hz)
    assert torch.equal(b[:, 2:], a[:, 2:])  # speech bins untouched
    assert (torch.cat(streamed, -1) - b).abs().max() <= 1e-5 * b.abs().max()
    save_checkpoint(tmp_path / "cut.pt", serialize(cut))
    assert from_serialized(load_checkpoint(tmp_path / "cut.pt")).config()["low_cut_hz"] == 62.5
    for bad in (-1.0, 8000.0, "60"):
        with pytest.raises(ConfigError, match="low_cut_hz"):
            build_model("crn", low_cut_hz=bad)


def test_export_sets_only_weight_free_options(tmp_path):
    from specdenoise.models.registry import CheckpointError, export_for_release

    save_checkpoint(tmp_path / "src.pt", serialize(_trained_like(7)))
    export_for_release(tmp_path / "src.pt", tmp_path / "cut.pt", {"low_cut_hz": 40.0})
    assert load_checkpoint(tmp_path / "cut.pt")["model"]["config"]["low_cut_hz"] == 40.0
    with pytest.raises(CheckpointError, match="src.pt.*cannot set channels .*settable without retraining: low_cut_hz"):
        export_for_release(tmp_path / "src.pt", tmp_path / "bad.pt", {"channels": 4})
    with pytest.raises(CheckpointError, match="low_cut_hz"):  # the value is checked by the model itself
        export_for_release(tmp_path / "src.pt", tmp_path / "bad.pt", {"low_cut_hz": -3})
    assert not (tmp_path / "bad.pt").exists()


def test_compressed_complex_loss_sees_phase():
    clean = torch.polar(torch.rand(1, 257, 20) + 0.1, torch.rand(1, 257, 20) * 6)
    rotated = clean * torch.exp(torch.tensor(1j * 0.8))  # same magnitudes, other phase
    cfg = LossConfig(mag_l1=0, mag_mse=70, cplx_mse=30)
    same = compute_loss(cfg, clean, clean)
    other = compute_loss(cfg, rotated, clean)
    assert float(same["total"]) == pytest.approx(0, abs=1e-9)
    assert float(other["mag_mse"]) == pytest.approx(0, abs=1e-9) and float(other["cplx_mse"]) > 0.1


def test_under_estimation_loss_is_one_sided():
    clean = torch.polar(torch.rand(1, 257, 20) + 0.1, torch.rand(1, 257, 20) * 6)
    cfg = LossConfig(mag_l1=0, mag_under=10)
    louder, quieter = compute_loss(cfg, clean * 1.5, clean), compute_loss(cfg, clean * 0.5, clean)
    assert float(louder["mag_under"]) == pytest.approx(0, abs=1e-9)  # residual noise: not this term's business
    c, e = clean.abs().pow(0.3), (clean * 0.5).abs().pow(0.3)
    assert float(quieter["mag_under"]) == pytest.approx(float(10 * (c - e).pow(2).mean()), rel=1e-5)


def _pools(rng, rirs=()) -> Pools:
    speech = [(np.sin(np.arange(48000) * 0.05) * (rng.random(48000) > 0.1)).astype(np.float32) * 0.3]
    noise = [rng.standard_normal(40000).astype(np.float32) * 0.1, rng.standard_normal(30000).astype(np.float32)]
    return Pools(speech=speech, speech_groups={"s": [0]}, speech_names=["s.wav"], speech_speakers=["s"],
                 noise=noise, noise_names=["n1.wav", "n2.wav"], noise_categories=["fan", "rain"],
                 rirs=list(rirs), rir_names=[f"r{i}" for i in range(len(rirs))])


def test_early_reflection_target(rng):
    rir = np.zeros(8000, np.float32)
    rir[100] = 1.0
    rir[100 + 160] = 0.5  # 10 ms: early, kept in the target
    rir[100 + 4800] = 0.4  # 300 ms: late, only in the input
    cfg = MixConfig(rir_probability=1.0, early_reflection_ms=50.0, babble_probability=0.0)
    pools = _pools(rng, [rir])
    m = Mixer(pools, cfg).mix(np.random.default_rng(0), length=16000)
    gain = 10 ** (m.meta["gain_db"] / 20)
    speech = m.clean / gain
    source = Mixer(pools, cfg).draw_speech(np.random.default_rng(0), 16000)[0]
    assert np.allclose(speech, apply_rir(source, early_part(rir, 16000, 50.0)), atol=1e-4)
    assert not np.allclose(m.noisy - m.noise, m.clean, atol=1e-3)  # the input keeps the late echo


def test_clipping_filters_and_two_noises(rng):
    cfg = MixConfig(rir_probability=0.0, babble_probability=0.0, clip_probability=1.0,
                    filter_probability=1.0, noise2_probability=1.0)
    m = Mixer(_pools(rng), cfg).mix(np.random.default_rng(1), length=16000)
    assert np.abs(m.noisy).max() <= m.meta["input_clipped_at"] + 1e-6  # meta is rounded to 1e-6
    assert np.abs(m.clean).max() > 0  # target is never clipped
    assert m.meta["channel_filter"] != "none" and "+" in m.meta["noise_category"]
    with pytest.raises(Exception, match="clip_probability"):
        MixConfig(clip_probability=1.5)


def test_simulated_rooms_decay_and_cache(tmp_path):
    import pyroomacoustics as pra

    bank = simulate_room_bank(2, 16000, seed=3, t60=(0.6, 0.6), cache_dir=tmp_path)
    again = simulate_room_bank(2, 16000, seed=3, t60=(0.6, 0.6), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("rooms-*.npz"))) == 1
    for a, b in zip(bank, again):
        assert np.array_equal(a, b)
        rt60 = pra.experimental.measure_rt60(a, fs=16000)
        assert 0.3 < rt60 < 1.2, rt60  # ray tracing gives the asked-for decay (image sources alone fell short)


def test_held_out_categories_never_reach_training(shared_data):
    cfg = config_io.load(TrainConfig, REPO_ROOT / "configs" / "crn.yaml", [
        "data.simulated_rirs=0", "data.val_clips=2", f"data.speech=[{shared_data / 'speech' / 'librispeech_train-clean-100'}]",
        f"data.noise=[{shared_data / 'noise'}]", f"data.rir=[{shared_data / 'rir'}]"])
    held = set(cfg.data.exclude_noise_categories)
    assert held
    model = build_model("crn", **SMALL)
    train_ds, val_ds = build_datasets(cfg, model.stft_config, 16000)
    seen = set(train_ds.mixer.pools.noise_categories) | set(val_ds.mixer.pools.noise_categories)
    assert seen and not seen & held


def test_augmentations_train_but_never_reach_the_validation_mixtures(shared_data):
    cfg = config_io.load(TrainConfig, REPO_ROOT / "configs" / "crn.yaml", [
        "data.simulated_rirs=0", "data.val_clips=2", f"data.speech=[{shared_data / 'speech' / 'librispeech_train-clean-100'}]",
        f"data.noise=[{shared_data / 'noise' / 'wind'}]", "data.rir=[]",
        "data.mix.speed_probability=1.0", "data.mix.noise_speed_probability=1.0", "data.mix.noise_eq_probability=1.0"])
    train_ds, val_ds = build_datasets(cfg, build_model("crn", **SMALL).stft_config, 16000)
    assert train_ds.mixer.config.speed_probability == 1.0 and train_ds.mixer.config.noise_speed_probability == 1.0
    assert val_ds.mixer.config.speed_probability == 0.0 and val_ds.mixer.config.noise_speed_probability == 0.0
    assert train_ds.mixer.config.noise_eq_probability == 1.0 and val_ds.mixer.config.noise_eq_probability == 0.0
    assert val_ds.mixer.config.snr_range == train_ds.mixer.config.snr_range  # the rest is the training mix


def test_init_from_loads_weights_and_refuses_mismatches(tmp_path):
    source = _trained_like(4)
    save_checkpoint(tmp_path / "src.pt", serialize(source))
    target = build_model("crn", **SMALL)
    init_weights_from(target, tmp_path / "src.pt")
    for (k, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), k
    cut = build_model("crn", **{**SMALL, "low_cut_hz": 62.5})  # a weight-free option may differ: ours is kept
    init_weights_from(cut, tmp_path / "src.pt")
    assert cut.low_cut_hz == 62.5 and torch.equal(cut.state_dict()["enc1.conv.weight"], source.state_dict()["enc1.conv.weight"])
    with pytest.raises(ConfigError, match="model.channels 8 vs 12"):
        init_weights_from(build_model("crn", **{**SMALL, "channels": 12}), tmp_path / "src.pt")
    with pytest.raises(ConfigError, match="model 'crn' vs 'unet'"):
        init_weights_from(build_model("unet", depth=2, base_channels=4), tmp_path / "src.pt")
    with pytest.raises(ConfigError, match="hop_length"):
        init_weights_from(build_model("crn", stft={"n_fft": 512, "hop_length": 128, "window": "sqrt_hann"}, **SMALL),
                          tmp_path / "src.pt")


def test_cli_init_from_fine_tunes_and_refuses(tiny_cache, tmp_path):
    source = _trained_like(5)
    save_checkpoint(tmp_path / "src.pt", serialize(source))
    args = ["train", "--config", REPO_ROOT / "configs" / "crn.yaml", "--data", tiny_cache, "--max-steps", "2",
            "run.eval_every=2", "data.dynamic_mix=false", "data.batch_size=2", "data.val_clips=2",
            "data.crop_seconds=1.0", "run.pesq_stoi_clips=1", "tracking.tracker=none", "run.progress=false",
            *[f"model.{k}={v}" for k, v in SMALL.items()], "model.filter_taps=1", "model.lookahead=0",
            "stft.hop_length=128", "stft.window=hann"]  # the tiny cache's STFT
    refused = run_cli(*args, "--out", tmp_path / "bad", "--init-from", tmp_path / "src.pt", check=False)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    assert "hop_length" in refused.stderr and "src.pt" in refused.stderr
    # a checkpoint of the cache's STFT fine-tunes: training starts from its weights
    matching = build_model("crn", stft={"n_fft": 512, "hop_length": 128, "window": "hann"}, **SMALL)
    save_checkpoint(tmp_path / "match.pt", serialize(matching))
    run_cli(*args, "--out", tmp_path / "ok", "--init-from", tmp_path / "match.pt")
    resolved = (tmp_path / "ok" / "config.yaml").read_text()
    assert "init_from" in resolved and "match.pt" in resolved
