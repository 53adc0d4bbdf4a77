"""Training losses: compressed-magnitude L1/MSE, compressed complex MSE, multi-resolution STFT,
SI-SDR, and their weighted sum.

The hybrid ``cplx_mse + mag_mse + si_sdr`` (weights 30 / 70 / 1 in ``configs/crn.yaml``) follows the
small models that lead the field (GTCRN, DeepFilterNet): the magnitude term drives noise removal,
the complex term phase-aware detail, the SI-SDR term the waveform as metrics and listeners hear it.
``mag_under`` adds weight to the magnitude error where the estimate is *below* the clean speech:
small models trade speech for quiet at low SNR, which DNSMOS SIG and listeners punish."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..stft import StftConfig, stft


@dataclass
class LossConfig:
    mag_l1: float = 1.0  # L1 on |X|**power
    mag_mse: float = 0.0  # MSE on |X|**power
    mag_under: float = 0.0  # MSE on |X|**power only where the estimate falls short (speech removed)
    cplx_mse: float = 0.0  # MSE on the compressed complex spectrum |X|**power * exp(j angle X)
    mrstft: float = 0.0  # multi-resolution STFT loss on the waveform
    si_sdr: float = 0.0  # negative SI-SDR (dB) on the waveform, scaled by 1/10
    power: float = 0.3

    @property
    def needs_waveform(self) -> bool:
        return self.mrstft > 0 or self.si_sdr > 0


def si_sdr(reference: torch.Tensor, estimate: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-example SI-SDR in dB, ``[B, T]`` -> ``[B]``. Reference first, as in
    :func:`specdenoise.metrics.si_sdr` (and PESQ and STOI there): one order everywhere."""
    est = estimate - estimate.mean(-1, keepdim=True)
    ref = reference - reference.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


MRSTFT_RESOLUTIONS = ((512, 128), (1024, 256), (256, 64))


def multi_resolution_stft(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1 averaged over three resolutions (Yamamoto et al.)."""
    total = estimate.new_zeros(())
    for n_fft, hop in MRSTFT_RESOLUTIONS:
        cfg = StftConfig(n_fft=n_fft, hop_length=hop)
        e = stft(estimate, cfg).abs() + 1e-7
        r = stft(reference, cfg).abs() + 1e-7
        sc = torch.linalg.norm(r - e, dim=(-2, -1)) / (torch.linalg.norm(r, dim=(-2, -1)) + 1e-7)
        total = total + sc.mean() + (r.log() - e.log()).abs().mean()
    return total / len(MRSTFT_RESOLUTIONS)


def compute_loss(cfg: LossConfig, est_spec: torch.Tensor, clean_spec: torch.Tensor,
                 est_wave: torch.Tensor | None = None, clean_wave: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Weighted loss terms; ``total`` is their sum. Everything in float32."""
    est_spec, clean_spec = est_spec.to(torch.complex64), clean_spec.to(torch.complex64)
    terms: dict[str, torch.Tensor] = {}
    e = est_spec.abs().clamp_min(1e-10).pow(cfg.power)
    c = clean_spec.abs().clamp_min(1e-10).pow(cfg.power)
    if cfg.mag_l1:
        terms["mag_l1"] = cfg.mag_l1 * (e - c).abs().mean()
    if cfg.mag_mse:
        terms["mag_mse"] = cfg.mag_mse * (e - c).pow(2).mean()
    if cfg.mag_under:  # asymmetric: over-suppression costs more than residual noise (VoiceFilter-Lite)
        terms["mag_under"] = cfg.mag_under * torch.relu(c - e).pow(2).mean()
    if cfg.cplx_mse:  # phase matters too: compare the compressed spectra as complex numbers
        ec = est_spec * (e / est_spec.abs().clamp_min(1e-10))
        cc = clean_spec * (c / clean_spec.abs().clamp_min(1e-10))
        terms["cplx_mse"] = cfg.cplx_mse * torch.view_as_real(ec - cc).pow(2).mean() * 2
    if cfg.mrstft:
        terms["mrstft"] = cfg.mrstft * multi_resolution_stft(est_wave, clean_wave)
    if cfg.si_sdr:
        terms["si_sdr"] = -cfg.si_sdr * si_sdr(clean_wave, est_wave).mean() / 10
    terms["total"] = sum(terms.values()) if terms else est_spec.new_zeros((), dtype=torch.float32)
    return terms
