"""The STFT core: one frozen config in samples, analysis/synthesis for torch and numpy.

Every STFT in specdenoise goes through here, so caches, checkpoints and the enhancer always agree on
framing. Settings are in samples (never milliseconds) and travel as ``StftConfig.to_dict()``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .errors import ConfigError

WINDOWS = ("hann", "hamming", "blackman", "sqrt_hann")
# Lowest overlap-add envelope (sum of squared windows over a sample; the windows peak at 1) that a
# config may reach anywhere in the signal, edges included. Below it, float32 round trips lose
# precision (the ISTFT divides by the envelope), and at zero information is lost outright.
MIN_ENVELOPE = 1e-2


@dataclass(frozen=True)
class StftConfig:
    """STFT framing in samples. Validated on construction."""

    n_fft: int = 512
    hop_length: int = 128
    win_length: int | None = None  # None means n_fft
    window: str = "hann"
    center: bool = True

    def __post_init__(self) -> None:
        if self.win_length is None:
            object.__setattr__(self, "win_length", self.n_fft)
        for name in ("n_fft", "hop_length", "win_length"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value <= 0:
                raise ConfigError(f"StftConfig.{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # plain int: to_dict() must dump to YAML
        if self.n_fft < 16:
            raise ConfigError(f"StftConfig.n_fft must be at least 16, got {self.n_fft}")
        if self.window not in WINDOWS:
            raise ConfigError(f"StftConfig.window must be one of {WINDOWS}, got {self.window!r}")
        if self.win_length > self.n_fft:
            raise ConfigError(
                f"StftConfig.win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})"
            )
        if self.hop_length > self.win_length:
            raise ConfigError(
                f"StftConfig.hop_length ({self.hop_length}) must not exceed win_length "
                f"({self.win_length}): frames would leave gaps"
            )
        if not isinstance(self.center, (bool, np.bool_)):
            raise ConfigError(f"StftConfig.center must be true or false, got {self.center!r}")
        if not self.center:
            raise ConfigError(
                "StftConfig.center must be true: with center=false the first and last samples "
                "lie under the window's tapered edge only and cannot be reconstructed"
            )
        floor = _min_envelope(self)
        if floor < MIN_ENVELOPE:
            raise ConfigError(
                f"StftConfig.window {self.window!r} with win_length {self.win_length} and "
                f"hop_length {self.hop_length} breaks perfect reconstruction (overlap-add envelope "
                f"falls to {floor:.2g}, below {MIN_ENVELOPE}, between frame centres); "
                "use a smaller hop_length"
            )

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Frames :func:`stft` returns for ``n_samples``: frame ``k`` is centred on sample
        ``k * hop_length`` and the last frame is centred on or after the last sample."""
        return 1 + _ceil_div(max(n_samples - 1, 0), self.hop_length)

    def padding(self, n_samples: int) -> tuple[int, int]:
        """Samples padded (left, right) before framing ``n_samples`` samples."""
        left = self.n_fft // 2
        right = (self.n_frames(n_samples) - 1) * self.hop_length + self.n_fft - left - n_samples
        return left, right

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StftConfig":
        known = {k: data[k] for k in ("n_fft", "hop_length", "win_length", "window", "center") if k in data}
        return cls(**known)


def _window_np(name: str, length: int) -> np.ndarray:
    n = np.arange(length)
    if name in ("hann", "sqrt_hann"):
        w = 0.5 - 0.5 * np.cos(2 * math.pi * n / length)  # periodic
        return np.sqrt(w) if name == "sqrt_hann" else w
    if name == "hamming":
        return 0.54 - 0.46 * np.cos(2 * math.pi * n / length)
    if name == "blackman":
        return 0.42 - 0.5 * np.cos(2 * math.pi * n / length) + 0.08 * np.cos(4 * math.pi * n / length)
    raise ConfigError(f"unknown window {name!r}")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _window_full(config: StftConfig) -> np.ndarray:
    """The window zero-padded to n_fft, centred the way torch.stft places it."""
    full = np.zeros(config.n_fft)
    left = (config.n_fft - config.win_length) // 2
    full[left : left + config.win_length] = _window_np(config.window, config.win_length)
    return full


def _min_envelope(config: StftConfig) -> float:
    """A lower bound of the envelope at every sample of any signal length, edges included.

    Frame ``k`` is centred on sample ``k * hop`` and frames run from the first sample to past the
    last one, so each sample lies within ``hop // 2`` of the centre of a frame that exists; that
    frame alone contributes the squared window there.
    """
    sq = _window_full(config) ** 2
    centre = config.n_fft // 2
    reach = config.hop_length // 2
    return float(sq[max(centre - reach, 0) : centre + reach + 1].min())


def window(config: StftConfig, device: torch.device | str | None = None, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(_window_np(config.window, config.win_length), dtype=dtype, device=device)


def stft(signal: torch.Tensor | np.ndarray, config: StftConfig) -> torch.Tensor:
    """Complex STFT of ``(..., samples)`` -> ``(..., n_freqs, frames)``. numpy in, torch out.

    Frames are centred on samples ``0, hop, 2*hop, ...`` (``config.n_frames(samples)`` of them),
    up to the first centre at or past the last sample, so the signal's ends are reconstructed as
    exactly as its middle. The signal is reflect-padded (zero-padded when too short to reflect).
    """
    x = torch.as_tensor(signal)
    if not torch.is_floating_point(x):
        x = x.float()
    shape = x.shape
    n = shape[-1]
    left, right = config.padding(n)
    x = x.reshape(-1, 1, n)
    mode = "reflect" if max(left, right) < n else "constant"
    x = torch.nn.functional.pad(x, (left, right), mode=mode).reshape(-1, n + left + right)
    spec = torch.stft(
        x,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window(config, x.device, x.dtype),
        center=False,
        return_complex=True,
    )
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, config: StftConfig, length: int) -> torch.Tensor:
    """Inverse of :func:`stft`; ``length`` is required so any signal length comes back exactly."""
    shape = spec.shape
    spec = spec.reshape(-1, *shape[-2:])
    real_dtype = torch.float64 if spec.dtype == torch.complex128 else torch.float32
    out = torch.istft(
        spec,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window(config, spec.device, real_dtype),
        center=True,  # drops the n_fft // 2 samples stft() padded on the left
        length=length,
    )
    return out.reshape(*shape[:-2], length)


def stft_np(signal: np.ndarray, config: StftConfig) -> np.ndarray:
    return stft(torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32)), config).numpy()
