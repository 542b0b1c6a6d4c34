#!/usr/bin/env bash
# Retrain the bundled DAN-lite models and the adaptation ablations, then export and evaluate.
# Run from the repository root; each step is one command (see sr/models/MODEL_CARD.md).
#   sr/dan/train_bundled.sh [x4|x2|all]     (default all; ~12 + 10 + 8 + 8 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
what="${1:-all}"
if [[ "$what" == all || "$what" == x4 ]]; then
  $PY -m sr.dan.train sr/dan/options/x4_pretrain.yml
  $PY -m sr.dan.export sr/dan/runs/dan_lite_x4_pretrain/final.pth sr/models/dan_lite_x4.onnx --name dan-lite-x4 --scale 4
  $PY -m sr.dan.eval --ckpt sr/dan/runs/dan_lite_x4_pretrain/final.pth --sets set5_x4,set14_x4,bsd100_x4
fi
if [[ "$what" == all || "$what" == x2 ]]; then
  $PY -m sr.dan.train sr/dan/options/x2_pretrain.yml
  $PY -m sr.dan.train sr/dan/options/x2_adapt.yml
  $PY -m sr.dan.export sr/dan/runs/dan_lite_x2_adapt/final.pth sr/models/dan_lite_x2.onnx --name dan-lite-x2 --scale 2
  $PY -m sr.dan.train sr/dan/options/x2_scratch.yml
  for r in dan_lite_x2_pretrain dan_lite_x2_adapt dan_lite_x2_scratch; do
    $PY -m sr.dan.eval --ckpt sr/dan/runs/$r/final.pth --sets city100_eval_x2
  done
fi
