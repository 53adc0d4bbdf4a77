"""A 2-D U-Net over (frequency, time), after Jansson et al. (2017), "Singing voice separation with
deep U-Net convolutional networks". Any number of frames: padded inside to a multiple of
2**depth, cropped back.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import SpectralMaskModel, norm_layer
from .registry import register


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, norm: str, dropout: float):
        pad = kernel // 2
        layers = [nn.Conv2d(cin, cout, kernel, padding=pad), norm_layer(norm, cout), nn.LeakyReLU(0.2),
                  nn.Conv2d(cout, cout, kernel, padding=pad), norm_layer(norm, cout), nn.LeakyReLU(0.2)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


@register("unet")
class UNet(SpectralMaskModel):
    name = "unet"

    def __init__(self, stft: dict | None = None, sample_rate: int = 16000, depth: int = 4,
                 base_channels: int = 16, kernel_size: int = 3, norm: str = "batch", dropout: float = 0.0,
                 feature: str = "log", power: float = 0.3, mask: str = "magnitude"):
        super().__init__(stft, sample_rate, feature, power, mask)
        if depth < 1 or base_channels < 1 or kernel_size % 2 == 0:
            raise ConfigError("unet needs depth >= 1, base_channels >= 1 and an odd kernel_size")
        # each level halves the frequency axis: deeper than the bins allow only pads (and a depth
        # of 12 once asked for 24 GB); the widest level's channels bound the memory too
        n_freqs = self.stft_config.n_fft // 2 + 1
        if 2**depth > n_freqs:
            raise ConfigError(f"unet depth {depth} is too deep for {n_freqs} frequency bins (n_fft "
                              f"{self.stft_config.n_fft}): at most {n_freqs.bit_length() - 1}")
        if base_channels * 2**depth > 8192:
            raise ConfigError(f"unet base_channels x 2**depth = {base_channels * 2**depth} channels at the "
                              "bottleneck; at most 8192")
        self.depth = depth
        chans = [base_channels * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList()
        cin = 1
        for i in range(depth):
            self.encoders.append(ConvBlock(cin, chans[i], kernel_size, norm, dropout if i == depth - 1 else 0.0))
            cin = chans[i]
        self.bottleneck = ConvBlock(chans[depth - 1], chans[depth], kernel_size, norm, dropout)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(depth)):
            self.ups.append(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2))
            self.decoders.append(ConvBlock(chans[i] * 2, chans[i], kernel_size, norm, 0.0))
        self.head = nn.Conv2d(chans[0], self.mask_channels, 1)
        self.remember_config(sample_rate=sample_rate, depth=depth, base_channels=base_channels,
                             kernel_size=kernel_size, norm=norm, dropout=dropout, feature=feature,
                             power=power, mask=mask)

    @property
    def frame_multiple(self) -> int:
        return 2**self.depth

    @property
    def receptive_field_frames(self) -> int:
        """Kernel k (r = k // 2), depth d: each level i (scale 2**i) adds 2r (encoder convs) + 1
        (pool) + 1 (upsampling) + 2r (decoder convs) frames at its scale, the bottleneck 2r at
        scale 2**d."""
        r = int(self.config()["kernel_size"]) // 2
        return (4 * r + 2) * (2**self.depth - 1) + 2 * r * 2**self.depth

    def estimate_mask(self, x: torch.Tensor) -> torch.Tensor:
        f, t = x.shape[-2:]
        m = 2**self.depth
        x = F.pad(x, (0, (-t) % m, 0, (-f) % m))
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)[..., :f, :t]
