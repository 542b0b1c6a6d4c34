package testdep

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Run as a child process: a test that finds its dependency missing.
func TestChildMissingDependency(t *testing.T) {
	if os.Getenv("TESTDEP_CHILD") == "" {
		t.SkipNow() // not a dependency skip: this test only runs as the child below
	}
	Command(t, "no-such-tool-danstream")
	t.Log("reached past a missing dependency")
}

// Under CI=true a missing dependency fails the test; otherwise it skips, naming what is missing.
func TestMissingSkipsLocallyAndFailsUnderCI(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{{"", false, "--- SKIP"}, {"false", false, "--- SKIP"}, {"true", true, "--- FAIL"}, {"1", true, "--- FAIL"}} {
		cmd := exec.Command(exe, "-test.run", "^TestChildMissingDependency$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTDEP_CHILD=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.want) ||
			!strings.Contains(string(out), "no-such-tool-danstream not installed") || strings.Contains(string(out), "reached past") {
			t.Errorf("CI=%q: err=%v, want %s naming the tool:\n%s", tc.ci, err, tc.want, out)
		}
	}
}
