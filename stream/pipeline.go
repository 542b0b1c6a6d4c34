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
	StateIdle         State = "idle"  // on-demand stream with no viewers: healthy, not capturing
	StateError        State = "error" // frames arrive but cannot be served (e.g. above max_output)
)

// Pipeline is one stream: its source, its upscalers and its sinks.
type Pipeline struct {
	Name     string
	cfg      StreamConfig
	open     Opener
	up       sr.Upscaler // the DAN model; replaced only under mu (SwapUpscaler)
	baseline sr.Upscaler // bicubic, for the "original" view at the same output size
	enhanced Sink
	original Sink
	log      *slog.Logger

	mu     sync.Mutex
	status Status
	src    capture.Source // the open source, nil between sources (under mu)
	// pending is the model SwapUpscaler handed over while the consume loop
	// runs; the loop installs it between two frames (under mu).
	pending sr.Upscaler
	lastIn  frame.Frame // the last frame given to the model (read-only), for warming a swap

	// writeMu serialises writes to the sinks (the Run loop and the
	// placeholder ticker); lastEnh/lastOrig are the last real frames.
	writeMu           sync.Mutex
	lastEnh, lastOrig frame.Frame
	lastFrameAt       atomic.Int64 // unix ns of the last real frame, 0 before the first

	retiring sync.WaitGroup // old models being closed after a swap

	framesIn, framesOut atomic.Uint64
	srHist              histogram

	closed atomic.Bool
}

// Process-wide pipeline accounting: pipelines built and not yet closed, and
// the Run loops going per stream name. The manager must never run two
// pipelines of one name at once (they would share the name's encoders,
// relay path and camera); a second one is logged and counted in overlaps so
// that a test sees it.
var (
	livePipelines atomic.Int64
	runningMu     sync.Mutex
	runningByName = map[string]int{}
	overlaps      atomic.Int64
)

func (p *Pipeline) enterRun() {
	runningMu.Lock()
	runningByName[p.Name]++
	n := runningByName[p.Name]
	runningMu.Unlock()
	if n > 1 {
		overlaps.Add(1)
		p.log.Error("two pipelines of one stream running at once", "running", n)
	}
}

func (p *Pipeline) leaveRun() {
	runningMu.Lock()
	if runningByName[p.Name]--; runningByName[p.Name] <= 0 {
		delete(runningByName, p.Name)
	}
	runningMu.Unlock()
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
	livePipelines.Add(1)
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
//
// While no frame arrives (reconnecting, or a stalled camera) the last good
// frame, dimmed and labelled, is repeated about once a second; a source with
// no frame for the watchdog time (default 20 s) is closed and reopened.
func (p *Pipeline) Run(ctx context.Context) error {
	p.enterRun()
	defer p.leaveRun()
	defer p.update(func(s *Status) { s.State = StateStopped })
	if p.lastFrameAt.Load() != 0 {
		// A restart (on-demand, replaced source): count the outage from now.
		p.lastFrameAt.Store(time.Now().UnixNano())
	}
	phCtx, stopPH := context.WithCancel(ctx)
	phDone := make(chan struct{})
	go func() { defer close(phDone); p.placeholderLoop(phCtx) }()
	defer func() { stopPH(); <-phDone }()
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
		p.mu.Lock()
		p.src = src
		p.mu.Unlock()
		err = p.consume(ctx, src)
		p.mu.Lock()
		p.src = nil
		p.mu.Unlock()
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

// watchdog is how long a source may go without a frame before it is restarted.
func (p *Pipeline) watchdog() time.Duration {
	if p.cfg.Watchdog > 0 {
		return p.cfg.Watchdog
	}
	return 20 * time.Second
}

// stallAfter is how long without a frame counts as an outage (placeholder, "reconnecting").
func (p *Pipeline) stallAfter() time.Duration {
	d := 2 * time.Second
	if p.cfg.FPS > 0 {
		d = max(d, time.Duration(3/p.cfg.FPS*float64(time.Second)))
	}
	return min(d, p.watchdog())
}

// placeholderLoop shows viewers the outage: once a second while no frame
// arrives, it writes the dimmed last frame with a banner and marks the stream
// reconnecting. It does nothing before the first frame (nothing to show).
func (p *Pipeline) placeholderLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			last := p.lastFrameAt.Load()
			if last == 0 {
				continue
			}
			down := now.Sub(time.Unix(0, last))
			if down < p.stallAfter() {
				continue
			}
			p.update(func(s *Status) {
				if s.State != StateError { // refused frames (max_output) say more
					s.State = StateReconnecting
				}
				s.FPSIn, s.FPSOut = 0, 0
				if p.src != nil && s.Error == "" {
					s.Error = p.src.Stats().LastError
				}
			})
			p.writeMu.Lock()
			if p.lastFrameAt.Load() == last { // no real frame slipped in meanwhile
				if !p.lastEnh.Empty() {
					p.enhanced.WriteFrame(placeholder(p.lastEnh, down, now))
				}
				if !p.lastOrig.Empty() {
					p.original.WriteFrame(placeholder(p.lastOrig, down, now))
				}
			}
			p.writeMu.Unlock()
		}
	}
}

func (p *Pipeline) consume(ctx context.Context, src capture.Source) error {
	info := src.Info()
	p.log.Info("source open", "size", fmt.Sprintf("%dx%d", info.Width, info.Height), "fps", info.FPS)
	var (
		delivered  bool
		tooBig     bool // frames are being refused (logged once)
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
	// Live sources reconnect inside capture; count those too (a looping
	// file's re-opens are not outages).
	countSrcReconnects := info.Kind != "file"
	var srcReconnects uint64
	wd := p.watchdog()
	for {
		t0 := time.Now()
		nctx, cancel := context.WithTimeout(ctx, wd)
		f, err := src.Next(nctx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("watchdog: no frame for %s, restarting the source", wd)
		}
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
		// A frame whose output would pass the ceiling is refused before any
		// work: its SR, blending and encoding would take the server's memory.
		if err := checkOutput(p.Name, p.cfg, f.W, f.H, p.up.Scale()); err != nil {
			if !tooBig {
				p.log.Error("frames refused", "err", err)
				tooBig = true
			}
			p.update(func(s *Status) { s.State, s.Error, s.InWidth, s.InHeight = StateError, err.Error(), f.W, f.H })
			continue
		}
		tooBig = false
		p.framesIn.Add(1)
		retired := p.installPending()
		t1 := time.Now()
		out, err := p.up.Upscale(ctx, f)
		if retired != nil {
			p.retire(retired) // after the new model's first frame, off the frame path
		}
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
		p.writeMu.Lock()
		p.enhanced.WriteFrame(out)
		p.lastEnh = out
		p.lastFrameAt.Store(t2.UnixNano())
		p.writeMu.Unlock()
		// The original view costs a bicubic resize and an encode; do it for its
		// viewers, and about once a second otherwise so snapshots stay fresh.
		if p.original.Viewers() > 0 || t2.Sub(lastOrig) > time.Second {
			if o, err := p.baseline.Upscale(ctx, f); err == nil {
				p.writeMu.Lock()
				p.original.WriteFrame(o)
				p.lastOrig = o
				p.writeMu.Unlock()
				lastOrig = t2
			}
		}
		p.framesOut.Add(1)
		st := src.Stats()
		var newRec uint64
		if countSrcReconnects && st.Reconnects > srcReconnects {
			newRec, srcReconnects = st.Reconnects-srcReconnects, st.Reconnects
		}
		fps := rate.tick(t2)
		p.update(func(s *Status) {
			p.lastIn = f
			s.State = StateRunning
			s.Error = ""
			s.InWidth, s.InHeight = f.W, f.H
			s.OutWidth, s.OutHeight = out.W, out.H
			s.FPSIn, s.FPSOut = fps, fps
			s.SRMillis = avgSR.add(ms(t2.Sub(t1)))
			s.WaitMillis = avgWait.add(ms(t1.Sub(t0)))
			s.Latency = avgLatency.add(ms(t2.Sub(f.Captured)))
			s.Dropped = st.Dropped
			s.Reconnects += newRec
		})
	}
}

// SwapUpscaler replaces the model between two frames: the running loop
// installs next before its next Upscale and closes the old model after that
// frame, so viewers see no gap. A pipeline that is not consuming (idle,
// reconnecting, stopped) switches at once. next must have the same scale
// (the output size and the encoders depend on it); the pipeline owns it from
// here on, also when an error is returned.
//
// Before the hand-over the stream's latest frame runs through next on the
// caller's goroutine: a model that cannot take the stream's frames fails
// here, and its tile cache starts full, so the first live frame after the
// swap costs what a cached frame costs instead of a whole-frame inference.
func (p *Pipeline) SwapUpscaler(next sr.Upscaler) error {
	if cur := p.upscaler().Scale(); next.Scale() != cur {
		next.Close()
		return fmt.Errorf("stream %q: model %s is x%d, the stream runs x%d", p.Name, next.Name(), next.Scale(), cur)
	}
	if f, ok := p.LastInput(); ok {
		f.Reset = true
		if _, err := next.Upscale(context.Background(), f); err != nil {
			next.Close()
			return fmt.Errorf("stream %q: model %s cannot enhance the stream's %dx%d frames: %w", p.Name, next.Name(), f.W, f.H, err)
		}
	}
	p.mu.Lock()
	if p.closed.Load() { // Close has taken the models already
		p.mu.Unlock()
		next.Close()
		return fmt.Errorf("stream %q: closed", p.Name)
	}
	old := p.pending // a swap that was not picked up yet is superseded
	p.pending = next
	var retired sr.Upscaler
	if p.src == nil {
		retired = p.installPendingLocked()
	}
	p.mu.Unlock()
	if old != nil {
		p.retire(old)
	}
	if retired != nil {
		p.retire(retired)
	}
	return nil
}

// installPending puts a pending model in place and returns the one it
// replaced (nil when none was pending). Called by the consume loop.
func (p *Pipeline) installPending() sr.Upscaler {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.installPendingLocked()
}

func (p *Pipeline) installPendingLocked() sr.Upscaler {
	if p.pending == nil {
		return nil
	}
	old := p.up
	p.up, p.pending = p.pending, nil
	p.status.Model = p.up.Name()
	p.log.Info("model swapped", "from", old.Name(), "to", p.up.Name())
	return old
}

// LastInput returns the last frame the model enhanced (ok false before the
// first). Frames are never modified after capture, so it may be read freely.
func (p *Pipeline) LastInput() (frame.Frame, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastIn, !p.lastIn.Empty()
}

// upscaler returns the model in use (for metrics, from other goroutines).
func (p *Pipeline) upscaler() sr.Upscaler {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up
}

// retire closes a replaced model on its own goroutine; Close waits for it.
func (p *Pipeline) retire(u sr.Upscaler) {
	p.retiring.Add(1)
	go func() {
		defer p.retiring.Done()
		if err := u.Close(); err != nil {
			p.log.Warn("closing the replaced model", "model", u.Name(), "err", err)
		}
	}()
}

// Close releases the upscalers (a pending swap's too).
func (p *Pipeline) Close() error {
	if !p.closed.Swap(true) {
		livePipelines.Add(-1)
	}
	p.mu.Lock()
	up, pending := p.up, p.pending
	p.pending = nil
	p.mu.Unlock()
	errs := []error{up.Close(), p.baseline.Close()}
	if pending != nil {
		errs = append(errs, pending.Close())
	}
	p.retiring.Wait()
	return errors.Join(errs...)
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
