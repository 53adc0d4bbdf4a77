"""DNSMOS P.835 without recomputing what overlapping windows share.

Why this exists: the reference (Microsoft's ``dnsmos_local.py``, reproduced by ``speechmos``)
scores a clip as the mean over 9.01-s windows that hop by 1 s, and runs the whole network on
every window. An 8-s clip is tiled to 16 s and gives 7 windows, so each second of audio goes
through the network about 7 times; profiling showed 95 % of the time in the four full-resolution
3x3 convolutions (``conv2d`` … ``conv2d_3``) that come before the first pooling.

The network (``sig_bak_ovr.onnx`` from ``speechmos``) frames the window into 900 frames of 320
samples with a 160-sample hop, takes log10 power spectra (161 bins), applies four 3x3
convolutions with zero padding, then pools, convolves, takes a global max and three dense
layers. A window hop of 16000 samples is exactly 100 frames, so frame ``j`` of window ``k`` is
frame ``100 k + j`` of the whole clip. A 3x3 convolution stack of depth four sees 4 frames either
side: inside a window, every output frame at least 4 frames from the window's edges equals the
output computed once over the whole clip. Only the 4 frames at each edge differ (the reference
pads with zeros at the window's edge) and they are recomputed per window from 12 frames, with
the same zero padding. The cheap rest of the network then runs per window as before.

The graph is cut in two at the first pooling (the ONNX nodes are reused as they are, read from
the installed file at run time: nothing is copied into this repository) and both parts run in
onnxruntime, so the arithmetic is the reference's; only the log power spectra are computed here
with numpy (float32, the same DFT matrix). Results match the reference to float32 rounding
(tests/test_metrics.py checks them against speechmos to 1e-5).
"""
from __future__ import annotations

import threading

import numpy as np

FRAME = 320  # samples per STFT frame of the model
HOP = 160  # samples between frames
WINDOW_FRAMES = 900  # frames per 9.01-s window (144160 samples)
WINDOW_SAMPLES = HOP * (WINDOW_FRAMES - 1) + FRAME  # 144160
WINDOW_HOP_FRAMES = 100  # the reference hops windows by 1 s = 16000 samples = 100 frames
HALO = 4  # frames either side that four 3x3 convolutions see
EDGE = 3 * HALO  # frames recomputed at each window edge (4 kept, 8 of context)
CHUNK_FRAMES = 1200  # frames of the shared stack computed at once (bounds memory on long clips)

_lock = threading.Lock()
_net = None


class _Net:
    """The P.835 network as two onnxruntime sessions plus its spectrogram front end in numpy."""

    def __init__(self, path) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        model = onnx.load(str(path))
        graph = model.graph
        weights = {init.name: init for init in graph.initializer}
        array = lambda name: numpy_helper.to_array(weights[name]).astype(np.float32)  # noqa: E731
        # stft-real / stft-imag are 1x1 convolutions over the 320 samples of a frame: a DFT
        # matrix with the analysis window folded in; stacked to [320, 322] for one matmul.
        self.dft = np.ascontiguousarray(np.concatenate([array("time2freq/stft-real/kernel:0")[:, :, 0], array("time2freq/stft-imag/kernel:0")[:, :, 0]]).T)
        self.bins = self.dft.shape[1] // 2
        self.floor = np.float32(array("mos_estimator_logpow/Maximum/x:0"))
        self.ln10 = np.float32(array("mos_estimator_logpow/truediv/y:0"))
        names = [node.name for node in graph.node]
        first, pool = names.index("conv2d"), names.index("mos_estimator_logpow/conv2d_3/Relu:0_pooling")

        def session(nodes, shape):
            used = sorted({name for node in nodes for name in node.input if name in weights})
            inputs = [helper.make_tensor_value_info(nodes[0].input[0], TensorProto.FLOAT, shape)]
            outputs = [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)]
            part = helper.make_model(helper.make_graph(nodes, "dnsmos_part", inputs, outputs, [weights[u] for u in used]),
                                     opset_imports=model.opset_import)
            part.ir_version = model.ir_version
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # parallel scoring workers must not oversubscribe
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.log_severity_level = 3
            built = ort.InferenceSession(part.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
            return built, nodes[0].input[0]

        # the four full-resolution convolutions, any number of frames
        self.stack, self.stack_input = session(list(graph.node[first:pool]), [1, 1, "frames", self.bins])
        # from the first pooling to the raw (SIG, BAK, OVRL) outputs, one 900-frame window
        self.head, self.head_input = session(list(graph.node[pool:]), [1, None, WINDOW_FRAMES, self.bins])

    def features(self, audio: np.ndarray, frames: int) -> np.ndarray:
        """log10 power spectra of the first ``frames`` frames, [1, 1, frames, 161] (as the graph:
        Sqrt, then Pow 2, floor 1e-12, natural log over ln 10)."""
        framed = np.lib.stride_tricks.sliding_window_view(audio[: HOP * (frames - 1) + FRAME], FRAME)[::HOP]
        spec = framed @ self.dft
        real, imag = spec[:, : self.bins], spec[:, self.bins:]
        power = np.sqrt(real * real + imag * imag) ** np.float32(2)
        logpow = np.log(np.maximum(self.floor, power)) / self.ln10
        return np.ascontiguousarray(logpow[None, None], dtype=np.float32)

    def full_stack(self, x: np.ndarray) -> np.ndarray:
        return self.stack.run(None, {self.stack_input: np.ascontiguousarray(x)})[0]

    def raw(self, x: np.ndarray) -> np.ndarray:
        return self.head.run(None, {self.head_input: np.ascontiguousarray(x)})[0][0]


def _network(path) -> _Net:
    global _net
    with _lock:
        if _net is None:
            _net = _Net(path)
        return _net


def _shared_linear(net: _Net, feats: np.ndarray) -> np.ndarray:
    """The four convolutions over every frame, in chunks; a halo of 4 frames makes chunk edges exact."""
    total = feats.shape[2]
    shared = None
    for begin in range(0, total, CHUNK_FRAMES):
        end = min(total, begin + CHUNK_FRAMES)
        lo, hi = max(0, begin - HALO), min(total, end + HALO)
        out = net.full_stack(feats[:, :, lo:hi])
        if shared is None:
            shared = np.empty((1, out.shape[1], total, out.shape[3]), np.float32)
        shared[:, :, begin:end] = out[:, :, begin - lo: end - lo]
    return shared


def _shared_periodic(net: _Net, feats: np.ndarray) -> np.ndarray:
    """The four convolutions over one period of a tiled clip, wrapped around: frame ``j`` of the
    clip is frame ``j % period`` of the result."""
    wrapped = np.concatenate([feats[:, :, -HALO:], feats, feats[:, :, :HALO]], axis=2)
    return net.full_stack(wrapped)[:, :, HALO:-HALO]


def raw_scores(audio: np.ndarray, starts: list[int], path, period: int | None = None) -> np.ndarray:
    """The network's raw (SIG, BAK, OVRL) outputs for windows starting at sample ``starts``.

    ``audio`` is the already tiled and clipped float32 clip; every start is a multiple of 16000
    and every window lies inside the clip (the caller applies the reference's framing).
    ``period``: the length in samples of the clip before tiling, if it was tiled. When it is a
    multiple of the frame hop, the frames repeat with it and are computed once.
    """
    if not starts:
        return np.zeros((0, 3), np.float32)
    if any(start % (WINDOW_HOP_FRAMES * HOP) for start in starts):
        raise ValueError("DNSMOS window starts must be multiples of 16000 samples")
    net = _network(path)
    offsets = [start // HOP for start in starts]
    total = offsets[-1] + WINDOW_FRAMES
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if len(audio) < HOP * (total - 1) + FRAME:
        raise ValueError("DNSMOS windows reach past the end of the clip")
    cycle = period // HOP if period and period % HOP == 0 and len(audio) >= 2 * period else None
    periodic = cycle is not None and 2 * HALO < cycle < total
    feats = net.features(audio, total)
    if periodic:
        shared = _shared_periodic(net, feats[:, :, :cycle])
        frames = lambda offset: np.take(shared, np.arange(offset, offset + WINDOW_FRAMES) % cycle, axis=2)  # noqa: E731
    else:
        shared = _shared_linear(net, feats)
        frames = lambda offset: shared[:, :, offset: offset + WINDOW_FRAMES].copy()  # noqa: E731
    scores = []
    for offset in offsets:
        x = frames(offset)
        window = feats[:, :, offset: offset + WINDOW_FRAMES]
        # the reference pads each window with zeros at its edges, so its first and last 4 frames
        # differ from the shared ones (except at the ends of a linear pass, padded the same way):
        # recompute them from the window's own first/last 12 frames
        if periodic or offset > 0:
            x[:, :, :HALO] = net.full_stack(window[:, :, :EDGE])[:, :, :HALO]
        if periodic or offset + WINDOW_FRAMES < total:
            x[:, :, -HALO:] = net.full_stack(window[:, :, -EDGE:])[:, :, -HALO:]
        scores.append(net.raw(x))
    return np.stack(scores)
