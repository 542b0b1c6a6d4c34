package stream

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/frame"
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

// tagged is a real upscaler that counts its frames and its Close.
type tagged struct {
	sr.Upscaler
	frames atomic.Int64
	closed atomic.Bool
}

func (t *tagged) Upscale(ctx context.Context, f frame.Frame) (frame.Frame, error) {
	t.frames.Add(1)
	return t.Upscaler.Upscale(ctx, f)
}
func (t *tagged) Close() error { t.closed.Store(true); return t.Upscaler.Close() }

func loadTagged(t *testing.T, path string) *tagged {
	t.Helper()
	if err := sr.InitRuntime(""); err != nil {
		t.Skipf("ONNX Runtime not available (run scripts/setup.sh): %v", err)
	}
	u, err := sr.LoadModel(path, sr.ModelOptions{Threads: 1, Cache: true})
	if err != nil {
		t.Fatal(err)
	}
	return &tagged{Upscaler: u}
}

// The swap happens between two frames: every source frame after the swap is
// enhanced by the new model, the old one is closed, and the frame sequence the
// viewers get has no hole wider than two source frame intervals.
func TestSwapUpscalerSwitchesBetweenFramesWithoutAGap(t *testing.T) {
	oldUp, newUp := loadTagged(t, testNearestX4), loadTagged(t, testNearestX4)
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
	if err := p.SwapUpscaler(newUp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "15 frames from the new model", func() bool { return newUp.frames.Load() >= 15 })
	waitFor(t, "the old model closed", oldUp.closed.Load)
	before := oldUp.frames.Load()
	waitFor(t, "5 more frames", func() bool { return newUp.frames.Load() >= 20 })
	if oldUp.frames.Load() != before {
		t.Fatal("the old model still ran after the swap")
	}
	// The frames on each side of the swap: the last of the old model, the
	// first two of the new one (the old session closes meanwhile).
	seqs := enh.snapshot()
	k := int(before)
	swapGap := max(seqs[k]-seqs[k-1], seqs[k+1]-seqs[k])
	widest := uint64(0)
	for i := 1; i < len(seqs); i++ {
		widest = max(widest, seqs[i]-seqs[i-1])
	}
	t.Logf("%d frames, old model %d, new model %d; sequence step at the swap %d, widest anywhere %d (a shared, loaded CPU)",
		len(seqs), before, newUp.frames.Load(), swapGap, widest)
	if swapGap > 2 {
		t.Fatalf("the swap left a gap of %d source frames (%v): want at most 2 frame intervals", swapGap, seqs[k-1:k+2])
	}
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

	prev, err := m.SwapModel("cam", bundledDANX4)
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
	} {
		t.Run(bad.name, func(t *testing.T) {
			if _, err := m.SwapModel("cam", bad.path); err == nil || !strings.Contains(err.Error(), bad.want) {
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
	if _, err := m.SwapModel("nope", bundledDANX4); err == nil {
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

// With the bundled DAN model and its tile cache, the swap costs no more than
// a steady-state frame: the new model is warmed with the latest frame, so its
// cache starts full. Compared with the widest step before the swap because
// the shared test machine drops frames on its own.
func TestSwapUpscalerWithTheDANModelKeepsTheCadence(t *testing.T) {
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
	seqs := enh.snapshot()
	k := int(oldUp.frames.Load())
	steady := uint64(1)
	for i := 1; i < k; i++ {
		steady = max(steady, seqs[i]-seqs[i-1])
	}
	swapGap := max(seqs[k]-seqs[k-1], seqs[k+1]-seqs[k])
	t.Logf("sequence step at the swap %d source frames, widest before %d", swapGap, steady)
	if swapGap > max(2, steady) {
		t.Fatalf("swap step %d source frames, steady state at most %d: the swap stalled the stream", swapGap, steady)
	}
}
