#!/usr/bin/env bash
# The numbers of docs/RESULTS.md: every system on the whole test split of the standard corpus, and
# the same systems on real recordings without a clean reference.
#
#   scripts/results.sh CHECKPOINT [OUT_DIR]          (default OUT_DIR: runs/results)
#   LIMIT=3 scripts/results.sh CHECKPOINT /tmp/try   (first 3 files of each set: checks the script)
#
# 1. The standard corpus (runs/corpus, as docs/RESULTS.md has always used): `specdenoise synth` over
#    ../shared/data with seed 0, built here if it is missing. Its test split holds speakers, noise
#    files and rooms that never appear in the training split of the same seed.
# 2. `evaluate` on runs/corpus/test: the shipped model (default), CHECKPOINT, and every baseline.
# 3. `evaluate --no-reference` on the VoxForge home recordings of the test split's speakers (copied
#    to OUT_DIR/voxforge_test_speakers, named LANG_SPEAKER_FILE): real rooms and microphones, no
#    clean reference, so DNSMOS only. VoxForge speakers of the training split are left out: their
#    recordings were training targets.
#
# Environment: WORKERS (scoring processes, default 2), CORPUS (default runs/corpus), LIMIT,
# SPECDENOISE (the command, default .venv/bin/specdenoise). Reports land in OUT_DIR/test and
# OUT_DIR/voxforge (report.md holds each table). Exit status: non-zero if any step failed or any
# file could not be scored (the reports are still written).
set -uo pipefail
cd "$(dirname "$0")/.."

CHECKPOINT=${1:?usage: scripts/results.sh CHECKPOINT [OUT_DIR]}
OUT=${2:-runs/results}
WORKERS=${WORKERS:-2}
CORPUS=${CORPUS:-runs/corpus}
SPECDENOISE=${SPECDENOISE:-.venv/bin/specdenoise}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=../shared/data
BASELINES=noisy,noisereduce,logmmse,rnnoise,deepfilternet3,gtcrn,dtln
LIMIT_ARGS=()
[ -n "${LIMIT:-}" ] && LIMIT_ARGS=(--limit "$LIMIT")

if [ ! -f "$CHECKPOINT" ]; then
  echo "results.sh: checkpoint not found: $CHECKPOINT" >&2
  exit 2
fi
mkdir -p "$OUT"
status=0
step() {  # run one step, keep going on failure, remember it
  echo "results.sh: $*" >&2
  local start=$SECONDS
  "$@" || status=1
  echo "results.sh: step took $((SECONDS - start)) s" >&2
}

if [ ! -d "$CORPUS/test" ]; then
  step "$SPECDENOISE" synth --speech "$DATA/speech" --noise "$DATA/noise" --rir "$DATA/rir" --out "$CORPUS" --seed 0
fi

step "$SPECDENOISE" evaluate "$CORPUS/test" --model default --model "$CHECKPOINT" --baselines "$BASELINES" \
  --out "$OUT/test" --workers "$WORKERS" "${LIMIT_ARGS[@]}"

# VoxForge recordings of the test split's speakers (the split lists them as speaker:voxforge-NAME)
step "$PYTHON" - "$CORPUS/corpus.json" "$DATA/speech/voxforge" "$OUT/voxforge_test_speakers" <<'EOF'
import json, shutil, sys
from pathlib import Path

corpus, voxforge, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
speakers = {s.split("voxforge-", 1)[1] for s in json.loads(corpus.read_text())["splits"]["test"]["speakers"] if s.startswith("speaker:voxforge-")}
out.mkdir(parents=True, exist_ok=True)
wanted = {}
for folder in sorted(p for p in voxforge.glob("*/*") if p.is_dir() and p.name in speakers):
    for audio in sorted(folder.glob("*.flac")):
        wanted[f"{folder.parent.name}_{folder.name}_{audio.name}"] = audio
for stale in out.glob("*.flac"):  # from a run on another corpus
    if stale.name not in wanted:
        stale.unlink()
for name, audio in wanted.items():
    if not (out / name).exists():
        shutil.copyfile(audio, out / name)
copied = len(wanted)
if not copied:
    sys.exit(f"no VoxForge recordings of test speakers found under {voxforge}")
print(f"{copied} VoxForge recordings of {len(speakers)} test-split speakers in {out}", file=sys.stderr)
EOF

step "$SPECDENOISE" evaluate "$OUT/voxforge_test_speakers" --no-reference --model default --model "$CHECKPOINT" \
  --baselines "$BASELINES" --out "$OUT/voxforge" --workers "$WORKERS" "${LIMIT_ARGS[@]}"

echo "results.sh: reports in $OUT/test/report.md and $OUT/voxforge/report.md (exit $status)" >&2
exit $status
