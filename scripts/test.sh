#!/usr/bin/env bash
# Installs what is missing (including Chromium and PyTorch for the tests) and runs every test:
# Go (race detector, GoCV Mat accounting), the Python model tests, the headless-browser
# test and short fuzzing runs. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="/usr/local/go/bin:$PATH"
FUZZTIME="${FUZZTIME:-15s}"

echo "== go vet"
go vet -tags matprofile ./...
echo "== go test (race, matprofile)"
go test -race -tags matprofile -count=1 -timeout 25m ./...
echo "== Helm chart (deploy/, a Go module of its own: helm's dependencies stay out of danstream's build)"
# helm v3.21 and k8s.io v0.37 need Go 1.26 (deploy/go.mod); an older local Go fetches it (GOTOOLCHAIN).
(cd deploy && export GOTOOLCHAIN=auto && go vet ./... && go test -count=1 ./...)
echo "== python model tests"
/usr/bin/python3 -m pytest -q -p no:cacheprovider sr/dan/tests
echo "== fuzzing ($FUZZTIME each)"
while read -r pkg target; do
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
done < <(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . | sed -E 's#^\./(.*)/[^/]+:func (Fuzz[A-Za-z0-9_]+)#./\1 \2#' | sort -u)
echo "== all tests passed"
