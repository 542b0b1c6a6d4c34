#!/usr/bin/env bash
# Runs, against a local danstream, the client commands docs/integrations.md gives for
# Frigate and for NVRs: each must decode frames from the RTSP relay. Loopback only,
# random ports, a synthetic camera (160x90 at 10 fps, x4 by the tiny test model);
# about a minute on a quiet machine. Needs ffmpeg and gst-launch-1.0 (gstreamer1.0-tools,
# -plugins-good, -libav).
#   bash scripts/check_integrations.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(port); RTSP=$(port); RTP=$(( ( $(port) / 2 ) * 2 ))
go build -o "$work/danstream" ./cmd/danstream
cat > "$work/config.yaml" <<YAML
http: {listen: "127.0.0.1:$HTTP"}
rtsp: {listen: "127.0.0.1:$RTSP", rtp_address: "127.0.0.1:$RTP", rtcp_address: "127.0.0.1:$((RTP+1))"}
webrtc: {udp_listen: "127.0.0.1:0", tcp_listen: ""}
streams:
  frontdoor: {source: "synthetic:160x90@10", model: sr/testdata/nearest_x4.onnx, threads: 1}
YAML
"$work/danstream" serve --config "$work/config.yaml" --reload-every 0 >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do
  curl -fsS "http://127.0.0.1:$HTTP/api/streams" 2>/dev/null | grep -q '"state":"running"' && break; sleep 0.2
done
URL="rtsp://127.0.0.1:$RTSP/frontdoor"
fail=0
check() { # name, then the command; prints the frames it got
  local name=$1; shift
  if out=$("$@" 2>&1); then echo "ok   $name: $out"; else echo "FAIL $name: $out"; fail=1; fi
}

# Frigate: what it runs for a camera with `input_args: preset-rtsp-generic` (TCP) or
# preset-rtsp-udp, roles [detect, record]: record segments copied, detect frames as raw
# yuv420p on a pipe at the detect size (here 640x360, 5 fps).
frigate() { # transport
  mkdir -p "$work/rec-$1"
  timeout 30 ffmpeg -hide_banner -loglevel error -threads 2 \
    -avoid_negative_ts make_zero -fflags +genpts+discardcorrupt -rtsp_transport "$1" -timeout 5000000 -use_wallclock_as_timestamps 1 \
    -i "$URL" -t 12 \
    -f segment -segment_time 10 -segment_format mp4 -reset_timestamps 1 -strftime 1 -c copy -an "$work/rec-$1/%Y%m%d%H%M%S.mp4" \
    -t 12 -r 5 -vf fps=5,scale=640:360 -threads 2 -f rawvideo -pix_fmt yuv420p pipe: | wc -c >"$work/detect-$1.bytes" || return 1
  local bytes frames recorded
  bytes=$(cat "$work/detect-$1.bytes"); frames=$(( bytes / (640*360*3/2) ))
  recorded=$(for f in "$work/rec-$1"/*.mp4; do ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$f"; done | paste -sd+ | bc)
  [[ $frames -ge 30 && $recorded -ge 60 ]] || { echo "detect $frames frames, recorded $recorded"; return 1; }
  echo "detect pipe $frames frames (640x360 yuv420p), record segments $recorded frames"
}
check "Frigate preset-rtsp-generic (tcp)" frigate tcp
check "Frigate preset-rtsp-udp" frigate udp

# An NVR recording the relay (copy, no re-encode), UDP as many NVRs and VLC default to, then TCP.
nvr() { # transport
  timeout 30 ffmpeg -hide_banner -loglevel error -rtsp_transport "$1" -i "$URL" -t 8 -c copy -y "$work/nvr-$1.mp4" || return 1
  local n; n=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames,codec_name,width,height -of csv=p=0 "$work/nvr-$1.mp4")
  [[ ${n##*,} -ge 40 ]] || { echo "$n"; return 1; }; echo "codec,width,height,frames = $n"
}
check "NVR ffmpeg -rtsp_transport udp -c copy" nvr udp
check "NVR ffmpeg -rtsp_transport tcp -c copy" nvr tcp
# GStreamer's rtspsrc (what GStreamer-based NVRs and Scrypted-like tools use): 50 decoded frames, then EOS.
gst() { # protocols
  timeout 40 gst-launch-1.0 -q rtspsrc location="$URL" protocols="$1" latency=200 ! rtph264depay ! avdec_h264 ! identity eos-after=50 ! fakesink >/dev/null || return 1
  echo "50 frames decoded, EOS"
}
check "GStreamer rtspsrc protocols=udp" gst udp
check "GStreamer rtspsrc protocols=tcp" gst tcp
exit $fail
