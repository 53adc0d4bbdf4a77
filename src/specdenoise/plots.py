"""Spectrogram figures shared by the demo, tracking, reports and notebooks."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .fileio import atomic_write
from .stft import StftConfig, stft_np


def spectrogram_db(wave: np.ndarray, config: StftConfig | None = None) -> np.ndarray:
    config = config or StftConfig()
    mag = np.abs(stft_np(wave, config))
    return 20 * np.log10(mag + 1e-8)


def plot_spectrograms(panels: dict[str, np.ndarray], sample_rate: int, path: str | Path,
                      title: str | None = None, config: StftConfig | None = None,
                      dynamic_range_db: float = 80.0) -> Path:
    """One labelled row per waveform (e.g. noisy / denoised / clean), shared dB colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = {name: spectrogram_db(w, config) for name, w in panels.items()}
    vmax = max(s.max() for s in specs.values())
    vmin = vmax - dynamic_range_db
    n = len(specs)
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n), sharex=True, squeeze=False)
    image = None
    for ax, (name, spec) in zip(axes[:, 0], specs.items()):
        duration = len(panels[name]) / sample_rate
        image = ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                          extent=(0, duration, 0, sample_rate / 2000))
        ax.set_ylabel("kHz")
        ax.set_title(name, loc="left", fontsize=11)
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="dB", pad=0.01)
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return path
