"""The Mixer's source conditioning: speech loses its DC offset and subsonic content before it is
mixed (it would otherwise sit in the *target*), noise loses its offset (which would fake power)."""
import numpy as np
import pytest

from specdenoise.data.corpus import load_pools
from specdenoise.data.mixing import MixConfig, Mixer, Pools, active_power
from specdenoise.data.sources import SourceFile

RATE = 16000


def _band_share(x: np.ndarray, lo: float, hi: float) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64) - x.mean())) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(power[(freqs >= lo) & (freqs < hi)].sum() / power.sum())


def _offset_speech(seconds: float = 2.0) -> np.ndarray:
    """A 'voice' at 150-600 Hz riding on a DC offset 3x its RMS and a 5 Hz drift."""
    t = np.arange(int(seconds * RATE)) / RATE
    voice = 0.05 * (np.sin(2 * np.pi * 150 * t) + 0.5 * np.sin(2 * np.pi * 600 * t))
    return (voice + 0.1 + 0.05 * np.sin(2 * np.pi * 5 * t)).astype(np.float32)


def _pools(speech: np.ndarray, noise: np.ndarray) -> Pools:
    return Pools(speech=[speech], speech_groups={"s": [0]}, speech_names=["s.wav"], speech_speakers=["s"],
                 noise=[noise], noise_names=["n.wav"], noise_categories=["fan"])


def _config(**kw) -> MixConfig:
    return MixConfig(rir_probability=0.0, babble_probability=0.0, snr_range=(5.0, 5.0), silence_seconds=0.5, **kw)


def test_targets_lose_the_speech_offset_and_rumble_but_keep_the_voice(rng):
    speech = _offset_speech()
    noise = (0.05 * rng.standard_normal(RATE * 3)).astype(np.float32)
    m = Mixer(_pools(speech, noise), _config()).mix(np.random.default_rng(0), length=RATE * 4)
    # utterances joined by silences: the raw offset would be a square wave with most of the power
    raw = Mixer(_pools(speech, noise), _config(speech_highpass_hz=0.0))
    assert _band_share(m.clean, 0, 30) < 1e-3
    assert _band_share(m.clean, 100, 700) > 0.99
    assert abs(m.clean.mean()) < 1e-3 * np.sqrt(np.mean(m.clean.astype(np.float64) ** 2))
    # off: only the (constant) offset goes, the 5 Hz drift stays in the target
    kept = raw.mix(np.random.default_rng(0), length=RATE * 4)
    assert _band_share(kept.clean, 0, 30) > 0.1


def test_noise_offset_does_not_count_as_noise_power(rng):
    speech = _offset_speech() - 0.1
    hiss = (0.01 * rng.standard_normal(RATE * 3)).astype(np.float32)
    m = Mixer(_pools(speech, hiss + 0.2), _config()).mix(np.random.default_rng(1), length=RATE * 2)
    assert abs(m.noise.mean()) < 0.05 * np.std(m.noise)  # the 20x-RMS offset is gone
    snr = 10 * np.log10(active_power(m.clean, RATE) / np.mean(m.noise.astype(np.float64) ** 2))
    assert snr == pytest.approx(5.0, abs=0.05)  # so the drawn SNR is the audible one


def test_conditioning_copies_and_leaves_the_pools_as_read(rng):
    speech, noise = _offset_speech(), (0.05 * rng.standard_normal(RATE) + 0.3).astype(np.float32)
    pools = _pools(speech.copy(), noise.copy())
    Mixer(pools, _config())
    assert np.array_equal(pools.speech[0], speech) and np.array_equal(pools.noise[0], noise)  # packs store these


def test_tiny_sources_and_bad_cutoffs(rng):
    tiny = Mixer(_pools(np.full(10, 0.5, np.float32), np.ones(5, np.float32)), _config())
    assert np.allclose(tiny.pools.speech[0], 0) and np.allclose(tiny.pools.noise[0], 0)
    for bad in (-1.0, 250.0):
        with pytest.raises(Exception, match="speech_highpass_hz"):
            MixConfig(speech_highpass_hz=bad)


def test_real_sources_with_an_offset_give_clean_targets(shared_data):
    """26 of VoxForge's files carry an offset larger than their speech (data/mixing.py); this is one."""
    path = shared_data / "speech" / "voxforge" / "es" / "AlexanderRubioCaceres-20090902-set" / "es-0036.flac"
    if not path.exists():
        pytest.skip("the VoxForge file with an offset is not in this data")
    noise = sorted((shared_data / "noise" / "wind").glob("*.flac"))[:1]
    files = {"speech": [SourceFile(path, "speech", "speech", speaker="a")], "noise": [SourceFile(noise[0], "noise", "wind")],
             "rir": []}
    pools = load_pools(files, RATE, [])
    assert abs(pools.speech[0].mean()) > np.std(pools.speech[0])  # as read: offset above the speech's RMS
    m = Mixer(pools, _config()).mix(np.random.default_rng(2), length=RATE * 8)
    assert _band_share(m.clean, 0, 30) < 0.01
