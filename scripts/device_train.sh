#!/usr/bin/env bash
# Train on a lent GPU machine that has PyTorch but neither the source tree nor our dependencies.
#
#   here:   .venv/bin/specdenoise pack --config configs/crn.yaml --out .gpupack/crn2 --codec opus \
#               --speech-quality 0.85 --noise-quality 0.8 --max-validation-seconds 300
#           (what the 0.6 weights used, 49 MB; 0.5 used noise at 0.9, docs/MODEL_CARD.md)
#           wheels of soundfile, cffi, pycparser and soxr for the machine's Python in .whl/
#   there:  OUT=<folder that comes back> MINUTES=7.5 [PACK=.gpupack/crn2 BATCH=64 WORKERS=7 RUNS="a b" \
#               LR_A=0.0015 INIT=default LR_B=0.003 INIT_B= WARMUP_B=500 BF16=false DEVICE=cuda] bash scripts/device_train.sh
#
# Next for issue 10 (docs/RESULTS.md, thirteenth to twenty-second sessions): capacity, which the CPU cannot train.
#   Build the pack with crn-1.1's speech floor (specdenoise pack ... data.speech_min_bak=3.8), then both runs with
#   crn-1.1's recipe (docs/MODEL_CARD.md, Training) in A_ARGS and B_ARGS:
#   RECIPE="data.mix.speed_probability=0.5 data.mix.noise_speed_probability=0.5 data.mix.snr_range=[-5,25]
#     loss.mag_under=40 optim.ema_decay=0.9995 data.mix.noise_eq_probability=0.3 data.mix.synthetic_noise_probability=0.3
#     data.mix.synthetic_kinds=[hum,whine,rumble,crackle,knock,low_tone,low_tone]"
#   RUNS="a b" INIT=checkpoints/crn_quality_wip.pt LR_A=0.0005 A_ARGS="$RECIPE" INIT_B=checkpoints/crn64_wip.pt
#   LR_B=0.002 B_ARGS="$RECIPE" (keep the 3-s crops of configs/crn.yaml: 6-s crops cost slow-drift removal on the
#   CPU). Packs store the sources as read and the Mixer conditions them (speech without offset and < 30 Hz, since the
#   sixteenth session), so a pack written earlier gives the same clean targets. Judge a result with the rule of
#   runs/selection_rule_34.txt's kind: validation first, then the whole test split's PESQ-WB per SNR bucket and
#   DNSMOS OVRL (the one unmet criterion: above DeepFilterNet3's 2.875).
#
# The RUNS share the GPU, each with its own WORKERS loader processes, for MINUTES of training each
# (run.max_minutes: the cosine schedule follows the clock, then a last validation + checkpoint):
#   a: a CRN continued from INIT (default: the shipped weights; or a checkpoint carried along),
#      peak learning rate LR_A; A_ARGS adds overrides, e.g. for a grown CRN (scripts/grow_model.py):
#      INIT=checkpoints/crn_grown_wip.pt A_ARGS="model.dual_path_blocks=3 model.gru_hidden=64"
#   b: a wider CRN (channels 64, GRU 64), from scratch or continued from INIT_B (checkpoints/crn64_wip.pt
#      holds the 7.5 GPU minutes it had so far), peak learning rate LR_B; B_ARGS adds overrides
# BF16=true trains under bf16 autocast; BF16=auto first times fp32, fp32 with cuDNN autotuning and
# bf16 autocast (bench/gpu_train_step.py, ~40 s) for the size of the first run and takes the fastest (bf16 only if >= 15 % faster).
# Each writes best.pt / last.pt (+ log) to OUT; runs go to a fresh /tmp/runs (a warm machine keeps
# the last call's). Nothing here is specific to one machine. Two runs sharing the GPU each go at
# half the speed of one alone (docs/BENCHMARKS.md).
set -uo pipefail
: "${OUT:?set OUT}"
rm -rf /tmp/runs
MINUTES=${MINUTES:-7.5}
PACK=${PACK:-.gpupack/crn}
BATCH=${BATCH:-64}  # the 0.5 runs used 64; 0.6 used 256 (docs/BENCHMARKS.md)
WORKERS=${WORKERS:-7}
RUNS=${RUNS:-a b}
LR_A=${LR_A:-0.0015}
INIT=${INIT:-default}
A_ARGS=${A_ARGS:-}
B_ARGS=${B_ARGS:-}
LR_B=${LR_B:-0.003}
INIT_B=${INIT_B:-}
WARMUP_B=${WARMUP_B:-500}
BF16=${BF16:-false}
AUTOTUNE=true
DEVICE=${DEVICE:-cuda}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=disabled
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, soundfile; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'libsndfile', soundfile.__libsndfile_version__)" || exit 1
if [ "$BF16" = auto ]; then
  case " $RUNS " in *" a "*) size=48 ;; *) size=64 ;; esac
  python3 bench/gpu_train_step.py --batch "$BATCH" --sizes $size --device "$DEVICE" --json "$OUT/probe.json" | tee "$OUT/probe.md" || exit 1
  read -r BF16 AUTOTUNE < <(python3 -c "import json; r = json.load(open('$OUT/probe.json'))['$size']; f = max((k for k in r if k.startswith('fp32')), key=r.get); b = 'bf16+autotune' if r['bf16+autotune'] > 1.15 * r[f] else f; print(str(b.startswith('bf16')).lower(), str('autotune' in b).lower())")
  echo "chosen: bf16=$BF16 cudnn_autotune=$AUTOTUNE"
fi
common=(data.pack="$PACK" run.device=$DEVICE run.max_minutes="$MINUTES"
        run.progress=false run.media_every=0 run.pesq_stoi_clips=0 run.threads=2 run.max_steps=1000000
        data.examples_per_epoch=10000000 data.num_workers=$WORKERS data.batch_size=$BATCH run.eval_every=500 run.log_every=100 run.bf16=$BF16 run.cudnn_autotune=$AUTOTUNE)
case " $RUNS " in *" a "*)
python3 -m specdenoise train --config configs/crn.yaml --tracker none --out /tmp/runs/a --init-from "$INIT" "${common[@]}" \
    optim.lr="$LR_A" optim.warmup_steps=200 tracking.name=crn48-gpu $A_ARGS > "$OUT/a.log" 2>&1 & ;; esac
case " $RUNS " in *" b "*)
python3 -m specdenoise train --config configs/crn.yaml --tracker none --out /tmp/runs/b ${INIT_B:+--init-from "$INIT_B"} \
    "${common[@]}" model.channels=64 model.first_channels=32 model.gru_hidden=64 \
    optim.lr="$LR_B" optim.warmup_steps="$WARMUP_B" tracking.name=crn64-gpu $B_ARGS > "$OUT/b.log" 2>&1 & ;; esac
sleep 90; command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; uptime
wait
for r in $RUNS; do
  for f in best last; do [ -f /tmp/runs/$r/$f.pt ] && cp /tmp/runs/$r/$f.pt "$OUT/${r}_$f.pt"; done
  [ -f /tmp/runs/$r/metrics.jsonl ] && cp /tmp/runs/$r/metrics.jsonl "$OUT/${r}_metrics.jsonl"
done
for r in $RUNS; do tail -n 3 "$OUT/$r.log"; done
ls -la "$OUT"
