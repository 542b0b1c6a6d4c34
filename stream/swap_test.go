package stream

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/internal/testdep"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/transport"
)

const (
	testNearestX4 = "../sr/testdata/nearest_x4.onnx"
	bundledDANX4  = "../sr/models/dan_lite_x4.onnx"
)

// seqSink records the source sequence number of every frame it receives.
type seqSink struct {
	mu   sync.Mutex
	seqs []uint64
}

func (s *seqSink) WriteFrame(f frame.Frame) {
	s.mu.Lock()
	s.seqs = append(s.seqs, f.Seq)
	s.mu.Unlock()
}
func (s *seqSink) Viewers() int { return 1 }
func (s *seqSink) snapshot() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.seqs...)
}

// tagged is a real upscaler that counts its frames and its Close. When gate
// is set, its first Upscale (the swap's warm-up) waits for gate to close, so a
// test can hold a swap half-done.
type tagged struct {
	sr.Upscaler
	frames atomic.Int64
	closed atomic.Bool
	gate   chan struct{}

	mu   sync.Mutex
	work []sr.FrameMetrics // per call, when the upscaler counts its work
}

func (t *tagged) Upscale(ctx context.Context, f frame.Frame) (frame.Frame, error) {
	if t.frames.Add(1) == 1 && t.gate != nil {
		<-t.gate
	}
	out, err := t.Upscaler.Upscale(ctx, f)
	if ms, ok := t.Upscaler.(sr.MetricsSource); ok && err == nil {
		t.mu.Lock()
		t.work = append(t.work, ms.Metrics().Last)
		t.mu.Unlock()
	}
	return out, err
}

func (t *tagged) calls() []sr.FrameMetrics {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]sr.FrameMetrics(nil), t.work...)
}
func (t *tagged) Close() error { t.closed.Store(true); return t.Upscaler.Close() }

func loadTagged(t testing.TB, path string) *tagged {
	t.Helper()
	if err := sr.InitRuntime(""); err != nil {
		testdep.Missing(t, "ONNX Runtime not available (run scripts/setup.sh): %v", err)
	}
	u, err := sr.LoadModel(path, sr.ModelOptions{Threads: 1, Cache: true})
	if err != nil {
		t.Fatal(err)
	}
	return &tagged{Upscaler: u}
}

// The swap happens between two frames: the new model warms up on the
// caller's goroutine while the old one keeps enhancing every frame, then every
// frame after the swap is enhanced by the new model and the old one is closed.
// Held half-done by a gate rather than timed, so a loaded machine cannot make
// it pass or fail.
func TestSwapUpscalerWarmsOffTheFramePathAndSwitchesBetweenFrames(t *testing.T) {
	oldUp, newUp := loadTagged(t, testNearestX4), loadTagged(t, testNearestX4)
	newUp.gate = make(chan struct{})
	enh := &seqSink{}
	open := func(ctx context.Context) (capture.Source, error) {
		return capture.Open(ctx, "synthetic:64x48@15", capture.Options{})
	}
	p := NewPipeline("swap", StreamConfig{Source: "synthetic:64x48@15"}, open, oldUp, sr.NewBicubic(4), enh, &recordSink{}, slog.Default())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		if !newUp.closed.Load() {
			t.Error("the swapped-in model was not closed by Close")
		}
	}()

	waitFor(t, "15 frames before the swap", func() bool { return len(enh.snapshot()) >= 15 })
	swapped := make(chan error, 1)
	go func() { swapped <- p.SwapUpscaler(newUp) }()
	waitFor(t, "the warm-up started", func() bool { return newUp.frames.Load() == 1 })
	n := oldUp.frames.Load()
	waitFor(t, "the old model enhancing during the warm-up", func() bool { return oldUp.frames.Load() >= n+5 })
	close(newUp.gate)
	if err := <-swapped; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "15 frames from the new model", func() bool { return newUp.frames.Load() >= 16 })
	waitFor(t, "the old model closed", oldUp.closed.Load)
	before := oldUp.frames.Load()
	waitFor(t, "5 more frames", func() bool { return newUp.frames.Load() >= 21 })
	if oldUp.frames.Load() != before {
		t.Fatal("the old model still ran after the swap")
	}
	seqs := enh.snapshot()
	if got, want := int64(len(seqs)), before+newUp.frames.Load()-1; got < want-1 || got > want {
		t.Fatalf("viewers got %d frames, old model %d + new model %d (less its warm-up): frames came from elsewhere", got, before, newUp.frames.Load()-1)
	}
	k := int(before)
	t.Logf("%d frames, old model %d, new model %d; sequence step at the swap %d (noise on a shared CPU, not asserted)",
		len(seqs), before, newUp.frames.Load(), max(seqs[k]-seqs[k-1], seqs[k+1]-seqs[k]))
}

func TestSwapUpscalerRefusesAnotherScaleAndClosesIt(t *testing.T) {
	up := loadTagged(t, testNearestX4)
	p := NewPipeline("s", StreamConfig{}, nil, up, sr.NewBicubic(4), &seqSink{}, &seqSink{}, slog.Default())
	defer p.Close()
	x2 := &tagged{Upscaler: sr.NewBicubic(2)}
	err := p.SwapUpscaler(x2)
	if err == nil || !strings.Contains(err.Error(), "x2") || !x2.closed.Load() {
		t.Fatalf("err=%v closed=%v: want a scale error and the refused model closed", err, x2.closed.Load())
	}
	if p.upscaler() != sr.Upscaler(up) {
		t.Fatal("the running model changed")
	}
}

func modelOf(m *Manager, name string) string {
	for _, s := range m.Statuses() {
		if s.Name == name {
			return s.Model
		}
	}
	return ""
}

// SwapModel warms the new model up beside the running one, the API shows it,
// RollbackModel restores the old one, and a model that cannot be used leaves
// the running one untouched.
func TestManagerSwapModelShowsItRollsBackAndIgnoresBadModels(t *testing.T) {
	m := startManager(t, Config{Streams: map[string]StreamConfig{"cam": testStream("synthetic:48x32@15")}})
	waitFor(t, "the stream running", func() bool { return stateOf(m, "cam") == StateRunning })
	frames := func() uint64 {
		m.mu.RLock()
		defer m.mu.RUnlock()
		return m.streams["cam"].p.framesOut.Load()
	}
	if !strings.Contains(modelOf(m, "cam"), "test-nearest-x4") {
		t.Fatalf("model before the swap: %q", modelOf(m, "cam"))
	}

	prev, err := m.SwapModel("cam", bundledDANX4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if prev != testNearestX4 {
		t.Fatalf("previous = %q, want %q", prev, testNearestX4)
	}
	waitFor(t, "the DAN model in the status", func() bool { return strings.Contains(modelOf(m, "cam"), "dan-lite-x4") })
	n := frames()
	waitFor(t, "frames from the new model", func() bool { return frames() >= n+5 })
	var apiModel string
	for _, s := range m.List() {
		if s.Name == "cam" {
			apiModel = s.Model
		}
	}
	if !strings.Contains(apiModel, "dan-lite-x4") {
		t.Fatalf("/api/streams model = %q, want the swapped-in model", apiModel)
	}

	for _, bad := range []struct{ name, path, want string }{
		{"missing file", "/nonexistent/adapted.onnx", "/nonexistent/adapted.onnx"},
		{"other scale", "../sr/testdata/conv_x2.onnx", "x2"},
		{"broken model", "../sr/testdata/bad_nometa.onnx", "bad_nometa.onnx"},
		{"NaN output", "../sr/testdata/bad_nan_x4.onnx", "not finite"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			if _, err := m.SwapModel("cam", bad.path, nil); err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Fatalf("err = %v, want one naming %q", err, bad.want)
			}
			if cur, prev, _ := m.ModelPaths("cam"); cur != bundledDANX4 || prev != testNearestX4 {
				t.Fatalf("paths now %q (previous %q): a failed swap changed them", cur, prev)
			}
			if !strings.Contains(modelOf(m, "cam"), "dan-lite-x4") {
				t.Fatalf("running model now %q", modelOf(m, "cam"))
			}
		})
	}
	if _, err := m.SwapModel("nope", bundledDANX4, nil); err == nil {
		t.Fatal("swap on an unknown stream succeeded")
	}

	restored, err := m.RollbackModel("cam")
	if err != nil || restored != testNearestX4 {
		t.Fatalf("rollback = %q, %v", restored, err)
	}
	waitFor(t, "the old model back", func() bool { return strings.Contains(modelOf(m, "cam"), "test-nearest-x4") })
	n = frames()
	waitFor(t, "frames after the rollback", func() bool { return frames() >= n+5 })
	if cur, prev, _ := m.ModelPaths("cam"); cur != testNearestX4 || prev != bundledDANX4 {
		t.Fatalf("after rollback: current %q previous %q", cur, prev)
	}
}

func TestModelAPISwapsAndRollsBack(t *testing.T) {
	m := startManager(t, Config{Streams: map[string]StreamConfig{"cam": testStream("synthetic:32x32@15")}})
	h := transport.NewServer(m, transport.ServerOptions{LoopbackOnly: true}).Handler()
	waitFor(t, "the stream running", func() bool { return stateOf(m, "cam") == StateRunning })
	for _, s := range []struct {
		name, path, body string
		want             int
		wantBody         string
	}{
		{"swap", "/api/streams/cam/model", `{"path":"` + bundledDANX4 + `"}`, 200, `"previous": "` + testNearestX4 + `"`},
		{"bad model", "/api/streams/cam/model", `{"path":"/nope/x.onnx"}`, 400, "/nope/x.onnx"},
		{"no path", "/api/streams/cam/model", `{}`, 400, "rollback"},
		{"unknown stream", "/api/streams/zz/model", `{"path":"` + bundledDANX4 + `"}`, 404, "not found"},
		{"rollback", "/api/streams/cam/model", `{"rollback":true}`, 200, testNearestX4},
	} {
		code, body := apiDo(t, h, "POST", s.path, s.body)
		if code != s.want || !strings.Contains(body, s.wantBody) {
			t.Fatalf("%s: %d %q, want %d containing %q", s.name, code, body, s.want, s.wantBody)
		}
	}
	waitFor(t, "the old model back", func() bool { return strings.Contains(modelOf(m, "cam"), "test-nearest-x4") })
}

// With the bundled DAN model and its tile cache, the swap costs no more work
// than a steady-state frame: the new model is warmed with the latest frame, so
// its first frame in the stream reuses cached tiles instead of running the
// whole grid. Counted in tiles, not timed.
func TestSwapUpscalerWithTheDANModelStartsWithAWarmCache(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bundled DAN model")
	}
	oldUp, newUp := loadTagged(t, bundledDANX4), loadTagged(t, bundledDANX4)
	enh := &seqSink{}
	src := "synthetic:160x96@10"
	open := func(ctx context.Context) (capture.Source, error) { return capture.Open(ctx, src, capture.Options{}) }
	p := NewPipeline("dan", StreamConfig{Source: src}, open, oldUp, sr.NewBicubic(4), enh, &recordSink{}, slog.Default())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done; p.Close() }()
	waitFor(t, "20 frames", func() bool { return len(enh.snapshot()) >= 20 })
	if err := p.SwapUpscaler(newUp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "10 frames from the new model", func() bool { return newUp.frames.Load() >= 10 })
	work := newUp.calls()
	if work[0].FullReason == "" || work[0].Inferred != work[0].Tiles {
		t.Fatalf("warm-up ran %d of %d tiles (%q), want the whole grid", work[0].Inferred, work[0].Tiles, work[0].FullReason)
	}
	first := work[1]
	t.Logf("first stream frame on the new model: %d of %d tiles run, %d reused", first.Inferred, first.Tiles, first.Reused)
	if first.FullReason != "" || first.Reused == 0 {
		t.Fatalf("first stream frame on the new model ran the whole grid (%q, %d of %d tiles): the warm-up did not fill its cache",
			first.FullReason, first.Inferred, first.Tiles)
	}
}

// BenchmarkModelSwapGap measures what viewers see across a hot swap of the
// bundled DAN x4 model on a 160x96@10 stream: the sequence-number step (in
// source frames) at each swap against the widest step elsewhere. The issue's
// target is a step of at most 2 frame intervals.
//
//	go test -run '^$' -bench ModelSwapGap -benchtime 5x ./stream
func BenchmarkModelSwapGap(b *testing.B) {
	load := func() *tagged { return loadTagged(b, bundledDANX4) }
	enh := &seqSink{}
	src := "synthetic:160x96@10"
	open := func(ctx context.Context) (capture.Source, error) { return capture.Open(ctx, src, capture.Options{}) }
	p := NewPipeline("bench", StreamConfig{Source: src}, open, load(), sr.NewBicubic(4), enh, &recordSink{}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done; p.Close() }()
	wait := func(n int) {
		for deadline := time.Now().Add(time.Minute); len(enh.snapshot()) < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("the stream stalled")
			}
		}
	}
	wait(10)
	var swapSteps []int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next := load()
		k := len(enh.snapshot())
		if err := p.SwapUpscaler(next); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); next.frames.Load() < 6; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("the new model never ran")
			}
		}
		swapSteps = append(swapSteps, k)
	}
	b.StopTimer()
	seqs := enh.snapshot()
	worstSwap, worstOther := uint64(0), uint64(0)
	atSwap := map[int]bool{}
	for _, k := range swapSteps {
		for j := k - 1; j <= k+2; j++ { // the frames just before and after the swap call
			atSwap[j] = true
		}
	}
	for i := 1; i < len(seqs); i++ {
		step := seqs[i] - seqs[i-1]
		if atSwap[i] {
			worstSwap = max(worstSwap, step)
		} else {
			worstOther = max(worstOther, step)
		}
	}
	b.ReportMetric(float64(worstSwap), "frames-step-at-swap")
	b.ReportMetric(float64(worstOther), "frames-step-elsewhere")
}
