package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/sr"
)

// recordSink keeps the frames a pipeline produced.
type recordSink struct {
	mu      sync.Mutex
	frames  []frame.Frame
	viewers int
}

func (r *recordSink) WriteFrame(f frame.Frame) {
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
}
func (r *recordSink) Viewers() int { return r.viewers }
func (r *recordSink) count() int   { r.mu.Lock(); defer r.mu.Unlock(); return len(r.frames) }
func (r *recordSink) first() frame.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frames[0]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// A bound for a hung test, not a speed check: CI's 2 shared cores under
	// -race have taken over 20 s for 20 frames of the DAN model.
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runPipeline(t *testing.T, open Opener, enhanced, original *recordSink) *Pipeline {
	t.Helper()
	cfg := StreamConfig{Source: "synthetic:64x48@30"}
	p := NewPipeline("t", cfg, open, sr.NewBicubic(2), sr.NewBicubic(2), enhanced, original, slog.Default())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if p.Status().State != StateStopped {
			t.Errorf("state after stop = %s", p.Status().State)
		}
		p.Close()
	})
	return p
}

func TestPipelineDeliversUpscaledFramesAndReportsSizes(t *testing.T) {
	enh, orig := &recordSink{}, &recordSink{}
	open := func(ctx context.Context) (capture.Source, error) {
		return capture.Open(ctx, "synthetic:64x48@30", capture.Options{})
	}
	p := runPipeline(t, open, enh, orig)
	waitFor(t, "10 enhanced frames", func() bool { return enh.count() >= 10 })
	f := enh.first()
	if f.W != 128 || f.H != 96 || !f.Reset {
		t.Fatalf("first frame %dx%d reset=%v, want 128x96 with Reset (new source)", f.W, f.H, f.Reset)
	}
	st := p.Status()
	if st.State != StateRunning || st.InWidth != 64 || st.OutWidth != 128 || st.Scale != 2 {
		t.Fatalf("status %+v", st)
	}
	// Without viewers the original view is refreshed about once a second, not per frame.
	if orig.count() == 0 || orig.count() > enh.count()/2 {
		t.Fatalf("original frames %d for %d enhanced: want some, far fewer", orig.count(), enh.count())
	}
}

func TestPipelineReopensAFailingSourceAndCountsReconnects(t *testing.T) {
	var opens atomic.Int32
	open := func(ctx context.Context) (capture.Source, error) {
		if opens.Add(1) == 1 {
			return nil, errors.New("camera rtsp://cam/x unreachable")
		}
		return capture.Open(ctx, "synthetic:64x48@30", capture.Options{})
	}
	enh := &recordSink{}
	p := runPipeline(t, open, enh, &recordSink{})
	waitFor(t, "frames after the reconnect", func() bool { return enh.count() > 0 })
	if st := p.Status(); st.Reconnects < 1 || opens.Load() < 2 {
		t.Fatalf("reconnects=%d opens=%d, want >= 1 and >= 2", st.Reconnects, opens.Load())
	}
}
