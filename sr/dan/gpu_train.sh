#!/usr/bin/env bash
# The GPU stages of the bundled DAN-lite models, as run on a lent GPU machine (one H100,
# 16 cores) that has PyTorch but neither the Debian photo packages nor ../shared/data.
# Its transfer limit (64 MiB a call) holds the photos or the City100 TRAIN pack, not both,
# so it is two calls on one warm machine, and the jobs outlive the first call (setsid):
#   here:  python3 -m sr.dan.devpack photos .devdata/photos
#          python3 -m sr.dan.devpack city100 .devdata/city100
#          copy the init checkpoints to .devdata/init/<run>/final.pth
#   call 1 (carry .devdata/photos .devdata/init):  bash sr/dan/gpu_train.sh start
#   call 2 (carry .devdata/city100):               DEADLINE=500 bash sr/dan/gpu_train.sh finish
# (no pipe after either: a call cut off at its limit loses a pipeline's output)
# `finish` writes every run's final.pth and log to $OUT/runs.tgz (refreshed each minute, so a
# cut-off call still returns the latest checkpoints). On a plain CPU machine the same options
# files train with `python3 -m sr.dan.train FILE` (set max_iters to the card's counts).
# DEV=cpu SCALE=0.02 runs the whole flow in about a minute, for a dry run.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
W=${WORK:-/tmp/dangpu}
DEV=${DEV:-cuda}
SCALE=${SCALE:-1}
PY=${PY:-python3}
OUT=${OUT:-$W/out}
export PYTHONUNBUFFERED=1 DANSTREAM_PHOTOS=$W/photos DANSTREAM_DATA=$W/data

train() {  # options-file workers: one run in the code snapshot, budget scaled by $SCALE
  local opt=$1 workers=$2 name budget
  name=$(sed -n 's/^name: *//p' "$W/code/sr/dan/options/$opt")
  budget=$(sed -n 's/.*budget_min: *\([0-9.]*\).*/\1/p' "$W/code/sr/dan/options/$opt")
  # --threads 2: the GPU does the maths; 16 OpenMP threads in each of 4-6 runs would only fight
  # the loader workers for the 16 cores.
  (cd "$W/code" && $PY -m sr.dan.train "sr/dan/options/$opt" --device "$DEV" --workers "$workers" --threads 2 \
     --budget-min "$(awk -v b="$budget" -v s="$SCALE" 'BEGIN{print b*s}')" >"$W/logs/$name.log" 2>&1) ||
    echo "$opt failed (exit $?): see $W/logs/$name.log" >>"$W/logs/failed"
}

case "${1:-}" in
start)
  # A second start on the same machine: end the first one's runs before reusing $W.
  if [ -f "$W/phase1.pid" ]; then kill -- -"$(cat "$W/phase1.pid")" 2>/dev/null || true; sleep 2; fi
  rm -rf "$W" && mkdir -p "$W/code" "$W/logs" "$W/data"
  # A snapshot of the code and data: call 2 replaces the checkout while these jobs run.
  cp -r "$REPO/sr" "$W/code/" && cp -r "$REPO/.devdata/photos" "$W/photos"
  rm -rf "$W/code/sr/dan/runs" && mkdir -p "$W/code/sr/dan/runs" && cp -r "$REPO/.devdata/init/." "$W/code/sr/dan/runs/"
  export -f train; export W DEV SCALE PY
  setsid nohup bash -c '
    train x4_pretrain_gpu.yml 7 &
    { train x2w_pretrain_gpu.yml 5
      while [ ! -f "$W/data/ready" ]; do sleep 1; done
      train x2w_adapt_gpu.yml 1 & train x2w_scratch_gpu.yml 1 & wait; } &
    wait; touch "$W/logs/phase1.done"' >"$W/logs/phase1.out" 2>&1 </dev/null &
  echo $! >"$W/phase1.pid"
  echo "uid $(id -u); /dev/shm: $(df -h /dev/shm | tail -n 1)"
  # Call 2 only makes sense if the runs train: wait for both first progress lines (it 10).
  ok=0
  for _ in $(seq "${SETTLE:-90}"); do
    sleep 1
    if grep -qE " it 10 | done: " "$W/logs/dan_lite_x4_pretrain6.log" 2>/dev/null &&
       grep -qE " it 10 | done: " "$W/logs/dan_lite_x2w_pretrain.log" 2>/dev/null; then ok=1; break; fi
  done
  tail -n 3 "$W"/logs/*.log
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv 2>/dev/null || true
  [ $ok = 1 ] || { echo "start: the runs have not reached iteration 10: do not call finish" >&2; exit 3; }
  echo "start: runs are training"
  ;;
finish)
  [ -d "$W/code" ] || { echo "finish: no $W/code: run start on this machine first" >&2; exit 2; }
  mkdir -p "$OUT"
  kill -0 "$(cat "$W/phase1.pid")" 2>/dev/null || [ -f "$W/logs/phase1.done" ] ||
    { echo "finish: the runs started by start are gone (killed when call 1 returned?)" >&2; exit 2; }
  (cd "$W/code" && $PY -m sr.dan.devpack unpack "$REPO/.devdata/city100" "$W/data") ||
    { echo "finish: unpacking City100 failed" >&2; exit 2; }
  touch "$W/data/ready"
  export -f train; export W DEV SCALE PY
  train x2_adapt_gpu.yml 1 & a=$!
  train x2_scratch_gpu.yml 1 & b=$!
  pack() {
    local files=() d
    for d in "$W"/code/sr/dan/runs/{*_gpu,dan_lite_x2w_*,dan_lite_x4_pretrain6}; do  # 16 MiB a file: final, else last
      if [ -f "$d/final.pth" ]; then files+=("runs/${d##*/}/final.pth")
      elif [ -f "$d/last.pth" ]; then files+=("runs/${d##*/}/last.pth"); fi
    done
    if [ ${#files[@]} -gt 0 ]; then files=(-C "$W/code/sr/dan" "${files[@]}"); fi
    { tar czf "$OUT/runs.tgz.tmp" --warning=no-file-changed -C "$W" logs "${files[@]}"; [ $? -le 1 ] &&
      mv "$OUT/runs.tgz.tmp" "$OUT/runs.tgz"; } ||
      echo "pack failed (will retry)" >&2
  }
  while :; do  # $SECONDS counts from the script's start: the deadline includes the unpacking
    # Return what there is before the call's own limit cuts the output off.
    if [ $((SECONDS + ${EVERY:-60} + 20)) -ge "${DEADLINE:-540}" ]; then echo "finish: deadline, runs still going" >&2; break; fi
    sleep "${EVERY:-60}"; pack
    # A heartbeat in the call's output: a stalled run shows at the first minute, not at the end.
    echo "--- $SECONDS s"; for f in "$W"/logs/*.log; do echo "${f##*/}: $(tail -n 1 "$f")"; done
    if [ -f "$W/logs/phase1.done" ] && ! kill -0 $a 2>/dev/null && ! kill -0 $b 2>/dev/null; then break; fi
  done
  pack
  tail -n 2 "$W"/logs/*.log
  cat "$W/logs/failed" 2>/dev/null || true
  ;;
*) echo "usage: $0 start|finish" >&2; exit 2 ;;
esac
