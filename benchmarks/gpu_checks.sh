#!/usr/bin/env bash
# One short script of GPU checks (issue 17): the `paper` preset on CUDA, mixed precision, torchrun
# (DDP over NCCL where the machine has two GPUs or more; one GPU allows one rank), the demo. Every section has its own time limit and goes on after a failure,
# so one broken check costs only its own minutes; each prints "== name: ok|FAILED (rc)".
#
#   OUT=gpu_out bash benchmarks/gpu_checks.sh                       # on a CUDA machine, repo root
#   DEVICE=cpu SIZE=32 BACKBONE=unet PRECISION=fp32 REPEATS=1 DEMO=0 OUT=/tmp/g bash benchmarks/gpu_checks.sh
#                                                                  # a dry run of the script itself, on a CPU
#
# Needs torch with CUDA and this package importable (PYTHONPATH=src, or pip install -e .).
# Results: $OUT/gpu_checks.log and JSON files beside it; figures go to benchmarks/README.md.
set -u
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-96}            # the paper's patch (Section 4.1)
REPEATS=${REPEATS:-5}
BACKBONE=${BACKBONE:-swin-unetr}   # the paper's
PRECISION=${PRECISION:-bf16}      # the autocast the training-ratio sections time
OUT=${OUT:?set OUT to a folder for the results}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
WORK=$(mktemp -d)
LOG="$OUT/gpu_checks.log"
export PYTHONUNBUFFERED=1
ONLY=${ONLY:-}             # e.g. ONLY=ddp: only the sections whose names contain it (phantoms are always made)

section() {  # section NAME SECONDS COMMAND...: run with a limit, log its output and its verdict
  local name=$1 limit=$2; shift 2
  [[ -n "$ONLY" && "$name" != *"$ONLY"* ]] && return 0
  echo "== $name (limit ${limit}s): $*" | tee -a "$LOG"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | grep -v -E "Warning|warn\(" | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  local verdict=ok; [ "$rc" -ne 0 ] && verdict="FAILED ($rc)"
  echo "== $name: $verdict in $((SECONDS - start)) s" | tee -a "$LOG"
}

environment() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import torch, monai; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available',
torch.cuda.is_available(), 'bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported(), 'monai', monai.__version__);
print('nccl', torch.distributed.is_nccl_available())"
}

echo "== environment" | tee -a "$LOG"; environment 2>&1 | tee -a "$LOG"

# 1. Full-RL step cost against a baseline step, the paper's backbone and patch (issue 17 target: <= 2x at K = 3)
section "training-ratio $BACKBONE paper $PRECISION" 150 $PY benchmarks/bench_training.py --device "$DEVICE" \
  --preset paper --backbone "$BACKBONE" --sizes "$SIZE" --batch-size 1 --ks 3 --estimators full sampled single \
  --heads full light --floor --repeats "$REPEATS" --precision "$PRECISION" --out "$OUT/training_ratio.jsonl"
section "training-ratio unet $PRECISION" 90 $PY benchmarks/bench_training.py --device "$DEVICE" --backbone unet \
  --sizes "$SIZE" --batch-size 2 --ks 3 --estimators full sampled single --heads full light --floor --repeats "$REPEATS" \
  --precision "$PRECISION" --out "$OUT/training_ratio.jsonl"

# 2. Mixed precision: step time of bf16 and fp16 autocast against fp32, paper preset
section "precision $BACKBONE paper" 150 $PY benchmarks/bench_precision.py --device "$DEVICE" --preset paper \
  --backbone "$BACKBONE" --sizes "$SIZE" --batch-size 1 --methods baseline svl-drl --repeats "$REPEATS" \
  --precisions fp32 $([ "$DEVICE" = cpu ] || echo bf16 fp16) --json "$OUT/precision.json"

# 3. The CLI end to end with the paper preset: a few iterations through all three stages, validation, files
PHANTOMS="$WORK/ph"
$PY -m svldrl phantom "$PHANTOMS" --n 6 --size $((SIZE + 16)) --seed 0 >> "$LOG" 2>&1
SHORT=(--set model.backbone="$BACKBONE" --set optim.epochs=3 --set optim.iters_per_epoch=4 --set val_every=3 -q)
section "cli svl-drl paper preset" 150 $PY -m svldrl train "$PHANTOMS" --method svl-drl --preset paper \
  --device "$DEVICE" --out "$WORK/svl" --set stages.warmup_epochs=1 --set stages.transition_epochs=1 \
  --set data.patch_size="$SIZE" "${SHORT[@]}"
[ -f "$WORK/svl/metrics.json" ] && cp "$WORK/svl/metrics.json" "$OUT/cli_svl_metrics.json"
if [ "$DEVICE" != cpu ]; then
  section "cli baseline paper fp16 (GradScaler)" 90 $PY -m svldrl train "$PHANTOMS" --method baseline \
    --preset paper --device "$DEVICE" --precision fp16 --out "$WORK/fp16" --set data.patch_size="$SIZE" "${SHORT[@]}"
fi

# 4. torchrun: DDP over one rank per GPU (NCCL on CUDA), then --resume of that run. With one GPU
# (NCCL refuses two ranks on one GPU) the checks are a one-rank torchrun and the two one-line
# refusals before any work (expected to FAIL, in seconds): a rank without a GPU, one GPU named for all.
GPUS=$([ "$DEVICE" = cpu ] && echo 2 || $PY -c "import torch; print(torch.cuda.device_count())")
NPROC=$([ "$GPUS" -ge 2 ] && echo 2 || echo 1)
TORCHRUN=($PY -m torch.distributed.run --standalone)
DDP=(-m svldrl train "$PHANTOMS" --method baseline --preset paper --set data.patch_size="$SIZE" "${SHORT[@]}")
section "torchrun $NPROC rank(s)" 120 "${TORCHRUN[@]}" --nproc_per_node="$NPROC" "${DDP[@]}" --device "$DEVICE" \
  --out "$WORK/ddp" --set optim.batch_size="$NPROC"
rm -f "$WORK/ddp/metrics.json"  # as if stopped after its last checkpoint
section "torchrun $NPROC rank(s) resume" 120 "${TORCHRUN[@]}" --nproc_per_node="$NPROC" "${DDP[@]}" \
  --device "$DEVICE" --out "$WORK/ddp" --set optim.batch_size="$NPROC" --resume
[ -f "$WORK/ddp/env.json" ] && cp "$WORK/ddp/env.json" "$OUT/ddp_env.json"
grep -h -E '"processes"|"process_group_backend"|"gpu"' "$WORK/ddp/env.json" 2>/dev/null | tee -a "$LOG"
if [ "$GPUS" = 1 ]; then
  for device in cuda cuda:0; do
    section "torchrun 2 ranks, 1 GPU, --device $device (expected: refused)" 60 "${TORCHRUN[@]}" \
      --nproc_per_node=2 "${DDP[@]}" --device $device --out "$WORK/refused" --set optim.batch_size=2
  done
fi

# 5. The demo (cpu preset, device auto: the GPU here); 73 s on 2 CPU cores (README)
[ "${DEMO:-1}" = 1 ] && section "demo" 150 $PY -m svldrl demo --out "$WORK/demo" -q
rm -rf "$WORK"
