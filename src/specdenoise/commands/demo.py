"""``specdenoise demo``: denoise the shipped example and show what changed."""
from __future__ import annotations

HELP = "denoise the shipped example: writes denoised.wav and spectrograms.png, prints metrics"


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--example", default="example1", help="which shipped example (example1, example2)")
    parser.add_argument("--model", default="default", help="'default' (shipped) or a checkpoint path")
    parser.add_argument("--force", action="store_true", help="replace denoised.wav and spectrograms.png from an earlier run")


def run(args) -> int:
    from ..demo import run_demo

    report = run_demo(args.out, example=args.example, model=args.model, force=args.force)
    print(f"example: {report['example']} ({report['description']})")
    print(f"{'':10s} {'PESQ-WB':>8s} {'STOI':>6s} {'SI-SDR':>8s}")
    for row in ("noisy", "denoised"):
        m = report[row]
        print(f"{row:10s} {m['pesq_wb']:8.2f} {m['stoi']:6.3f} {m['si_sdr']:8.2f}")
    print(f"wrote {report['wav']} and {report['png']}")
    return 0
