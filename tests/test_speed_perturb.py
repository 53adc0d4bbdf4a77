"""Speed perturbation of speech and noise in the training mixer (data/mixing.py)."""
import numpy as np
import pytest

from specdenoise.data.mixing import MixConfig, Mixer, active_power, change_speed, speed_source_length
from test_crn import _pools

RATE = 16000


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[np.argmax(spectrum)])


@pytest.mark.parametrize("factor", [0.9, 0.93, 1.0, 1.1, 1.25])
def test_change_speed_scales_pitch_and_keeps_the_asked_length(factor):
    t = np.arange(speed_source_length(RATE, factor)) / RATE
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = change_speed(tone, factor, RATE)
    assert out.shape == (RATE,) and out.dtype == np.float32
    assert _peak_hz(out) == pytest.approx(1000 * factor, abs=2.0)
    steady = out[2000:-2000]  # the resampling filter's edges aside, the level is kept
    assert np.sqrt(np.mean(steady**2)) == pytest.approx(np.sqrt(0.5), rel=0.02)


def test_mixer_speeds_speech_within_its_range_and_keeps_the_snr(rng):
    cfg = MixConfig(rir_probability=0.0, babble_probability=0.0, snr_range=(5.0, 5.0),
                    speed_probability=1.0, speed_range=(0.9, 1.1),
                    noise_speed_probability=1.0, noise_speed_range=(0.8, 1.25))
    pools = _pools(rng)
    speeds = []
    for seed in range(10):
        m = Mixer(pools, cfg).mix(np.random.default_rng(seed), length=RATE)
        assert m.clean.shape == m.noise.shape == m.noisy.shape == (RATE,)
        speeds.append(m.meta["speech_speed"])
        assert "*speed" in m.meta["noise_file"]
        noise_speed = float(m.meta["noise_file"].rsplit("*speed", 1)[1])
        assert 0.8 <= noise_speed <= 1.25
        snr = 10 * np.log10(active_power(m.clean, RATE) / np.mean(m.noise.astype(np.float64) ** 2))
        assert snr == pytest.approx(5.0, abs=0.05)
    assert all(0.9 <= s <= 1.1 for s in speeds) and len(set(speeds)) > 3, speeds
    # the test speech is a 0.05 rad/sample sine (127 Hz): sped-up speech has it higher
    m = Mixer(pools, cfg).mix(np.random.default_rng(0), length=RATE)
    plain = Mixer(pools, MixConfig(rir_probability=0.0, babble_probability=0.0)).mix(np.random.default_rng(0), length=RATE)
    ratio = _peak_hz(m.clean) / _peak_hz(plain.clean)
    assert ratio == pytest.approx(m.meta["speech_speed"], abs=0.03)


def test_speed_off_leaves_mixtures_unchanged(rng):
    """Probability 0 draws nothing: every synth corpus and the fixed validation mixtures stay the same."""
    pools = _pools(rng)
    plain = Mixer(pools, MixConfig()).mix(np.random.default_rng(7), length=RATE)
    zero = Mixer(pools, MixConfig(speed_probability=0.0, noise_speed_probability=0.0,
                                  speed_range=(0.8, 1.2))).mix(np.random.default_rng(7), length=RATE)
    assert np.array_equal(plain.noisy, zero.noisy) and plain.meta == zero.meta


@pytest.mark.parametrize("kwargs, name", [({"speed_probability": 1.5}, "speed_probability"),
                                          ({"noise_speed_probability": -0.1}, "noise_speed_probability"),
                                          ({"speed_range": (1.1, 0.9)}, "speed_range"),
                                          ({"noise_speed_range": (0.2, 1.0)}, "noise_speed_range")])
def test_bad_speed_settings_are_refused(kwargs, name):
    with pytest.raises(Exception, match=name):
        MixConfig(**kwargs)
