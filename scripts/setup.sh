#!/usr/bin/env bash
# Installs what danstream needs on Debian 12 and is missing; safe to run again.
#   scripts/setup.sh          run-time + build deps (serve, enhance, eval, bench)
#   scripts/setup.sh --test   also what the tests need (Chromium, playwright-core, PyTorch, GStreamer's rtspsrc)
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION="${ORT_VERSION:-1.24.1}"          # onnxruntime_go v1.27.0 needs ORT >= 1.24
ORT_DIR="third_party/onnxruntime"
GO_MIN="1.24"

# Serving needs only the C libraries; the model side (training, export, its tests) needs
# Debian's PyTorch, and the tests need Chromium, the sample footage of opencv-doc and
# GStreamer (rtspsrc + avdec_h264: a real RTSP client of the relay).
want=(ca-certificates curl git gcc g++ pkg-config python3 libopencv-dev libvpx-dev libx264-dev ffmpeg)
if [[ "${1:-}" == "--test" ]]; then
  want+=(chromium opencv-doc plasma-workspace-wallpapers
         gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-libav
         python3-numpy python3-opencv python3-yaml python3-torch python3-onnx python3-pil python3-pytest)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# npm fetches the ONNX Runtime library (and playwright-core for tests). A Node.js from
# another apt source (e.g. NodeSource) bundles npm; Debian's own nodejs needs the npm package.
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs >/dev/null
  command -v npm >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

# Go toolchain: /usr/local/go or PATH; otherwise take the official toolchain module
# from the Go module proxy (the same zip `go` itself downloads for GOTOOLCHAIN).
export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null 2>&1 || ! go version | awk -v min="$GO_MIN" '{v=$3; sub("go","",v); split(v,a,"."); split(min,b,"."); exit !((a[1]>b[1])||(a[1]==b[1]&&a[2]>=b[2]))}'; then
  gover="1.24.6"
  echo "setup: installing Go $gover into /usr/local/go"
  proxy="${GOPROXY:-https://proxy.golang.org}"; proxy="${proxy%%,*}"
  tmpd=$(mktemp -d)
  curl -fsSL "$proxy/golang.org/toolchain/@v/v0.0.1-go${gover}.linux-amd64.zip" -o "$tmpd/go.zip"
  python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$tmpd/go.zip" "$tmpd"
  rm -rf /usr/local/go && mv "$tmpd/golang.org/toolchain@v0.0.1-go${gover}.linux-amd64" /usr/local/go
  chmod -R a+rx /usr/local/go/bin /usr/local/go/pkg/tool
  rm -rf "$tmpd"
fi

# ONNX Runtime shared library: shipped inside the npm package onnxruntime-node.
# npm pack only downloads the tarball; no install scripts run.
if [[ ! -s "$ORT_DIR/libonnxruntime.so.1" || "$(cat "$ORT_DIR/VERSION" 2>/dev/null)" != "$ORT_VERSION" ]]; then
  echo "setup: fetching libonnxruntime.so.1 $ORT_VERSION (npm onnxruntime-node)"
  mkdir -p "$ORT_DIR"
  tmpd=$(mktemp -d)
  (cd "$tmpd" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
  tar -xzf "$tmpd"/onnxruntime-node-*.tgz -C "$tmpd" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  mv "$tmpd/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT_DIR/libonnxruntime.so.1"
  echo "$ORT_VERSION" > "$ORT_DIR/VERSION"
  rm -rf "$tmpd"
fi

if [[ "${1:-}" == "--test" && ! -d tests/browser/node_modules/playwright-core ]]; then
  echo "setup: installing playwright-core (browser tests; uses Debian chromium, downloads no browser)"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --silent --no-audit --no-fund --ignore-scripts)
fi
echo "setup: ok"
