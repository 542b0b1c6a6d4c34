#!/usr/bin/env bash
# GPU stages of the bundled DAN-lite models, in ONE call on a lent GPU machine (one H100 or
# H200, 16 cores) that has PyTorch but neither the Debian photos nor ../shared/data:
#   here:  /usr/bin/python3 -m sr.dan.devpack photos .devdata/photos      (52 MB, the 64 MiB limit)
#          copy each options file's init checkpoint to .devdata/init/<run>/final.pth
#   there (carry .devdata/photos .devdata/init):
#          bash sr/dan/gpu_train.sh sr/dan/options/x4_gpu_grow7.yml sr/dan/options/x4_gpu_grow8.yml
# Every run trains side by side on the one GPU with its own loader workers. A run that has not
# printed its 10th iteration after $SETTLE s (a loader hang) is restarted once without workers.
# Every minute the runs' checkpoints (final.pth, else last.pth) and logs are packed into
# $OUT/runs.tgz, so a call cut off at its limit still returns the latest; the script ends itself
# before $DEADLINE s (budgets are capped to fit). No pipe after it: a cut-off call loses a pipe.
# DEV=cpu DEADLINE=200 WORKERS=1 is a dry run of the whole flow on a CPU machine.
set -uo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
W=${WORK:-/tmp/dangpu}
DEV=${DEV:-cuda}
PY=${PY:-python3}
OUT=${OUT:-$W/out}
WORKERS=${WORKERS:-6}
SETTLE=${SETTLE:-120}
DEADLINE=${DEADLINE:-540}
[ $# -gt 0 ] || { echo "usage: $0 OPTIONS.yml..." >&2; exit 2; }
opts=()  # absolute: the runs start in a copy of the code
for o in "$@"; do opts+=("$(realpath "$o")"); done
set -- "${opts[@]}"
export PYTHONUNBUFFERED=1 DANSTREAM_PHOTOS=$REPO/.devdata/photos
[ -d "$DANSTREAM_PHOTOS" ] || { echo "no $DANSTREAM_PHOTOS: pack it with sr.dan.devpack photos and carry it" >&2; exit 2; }

rm -rf "$W" && mkdir -p "$W/code" "$W/logs" "$OUT"
cp -r "$REPO/sr" "$W/code/" && rm -rf "$W/code/sr/dan/runs" && mkdir -p "$W/code/sr/dan/runs"
[ -d "$REPO/.devdata/init" ] && cp -r "$REPO/.devdata/init/." "$W/code/sr/dan/runs/"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
$PY -c 'import torch, cv2, numpy; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "cv2", cv2.__version__, "numpy", numpy.__version__)'

declare -A PID WK T0 NAME
launch() {  # options-file workers: start one run; its budget is capped to end before the deadline
  local opt=$1 workers=$2 name budget cap
  name=$(sed -n 's/^name: *//p' "$opt")
  budget=$(sed -n 's/.*budget_min: *\([0-9.]*\).*/\1/p' "$opt")
  # 100 s kept back: data loading and CUDA start before the budget counts, then the last pack.
  cap=$(awk -v d="$DEADLINE" -v s="$SECONDS" 'BEGIN{printf "%.2f", (d - s - 100) / 60}')
  if awk -v c="$cap" 'BEGIN{exit !(c < 1)}'; then
    echo "launch $name: skipped, under a minute of training left before the deadline" | tee -a "$W/logs/$name.log"
    return 1
  fi
  budget=$(awk -v b="$budget" -v c="$cap" 'BEGIN{print (b < c ? b : c)}')
  echo "launch $name: workers=$workers budget=${budget} min"
  # --threads 2: the GPU does the maths; more OpenMP threads would fight the loader workers.
  (cd "$W/code" && exec $PY -m sr.dan.train "$opt" --device "$DEV" --workers "$workers" --threads 2 \
     --budget-min "$budget") >>"$W/logs/$name.log" 2>&1 &
  PID[$opt]=$! WK[$opt]=$workers T0[$opt]=$SECONDS NAME[$opt]=$name
}

stop_run() {  # the run and its loader workers (its children), nothing else
  pkill -P "${PID[$1]}" 2>/dev/null; kill "${PID[$1]}" 2>/dev/null; sleep 2
  pkill -9 -P "${PID[$1]}" 2>/dev/null; kill -9 "${PID[$1]}" 2>/dev/null
}

pack() {
  local files=() d
  for d in "${NAME[@]}"; do  # the runs' own folders, not the carried inits
    if [ -f "$W/code/sr/dan/runs/$d/final.pth" ]; then files+=("$d/final.pth")
    elif [ -f "$W/code/sr/dan/runs/$d/last.pth" ]; then files+=("$d/last.pth"); fi
  done
  [ ${#files[@]} -gt 0 ] && files=(-C "$W/code/sr/dan/runs" "${files[@]}")
  { tar czf "$OUT/runs.tgz.tmp" --warning=no-file-changed -C "$W" logs "${files[@]}"; [ $? -le 1 ] &&
    mv "$OUT/runs.tgz.tmp" "$OUT/runs.tgz"; } || echo "pack failed (will retry)" >&2
}

for opt in "$@"; do launch "$opt" "$WORKERS" || { echo "DEADLINE=$DEADLINE leaves no time to train" >&2; exit 2; }; done
last_pack=$SECONDS
while :; do
  sleep 5
  alive=0
  for opt in "$@"; do
    kill -0 "${PID[$opt]}" 2>/dev/null && alive=1 || continue
    log="$W/logs/${NAME[$opt]}.log"
    if [ "${WK[$opt]}" -gt 0 ] && [ $((SECONDS - T0[$opt])) -ge "$SETTLE" ] && ! grep -qE " it 10 " "$log"; then
      echo "${NAME[$opt]}: no 10th iteration after $SETTLE s with ${WK[$opt]} loader workers: restarting without workers" | tee -a "$log"
      stop_run "$opt"
      rm -rf "$W/code/sr/dan/runs/${NAME[$opt]}"
      launch "$opt" 0 || WK[$opt]=0
    fi
  done
  if [ $((SECONDS - last_pack)) -ge 60 ]; then
    pack; last_pack=$SECONDS
    # A heartbeat in the call's output: a stalled run shows within a minute, not at the end.
    echo "--- $SECONDS s"; for f in "$W"/logs/*.log; do echo "${f##*/}: $(tail -n 1 "$f")"; done
  fi
  [ $alive = 0 ] && break
  [ $((SECONDS + 25)) -ge "$DEADLINE" ] && { echo "deadline: runs still going, stopped" >&2; break; }
done
pack
# A run still going at the deadline must not outlive the call on a machine held by the session.
for opt in "$@"; do kill -0 "${PID[$opt]}" 2>/dev/null && stop_run "$opt"; done
for f in "$W"/logs/*.log; do echo "== ${f##*/}"; grep -E "params=| it [0-9]*000 | done: |error" "$f" | tail -n 12; done
