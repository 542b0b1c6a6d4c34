package stream

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/sr"
)

// stallingSource delivers n frames, then nothing until it is closed: a camera
// that hangs without dropping the connection.
type stallingSource struct {
	n      int
	sent   int
	closed chan struct{}
}

func (s *stallingSource) Next(ctx context.Context) (frame.Frame, error) {
	if s.sent < s.n {
		s.sent++
		time.Sleep(30 * time.Millisecond)
		f := frame.New(32, 24)
		for i := range f.Pix {
			f.Pix[i] = 200
		}
		f.Seq, f.Captured = uint64(s.sent), time.Now()
		return f, nil
	}
	select {
	case <-ctx.Done():
		return frame.Frame{}, ctx.Err()
	case <-s.closed:
		return frame.Frame{}, capture.ErrClosed
	}
}
func (s *stallingSource) Info() capture.Info {
	return capture.Info{Kind: "rtsp", Width: 32, Height: 24}
}
func (s *stallingSource) Stats() capture.Stats { return capture.Stats{} }
func (s *stallingSource) Close() error         { close(s.closed); return nil }

func TestStalledSourceShowsPlaceholderAndWatchdogRestartsIt(t *testing.T) {
	var opens atomic.Int32
	open := func(ctx context.Context) (capture.Source, error) {
		opens.Add(1)
		return &stallingSource{n: 5, closed: make(chan struct{})}, nil
	}
	enh, orig := &recordSink{}, &recordSink{}
	cfg := StreamConfig{Source: "rtsp://cam/x", Watchdog: 4 * time.Second}
	p := NewPipeline("t", cfg, open, sr.NewBicubic(2), sr.NewBicubic(2), enh, orig, slog.Default())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done; p.Close() }()

	waitFor(t, "5 real frames", func() bool { return enh.count() >= 5 })
	// Then the source stalls: dimmed, labelled frames keep the viewers fed.
	waitFor(t, "a placeholder frame", func() bool { return enh.count() > 5 && p.Status().State == StateReconnecting })
	enh.mu.Lock()
	ph := enh.frames[5]
	enh.mu.Unlock()
	var dim, white int
	for _, v := range ph.Pix {
		switch {
		case v == 255:
			white++
		case v < 100:
			dim++
		}
	}
	if ph.W != 64 || ph.H != 48 || white == 0 || dim < len(ph.Pix)/2 {
		t.Fatalf("placeholder %dx%d: %d white, %d dim of %d bytes; want the last frame's size, dimmed, with a white banner",
			ph.W, ph.H, white, dim, len(ph.Pix))
	}
	// After the watchdog time without a frame the source is reopened and counted.
	waitFor(t, "watchdog restart", func() bool { return opens.Load() >= 2 && p.Status().Reconnects >= 1 })
	waitFor(t, "frames from the reopened source", func() bool { return enh.count() >= 10 && p.Status().State == StateRunning })
}
