#!/usr/bin/env bash
# WebRTC fan-out per viewer, side by side: each viewer on its own UDP socket
# (webrtc.udp_listen: "", the design before issue 18) against every viewer on
# one shared UDP port (the ICE UDP mux, the default now). The two designs take
# turns ROUNDS times with the same stream and the same load (cmd/danstream-load),
# so both see the same machine. DESIGNS may add mux-udp (the UDP mux without the
# ICE-TCP listener). Results: $OUT/DESIGN-ROUND.json and a table.
#   VIEWERS=100 DURATION=20s ROUNDS=3 bash scripts/bench_webrtc_mux.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-100} DURATION=${DURATION:-20s} ROUNDS=${ROUNDS:-3} OUT=${OUT:-out/bench-webrtc-mux} DESIGNS=${DESIGNS:-sockets mux}
mkdir -p "$OUT" bin
go build -o bin/danstream ./cmd/danstream
go build -o bin/danstream-load ./cmd/danstream-load
free() { python3 -c "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM if sys.argv[1]=='udp' else socket.SOCK_STREAM);s.bind(('127.0.0.1',0));print(s.getsockname()[1])" "$1"; }
for r in $(seq 1 "$ROUNDS"); do
  for design in $DESIGNS; do
    H=$(free tcp)
    case $design in
      sockets) W='{udp_listen: "", tcp_listen: ""}' ;;
      mux) W="{udp_listen: \"127.0.0.1:$(free udp)\", tcp_listen: \"127.0.0.1:$(free tcp)\"}" ;;
      mux-udp) W="{udp_listen: \"127.0.0.1:$(free udp)\", tcp_listen: \"\"}" ;;
      *) echo "unknown design $design"; exit 2 ;;
    esac
    # The tiny nearest-neighbour x4 model in place of DAN: SR costs ~9 ms, so the
    # stream keeps near its 15 fps and the fan-out is what changes.
    cat > "$OUT/$design.yaml" <<YAML
http: {listen: "127.0.0.1:$H"}
rtsp: {disabled: true}
webrtc: $W
streams:
  demo:
    source: synthetic:320x180@15
    model: sr/testdata/nearest_x4.onnx
    provider: cpu
    threads: 2
    bitrate_kbps: 2500
    keyframe_interval: 2s
YAML
    bin/danstream serve --config "$OUT/$design.yaml" --reload-every 0 >"$OUT/$design-$r.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$H/healthz" >/dev/null && break; sleep 0.3; done
    echo "round $r: $design (server pid $pid)"
    bin/danstream-load --url "http://127.0.0.1:$H" --stream demo --viewers "$VIEWERS" --duration "$DURATION" \
      --baseline 5s --server-pid "$pid" --json "$OUT/$design-$r.json" >"$OUT/$design-$r.txt" 2>&1 || echo "  load tool exit $?"
    kill -INT "$pid"; wait "$pid" || true
  done
done
python3 - "$OUT" "$ROUNDS" $DESIGNS <<'PY'
import json, sys
out, rounds, designs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("| run | viewers with frames | fps per viewer (median) | RSS 1 viewer -> N (MiB) | memory per extra viewer (MiB) | CPU 1 viewer -> N (cores) | fan-out CPU per viewer-frame (ms) | per kB sent (us) |")
print("|---|---|---|---|---|---|---|---|")
for r in range(1, rounds + 1):
    for d in designs:
        j = json.load(open(f"{out}/{d}-{r}.json"))
        one, ld = j["server_one_viewer"], j["server_loaded"]
        print(f"| {d} {r} | {j['viewers_with_frames']}/{j['viewers_requested']} | {j['fps_per_viewer']['p50']:.2f} | "
              f"{one['rss_mib']:.0f} -> {ld['rss_mib']:.0f} | {j.get('fanout_per_viewer_mib', 0):.2f} | "
              f"{one['cores']:.2f} -> {ld['cores']:.2f} | {j.get('fanout_cpu_ms_per_viewer_frame', 0):.3f} | {j.get('fanout_cpu_us_per_kb', 0):.2f} |")
PY
