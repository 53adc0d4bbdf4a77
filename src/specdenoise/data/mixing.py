"""The Mixer: clean speech + noise (+ room response) at a chosen SNR and level.

Pure functions plus a seeded ``numpy.random.Generator`` per example, so the same seed always
gives the same mixture. ``synth`` writes its output to disk; ``DynamicMixDataset`` calls the
same :meth:`Mixer.mix` for a fresh mixture per training example.

SNR is measured against the speech's *active* level: the mean power of the 20 ms frames within
40 dB of the loudest frame (in the spirit of ITU-T P.56), so pauses do not dilute the speech
level. Noise level is its plain RMS over the clip.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.signal import butter, fftconvolve, sosfiltfilt

from ..errors import SpecdenoiseError
from .rooms import early_part
from .synthetic_noise import GENERATORS, KINDS, infrasound, synthetic_noise

CLIP_PEAK = 0.99
# No voice has energy below this, and the speech sources carry a lot there: 26 of 150 VoxForge and
# 6 of 251 LibriSpeech train-clean-100 files have a DC offset larger than their speech's RMS, some
# have subsonic handling rumble. Between the silences that join utterances an offset becomes a
# square wave, so targets held rumble that dominated some clips' energy: every denoiser removes it
# and was scored as if it had lost speech (docs/RESULTS.md, "clean targets").
SPEECH_HIGHPASS_HZ = 30.0


class SilentSourceError(SpecdenoiseError):
    """A speech excerpt with no active signal: it cannot set an SNR."""


@dataclass(frozen=True)
class MixConfig:
    sample_rate: int = 16000
    clip_seconds: float = 8.0
    snr_range: tuple[float, float] = (-5.0, 20.0)
    snr_levels: int = 0  # >0: draw from this many evenly spaced SNRs (MS-SNSD's total_snrlevels)
    level_range_dbfs: tuple[float, float] = (-35.0, -15.0)
    rir_probability: float = 0.3
    dry_target: bool = False  # True: target is the dry speech (dereverberation too)
    silence_seconds: float = 0.2  # gap between joined utterances
    babble_probability: float = 0.1  # share of clips whose noise is derived babble
    babble_talkers: tuple[int, int] = (3, 8)
    # --- realism for training (defaults keep a plain mixture; configs/crn.yaml turns them on) ---
    noise2_probability: float = 0.0  # share of examples with a second, independent noise source
    filter_probability: float = 0.0  # share passed through a random microphone/channel response
    clip_probability: float = 0.0  # share whose noisy input is clipped (target stays unclipped)
    early_reflection_ms: float = 0.0  # >0: reverberant speech's target keeps only this much after the direct path
    synthetic_noise_probability: float = 0.0  # share with a procedural hum/whine/rumble (data/synthetic_noise.py)
    synthetic_kinds: tuple[str, ...] = KINDS  # which procedural noises it draws from (+ "crackle", "knock", "low_tone")
    noise_eq_probability: float = 0.0  # share whose noise alone gets a random colouring (tilt + peaks)
    infrasound_probability: float = 0.0  # share whose noise gets an infrasonic drift (< 20 Hz) added
    speed_probability: float = 0.0  # share whose speech is played faster/slower (pitch and tempo together)
    speed_range: tuple[float, float] = (0.9, 1.1)  # its speed factors (Kaldi's speed perturbation: 0.9/1.0/1.1)
    noise_speed_probability: float = 0.0  # share whose (first) noise recording is played faster/slower
    noise_speed_range: tuple[float, float] = (0.8, 1.25)
    # speech loses what lies below this (Hz) before mixing; 0 keeps it (the offset still goes)
    speech_highpass_hz: float = SPEECH_HIGHPASS_HZ

    def __post_init__(self) -> None:
        lo, hi = self.snr_range
        if lo > hi:
            raise SpecdenoiseError(f"snr_range must be (low, high), got {self.snr_range}")
        if not 0 <= self.rir_probability <= 1 or not 0 <= self.babble_probability <= 1:
            raise SpecdenoiseError("rir_probability and babble_probability must lie in [0, 1]")
        for name in ("noise2_probability", "filter_probability", "clip_probability", "synthetic_noise_probability",
                     "infrasound_probability", "speed_probability", "noise_speed_probability",
                     "noise_eq_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise SpecdenoiseError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("speed_range", "noise_speed_range"):
            lo, hi = getattr(self, name)
            if not 0.5 <= lo <= hi <= 2.0:
                raise SpecdenoiseError(f"{name} must be (low, high) within [0.5, 2.0], got {getattr(self, name)}")
        unknown = [k for k in self.synthetic_kinds if k not in GENERATORS]
        if unknown or not self.synthetic_kinds:
            raise SpecdenoiseError(f"synthetic_kinds must name some of {sorted(GENERATORS)}, got {list(self.synthetic_kinds)}")
        if not 0 <= self.early_reflection_ms <= 500:
            raise SpecdenoiseError(f"early_reflection_ms must lie in [0, 500], got {self.early_reflection_ms}")
        if self.clip_seconds <= 0:
            raise SpecdenoiseError(f"clip_seconds must be positive, got {self.clip_seconds}")
        if not 0 <= self.speech_highpass_hz <= 100:
            raise SpecdenoiseError(f"speech_highpass_hz must lie in [0, 100], got {self.speech_highpass_hz}")


SNR_PRESETS = {"default": (-5.0, 20.0), "challenging": (0.1, 0.5)}


def active_power(speech: np.ndarray, sample_rate: int, floor_db: float = 40.0) -> float:
    """Mean power of the frames within ``floor_db`` of the loudest 20 ms frame."""
    frame = max(1, int(0.02 * sample_rate))
    n = len(speech) // frame
    if n == 0:
        return float(np.mean(np.square(speech, dtype=np.float64))) if len(speech) else 0.0
    frames = np.asarray(speech[: n * frame], dtype=np.float64).reshape(n, frame)
    power = np.mean(frames**2, axis=1)
    peak = power.max()
    if peak <= 1e-14:
        return 0.0
    active = power[power >= peak * 10 ** (-floor_db / 10)]
    return float(active.mean())


@dataclass
class Pools:
    """In-memory audio for one split: speech grouped by speaker/file, noise files, RIRs."""

    speech: list[np.ndarray]
    speech_groups: dict[str, list[int]]  # group -> indices into speech
    speech_names: list[str]
    speech_speakers: list[str]
    noise: list[np.ndarray]
    noise_names: list[str]
    noise_categories: list[str]
    rirs: list[np.ndarray] = field(default_factory=list)
    rir_names: list[str] = field(default_factory=list)


@dataclass
class Mixture:
    clean: np.ndarray
    noise: np.ndarray
    noisy: np.ndarray
    meta: dict[str, Any]


def remove_offset(data: np.ndarray) -> np.ndarray:
    """``data`` without its mean. A DC offset is inaudible but counts as power, so a noise file
    with one would be mixed far quieter than its SNR says."""
    return (data - data.mean(dtype=np.float64)).astype(np.float32)


def remove_subsonic(data: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """``data`` without its offset and without content below ``cutoff_hz`` (4th-order Butterworth
    high-pass run forwards and backwards: no phase shift, so timing is kept)."""
    centred = remove_offset(data)
    if cutoff_hz <= 0 or len(centred) <= 15:  # 15: sosfiltfilt's edge padding for two sections
        return centred
    sos = butter(4, cutoff_hz, "highpass", fs=sample_rate, output="sos")
    return sosfiltfilt(sos, centred).astype(np.float32)


def condition_sources(pools: Pools, config: MixConfig) -> Pools:
    """``pools`` with speech high-passed and noise centred, done once when a :class:`Mixer` is
    made, so synth, dynamic mixing and packs (which store the sources as read) all mix the same
    audio. Noise keeps its rumble: removing it is the denoiser's job."""
    speech = [remove_subsonic(x, config.sample_rate, config.speech_highpass_hz) for x in pools.speech]
    return replace(pools, speech=speech, noise=[remove_offset(x) for x in pools.noise])


def loop_to_length(audio: np.ndarray, length: int, offset: int) -> np.ndarray:
    """``length`` samples of ``audio`` starting at ``offset``, wrapping around (looping)."""
    idx = (offset + np.arange(length)) % len(audio)
    return audio[idx]


def apply_rir(speech: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with a room response, aligned on its direct path so timing is kept."""
    peak = int(np.argmax(np.abs(rir)))
    rir = rir[peak:] / (np.abs(rir[peak]) + 1e-12)
    wet = fftconvolve(speech, rir)[: len(speech)]
    return wet.astype(np.float32)


class Mixer:
    """Makes mixtures from one split's :class:`Pools` according to a :class:`MixConfig`."""

    def __init__(self, pools: Pools, config: MixConfig):
        if not pools.speech or not pools.noise:
            raise SpecdenoiseError("the mixer needs at least one speech and one noise recording")
        self.pools = condition_sources(pools, config)
        self.config = config
        self.groups = sorted(pools.speech_groups)

    @property
    def clip_samples(self) -> int:
        return int(round(self.config.clip_seconds * self.config.sample_rate))

    def draw_speech(self, rng: np.random.Generator, length: int) -> tuple[np.ndarray, list[str], str]:
        """Join utterances of one speaker (or one file group) with short silences, like MS-SNSD."""
        group = self.groups[rng.integers(len(self.groups))]
        members = self.pools.speech_groups[group]
        gap = np.zeros(int(self.config.silence_seconds * self.config.sample_rate), np.float32)
        parts, used, total = [], [], 0
        order = list(rng.permutation(members))
        first = True
        while total < length:
            if not order:
                order = list(rng.permutation(members))
            i = int(order.pop())
            utt = self.pools.speech[i]
            if first and len(utt) > length:  # long utterance: random excerpt
                start = int(rng.integers(0, len(utt) - length + 1))
                utt = utt[start : start + length]
                used.append(f"{self.pools.speech_names[i]}@{start}")
            else:
                used.append(self.pools.speech_names[i])
            first = False
            parts.extend([utt, gap])
            total += len(utt) + len(gap)
        speech = np.concatenate(parts)[:length]
        return speech.astype(np.float32), used, self.pools.speech_speakers[members[0]]

    def draw_noise(self, rng: np.random.Generator, length: int) -> tuple[np.ndarray, str, str]:
        k = int(rng.integers(len(self.pools.noise)))
        audio = self.pools.noise[k]
        offset = int(rng.integers(len(audio)))
        return loop_to_length(audio, length, offset), f"{self.pools.noise_names[k]}@{offset}", self.pools.noise_categories[k]

    def draw_babble(self, rng: np.random.Generator, length: int) -> tuple[np.ndarray, str, str]:
        """Derived babble: 3-8 talkers of this split, each at equal active level, summed."""
        lo, hi = self.config.babble_talkers
        talkers = int(rng.integers(lo, hi + 1))
        total = np.zeros(length, np.float64)
        names = []
        for _ in range(talkers):
            i = int(rng.integers(len(self.pools.speech)))
            utt = self.pools.speech[i]
            p = active_power(utt, self.config.sample_rate)
            if p <= 0:
                continue
            total += loop_to_length(utt, length, int(rng.integers(len(utt)))) / np.sqrt(p)
            names.append(self.pools.speech_names[i])
        return total.astype(np.float32), "babble(" + "+".join(names) + ")", "babble_derived"

    def draw_snr(self, rng: np.random.Generator) -> float:
        lo, hi = self.config.snr_range
        if self.config.snr_levels > 1:
            return float(rng.choice(np.linspace(lo, hi, self.config.snr_levels)))
        return float(rng.uniform(lo, hi))

    def mix(self, rng: np.random.Generator, length: int | None = None) -> Mixture:
        """One mixture. Raises :class:`SilentSourceError` if the drawn speech is silent."""
        cfg = self.config
        length = length or self.clip_samples
        speech_speed = _draw_speed(rng, cfg.speed_probability, cfg.speed_range)
        speech, speech_files, speaker = self.draw_speech(rng, speed_source_length(length, speech_speed))
        speech = change_speed(speech, speech_speed, length)
        dry = speech
        rir_name = "none"
        if self.pools.rirs and rng.random() < cfg.rir_probability:
            r = int(rng.integers(len(self.pools.rirs)))
            if cfg.early_reflection_ms > 0:
                dry = apply_rir(speech, early_part(self.pools.rirs[r], cfg.sample_rate, cfg.early_reflection_ms))
            speech = apply_rir(speech, self.pools.rirs[r])
            rir_name = self.pools.rir_names[r]
        if rng.random() < cfg.babble_probability and len(self.pools.speech) >= 2:
            noise, noise_file, category = self.draw_babble(rng, length)
        else:
            noise_speed = _draw_speed(rng, cfg.noise_speed_probability, cfg.noise_speed_range)
            noise, noise_file, category = self.draw_noise(rng, speed_source_length(length, noise_speed))
            noise = change_speed(noise, noise_speed, length)
            if noise_speed != 1.0:
                noise_file = f"{noise_file}*speed{noise_speed:.2f}"
        if cfg.noise2_probability and rng.random() < cfg.noise2_probability:
            noise, noise_file, category = self._add_second_noise(rng, noise, noise_file, category)
        if cfg.synthetic_noise_probability and rng.random() < cfg.synthetic_noise_probability:
            noise, noise_file, category = self._add_synthetic_noise(rng, noise, noise_file, category)
        if cfg.infrasound_probability and rng.random() < cfg.infrasound_probability:
            noise, noise_file, category = self._add_infrasound(rng, noise, noise_file, category)
        if cfg.noise_eq_probability and rng.random() < cfg.noise_eq_probability:
            noise = _filt(random_noise_colouring(rng, cfg.sample_rate), noise)
            noise_file = f"{noise_file}*eq"
        filter_name = "none"
        if cfg.filter_probability and rng.random() < cfg.filter_probability:
            sos, filter_name = random_channel_filter(rng, cfg.sample_rate)
            speech, noise = _filt(sos, speech), _filt(sos, noise)
            dry = _filt(sos, dry)
        noise, snr = self._noise_at_snr(rng, speech, noise, speech_files)
        target = dry if (cfg.dry_target or cfg.early_reflection_ms > 0) else speech
        level, rms, gain, clipped_guard = self._output_gain(rng, speech + noise, target, noise)
        meta = {
            "speaker": speaker,
            "speech_files": ";".join(speech_files),
            "noise_file": noise_file,
            "noise_category": category,
            "snr_db": round(snr, 4),
            "gain_db": round(20 * np.log10(gain), 4),
            "level_dbfs": round(level if not clipped_guard else 20 * np.log10(rms * gain), 4),
            "rir": rir_name,
            "clip_guard": int(clipped_guard),
        }
        if cfg.filter_probability:
            meta["channel_filter"] = filter_name
        if cfg.speed_probability:
            meta["speech_speed"] = round(speech_speed, 2)
        g = np.float32(gain)
        noisy = (speech + noise) * g
        if cfg.clip_probability and rng.random() < cfg.clip_probability:
            threshold = float(np.abs(noisy).max()) / rng.uniform(1.2, 4.0)  # overdriven input
            noisy = np.clip(noisy, -threshold, threshold)
            meta["input_clipped_at"] = round(threshold, 6)
        return Mixture(clean=target * g, noise=noise * g, noisy=noisy.astype(np.float32), meta=meta)

    def _noise_at_snr(self, rng, speech: np.ndarray, noise: np.ndarray, speech_files: list[str]
                      ) -> tuple[np.ndarray, float]:
        """``noise`` scaled to a drawn SNR over the active speech level; returns it and the SNR."""
        p_speech = active_power(speech, self.config.sample_rate)
        if p_speech <= 0:
            raise SilentSourceError(f"silent speech excerpt ({', '.join(speech_files)}): cannot set an SNR")
        p_noise = _power(noise)
        snr = self.draw_snr(rng)
        if p_noise <= 1e-20:
            noise_gain = 0.0
        else:
            noise_gain = np.sqrt(p_speech / (p_noise * 10 ** (snr / 10)))
        return (noise * noise_gain).astype(np.float32), snr

    def _output_gain(self, rng, noisy: np.ndarray, target: np.ndarray, noise: np.ndarray
                     ) -> tuple[float, float, float, bool]:
        """A drawn output level (dBFS), lowered when any of the three signals would clip; returns
        (level, rms of ``noisy``, gain, whether the clip guard lowered it)."""
        level = float(rng.uniform(*self.config.level_range_dbfs))
        rms = np.sqrt(np.mean(np.square(noisy, dtype=np.float64))) + 1e-12
        gain = 10 ** (level / 20) / rms
        peak = max(np.abs(noisy).max(), np.abs(target).max(), np.abs(noise).max()) * gain
        clipped_guard = peak > CLIP_PEAK
        if clipped_guard:
            gain *= CLIP_PEAK / peak
        return level, rms, gain, clipped_guard

    def _add_second_noise(self, rng, noise, name, category):
        """Two independent sources (e.g. traffic under a fan), the second 0-10 dB below the first."""
        other, other_name, other_cat = self.draw_noise(rng, len(noise))
        if _power(noise) <= 1e-20 or _power(other) <= 1e-20:
            return noise, name, category
        mixed = _add_at_relative_level(noise, other, -rng.uniform(0.0, 10.0))
        return mixed, f"{name}+{other_name}", f"{category}+{other_cat}"

    def _add_synthetic_noise(self, rng, noise, name, category):
        """A procedural hum, whine or rumble: alone (a quarter of the time) or with the recorded
        noise at -15...+5 dB relative to it; the SNR is then set on the sum as usual."""
        synth, kind = synthetic_noise(rng, len(noise), self.config.sample_rate, kinds=self.config.synthetic_kinds)
        if rng.random() < 0.25 or _power(noise) <= 1e-20:
            return synth, f"synthetic:{kind}", f"synthetic_{kind}"
        mixed = _add_at_relative_level(noise, synth, rng.uniform(-15.0, 5.0))
        return mixed, f"{name}+synthetic:{kind}", f"{category}+synthetic_{kind}"

    def _add_infrasound(self, rng, noise, name, category):
        """An infrasonic drift (handling, wind buffets, DC wander) at -10...+15 dB relative to the
        noise; the SNR is then set on the sum. Why: real noise files carry it (the golden example2's
        noise has 83 % of its power below 20 Hz). 95 minutes at 0.15 did not teach the CRN's mask
        to remove it (docs/RESULTS.md, crn-0.9), so configs/crn.yaml leaves it off."""
        if _power(noise) <= 1e-20:
            return noise, name, category
        drift = infrasound(rng, len(noise), self.config.sample_rate)
        return _add_at_relative_level(noise, drift, rng.uniform(-10.0, 15.0)), f"{name}+infrasound", f"{category}+infrasound"


def _draw_speed(rng: np.random.Generator, probability: float, bounds: tuple[float, float]) -> float:
    """A speed factor in steps of 0.01 (1.0 when not drawn); draws nothing when ``probability`` is 0,
    so mixtures made without speed perturbation (every synth corpus) stay identical."""
    if not probability or rng.random() >= probability:
        return 1.0
    return round(float(rng.uniform(*bounds)), 2)


def speed_source_length(length: int, factor: float) -> int:
    """Samples to draw so that ``change_speed(x, factor, length)`` has ``length`` samples to keep."""
    return length if factor == 1.0 else int(np.ceil(length * factor)) + 2


def change_speed(audio: np.ndarray, factor: float, length: int) -> np.ndarray:
    """``audio`` played ``factor`` times faster (pitch and tempo together, like tape: Kaldi's speed
    perturbation), first ``length`` samples. Why: the training split holds about 90 minutes of speech
    from a few hundred speakers; shifting every formant and pitch by up to 10 % makes new voices
    from them, the cheapest defence against a denoiser that only knows its training speakers."""
    if factor == 1.0:
        return audio[:length]
    from math import gcd

    from scipy.signal import resample_poly

    up, down = 100, int(round(100 * factor))
    g = gcd(up, down)
    out = resample_poly(audio, up // g, down // g)
    if len(out) < length:  # cannot happen with speed_source_length's margin, but never return short
        out = np.pad(out, (0, length - len(out)))
    return out[:length].astype(np.float32)


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def _add_at_relative_level(noise: np.ndarray, other: np.ndarray, rel_db: float) -> np.ndarray:
    """``noise`` plus ``other`` scaled to ``rel_db`` dB relative to ``noise``'s power (float32)."""
    return (noise + other * np.sqrt(_power(noise) / _power(other) * 10 ** (rel_db / 10))).astype(np.float32)


def random_channel_filter(rng: np.random.Generator, sample_rate: int) -> tuple[np.ndarray, str]:
    """A random microphone/channel response as second-order sections: band-limiting (telephone
    or cheap-microphone low-pass), a high-pass (small capsule, wind filter) or a random tilt EQ."""
    nyq = sample_rate / 2
    kind = rng.choice(["lowpass", "highpass", "bandpass", "eq"])
    if kind == "lowpass":
        cut = float(rng.uniform(3000, min(7500, 0.95 * nyq)))
        return butter(int(rng.integers(2, 9)), cut, "lowpass", fs=sample_rate, output="sos"), f"lowpass{cut:.0f}"
    if kind == "highpass":
        cut = float(rng.uniform(50, 400))
        return butter(int(rng.integers(1, 5)), cut, "highpass", fs=sample_rate, output="sos"), f"highpass{cut:.0f}"
    if kind == "bandpass":
        lo, hi = float(rng.uniform(200, 400)), float(rng.uniform(3200, min(4000, 0.95 * nyq)))
        return butter(4, [lo, hi], "bandpass", fs=sample_rate, output="sos"), f"bandpass{lo:.0f}-{hi:.0f}"
    return _peaking_sections(rng, sample_rate, int(rng.integers(1, 4)), 6.0), "eq"


def random_noise_colouring(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Second-order sections that recolour a noise recording: a low or high shelf of +-12 dB
    (distance, walls, a different machine of the same kind) and one to three peaks of +-10 dB.
    Why: the collection holds about 80 minutes of noise, so a model meets each file's spectrum
    many times; this draws new spectra from the same recordings. Applied to the noise only,
    before its level is set, so the drawn SNR holds."""
    f0 = float(np.exp(rng.uniform(np.log(150.0), np.log(0.4 * sample_rate))))
    shelf = _biquad_shelf(f0, float(rng.uniform(-12, 12)), sample_rate, high=bool(rng.random() < 0.5))
    return np.vstack([shelf, _peaking_sections(rng, sample_rate, int(rng.integers(1, 4)), 10.0)])


def _peaking_sections(rng: np.random.Generator, sample_rate: int, count: int, max_db: float) -> np.ndarray:
    """``count`` peaking biquads of +-``max_db`` at random centre frequencies (RBJ cookbook)."""
    sections = []
    for _ in range(count):
        f0, gain_db, q = float(rng.uniform(100, 0.4 * sample_rate)), float(rng.uniform(-max_db, max_db)), float(rng.uniform(0.5, 2))
        a, w0 = 10 ** (gain_db / 40), 2 * np.pi * f0 / sample_rate
        alpha = np.sin(w0) / (2 * q)
        b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
        den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
        sections.append(np.concatenate([b / den[0], den / den[0]]))
    return np.array(sections)


def _biquad_shelf(f0: float, gain_db: float, sample_rate: int, high: bool) -> np.ndarray:
    """One RBJ-cookbook low or high shelf (slope 1) as a second-order section."""
    a, w0 = 10 ** (gain_db / 40), 2 * np.pi * f0 / sample_rate
    cw, sa = np.cos(w0), np.sqrt(2 * a) * np.sin(w0)  # 2 sqrt(A) alpha at shelf slope 1
    s = -1.0 if high else 1.0
    b = a * np.array([(a + 1) - s * (a - 1) * cw + sa, 2 * s * ((a - 1) - s * (a + 1) * cw), (a + 1) - s * (a - 1) * cw - sa])
    den = np.array([(a + 1) + s * (a - 1) * cw + sa, -2 * s * ((a - 1) + s * (a + 1) * cw), (a + 1) + s * (a - 1) * cw - sa])
    return np.concatenate([b / den[0], den / den[0]])


def _filt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    from scipy.signal import sosfilt

    return sosfilt(sos, x).astype(np.float32)
