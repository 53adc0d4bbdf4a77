"""Export a training checkpoint as the shipped model (no optimizer state).

    .venv/bin/python scripts/export_pretrained.py runs/shipped/best.pt src/specdenoise/pretrained/default.pt
"""
import sys

from specdenoise.models.registry import export_for_release

if __name__ == "__main__":
    path = export_for_release(sys.argv[1], sys.argv[2])
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
