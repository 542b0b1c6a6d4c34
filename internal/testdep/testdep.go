// Package testdep is how a test says that something it needs from outside the
// repository (ffmpeg, ONNX Runtime, opencv-doc's vtest.avi, ../shared/data,
// Chromium, python3 with torch) is missing. On a developer's machine the test
// skips with the message; under CI=true it fails, because CI installs every
// dependency and a silent skip there would hide a guard that no longer runs.
package testdep

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// CI reports whether the CI environment variable is set true.
func CI() bool {
	b, _ := strconv.ParseBool(os.Getenv("CI"))
	return b
}

// Missing skips tb with the message, or fails it under CI=true.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		tb.Fatalf("%s (CI=true: a missing dependency fails the test instead of skipping it)", msg)
	}
	tb.Skip(msg)
}

// Command returns the path of an executable on PATH, or reports it Missing.
func Command(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, "%s not installed (scripts/setup.sh installs it): %v", name, err)
	}
	return p
}

// File returns path if it exists, or reports it Missing with the hint.
func File(tb testing.TB, path, hint string) string {
	tb.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(tb, "%s absent (%s): %v", path, hint, err)
	}
	return path
}

// Vtest is opencv-doc's sample footage (768x576, 795 frames), used as real camera video.
const Vtest = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

// VtestAVI returns Vtest, or reports it Missing.
func VtestAVI(tb testing.TB) string {
	tb.Helper()
	return File(tb, Vtest, "apt-get install opencv-doc; scripts/setup.sh does")
}

// SharedData returns the absolute path of rel inside ../shared/data (beside the
// repository root, found by walking up from the working directory to go.mod),
// or reports it Missing. The data sets are never committed; see the README.
func SharedData(tb testing.TB, rel string) string {
	tb.Helper()
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(root)
		if up == root {
			tb.Fatalf("no go.mod above %s", wd)
		}
		root = up
	}
	p := filepath.Join(filepath.Dir(root), "shared", "data", rel)
	return File(tb, p, "the evaluation data sets live in ../shared/data beside the repository")
}
