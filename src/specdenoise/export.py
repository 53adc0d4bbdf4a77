"""ONNX export, and running the exported graphs on onnxruntime.

The **streaming** graph runs one STFT frame at a time, like GTCRN's streaming export: inputs
``spec`` ``[1, n_freqs, 1, 2]`` (real, imaginary of one centred STFT frame; the model's
``stft`` settings, e.g. n_fft 512, hop 256, sqrt-Hann) and the state tensors ``state_in_0..N``
(zeros at the start); outputs ``enhanced`` (same layout) and ``state_out_0..N``, to feed back
with the next frame. The STFT and overlap-add stay outside the graph (they are a few lines in
any language); the model's rate, STFT settings and state shapes are written into the graph's
metadata. Only causal models can be exported this way: a model that looks at future frames (the
U-Net) is refused in one line. The **offline** graph (no ``--streaming``) maps a whole
spectrogram ``[1, n_freqs, frames, 2]`` to the enhanced one; it is for non-causal models (a causal
model's GRUs come out of the exporter with the example's frame count frozen in, so it is refused
and pointed to ``--streaming``).

Complex tensors go through the exporter's complex support (``dynamo=True``); its graph
optimiser is off because it dropped the ``+ 1e-8`` guards inside square roots (measured: NaN
on bins whose mask logits were zero).
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, SpecdenoiseError, first_line
from .fileio import atomic_write
from .streaming import is_causal, require_causal


class ExportError(SpecdenoiseError):
    pass


class _StreamingGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, spec: torch.Tensor, state: list[torch.Tensor]):
        out, new = self.model.forward_frames(torch.complex(spec[..., 0], spec[..., 1]), list(state))
        return (torch.view_as_real(out), *new)


class _OfflineGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, spec: torch.Tensor):
        return torch.view_as_real(self.model(torch.complex(spec[..., 0], spec[..., 1])))


def _quiet_export(*args, **kwargs):
    import logging

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):
                return torch.onnx.export(*args, dynamo=True, optimize=False, verbose=False, **kwargs)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def to_onnx_bytes(model, streaming: bool = True) -> bytes:
    """The model as an ONNX graph (bytes). Raises :class:`streaming.NotCausalError` for a
    non-causal model with ``streaming`` and :class:`ExportError` if the exporter fails."""
    model = model.eval()
    n_freqs = model.stft_config.n_freqs
    meta = {"sample_rate": str(model.sample_rate), "stft": json.dumps(model.stft_config.to_dict()),
            "model": getattr(model, "name", type(model).__name__), "streaming": str(bool(streaming))}
    try:
        if streaming:
            require_causal(model, "a streaming export")
            state = model.initial_state(1)
            names = [f"state_in_{i}" for i in range(len(state))]
            prog = _quiet_export(_StreamingGraph(model), (torch.zeros(1, n_freqs, 1, 2), list(state)), None,
                                 input_names=["spec", *names],
                                 output_names=["enhanced", *[f"state_out_{i}" for i in range(len(state))]])
            meta["state_shapes"] = json.dumps([list(s.shape) for s in state])
        else:
            if is_causal(model):
                # measured with torch 2.13: the exporter freezes the GRU's frame count at the example's,
                # so the graph would fail (or worse) on any other length; the streaming graph has no such limit
                raise ExportError(f"model {meta['model']!r} is causal: export it with --streaming (one frame and "
                                  "its state per call); its offline graph cannot take a varying number of frames")
            frames = torch.export.Dim("frames", min=1, max=1 << 22)
            example = torch.zeros(1, n_freqs, 4 * model.frame_multiple, 2)
            prog = _quiet_export(_OfflineGraph(model), (example,), None, input_names=["spec"],
                                 output_names=["enhanced"], dynamic_shapes=({2: frames},))
    except SpecdenoiseError:
        raise
    except Exception as exc:  # the exporter's messages run to pages: keep the first line
        raise ExportError(f"model {meta['model']!r} could not be exported to ONNX: {first_line(exc, 200)}") from None
    proto = prog.model_proto
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def export_onnx(model, target: str | Path, streaming: bool = True) -> Path:
    """Write the graph atomically to ``target`` (``.onnx``)."""
    target = Path(target)
    if target.suffix.lower() != ".onnx":
        raise ConfigError(f"{target}: the output name must end in .onnx")
    data = to_onnx_bytes(model, streaming)
    return atomic_write(target, lambda tmp: Path(tmp).write_bytes(data))


def _session(data: bytes, threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # its constant-folding notices about CastLike are not for users
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "specdenoise" / "onnx"


def model_key(model, streaming: bool) -> str:
    """A digest of everything the graph depends on: the model's code, weights, settings, torch and
    our versions."""
    import hashlib

    from . import __version__

    h = hashlib.sha256()
    for cls in type(model).__mro__:  # the code too: a changed forward with the same weights is another graph
        module = sys.modules.get(cls.__module__)
        if module is not None and getattr(module, "__file__", None) and cls.__module__.startswith("specdenoise"):
            h.update(Path(module.__file__).read_bytes())
    h.update(json.dumps([getattr(model, "name", ""), model.config(), bool(streaming), __version__,
                         str(torch.__version__)], sort_keys=True, default=str).encode())
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def cached_onnx_bytes(model, streaming: bool = True) -> bytes:
    """:func:`to_onnx_bytes`, kept in the user's cache folder: exporting takes tens of seconds,
    loading a cached graph milliseconds. A cache that cannot be written is simply not used."""
    path = _cache_dir() / f"{model_key(model, streaming)}.onnx"
    if path.is_file():
        try:
            return path.read_bytes()
        except OSError:
            pass
    data = to_onnx_bytes(model, streaming)
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    except OSError:
        pass
    return data


class OnnxStreamingStep:
    """A :data:`streaming.Step` on onnxruntime: the model's streaming graph, one frame per run,
    each channel with its own state (the state is opaque to the engine)."""

    def __init__(self, model, threads: int | None = None, data: bytes | None = None):
        self.session = _session(data or cached_onnx_bytes(model, streaming=True), threads)
        inputs = self.session.get_inputs()
        self.state_names = [i.name for i in inputs[1:]]
        self.state_shapes = [tuple(i.shape) for i in inputs[1:]]

    def initial_state(self, channels: int, device=None) -> list[list[np.ndarray]]:
        return [[np.zeros(s, np.float32) for s in self.state_shapes] for _ in range(channels)]

    def __call__(self, spec: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        x = torch.view_as_real(spec).numpy()  # [C, F, T, 2]
        out = np.empty_like(x)
        new_state = []
        for c in range(x.shape[0]):
            st = state[c]
            for t in range(x.shape[2]):
                feed = {"spec": np.ascontiguousarray(x[c : c + 1, :, t : t + 1])}
                feed.update(zip(self.state_names, st))
                res = self.session.run(None, feed)
                out[c, :, t] = res[0][0, :, 0]
                st = res[1:]
            new_state.append(st)
        return torch.view_as_complex(torch.from_numpy(out)), new_state


class OnnxOfflineModel:
    """A non-causal model's offline graph on onnxruntime: ``enhance(waveform)`` as the model's."""

    def __init__(self, model, threads: int | None = None):
        self.model = model
        self.session = _session(cached_onnx_bytes(model, streaming=False), threads)

    def enhance(self, waveform: torch.Tensor) -> torch.Tensor:
        from .stft import istft, stft

        cfg = self.model.stft_config
        shape = waveform.shape
        flat = waveform.reshape(-1, shape[-1])
        spec = stft(flat, cfg)
        outs = [self.session.run(None, {"spec": torch.view_as_real(s[None]).numpy()})[0][0] for s in spec]
        out = torch.view_as_complex(torch.from_numpy(np.stack(outs)))
        return istft(out, cfg, shape[-1]).reshape(shape)


def onnx_metadata(path: str | Path) -> dict[str, str]:
    import onnx

    proto = onnx.load(os.fspath(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


__all__ = ["ExportError", "OnnxOfflineModel", "OnnxStreamingStep", "export_onnx", "onnx_metadata", "to_onnx_bytes"]
