// Package stream wires each configured camera through the SR stage to its
// viewers: capture -> upscale -> sinks (the encoders that fan out to WebRTC
// and RTSP viewers). One Run loop per stream, driven by a context.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/sr"
)

// Sink receives every produced frame. It must not block: a sink that is slow
// drops (transport.Broadcaster encodes once and fans out with bounded queues).
type Sink interface {
	WriteFrame(f frame.Frame)
	Viewers() int
}

// Opener opens the stream's source; a variable so tests can count reconnects.
type Opener func(ctx context.Context) (capture.Source, error)

// State is a stream's lifecycle as shown by the API and page.
type State string

const (
	StateStarting     State = "starting"
	StateRunning      State = "running"
	StateReconnecting State = "reconnecting"
	StateStopped      State = "stopped"
	StateIdle         State = "idle" // on-demand stream with no viewers: healthy, not capturing
)

// Pipeline is one stream: its source, its upscalers and its sinks.
type Pipeline struct {
	Name     string
	cfg      StreamConfig
	open     Opener
	up       sr.Upscaler // the DAN model
	baseline sr.Upscaler // bicubic, for the "original" view at the same output size
	enhanced Sink
	original Sink
	log      *slog.Logger

	mu     sync.Mutex
	status Status

	framesIn, framesOut atomic.Uint64
	srHist              histogram
}

// Status is a snapshot of a pipeline for the API, the page and metrics.
type Status struct {
	Name       string  `json:"name"`
	Source     string  `json:"source"`
	State      State   `json:"state"`
	Error      string  `json:"error,omitempty"`
	Model      string  `json:"model"`
	Scale      int     `json:"scale"`
	InWidth    int     `json:"in_width"`
	InHeight   int     `json:"in_height"`
	OutWidth   int     `json:"out_width"`
	OutHeight  int     `json:"out_height"`
	FPSIn      float64 `json:"fps_in"`
	FPSOut     float64 `json:"fps_out"`
	SRMillis   float64 `json:"sr_ms"`      // moving average of the SR stage per frame
	WaitMillis float64 `json:"wait_ms"`    // moving average of waiting for the next frame
	Latency    float64 `json:"latency_ms"` // capture timestamp -> handed to the encoders
	Dropped    uint64  `json:"dropped"`    // frames the source dropped because SR was busy
	Reconnects uint64  `json:"reconnects"`
	Viewers    int     `json:"viewers"`
}

// NewPipeline assembles a stream. up is owned by the pipeline from here on (closed by Close).
func NewPipeline(name string, cfg StreamConfig, open Opener, up, baseline sr.Upscaler, enhanced, original Sink, log *slog.Logger) *Pipeline {
	p := &Pipeline{Name: name, cfg: cfg, open: open, up: up, baseline: baseline,
		enhanced: enhanced, original: original, log: log.With("stream", name)}
	p.status = Status{Name: name, Source: capture.Redact(cfg.Source), State: StateStarting,
		Model: up.Name(), Scale: up.Scale()}
	return p
}

// Status returns the current snapshot.
func (p *Pipeline) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.status
	s.Viewers = p.enhanced.Viewers() + p.original.Viewers()
	return s
}

func (p *Pipeline) update(fn func(*Status)) {
	p.mu.Lock()
	fn(&p.status)
	p.mu.Unlock()
}

// Run captures and enhances until ctx ends. A failing source is reopened with
// backoff (1 s doubling to 1 min) while viewers stay connected.
func (p *Pipeline) Run(ctx context.Context) error {
	defer p.update(func(s *Status) { s.State = StateStopped })
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			p.update(func(s *Status) { s.State = StateReconnecting; s.Reconnects++ })
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
		}
		src, err := p.open(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.log.Warn("source unavailable", "source", capture.Redact(p.cfg.Source), "err", err, "retry_in", backoff)
			p.update(func(s *Status) { s.State = StateReconnecting; s.Error = err.Error() })
			continue
		}
		err = p.consume(ctx, src)
		src.Close()
		if ctx.Err() != nil {
			return nil
		}
		p.log.Warn("source lost", "err", err, "retry_in", backoff)
		p.update(func(s *Status) { s.Error = err.Error() })
		if errors.Is(err, errFramesFlowed) {
			backoff = time.Second
		}
	}
}

// errFramesFlowed wraps a source failure after frames had flowed, so backoff restarts small.
var errFramesFlowed = errors.New("after delivering frames")

func (p *Pipeline) consume(ctx context.Context, src capture.Source) error {
	info := src.Info()
	p.log.Info("source open", "size", fmt.Sprintf("%dx%d", info.Width, info.Height), "fps", info.FPS)
	var (
		delivered  bool
		minGap     time.Duration
		last       time.Time
		lastOrig   time.Time
		rate       rateMeter
		avgSR      ewma
		avgWait    ewma
		avgLatency ewma
	)
	if p.cfg.FPS > 0 {
		minGap = time.Duration(float64(time.Second) / p.cfg.FPS)
	}
	for {
		t0 := time.Now()
		f, err := src.Next(ctx)
		if err != nil {
			if delivered {
				return fmt.Errorf("%w: %w", errFramesFlowed, err)
			}
			return err
		}
		if !delivered {
			f.Reset = true // a new source: nothing cached from before may be reused
			delivered = true
		}
		if minGap > 0 && !last.IsZero() && f.Captured.Sub(last) < minGap {
			continue
		}
		last = f.Captured
		p.framesIn.Add(1)
		t1 := time.Now()
		out, err := p.up.Upscale(ctx, f)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A frame the model cannot take (e.g. a size change it rejects) is
			// logged and skipped; the stream keeps running.
			p.log.Error("upscale failed", "err", err, "seq", f.Seq)
			continue
		}
		t2 := time.Now()
		p.srHist.observe(ms(t2.Sub(t1)))
		p.enhanced.WriteFrame(out)
		// The original view costs a bicubic resize and an encode; do it for its
		// viewers, and about once a second otherwise so snapshots stay fresh.
		if p.original.Viewers() > 0 || t2.Sub(lastOrig) > time.Second {
			if o, err := p.baseline.Upscale(ctx, f); err == nil {
				p.original.WriteFrame(o)
				lastOrig = t2
			}
		}
		p.framesOut.Add(1)
		st := src.Stats()
		fps := rate.tick(t2)
		p.update(func(s *Status) {
			s.State = StateRunning
			s.Error = ""
			s.InWidth, s.InHeight = f.W, f.H
			s.OutWidth, s.OutHeight = out.W, out.H
			s.FPSIn, s.FPSOut = fps, fps
			s.SRMillis = avgSR.add(ms(t2.Sub(t1)))
			s.WaitMillis = avgWait.add(ms(t1.Sub(t0)))
			s.Latency = avgLatency.add(ms(t2.Sub(f.Captured)))
			s.Dropped = st.Dropped
		})
	}
}

// Close releases the upscalers.
func (p *Pipeline) Close() error {
	return errors.Join(p.up.Close(), p.baseline.Close())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ewma is an exponentially weighted moving average (alpha 0.1): steady in the UI, quick enough to follow load.
type ewma struct {
	v   float64
	set bool
}

func (e *ewma) add(x float64) float64 {
	if !e.set {
		e.v, e.set = x, true
	} else {
		e.v += 0.1 * (x - e.v)
	}
	return e.v
}

// rateMeter measures events per second over a sliding two-second window.
type rateMeter struct {
	times []time.Time
}

func (r *rateMeter) tick(now time.Time) float64 {
	r.times = append(r.times, now)
	cut := 0
	for cut < len(r.times) && now.Sub(r.times[cut]) > 2*time.Second {
		cut++
	}
	r.times = r.times[cut:]
	if len(r.times) < 2 {
		return 0
	}
	span := r.times[len(r.times)-1].Sub(r.times[0]).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(len(r.times)-1) / span
}
