package stream

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/testdep"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/transport"
)

// testStream uses the tiny test model in sr/testdata so these tests need no trained model.
func testStream(src string) StreamConfig {
	return StreamConfig{Source: src, Model: "../sr/testdata/nearest_x4.onnx", Threads: 1}
}

func startManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	if err := sr.InitRuntime(""); err != nil {
		testdep.Missing(t, "ONNX Runtime not available (run scripts/setup.sh): %v", err)
	}
	for n, s := range cfg.Streams {
		v, err := ValidateStream(n, s)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Streams[n] = v
	}
	m, err := NewManager(cfg, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		m.Close()
	})
	return m
}

func stateOf(m *Manager, name string) State {
	for _, s := range m.Statuses() {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

func TestOnDemandStreamStartsOnFirstViewerAndStopsWhenIdle(t *testing.T) {
	sc := testStream("synthetic:32x32@20")
	sc.OnDemand, sc.IdleTimeout = true, time.Second
	m := startManager(t, Config{Streams: map[string]StreamConfig{"od": sc, "always": testStream("synthetic:32x32@20")}})
	// Run starts the always-on streams in one pass: once "always" runs, that
	// pass is over, and it must have left the on-demand stream alone.
	waitFor(t, "the always-on stream running", func() bool { return stateOf(m, "always") == StateRunning })
	if st := stateOf(m, "od"); st != StateIdle {
		t.Fatalf("state before any viewer = %s, want idle", st)
	}
	b, ok := m.Broadcaster("od", VariantEnhanced)
	if !ok {
		t.Fatal("no broadcaster")
	}
	waitFor(t, "on-demand stream to run", func() bool { return stateOf(m, "od") == StateRunning && !b.LatestFrame().Empty() })
	// Nobody subscribed: after the idle timeout the pipeline stops again.
	waitFor(t, "idle stop", func() bool { return stateOf(m, "od") == StateIdle })
}

func TestPutDeleteAndApplyLeaveOtherStreamsRunning(t *testing.T) {
	m := startManager(t, Config{Streams: map[string]StreamConfig{
		"a": testStream("synthetic:32x32@20"),
		"b": testStream("synthetic:32x32@20"),
	}})
	waitFor(t, "a and b running", func() bool { return stateOf(m, "a") == StateRunning && stateOf(m, "b") == StateRunning })
	bA, _ := m.Broadcaster("a", VariantEnhanced)

	a, _ := m.Config("a")
	if changed, err := m.Put("a", a); err != nil || changed {
		t.Fatalf("Put of an unchanged stream: changed=%v err=%v, want a no-op", changed, err)
	}
	if changed, err := m.Put("b", testStream("synthetic:48x32@20")); err != nil || !changed {
		t.Fatalf("Put changed b: changed=%v err=%v", changed, err)
	}
	if _, err := m.Put("c", StreamConfig{Source: "synthetic:32x32", Model: "/nonexistent/model.onnx"}); err == nil {
		t.Fatal("Put with a missing model succeeded")
	}
	if _, err := m.Put("c", StreamConfig{Source: "synthetic:32x32", Scale: 5}); err == nil {
		t.Fatal("Put with scale 5 succeeded")
	}
	if err := m.Delete("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete unknown: %v", err)
	}
	if err := m.Apply(Config{Streams: map[string]StreamConfig{"a": a, "d": testStream("synthetic:32x32@20")}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d running", func() bool { return stateOf(m, "d") == StateRunning })
	if _, ok := m.Config("b"); ok {
		t.Fatal("b still configured after Apply without it")
	}
	if b2, _ := m.Broadcaster("a", VariantEnhanced); b2 != bA || stateOf(m, "a") != StateRunning {
		t.Fatal("unchanged stream a was rebuilt or stopped by Put/Apply of others")
	}
}

const watchedBase = "streams:\n  a: {source: 'synthetic:32x32@20', model: ../sr/testdata/nearest_x4.onnx, threads: 1}\n"

// startWatchedManager writes watchedBase to a config file, starts a manager
// from it, and returns the file's path and a writer for later edits.
func startWatchedManager(t *testing.T) (*Manager, string, func(string)) {
	t.Helper()
	path := t.TempDir() + "/c.yaml"
	write := func(s string) {
		t.Helper()
		// Written aside and renamed, so the watcher never reads half a file.
		if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write(watchedBase)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return startManager(t, cfg), path, write
}

// watchConfig starts a ConfigWatcher on path (its first look at the file is
// taken before it returns) and returns the outcome of each change it
// handles, in order: nil when the change was applied.
func watchConfig(t *testing.T, m *Manager, path string, hooks ...func(Config) error) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := NewConfigWatcher(path, 50*time.Millisecond, m, slog.Default(), hooks...)
	handled := make(chan error)
	w.Handled = func(err error) {
		select {
		case handled <- err:
		case <-ctx.Done():
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return handled
}

// nextReload waits for the watcher to handle the next change of its file.
func nextReload(t *testing.T, handled <-chan error) error {
	t.Helper()
	select {
	case err := <-handled:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the config watcher handled no change within a minute")
		return nil
	}
}

func TestWatchConfigAppliesEditsAndIgnoresBrokenFiles(t *testing.T) {
	m, path, write := startWatchedManager(t)
	base := watchedBase
	handled := watchConfig(t, m, path)
	waitFor(t, "a running", func() bool { return stateOf(m, "a") == StateRunning })
	bA, _ := m.Broadcaster("a", VariantEnhanced)

	write(base + "  b: {source: 'synthetic:32x32@20', model: ../sr/testdata/nearest_x4.onnx, threads: 1}\n")
	if err := nextReload(t, handled); err != nil {
		t.Fatalf("reload adding b: %v", err)
	}
	waitFor(t, "b added by reload", func() bool { return stateOf(m, "b") == StateRunning })
	write(base + "  b: {source: 'synthetic:32x32@20', scale: 5}\n") // invalid: ignored as a whole
	if err := nextReload(t, handled); err == nil {
		t.Fatal("an invalid config file was applied")
	}
	if stateOf(m, "b") != StateRunning {
		t.Fatal("an invalid config file changed the running streams")
	}
	if b2, _ := m.Broadcaster("a", VariantEnhanced); b2 != bA {
		t.Fatal("unchanged stream a was rebuilt by a reload")
	}
}

// /metrics is client_golang's exposition of the manager's collector with Go's
// runtime and the process collectors: the series names of the hand-written
// exposition it replaced, plus go_* and the process's CPU and file descriptors.
func TestMetricsExposePerStreamProcessAndGoSeries(t *testing.T) {
	m := startManager(t, Config{Streams: map[string]StreamConfig{"cam-1": testStream("synthetic:32x32@20")}})
	waitFor(t, "cam-1 running", func() bool { return stateOf(m, "cam-1") == StateRunning })
	waitFor(t, "a frame enhanced", func() bool {
		for _, s := range m.Statuses() {
			if s.Name == "cam-1" && s.FPSOut > 0 {
				return true
			}
		}
		return false
	})
	h := transport.NewServer(m, transport.ServerOptions{LoopbackOnly: true}).Handler()
	code, out := apiDo(t, h, "GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics: %d\n%s", code, out)
	}
	for _, want := range []string{
		`danstream_stream_up{state="running",stream="cam-1"} 1`,
		`danstream_stream_sr_ms_bucket{stream="cam-1",le="+Inf"}`,
		`danstream_stream_sr_ms_count{stream="cam-1"}`,
		`danstream_stream_tiles_inferred_total{stream="cam-1"}`,
		`danstream_stream_bytes_sent_total{stream="cam-1",variant="original"}`,
		`danstream_stream_reconnects_total{stream="cam-1"} 0`,
		"# TYPE danstream_stream_frames_total counter",
		"danstream_process_goroutines ",
		"danstream_process_resident_memory_bytes ",
		"danstream_process_cpu_seconds_total ",
		"danstream_process_open_fds ",
		"go_goroutines ",
		"go_memstats_heap_alloc_bytes ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(out, "danstream_stream_frames_total{stream=\"cam-1\"} 0\n") {
		t.Error("frames_total is 0 for a running stream")
	}
}

// A config written for the repository root (model: sr/models/...) must also work when the
// binary runs elsewhere; go test runs in stream/, where that path is not relative to cwd.
func TestRepositoryRelativeModelPathIsFoundFromAnotherDirectory(t *testing.T) {
	sc := testStream("synthetic:32x32@20")
	sc.Model = "sr/testdata/nearest_x4.onnx"
	if _, err := os.Stat(sc.Model); err == nil {
		t.Fatal("test premise: the path must not exist relative to the working directory")
	}
	m := startManager(t, Config{Streams: map[string]StreamConfig{"rel": sc}})
	waitFor(t, "the stream with a repository-relative model to run", func() bool { return stateOf(m, "rel") == StateRunning })
}
