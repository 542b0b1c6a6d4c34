package offline

import (
	"os"
	"strings"
	"testing"
)

// In a log (not a terminal) progress is a line every few percent, never a
// carriage-return redraw per frame (a 300-frame enhance wrote 300 of those).
func TestProgressInALogIsALineEveryFewPercent(t *testing.T) {
	var log strings.Builder
	p := newProgress(&log, 300)
	for n := 1; n <= 300; n++ {
		p.update(n)
	}
	p.done(300)
	out := log.String()
	if strings.Contains(out, "\r") {
		t.Fatalf("carriage returns in a log:\n%q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 100/progressStep {
		t.Fatalf("%d lines, want one per %d%% (%d):\n%s", len(lines), progressStep, 100/progressStep, out)
	}
	if !strings.HasPrefix(lines[0], "15/300 frames   5%") || !strings.HasPrefix(lines[len(lines)-1], "300/300 frames 100%") {
		t.Fatalf("first %q, last %q", lines[0], lines[len(lines)-1])
	}

	// A file is no terminal either.
	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if newProgress(f, 10).tty {
		t.Fatal("a regular file taken for a terminal")
	}
}
