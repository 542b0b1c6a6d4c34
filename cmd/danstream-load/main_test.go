package main

import (
	"os"
	"syscall"
	"testing"
)

// TestMain runs the tests under the glibc malloc settings the danstream binary
// gives itself (cmd/danstream: limitMallocArenas), so the soak's RSS is the
// server's as deployed: glibc reads them only at start-up, hence the exec
// (same PID, same arguments).
func TestMain(m *testing.M) {
	if os.Getenv("MALLOC_ARENA_MAX") == "" && os.Getenv("MALLOC_MMAP_THRESHOLD_") == "" {
		if exe, err := os.Executable(); err == nil {
			// Exec only returns on failure; then the tests run with glibc's defaults.
			_ = syscall.Exec(exe, os.Args, append(os.Environ(), "MALLOC_ARENA_MAX=2", "MALLOC_MMAP_THRESHOLD_=131072"))
		}
	}
	os.Exit(m.Run())
}
