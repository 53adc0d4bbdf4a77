"""A causal convolutional-recurrent network (CRN) on ERB-compressed spectra, for offline *and*
frame-by-frame streaming use.

Design (ideas from GTCRN, DPCRN and FSPEN, written from their papers, nothing copied):

- **Inputs**: power-law compressed magnitude ``|X|**0.3`` and the compressed complex spectrum
  (Re, Im scaled to that magnitude) as three channels.
- **Band compression**: the low ``erb_low`` bins are kept, the rest folded into ``erb_bands``
  triangular ERB bands (257 -> 129 at 16 kHz, n_fft 512), so convolutions spend their effort
  where speech lives; the mask is spread back with the transposed filterbank.
- **Encoder**: two convolutions strided along frequency only (time resolution kept), then three
  depth-wise temporal blocks with causal dilations 1, 2, 5 (receptive field grows cheaply).
  Normalisation only after the strided convolutions (BatchNorm, a fixed affine map at inference);
  the residual temporal blocks go without (BatchNorm cost as much as the convolution there).
- **Bottleneck**: dual-path recurrent blocks: a bidirectional GRU across frequency inside one
  frame (full-band context, still causal) and a unidirectional GRU across time per band
  (temporal memory).
- **Decoder**: mirrored, with additive skips, ends in a bounded complex ratio mask, or with
  ``filter_taps`` > 1 a causal **deep filter** (DeepFilterNet's idea): each output bin is a bounded
  complex combination of the noisy bin in frames ``t, t-1, ..., t-taps+1``, which can rebuild
  harmonics buried in one frame from their neighbours and cancel a smeared tail; with one tap it is
  the plain mask. The extra taps cost a wider last layer and a few multiply-adds per bin.
- **Look-ahead** (``lookahead`` frames, 0 = none; needs ``filter_taps`` > ``lookahead``): the
  coefficients computed at frame ``t`` are written to output frame ``t - lookahead``, so the
  filter for frame ``n`` spans noisy frames ``n + lookahead - taps + 1 ... n + lookahead`` and the
  network has heard ``lookahead`` hops past the frame it cleans (DeepFilterNet uses two 10-ms
  frames). It costs latency (one hop, 16 ms at 16 kHz, per frame), nothing else: the network
  itself stays causal and streams the same way, its output just arrives ``lookahead`` frames late.
- **Low cut** (``low_cut_hz``, 0 = off; 31.25 in the shipped weights and configs/crn.yaml, which
  zeroes the DC bin only): a fixed, weight-free gain that ramps from 0 at DC to 1 at ``low_cut_hz``
  on the output. Speech has nothing below ~60 Hz, while rumble, handling thumps and DC offset live
  there; a learned mask left them to luck (one example's SI-SDR gain swung between +1 and +4.5 dB
  from version to version, docs/RESULTS.md), a prior removes them by design. It is a real per-bin
  gain, so it adds no phase shift (a causal high-pass IIR cost 2-8 dB SI-SDR there). Higher cuts
  (62.5 Hz) cost SI-SDR against references that carry infrasound themselves.

**Causality**: with ``lookahead`` 0, every temporal convolution is padded on the left only, normalisations are per
frame (LayerNorm) or fixed at inference (BatchNorm), and the time GRU is unidirectional, so the
output at frame ``t`` depends only on frames ``<= t`` (``<= t + lookahead`` otherwise). The same code runs a whole spectrogram or
one frame at a time: :meth:`forward_frames` takes and returns the state (convolution caches and
GRU hidden states) as a flat list of tensors, which is also the ONNX streaming interface.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import SpectralMaskModel
from .registry import register

DILATIONS = (1, 2, 5)
ACT_SLOPE = 0.1  # LeakyReLU everywhere: PReLU's backward pass cost ~7x LeakyReLU's on CPU (measured)


def erb_filterbank(n_freqs: int, low: int, bands: int, sample_rate: int) -> np.ndarray:
    """``[bands, n_freqs - low]`` triangular filters equally spaced on the ERB-rate scale,
    each row summing to 1 (band = weighted mean of its bins)."""
    def hz_to_erb(f):
        return 21.4 * np.log10(1 + 0.00437 * f)

    def erb_to_hz(e):
        return (10 ** (e / 21.4) - 1) / 0.00437

    freqs = np.linspace(0, sample_rate / 2, n_freqs)[low:]
    edges = erb_to_hz(np.linspace(hz_to_erb(freqs[0]), hz_to_erb(freqs[-1]), bands + 2))
    fb = np.zeros((bands, len(freqs)))
    for b in range(bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        fb[b] = np.clip(np.minimum(up, down), 0, None)
        if fb[b].sum() == 0:  # a band narrower than a bin: take the nearest bin
            fb[b, int(np.argmin(np.abs(freqs - mid)))] = 1.0
    return (fb / fb.sum(axis=1, keepdims=True)).astype(np.float32)


class CausalConv(nn.Module):
    """Conv2d over ``[B, C, T, F]`` with left-only time padding and a cache of past frames."""

    def __init__(self, cin: int, cout: int, kt: int, kf: int, stride_f: int = 1, dilation_t: int = 1,
                 groups: int = 1):
        super().__init__()
        self.past = (kt - 1) * dilation_t  # frames of history the kernel needs
        self.pad_f = kf // 2
        self.conv = nn.Conv2d(cin, cout, (kt, kf), stride=(1, stride_f), dilation=(dilation_t, 1), groups=groups)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.past == 0:
            return self.conv(F.pad(x, (self.pad_f, self.pad_f))), cache
        if cache is None:
            cache = x.new_zeros(x.shape[0], x.shape[1], self.past, x.shape[3])
        full = torch.cat([cache, x], dim=2)
        return self.conv(F.pad(full, (self.pad_f, self.pad_f))), full[:, :, -self.past:]


class TemporalBlock(nn.Module):
    """Depth-wise causal dilated convolution along time (3 taps: t - 2d, t - d, t) + point-wise
    mixing, residual. Written as shifted products rather than a grouped Conv2d: on CPU a dilated
    depth-wise convolution's backward pass cost about 3x an undilated one (measured), and these
    three multiply-adds are cheaper still."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.channels, self.dilation, self.past = channels, dilation, 2 * dilation
        self.taps = nn.Parameter(torch.empty(3, channels, 1, 1).uniform_(-0.5, 0.5))
        self.taps_bias = nn.Parameter(torch.zeros(channels, 1, 1))
        self.pointwise = nn.Conv2d(channels, channels, 1)
        self.act = nn.LeakyReLU(ACT_SLOPE)

    def forward(self, x, cache):
        t, d = x.shape[2], self.dilation
        if cache is None:
            cache = x.new_zeros(x.shape[0], x.shape[1], self.past, x.shape[3])
        full = torch.cat([cache, x], dim=2)
        y = self.taps[0] * full[:, :, :t] + self.taps[1] * full[:, :, d : d + t] + self.taps[2] * x + self.taps_bias
        return x + self.act(self.pointwise(y)), full[:, :, -self.past:]


class DualPathBlock(nn.Module):
    """GRU across frequency within each frame (bidirectional), then across time per band (causal)."""

    def __init__(self, channels: int, bands: int, hidden: int):
        super().__init__()
        self.intra = nn.GRU(channels, channels // 2, batch_first=True, bidirectional=True)
        self.intra_fc = nn.Linear(2 * (channels // 2), channels)
        self.intra_norm = nn.LayerNorm([bands, channels])
        self.inter = nn.GRU(channels, hidden, batch_first=True)
        self.inter_fc = nn.Linear(hidden, channels)
        self.inter_norm = nn.LayerNorm([bands, channels])

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, t, f = x.shape
        y = x.permute(0, 2, 3, 1).reshape(b * t, f, c)  # one sequence per frame, along frequency
        y = self.intra_fc(self.intra(y)[0])
        x = x + self.intra_norm(y.reshape(b, t, f, c)).permute(0, 3, 1, 2)
        y = x.permute(0, 3, 2, 1).reshape(b * f, t, c)  # one sequence per band, along time
        y, h = self.inter(y, h)
        y = self.inter_fc(y).reshape(b, f, t, c).permute(0, 2, 1, 3)
        return x + self.inter_norm(y).permute(0, 3, 1, 2), h


def _up(cin: int, cout: int, kf: int) -> nn.ConvTranspose2d:
    """Frequency-only upsampling by 2 (n -> 2n - 1 bins), no temporal context."""
    return nn.ConvTranspose2d(cin, cout, (1, kf), stride=(1, 2), padding=(0, kf // 2))


@register("crn")
class CausalCRN(SpectralMaskModel):
    name = "crn"
    causal = True
    output_options = ("low_cut_hz",)

    def __init__(self, stft: dict | None = None, sample_rate: int = 16000, channels: int = 32,
                 first_channels: int = 16, erb_low: int = 65, erb_bands: int = 64, gru_hidden: int = 32,
                 dual_path_blocks: int = 2, power: float = 0.3, low_cut_hz: float = 0.0, filter_taps: int = 1,
                 lookahead: int = 0):
        stft = stft or {"n_fft": 512, "hop_length": 256, "window": "sqrt_hann"}
        super().__init__(stft, sample_rate, feature="power", power=power, mask="complex")
        n_freqs = self.stft_config.n_fft // 2 + 1
        if not 0 < erb_low < n_freqs or erb_bands < 1 or erb_bands > n_freqs - erb_low:
            raise ConfigError(f"crn needs 0 < erb_low < {n_freqs} and 1 <= erb_bands <= {n_freqs} - erb_low")
        width = erb_low + erb_bands
        if width < 9 or (width - 1) % 4:
            raise ConfigError(f"crn needs erb_low + erb_bands = 4k + 1 (>= 9) bands, got {width}")
        if channels < 2 or first_channels < 1 or gru_hidden < 1 or dual_path_blocks < 0:
            raise ConfigError("crn needs channels >= 2, first_channels >= 1, gru_hidden >= 1, dual_path_blocks >= 0")
        if not isinstance(filter_taps, int) or filter_taps < 1:
            raise ConfigError(f"crn needs filter_taps >= 1 (1 = a complex ratio mask), got {filter_taps!r}")
        if not isinstance(lookahead, int) or isinstance(lookahead, bool) or not 0 <= lookahead < filter_taps:
            raise ConfigError(f"crn needs 0 <= lookahead < filter_taps ({filter_taps}) so the filter covers the "
                              f"frame it cleans, got lookahead={lookahead!r}")
        if not isinstance(low_cut_hz, (int, float)) or not 0.0 <= low_cut_hz < sample_rate / 2:
            raise ConfigError(f"crn needs 0 <= low_cut_hz < {sample_rate / 2:g} (half the sample rate), got {low_cut_hz!r}")
        del self.input_norm  # features are normalised per layer here
        self.low_cut_hz = float(low_cut_hz)
        self.filter_taps = filter_taps
        self.lookahead = lookahead
        self.register_buffer("low_gain", low_cut_gains(n_freqs, self.low_cut_hz, sample_rate), persistent=False)
        self.erb_low = erb_low
        self.register_buffer("erb_fb", torch.from_numpy(erb_filterbank(n_freqs, erb_low, erb_bands, sample_rate)),
                             persistent=False)
        w1, w2 = (width + 1) // 2, (width + 3) // 4
        self.enc1 = CausalConv(3, first_channels, 1, 5, stride_f=2)
        self.enc1_post = nn.Sequential(nn.BatchNorm2d(first_channels), nn.LeakyReLU(ACT_SLOPE))
        self.enc2 = CausalConv(first_channels, channels, 2, 3, stride_f=2)
        self.enc2_post = nn.Sequential(nn.BatchNorm2d(channels), nn.LeakyReLU(ACT_SLOPE))
        self.enc_temporal = nn.ModuleList(TemporalBlock(channels, d) for d in DILATIONS)
        self.dual_path = nn.ModuleList(DualPathBlock(channels, w2, gru_hidden) for _ in range(dual_path_blocks))
        self.dec_temporal = nn.ModuleList(TemporalBlock(channels, d) for d in reversed(DILATIONS))
        self.dec2 = nn.Sequential(_up(channels, first_channels, 3), nn.BatchNorm2d(first_channels), nn.LeakyReLU(ACT_SLOPE))
        self.dec1 = _up(first_channels, 2 * filter_taps, 5)  # (Re, Im) per tap, tap 0 first
        assert w1 == 2 * w2 - 1 and width == 2 * w1 - 1
        self.remember_config(sample_rate=sample_rate, channels=channels, first_channels=first_channels,
                             erb_low=erb_low, erb_bands=erb_bands, gru_hidden=gru_hidden,
                             dual_path_blocks=dual_path_blocks, power=power, low_cut_hz=self.low_cut_hz,
                             filter_taps=filter_taps, lookahead=lookahead)

    # --- bands ---
    def to_bands(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., n_freqs]`` -> ``[..., erb_low + erb_bands]``."""
        return torch.cat([x[..., : self.erb_low], x[..., self.erb_low :] @ self.erb_fb.T], dim=-1)

    def from_bands(self, x: torch.Tensor) -> torch.Tensor:
        """Spread band values back to bins with the transposed (column-normalised) filterbank."""
        spread = self.erb_fb / self.erb_fb.sum(dim=0, keepdim=True).clamp_min(1e-8)
        return torch.cat([x[..., : self.erb_low], x[..., self.erb_low :] @ spread], dim=-1)

    # --- streaming state: one flat list, in a fixed order ---
    def _stateful(self) -> list[nn.Module]:
        return [self.enc2, *self.enc_temporal, *self.dec_temporal]

    def initial_state(self, batch: int = 1, device=None) -> list[torch.Tensor]:
        """Zeros: convolution caches ``[B, C, past, bands]``, then GRU states ``[1, B*bands, H]``,
        then (deep filter only) the last ``filter_taps - 1`` noisy frames ``[B, taps - 1, F, 2]``."""
        width = self.erb_low + self.erb_fb.shape[0]
        w2 = (width + 3) // 4
        state = []
        for conv in self._stateful():
            bands = (width + 1) // 2 if conv is self.enc2 else w2
            channels = conv.conv.in_channels if conv is self.enc2 else conv.channels
            state.append(torch.zeros(batch, channels, conv.past, bands, device=device))
        for block in self.dual_path:
            state.append(torch.zeros(1, batch * w2, block.inter.hidden_size, device=device))
        if self.filter_taps > 1:
            n_freqs = self.erb_low + self.erb_fb.shape[1]
            state.append(torch.zeros(batch, self.filter_taps - 1, n_freqs, 2, device=device))
        return state

    @property
    def lookahead_frames(self) -> int:
        """Output frame ``n`` comes out of :meth:`forward_frames` at input frame ``n + lookahead``."""
        return self.lookahead

    @property
    def receptive_field_frames(self) -> int | None:
        return None  # unbounded (recurrent): chunked processing must carry the state

    def forward_frames(self, spec: torch.Tensor, state: list[torch.Tensor] | None = None
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Complex ``[B, F, T]`` (any T >= 1) + state -> enhanced ``[B, F, T]`` + new state.

        With ``lookahead`` L the output is late by L frames: output column ``j`` is frame ``j - L``
        of the stream (the first L columns of a stream belong to no frame and are dropped by the
        caller, see :class:`~specdenoise.streaming.FrameEngine`)."""
        n_conv = len(self._stateful())
        caches = list(state[:n_conv]) if state is not None else [None] * n_conv
        n_gru = len(self.dual_path)
        hiddens = list(state[n_conv : n_conv + n_gru]) if state is not None else [None] * n_gru
        past = state[n_conv + n_gru] if state is not None and self.filter_taps > 1 else None
        x = torch.view_as_real(spec.transpose(1, 2).contiguous())  # [B, T, F, 2]
        mag = torch.sqrt(x.pow(2).sum(-1) + 1e-12)
        comp = mag.pow(self.power)
        feats = torch.stack([comp, x[..., 0] * comp / mag, x[..., 1] * comp / mag], dim=1)  # [B, 3, T, F]
        feats = self.to_bands(feats)
        new = []
        e1, _ = self.enc1(feats, None)
        e1 = self.enc1_post(e1)
        y, c = self.enc2(e1, caches[0])
        new.append(c)
        e2 = y = self.enc2_post(y)
        skips = []
        for i, block in enumerate(self.enc_temporal):
            y, c = block(y, caches[1 + i])
            new.append(c)
            skips.append(y)
        new_h = []
        for block, h in zip(self.dual_path, hiddens):
            y, h = block(y, h)
            new_h.append(h)
        for i, block in enumerate(self.dec_temporal):
            y, c = block(y + skips[-1 - i], caches[1 + len(self.enc_temporal) + i])
            new.append(c)
        y = self.dec2(y + e2)
        logits = self.from_bands(self.dec1(y + e1)).float()  # [B, 2 * taps, T, F]
        out, new_past = self._apply_filter(logits, x.float(), past)
        if self.low_cut_hz > 0:
            out = out * self.low_gain[:, None]
        return out, new + new_h + new_past

    def _apply_filter(self, logits: torch.Tensor, x: torch.Tensor, past: torch.Tensor | None
                      ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Bounded complex coefficients (``|c| < 1`` per tap) times the noisy frames ``t - k``,
        summed over taps; ``x`` is ``[B, T, F, 2]``, ``past`` the previous ``taps - 1`` frames."""
        b, t = x.shape[0], x.shape[1]
        coef = logits.reshape(b, self.filter_taps, 2, t, -1)
        norm = torch.sqrt(coef.pow(2).sum(2, keepdim=True) + 1e-8)
        coef = coef * (torch.tanh(norm) / norm)
        mr, mi = coef[:, :, 0].transpose(2, 3), coef[:, :, 1].transpose(2, 3)  # [B, taps, F, T]
        xr, xi = x[..., 0].transpose(1, 2), x[..., 1].transpose(1, 2)  # [B, F, T]
        out_r, out_i = xr * mr[:, 0] - xi * mi[:, 0], xr * mi[:, 0] + xi * mr[:, 0]
        if self.filter_taps == 1:
            return torch.complex(out_r, out_i), []
        if past is None:
            past = x.new_zeros(b, self.filter_taps - 1, x.shape[2], 2)
        full = torch.cat([past, x], dim=1)  # [B, taps - 1 + T, F, 2]
        for k in range(1, self.filter_taps):
            start = self.filter_taps - 1 - k
            fr, fi = full[:, start : start + t, :, 0].transpose(1, 2), full[:, start : start + t, :, 1].transpose(1, 2)
            out_r = out_r + fr * mr[:, k] - fi * mi[:, k]
            out_i = out_i + fr * mi[:, k] + fi * mr[:, k]
        return torch.complex(out_r, out_i), [full[:, -(self.filter_taps - 1):]]

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Whole spectrogram, output aligned with the input (look-ahead frames padded with zeros)."""
        if not self.lookahead:
            return self.forward_frames(spec)[0]
        pad = spec.new_zeros(*spec.shape[:-1], self.lookahead)
        return self.forward_frames(torch.cat([spec, pad], dim=-1))[0][..., self.lookahead :]

    def macs_per_frame(self) -> int:
        """Multiply-accumulates for one frame (convolutions, GRUs, linear layers), for the model card."""
        total = 0
        width = self.erb_low + self.erb_fb.shape[0]
        total += 3 * self.erb_fb.numel()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # output bands of this conv for one frame
                total += m.weight.numel() * self._out_bands(m, width)
            elif isinstance(m, nn.ConvTranspose2d):
                total += m.weight.numel() * self._out_bands(m, width) // m.stride[1]
            elif isinstance(m, nn.Linear):
                total += m.weight.numel() * self._seq_len(m, width)
            elif isinstance(m, TemporalBlock):
                total += 3 * m.channels * (width + 3) // 4
            elif isinstance(m, nn.GRU):
                per_step = sum(p.numel() for n, p in m.named_parameters() if n.startswith("weight"))
                total += per_step * (width + 3) // 4
        total += 2 * self.erb_fb.numel()
        total += 4 * (self.filter_taps - 1) * (self.erb_low + self.erb_fb.shape[1])  # deep filter's extra taps
        return int(total)

    def _out_bands(self, m: nn.Module, width: int) -> int:
        w1, w2 = (width + 1) // 2, (width + 3) // 4
        if m is self.enc1.conv:
            return w1
        if m is self.dec1:
            return width
        if m is self.dec2[0]:
            return w1
        return w2

    @staticmethod
    def _seq_len(m: nn.Module, width: int) -> int:
        return (width + 3) // 4


def low_cut_gains(n_freqs: int, low_cut_hz: float, sample_rate: int) -> torch.Tensor:
    """Per-bin gains ramping linearly from 0 at DC to 1 at ``low_cut_hz`` (all ones when 0)."""
    freqs = torch.linspace(0.0, sample_rate / 2, n_freqs)
    if low_cut_hz <= 0:
        return torch.ones(n_freqs)
    return (freqs / low_cut_hz).clamp(0.0, 1.0)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

