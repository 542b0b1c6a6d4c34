#!/usr/bin/env bash
# Retrain the bundled DAN-lite models and the adaptation ablations, then export and evaluate
# (the commands of sr/models/MODEL_CARD.md). Run from anywhere; needs Debian's python3-torch.
#   sr/dan/train_bundled.sh [x4|x2|all]   (default all; x4 3x12 + 90 + 123 + 105 + 115 + 115 min on the CPU, then 7 + 3.3 min on an H100 GPU, x2 10 + 20 + 8 + 118 + 105 + 115 + 25 + 100 + 8 min of wall time)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
what="${1:-all}"
if [[ "$what" == all || "$what" == x4 ]]; then
  $PY -m sr.dan.train sr/dan/options/x4_pretrain.yml        # 12 min, random init
  $PY -m sr.dan.train sr/dan/options/x4_pretrain_cont.yml   # 12 min, warm start
  $PY -m sr.dan.train sr/dan/options/x4_pretrain_cont2.yml  # 12 min, warm start
  $PY -m sr.dan.train sr/dan/options/x4_pretrain_cont3.yml  # 90 min, warm start
  $PY -m sr.dan.train sr/dan/options/x4_pretrain_cont4.yml --threads 1  # 123 min, warm start
  $PY -m sr.dan.train sr/dan/options/x4_pretrain_cont5.yml --threads 1  # 105 min, warm start
  $PY -m sr.dan.train sr/dan/options/x4_pretrain_grow.yml --threads 1   # 115 min, grown to 4 groups, EMA
  $PY -m sr.dan.train sr/dan/options/x4_pretrain_grow2.yml --threads 2  # 115 min, grown to 5 groups, EMA (dan_lite_x4_fast)
  # Stages 9-10 ran on a lent H100 (sr/dan/gpu_train.sh; 12,130 + 6,441 iterations of batch 32).
  # With a CUDA GPU here they run on it; on a CPU the same iteration counts (many hours).
  if $PY -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    s9=(--device cuda --workers 6 --threads 2) s10=(--device cuda --workers 12 --threads 2)
  else
    s9=(--max-iters 12130) s10=(--max-iters 6441)
  fi
  $PY -m sr.dan.train sr/dan/options/x4_gpu_grow7.yml "${s9[@]}"   # 7 min (H100), grown to 7 groups, EMA
  $PY -m sr.dan.train sr/dan/options/x4_gpu_cont7.yml "${s10[@]}"  # 3.3 min (H100), quarter LR, EMA (bundled)
  $PY -m sr.dan.export sr/dan/runs/dan_lite_x4_gpu7c/final.pth sr/models/dan_lite_x4.onnx --name dan-lite-x4 --scale 4
  $PY -m sr.dan.export sr/dan/runs/dan_lite_x4_grow2/final.pth sr/models/dan_lite_x4_fast.onnx --name dan-lite-x4-fast --scale 4
  for r in dan_lite_x4_grow dan_lite_x4_grow2 dan_lite_x4_gpu7 dan_lite_x4_gpu7c; do
    $PY -m sr.dan.eval --ckpt sr/dan/runs/$r/final.pth --sets set5_x4,set14_x4,bsd100_x4
  done
fi
if [[ "$what" == all || "$what" == x2 ]]; then
  $PY -m sr.dan.train sr/dan/options/x2_pretrain.yml        # 10 min, synthetic, backbone only
  $PY -m sr.dan.train sr/dan/options/x2_pretrain_cont.yml --threads 1  # 20 min, longer pre-train
  $PY -m sr.dan.train sr/dan/options/x2_adapt.yml           # 8 min, DAN-P on City100 TRAIN
  $PY -m sr.dan.train sr/dan/options/x2_adapt_long.yml --threads 1  # 118 min, DAN-P
  $PY -m sr.dan.train sr/dan/options/x2_adapt_long2.yml --threads 1  # 105 min, second DAN-P stage
  $PY -m sr.dan.train sr/dan/options/x2_adapt_grow.yml --threads 1   # 115 min, grown to 5 groups, EMA (dan_lite_x2_fast)
  $PY -m sr.dan.train sr/dan/options/x2_adapt_grow2.yml --threads 2  # 25 min, grown to 7 groups
  $PY -m sr.dan.train sr/dan/options/x2_adapt_grow3.yml --threads 2  # 100 min, grown to 9 groups (bundled)
  $PY -m sr.dan.export sr/dan/runs/dan_lite_x2_adapt_grow3/final.pth sr/models/dan_lite_x2.onnx --name dan-lite-x2 --scale 2
  $PY -m sr.dan.export sr/dan/runs/dan_lite_x2_adapt_grow/final.pth sr/models/dan_lite_x2_fast.onnx --name dan-lite-x2-fast --scale 2
  $PY -m sr.dan.train sr/dan/options/x2_scratch.yml         # 8 min, ablation (b)
  for r in dan_lite_x2_pretrain dan_lite_x2_pretrain2 dan_lite_x2_adapt dan_lite_x2_adapt_long dan_lite_x2_adapt_long2 dan_lite_x2_adapt_grow dan_lite_x2_adapt_grow2 dan_lite_x2_adapt_grow3 dan_lite_x2_scratch; do
    $PY -m sr.dan.eval --ckpt sr/dan/runs/$r/final.pth --sets city100_eval_x2
  done
fi
