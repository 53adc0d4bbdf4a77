#!/usr/bin/env bash
# Train on a lent GPU machine that has PyTorch but neither the source tree nor our dependencies.
#
#   here:   .venv/bin/specdenoise pack --config configs/crn.yaml --out .gpupack/crn --codec opus \
#               --noise-quality 0.9 --max-validation-seconds 300
#           (what the 0.5 weights used; noise at 0.9 cost some hum removal, docs/MODEL_CARD.md: use a
#           FLAC pack, or a higher Opus quality, when the carry limit allows)
#           wheels of soundfile, cffi, pycparser and soxr for the machine's Python in .whl/
#   there:  OUT=<folder that comes back> MINUTES=7.5 [BATCH=64] bash scripts/device_train.sh
#
# Two runs share the GPU, each with its own loader workers, for MINUTES of training each
# (run.max_minutes: the cosine schedule follows the clock, then a last validation + checkpoint):
#   a: the shipped CRN continued (--init-from default), batch 64
#   b: a wider CRN (channels 64, GRU 64) from scratch, batch 64
# Both write best.pt / last.pt (+ log) to OUT. Nothing here is specific to one machine.
set -uo pipefail
: "${OUT:?set OUT}"
MINUTES=${MINUTES:-7.5}
PACK=${PACK:-.gpupack/crn}
BATCH=${BATCH:-64}  # the 0.5 runs used 64; the model looked launch-bound (BENCHMARKS), so 256 may cost little more per step (untried)
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=disabled
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, soundfile; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'libsndfile', soundfile.__libsndfile_version__)" || exit 1
common=(data.pack="$PACK" run.device=cuda run.max_minutes="$MINUTES"
        run.progress=false run.media_every=0 run.pesq_stoi_clips=0 run.threads=2 run.max_steps=1000000
        data.examples_per_epoch=10000000 data.num_workers=7 data.batch_size=$BATCH run.eval_every=500 run.log_every=100)
python3 -m specdenoise train --config configs/crn.yaml --tracker none --out /tmp/runs/a --init-from default "${common[@]}" \
    optim.lr=0.0015 optim.warmup_steps=200 tracking.name=crn48-gpu > "$OUT/a.log" 2>&1 &
python3 -m specdenoise train --config configs/crn.yaml --tracker none --out /tmp/runs/b "${common[@]}" \
    model.channels=64 model.first_channels=32 model.gru_hidden=64 \
    optim.lr=0.003 optim.warmup_steps=500 tracking.name=crn64-gpu > "$OUT/b.log" 2>&1 &
sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; uptime
wait
for r in a b; do
  for f in best last; do [ -f /tmp/runs/$r/$f.pt ] && cp /tmp/runs/$r/$f.pt "$OUT/${r}_$f.pt"; done
  [ -f /tmp/runs/$r/metrics.jsonl ] && cp /tmp/runs/$r/metrics.jsonl "$OUT/${r}_metrics.jsonl"
done
tail -n 3 "$OUT/a.log" "$OUT/b.log"
ls -la "$OUT"
