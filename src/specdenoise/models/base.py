"""What every specdenoise model shares: it owns its STFT and sample rate, estimates a bounded mask
on compressed-magnitude features, and serialises its own constructor arguments.

Subclasses implement :meth:`estimate_mask` on features ``[B, 1, F, T]`` and return
``[B, C, F, T]`` raw mask logits (C = 1 for a magnitude mask, 2 for a complex ratio mask).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..stft import StftConfig, istft, stft

FEATURES = ("log", "log1p", "power")
MASKS = ("magnitude", "complex")


class SpectralMaskModel(nn.Module):
    name: str = "base"
    # Constructor arguments that hold no weights (fixed output priors): a fine-tune may change them
    # while keeping the weights it starts from (training/trainer.py init_weights_from).
    output_options: tuple[str, ...] = ()

    def __init__(self, stft: dict | None = None, sample_rate: int = 16000, feature: str = "log",
                 power: float = 0.3, mask: str = "magnitude"):
        super().__init__()
        if feature not in FEATURES:
            raise ConfigError(f"model.feature must be one of {FEATURES}, got {feature!r}")
        if mask not in MASKS:
            raise ConfigError(f"model.mask must be one of {MASKS}, got {mask!r}")
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ConfigError(f"model.sample_rate must be a positive integer, got {sample_rate!r}")
        self.stft_config = StftConfig.from_dict(stft or {})
        self.sample_rate = sample_rate
        self.feature = feature
        self.power = power
        self.mask_kind = mask
        self.mask_channels = 1 if mask == "magnitude" else 2
        self.input_norm = nn.BatchNorm2d(1)  # learned global feature scaling, fixed at inference
        self._config: dict[str, Any] = {}

    # --- serialisation: the constructor arguments are the config ---
    def remember_config(self, **kwargs: Any) -> None:
        kwargs["stft"] = self.stft_config.to_dict()
        self._config = kwargs

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    # --- the forward pass ---
    def features(self, mag: torch.Tensor) -> torch.Tensor:
        if self.feature == "log":
            return torch.log(mag + 1e-5)
        if self.feature == "log1p":
            return torch.log1p(mag)
        return mag.clamp_min(0).pow(self.power)

    def estimate_mask(self, feats: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex noisy spectrogram ``[B, F, T]`` -> complex enhanced spectrogram ``[B, F, T]``."""
        mag = spec.abs()
        feats = self.input_norm(self.features(mag).unsqueeze(1))
        logits = self.estimate_mask(feats).float()  # the mask product stays in float32
        if self.mask_kind == "magnitude":
            return torch.sigmoid(logits[:, 0]) * spec
        mr, mi = logits[:, 0], logits[:, 1]
        norm = torch.sqrt(mr**2 + mi**2 + 1e-8)
        scale = torch.tanh(norm) / norm  # bounded complex ratio mask, |M| < 1
        return spec * torch.complex(mr * scale, mi * scale)

    def enhance(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveform ``[..., samples]`` at ``self.sample_rate`` -> enhanced waveform, same length."""
        shape = waveform.shape
        flat = waveform.reshape(-1, shape[-1])
        spec = stft(flat, self.stft_config)
        out = istft(self(spec), self.stft_config, length=shape[-1])
        return out.reshape(shape)

    @property
    def frame_multiple(self) -> int:
        """Frames a chunk start must be a multiple of for chunked = whole-file output."""
        return 1

    @property
    def receptive_field_frames(self) -> int | None:
        """One-sided receptive field in STFT frames (an upper bound); ``None``: unknown or
        unbounded. The Denoiser widens its chunk context to it, so chunking never changes the
        output; each family states its own, so a new family never edits the denoiser."""
        return None


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(4, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"model.norm must be batch, instance, group or none, got {kind!r}")
