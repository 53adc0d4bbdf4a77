"""A fully convolutional encoder-decoder on spectrogram frames, after Park & Lee (2017), "A fully
convolutional neural network for speech enhancement" (R-CED): the channel count grows then
shrinks while the resolution stays full ("redundant"), with optional additive skips (CR-CED).
Kernels span frequency (long) and a few frames of time context.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import SpectralMaskModel, norm_layer
from .registry import register


@register("cnn")
class RCED(SpectralMaskModel):
    name = "cnn"

    def __init__(self, stft: dict | None = None, sample_rate: int = 16000,
                 channels: tuple[int, ...] | list[int] = (12, 16, 20, 24, 32, 24, 20, 16, 12),
                 freq_kernels: tuple[int, ...] | list[int] = (13, 11, 9, 7, 7, 7, 9, 11, 13),
                 time_kernel: int = 3, skips: bool = True, norm: str = "batch", dropout: float = 0.0,
                 feature: str = "log", power: float = 0.3, mask: str = "magnitude"):
        super().__init__(stft, sample_rate, feature, power, mask)
        channels, freq_kernels = list(channels), list(freq_kernels)
        if len(channels) != len(freq_kernels) or not channels:
            raise ConfigError("cnn.channels and cnn.freq_kernels must be non-empty and of equal length")
        if time_kernel % 2 == 0 or any(k % 2 == 0 for k in freq_kernels):
            raise ConfigError("cnn kernels must be odd")
        n_freqs = self.stft_config.n_fft // 2 + 1  # full resolution: size is bounded here, not by pooling
        if len(channels) > 64 or max(channels) > 1024 or min(channels) < 1 or time_kernel > 63 \
                or max(freq_kernels) > 2 * n_freqs - 1:
            raise ConfigError(f"cnn needs at most 64 layers of 1-1024 channels, time_kernel <= 63 and freq_kernels "
                              f"<= {2 * n_freqs - 1} (for {n_freqs} frequency bins)")
        self.skips = skips
        self.layers = nn.ModuleList()
        cin = 1
        for cout, kf in zip(channels, freq_kernels):
            self.layers.append(nn.Sequential(
                nn.Conv2d(cin, cout, (kf, time_kernel), padding=(kf // 2, time_kernel // 2)),
                norm_layer(norm, cout), nn.ReLU(), nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()))
            cin = cout
        self.head = nn.Conv2d(cin, self.mask_channels, 1)
        self.remember_config(sample_rate=sample_rate, channels=channels, freq_kernels=freq_kernels,
                             time_kernel=time_kernel, skips=skips, norm=norm, dropout=dropout,
                             feature=feature, power=power, mask=mask)

    @property
    def receptive_field_frames(self) -> int:
        """time_kernel // 2 frames per layer (the frequency kernels do not widen it in time)."""
        cfg = self.config()
        return len(cfg["channels"]) * (int(cfg["time_kernel"]) // 2)

    def estimate_mask(self, x: torch.Tensor) -> torch.Tensor:
        # symmetric encoder/decoder: layer i's output is added to layer (n-1-i)'s input when shapes match
        outputs = []
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            j = n - 1 - i
            if self.skips and j < i and outputs[j].shape == x.shape:
                x = x + outputs[j]
            x = layer(x)
            outputs.append(x)
        return self.head(x)
