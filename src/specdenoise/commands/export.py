"""``specdenoise export``: a model as an ONNX graph for other runtimes (C++, browsers, phones)."""
from __future__ import annotations

HELP = "export a model to ONNX (--streaming: one frame at a time with its state, for real time)"


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a shipped model (default = the CRN with 16 ms look-ahead, realtime = the strictly causal CRN, unet = the previous U-Net) or a checkpoint path")
    parser.add_argument("--onnx", required=True, metavar="OUT.onnx", help="where to write the graph")
    parser.add_argument("--streaming", action="store_true",
                        help="frame-by-frame graph that takes and returns the state tensors (causal models only, "
                             "and required for them: the shipped CRNs export this way)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")


def run(args) -> int:
    from pathlib import Path

    from ..enhance import model_path
    from ..errors import ConfigError, shown
    from ..export import export_onnx, onnx_metadata
    from ..models import model_from_checkpoint

    target = Path(args.onnx)
    if target.exists() and not args.force:
        raise ConfigError(f"{shown(target)}: output exists (use --force to replace it)")
    model = model_from_checkpoint(model_path(args.model))
    export_onnx(model, target, streaming=args.streaming)
    meta = onnx_metadata(target)
    kind = "streaming (one frame + state per call)" if args.streaming else "offline (whole spectrogram)"
    print(f"{shown(target)}: {kind} graph of model {meta.get('model')!r}, {meta.get('sample_rate')} Hz, stft {meta.get('stft')}")
    return 0
