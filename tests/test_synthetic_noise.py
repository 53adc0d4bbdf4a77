"""Procedural training noises (data/synthetic_noise.py) and how the mixer uses them."""
import numpy as np
import pytest

from specdenoise.data.mixing import MixConfig, Mixer, active_power
from specdenoise.data.synthetic_noise import GENERATORS, KINDS, synthetic_noise
from test_crn import _pools

RATE = 16000


def _spectrum(x):
    power = np.abs(np.fft.rfft(x)) ** 2
    return np.fft.rfftfreq(len(x), 1 / RATE), power / power.sum()


def _flatness(power):
    """Spectral flatness in (0, 1]: ~0.56 for white noise, near 0 for a few lines."""
    p = power[1:] + 1e-20
    return float(np.exp(np.mean(np.log(p))) / np.mean(p))


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_each_kind_is_finite_unit_rms_and_seeded(kind):
    a, got = synthetic_noise(np.random.default_rng(5), 3 * RATE, RATE, kind)
    b, _ = synthetic_noise(np.random.default_rng(5), 3 * RATE, RATE, kind)
    c, _ = synthetic_noise(np.random.default_rng(6), 3 * RATE, RATE, kind)
    assert got == kind and a.dtype == np.float32 and a.shape == (3 * RATE,)
    assert np.isfinite(a).all() and np.sqrt(np.mean(a.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_hum_is_harmonic_on_a_mains_fundamental():
    white = _flatness(_spectrum(np.random.default_rng(0).standard_normal(4 * RATE))[1])
    for seed in range(8):
        x, _ = synthetic_noise(np.random.default_rng(seed), 4 * RATE, RATE, "hum")
        freqs, power = _spectrum(x)
        peak = freqs[np.argmax(power)]
        # the strongest line is a harmonic of 50 or 60 Hz (within the +-1 % tuning and the drift)
        assert min(abs(peak / f0 - round(peak / f0)) for f0 in (50.0, 60.0)) < 0.05, peak
        assert _flatness(power) < 0.05 * white


def test_low_tone_is_one_dominant_line_between_40_and_130_hz():
    peaks = []
    for seed in range(8):
        x, _ = synthetic_noise(np.random.default_rng(seed), 4 * RATE, RATE, "low_tone")
        freqs, power = _spectrum(x)
        peak = freqs[np.argmax(power)]
        assert 38 <= peak <= 133, peak
        assert power[np.abs(freqs - peak) < 3].sum() > 0.6  # the fundamental carries most of the power
        peaks.append(peak)
    assert np.ptp(peaks) > 20  # drawn across the range, not one mains frequency


def test_whine_is_tonal_and_rumble_is_low():
    below_20 = []
    for seed in range(8):
        whine, _ = synthetic_noise(np.random.default_rng(seed), 2 * RATE, RATE, "whine")
        freqs, power = _spectrum(whine)
        assert freqs[np.argmax(power)] >= 250  # tones from 300 Hz up (a harmonic may lead)
        assert power.max() > 100 / len(power)  # a line far above the hiss floor
        rumble, _ = synthetic_noise(np.random.default_rng(seed), 2 * RATE, RATE, "rumble")
        freqs, power = _spectrum(rumble)
        assert power[freqs < 600].sum() > 0.95  # low-passed at 40-250 Hz (2nd to 4th order)
        below_20.append(power[freqs < 20].sum())
    # half the rumbles ride on an infrasonic drift (handling, wind, DC wander): most of their power < 20 Hz
    assert sum(p > 0.3 for p in below_20) >= 2 and sum(p < 0.2 for p in below_20) >= 2, below_20


def test_mixer_adds_synthetic_noise_at_the_asked_snr(rng):
    cfg = MixConfig(rir_probability=0.0, babble_probability=0.0, synthetic_noise_probability=1.0, snr_range=(5.0, 5.0))
    kinds = set()
    for seed in range(12):
        m = Mixer(_pools(rng), cfg).mix(np.random.default_rng(seed), length=RATE)
        assert "synthetic_" in m.meta["noise_category"] and "synthetic:" in m.meta["noise_file"]
        kinds.add(m.meta["noise_category"].split("synthetic_")[1])
        snr = 10 * np.log10(active_power(m.clean, RATE) / np.mean(m.noise.astype(np.float64) ** 2))
        assert snr == pytest.approx(5.0, abs=0.05)
        assert np.allclose(m.noisy, m.clean + m.noise, atol=1e-5)
    assert kinds == set(KINDS)
    with pytest.raises(Exception, match="synthetic_noise_probability"):
        MixConfig(synthetic_noise_probability=-0.1)


def test_probability_zero_draws_nothing_extra(rng, monkeypatch):
    """With the feature off the random stream is untouched (no extra draw), so the fixed
    validation mixtures, and the validation numbers of older models, stay what they were."""
    import specdenoise.data.mixing as mixing

    def refuse(*_args, **_kwargs):
        raise AssertionError("synthetic noise drawn with probability 0")

    monkeypatch.setattr(mixing, "synthetic_noise", refuse)
    calls = []

    class Counting:
        def __init__(self):
            self.gen = np.random.default_rng(3)

        def __getattr__(self, name):
            calls.append(name)
            return getattr(self.gen, name)

    pools = _pools(rng)
    off = Mixer(pools, MixConfig(rir_probability=0.0)).mix(Counting(), length=RATE)
    without = len(calls)
    calls.clear()
    zero = Mixer(pools, MixConfig(rir_probability=0.0, synthetic_noise_probability=0.0)).mix(Counting(), length=RATE)
    assert len(calls) == without and np.array_equal(off.noisy, zero.noisy)
    calls.clear()
    monkeypatch.setattr(mixing, "synthetic_noise", synthetic_noise)
    Mixer(pools, MixConfig(rir_probability=0.0, synthetic_noise_probability=1e-9)).mix(Counting(), length=RATE)
    assert len(calls) == without + 1  # the one extra draw that decides, only when the feature is on


def test_mixer_adds_infrasound_below_20_hz_at_the_asked_snr(rng):
    """infrasound_probability=1: every noise carries a drift whose power lies below 20 Hz, the
    category says so, and the SNR is still set on the sum."""
    cfg = MixConfig(rir_probability=0.0, babble_probability=0.0, infrasound_probability=1.0, snr_range=(5.0, 5.0))
    plain = MixConfig(rir_probability=0.0, babble_probability=0.0, snr_range=(5.0, 5.0))
    pools = _pools(rng)
    gained = []
    for seed in range(6):
        m = Mixer(pools, cfg).mix(np.random.default_rng(seed), length=2 * RATE)
        base = Mixer(pools, plain).mix(np.random.default_rng(seed), length=2 * RATE)
        assert m.meta["noise_category"].endswith("+infrasound") and m.meta["noise_file"].endswith("+infrasound")
        snr = 10 * np.log10(active_power(m.clean, RATE) / np.mean(m.noise.astype(np.float64) ** 2))
        assert snr == pytest.approx(5.0, abs=0.05)
        freqs, power = _spectrum(m.noise.astype(np.float64))
        _, base_power = _spectrum(base.noise.astype(np.float64))
        gained.append(power[freqs < 20].sum() - base_power[freqs < 20].sum())
    assert min(gained) > 0.02 and max(gained) > 0.5, gained  # -10 ... +15 dB relative: some dominate
    with pytest.raises(Exception, match="infrasound_probability"):
        MixConfig(infrasound_probability=1.5)


def _kurtosis(x):
    x = x.astype(np.float64) - x.mean()
    return float(np.mean(x**4) / np.mean(x**2) ** 2)


def test_crackle_and_knocks_are_impulsive_and_knocks_ring():
    """Gaussian noise has kurtosis 3; clicks and impacts put their power into a few short events.
    A knock rings: its power a few ms after the onset sits in a few resonances, not spread wide."""
    for seed in range(8):
        crackle, _ = synthetic_noise(np.random.default_rng(seed), 3 * RATE, RATE, "crackle")
        knock, _ = synthetic_noise(np.random.default_rng(seed), 3 * RATE, RATE, "knock")
        assert _kurtosis(crackle) > 6 and _kurtosis(knock) > 6, (seed, _kurtosis(crackle), _kurtosis(knock))
        freqs, power = _spectrum(crackle)
        assert power[freqs < 150].sum() < 0.2  # high-passed at 300-3000 Hz (plus a little white hiss)
    white = _flatness(_spectrum(np.random.default_rng(0).standard_normal(3 * RATE))[1])
    rings = [_flatness(_spectrum(synthetic_noise(np.random.default_rng(s), 3 * RATE, RATE, "knock")[0])[1])
             for s in range(8)]
    assert np.median(rings) < 0.3 * white, rings


def test_mixer_draws_only_the_configured_kinds(rng):
    pools = _pools(rng)
    cfg = MixConfig(rir_probability=0.0, babble_probability=0.0, synthetic_noise_probability=1.0,
                    synthetic_kinds=("crackle", "knock"))
    kinds = {Mixer(pools, cfg).mix(np.random.default_rng(s), length=RATE).meta["noise_category"].split("synthetic_")[1]
             for s in range(12)}
    assert kinds == {"crackle", "knock"}
    for bad in (("hum", "static"), ()):
        with pytest.raises(Exception, match="synthetic_kinds"):
            MixConfig(synthetic_kinds=bad)
