#!/usr/bin/env bash
# Measures what the RTSP relay delivers for one stream: reads URL with ffprobe
# for SECONDS and prints the delivered bit rate (sum of H.264 packet sizes over
# the span of their timestamps, the last packet left out) and the frame rate
# the packets keep; then reads 10 s more with ffmpeg's trace_headers and prints
# the timing of the last SPS sent (what the stream declares: time_scale /
# (2 * num_units_in_tick) fps, fixed or not).
#   docs/bench/rtsp_bitrate.sh rtsp://127.0.0.1:8554/demo 30
set -euo pipefail
url="$1"; secs="${2:-30}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ffprobe -v error -rtsp_transport tcp -select_streams v:0 -read_intervals "%+${secs}" \
  -show_entries packet=pts_time,size -of csv=p=0 "$url" > "$tmp/packets"
ffmpeg -hide_banner -nostdin -rtsp_transport tcp -t 10 -i "$url" -map 0:v:0 -c copy -bsf:v trace_headers -f null - 2> "$tmp/trace" || true
awk '/num_units_in_tick/ {n = $NF} /time_scale/ {s = $NF} /fixed_frame_rate_flag/ {f = $NF}
  END { if (n) printf "%d %d %d\n", n, s, f; else print "0 0 0" }' "$tmp/trace" > "$tmp/sps"
read -r tick scale fixed < "$tmp/sps"
stream="SPS timing: num_units_in_tick=$tick time_scale=$scale fixed_frame_rate_flag=$fixed"
[[ "$tick" != 0 ]] && stream+=" ($(awk -v t="$tick" -v s="$scale" 'BEGIN { printf "%.2f fps", s / (2 * t) }'))"
awk -F, -v stream="$stream" '
  $1 != "N/A" && $1 != "" { if (n == 0) first = $1; last = $1; bytes += $2; lastsize = $2; n++ }
  END {
    span = last - first
    if (n < 2 || span <= 0) { print "too few packets: " n; exit 1 }
    printf "packets %d over %.2f s: %.0f kbit/s, %.2f fps kept; %s\n", n, span, (bytes - lastsize) * 8 / span / 1000, (n - 1) / span, stream
  }' "$tmp/packets"
