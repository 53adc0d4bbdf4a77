"""The noise-only recolouring of the training mixer (``MixConfig.noise_eq_probability``)."""
import numpy as np
import pytest
from scipy.signal import sosfreqz

from specdenoise.data.mixing import MixConfig, Mixer, _biquad_shelf, active_power, random_noise_colouring
from test_crn import _pools

RATE = 16000


@pytest.mark.parametrize("high", [False, True])
def test_shelf_reaches_its_gain_on_its_side_and_unity_on_the_other(high):
    sos = _biquad_shelf(1000.0, 12.0, RATE, high=high)[None]
    _, h = sosfreqz(sos, worN=[20.0, 7900.0], fs=RATE)
    low_db, high_db = 20 * np.log10(np.abs(h))
    boosted, flat = (high_db, low_db) if high else (low_db, high_db)
    assert boosted == pytest.approx(12.0, abs=0.3) and flat == pytest.approx(0.0, abs=0.3)


def test_colourings_are_stable_and_bounded():
    for seed in range(50):
        sos = random_noise_colouring(np.random.default_rng(seed), RATE)
        assert np.all(np.abs(np.roots([1.0, *sos[0, 4:]])) < 1)  # the shelf's poles inside the unit circle
        _, h = sosfreqz(sos, worN=512, fs=RATE)
        db = 20 * np.log10(np.abs(h) + 1e-12)
        assert db.max() < 12 + 3 * 10 + 1 and db.min() > -(12 + 3 * 10 + 1)


def test_mixer_recolours_the_noise_only_and_keeps_the_snr(rng):
    pools = _pools(rng)
    on = MixConfig(rir_probability=0.0, babble_probability=0.0, noise_eq_probability=1.0, snr_range=(5.0, 5.0))
    off = MixConfig(rir_probability=0.0, babble_probability=0.0, snr_range=(5.0, 5.0))
    changed = []
    for seed in range(6):
        m = Mixer(pools, on).mix(np.random.default_rng(seed), length=RATE)
        base = Mixer(pools, off).mix(np.random.default_rng(seed), length=RATE)
        assert m.meta["noise_file"].endswith("*eq") and m.meta["speaker"] == base.meta["speaker"]
        snr = 10 * np.log10(active_power(m.clean, RATE) / np.mean(m.noise.astype(np.float64) ** 2))
        assert snr == pytest.approx(5.0, abs=0.05)
        spectra = [np.abs(np.fft.rfft(x.noise.astype(np.float64))) ** 2 for x in (m, base)]
        spectra = [s / s.sum() for s in spectra]
        changed.append(0.5 * np.abs(spectra[0] - spectra[1]).sum())  # total-variation distance of the spectra
    assert min(changed) > 0.01 and max(changed) > 0.1, changed


def test_noise_eq_off_leaves_mixtures_unchanged(rng):
    """Probability 0 draws nothing: synth corpora and the fixed validation mixtures stay the same."""
    pools = _pools(rng)
    plain = Mixer(pools, MixConfig()).mix(np.random.default_rng(7), length=RATE)
    zero = Mixer(pools, MixConfig(noise_eq_probability=0.0)).mix(np.random.default_rng(7), length=RATE)
    assert np.array_equal(plain.noisy, zero.noisy) and plain.meta == zero.meta
    with pytest.raises(Exception, match="noise_eq_probability"):
        MixConfig(noise_eq_probability=2.0)
