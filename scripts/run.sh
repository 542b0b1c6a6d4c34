#!/usr/bin/env bash
# Installs what is missing, builds danstream and serves the embedded default
# (synthetic camera -> bundled DAN x4 on CPU) at http://127.0.0.1:8080.
#   scripts/run.sh [config.yaml]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="/usr/local/go/bin:$PATH"
go build -o bin/danstream ./cmd/danstream
exec bin/danstream serve --config "${1:-configs/default.yaml}"
