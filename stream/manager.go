package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/transport"
)

// Variants every stream is served in: the DAN output and the bicubic baseline at the same size.
const (
	VariantEnhanced = transport.VariantEnhanced
	VariantOriginal = transport.VariantOriginal
)

// ErrNotFound is returned for a stream name that is not configured (it wraps
// transport.ErrNotFound, so the API answers 404).
var ErrNotFound = fmt.Errorf("stream %w", transport.ErrNotFound)

// Manager owns every stream. It implements transport.Catalog and the runtime
// API (Put/Delete/Apply): a stream added, changed or removed leaves every other
// stream and its viewers untouched.
type Manager struct {
	log *slog.Logger

	mu      sync.RWMutex
	ctx     context.Context // set by Run; streams added before Run start then
	streams map[string]*managed
	wg      sync.WaitGroup
	swapMu  sync.Mutex // one model swap at a time (they load a model: slow)
}

// managed is one stream: its config, its pipeline and broadcasters, and the
// cancel of its running Run loop (nil while stopped / idle).
type managed struct {
	cfg                StreamConfig
	p                  *Pipeline
	enhanced, original *transport.Broadcaster
	cancel             context.CancelFunc
	done               chan struct{}
	idleSince          time.Time
	// modelPath is the model file running now and prevModel the one it
	// replaced (SwapModel / RollbackModel), each with its validation figures
	// (nil if swapped in without); under Manager.swapMu, read under mu.
	modelPath, prevModel string
	modelVal, prevVal    *transport.ModelValidation
	// pairs collects adaptation pairs when the stream has a main source.
	pairs *collection
}

// NewManager loads every stream's model and prepares its pipeline; nothing runs
// until Run. A missing or broken model fails here, naming the file.
func NewManager(cfg Config, log *slog.Logger) (*Manager, error) {
	m := &Manager{log: log, streams: map[string]*managed{}}
	for name, sc := range cfg.Streams {
		ms, err := buildStream(name, sc, log)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("stream %q: %w", name, err)
		}
		m.streams[name] = ms
	}
	return m, nil
}

func buildStream(name string, sc StreamConfig, log *slog.Logger) (*managed, error) {
	path := sc.Model
	if path == "" {
		p, err := sr.DefaultModelPath(sc.Scale)
		if err != nil {
			return nil, err
		}
		path = p
	}
	up, err := sr.LoadModel(path, sr.ModelOptions{
		Provider: sc.Provider, Threads: sc.Threads, Cache: sc.CacheEnabled(), Logger: log.With("stream", name),
	})
	if err != nil {
		return nil, err
	}
	if sc.Scale != 0 && up.Scale() != sc.Scale {
		up.Close()
		return nil, fmt.Errorf("model %s is x%d but the stream asks for scale %d", path, up.Scale(), sc.Scale)
	}
	baseline := sr.NewBicubic(up.Scale())
	fps := sc.FPS
	if fps <= 0 {
		fps = 15
	}
	enc := transport.EncoderOptions{BitrateKbps: sc.Bitrate, KeyframeInterval: max(1, int(sc.Keyframe.Seconds()*fps))}
	ms := &managed{
		cfg:       sc,
		modelPath: path,
		enhanced:  transport.NewBroadcaster(name, VariantEnhanced, enc),
		original:  transport.NewBroadcaster(name, VariantOriginal, enc),
	}
	opts := capture.Options{Width: sc.Width, Height: sc.Height, FPS: sc.FPS, Loop: sc.Loop, Logger: log.With("stream", name)}
	open := func(ctx context.Context) (capture.Source, error) { return capture.Open(ctx, sc.Source, opts) }
	ms.p = NewPipeline(name, sc, open, up, baseline, ms.enhanced, ms.original, log)
	return ms, nil
}

// Run starts the always-on streams, stops idle on-demand ones, and returns
// when ctx ends and every pipeline has stopped.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	for name, ms := range m.streams {
		if !ms.cfg.OnDemand {
			m.startLocked(ms)
		}
		m.startPairsLocked(name, ms)
	}
	m.mu.Unlock()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.wg.Wait()
			return nil
		case now := <-tick.C:
			m.reapIdle(now)
		}
	}
}

// startLocked starts a stream's Run loop if it is not running. Callers hold m.mu.
func (m *Manager) startLocked(ms *managed) {
	if ms.cancel != nil || m.ctx == nil || m.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	ms.cancel, ms.done, ms.idleSince = cancel, make(chan struct{}), time.Time{}
	m.wg.Add(1)
	go func(p *Pipeline, done chan struct{}) {
		defer m.wg.Done()
		defer close(done)
		if err := p.Run(ctx); err != nil {
			m.log.Error("stream stopped", "stream", p.Name, "err", err)
		}
	}(ms.p, ms.done)
}

// startPairsLocked starts collecting adaptation pairs for a stream with a
// main source (once the manager runs). Callers hold m.mu.
func (m *Manager) startPairsLocked(name string, ms *managed) {
	if ms.cfg.Main == "" || ms.pairs != nil || m.ctx == nil || m.ctx.Err() != nil {
		return
	}
	ms.pairs = startCollection(m.ctx, name, ms.cfg, ms.p.upscaler().Scale(), m.log)
}

// stop cancels a stream's Run loop and waits for it. Callers must not hold m.mu.
func stop(ms *managed) {
	if ms.cancel != nil {
		ms.cancel()
		<-ms.done
		ms.cancel = nil
	}
}

// reapIdle stops on-demand streams that have had no viewer for their idle timeout.
func (m *Manager) reapIdle(now time.Time) {
	var idle []*managed
	m.mu.Lock()
	for _, ms := range m.streams {
		if !ms.cfg.OnDemand || ms.cancel == nil {
			continue
		}
		if ms.enhanced.Viewers()+ms.original.Viewers() > 0 {
			ms.idleSince = time.Time{}
			continue
		}
		if ms.idleSince.IsZero() {
			ms.idleSince = now
		} else if now.Sub(ms.idleSince) >= ms.cfg.IdleTimeout {
			idle = append(idle, ms)
		}
	}
	m.mu.Unlock()
	for _, ms := range idle {
		m.log.Info("on-demand stream idle, stopping", "stream", ms.p.Name)
		m.mu.Lock()
		cancel, done := ms.cancel, ms.done
		ms.cancel = nil
		m.mu.Unlock()
		if cancel != nil {
			cancel()
			<-done
		}
	}
}

// Put adds a stream or replaces one whose settings changed; an unchanged
// stream is left alone (its viewers stay connected). The new stream's model is
// loaded before the old one is touched, so a bad config changes nothing.
func (m *Manager) Put(name string, sc StreamConfig) (changed bool, err error) {
	sc, err = ValidateStream(name, sc)
	if err != nil {
		return false, err
	}
	m.mu.RLock()
	old := m.streams[name]
	m.mu.RUnlock()
	if old != nil && reflect.DeepEqual(old.cfg, sc) {
		return false, nil
	}
	ms, err := buildStream(name, sc, m.log)
	if err != nil {
		return false, fmt.Errorf("stream %q: %w", name, err)
	}
	if old != nil {
		m.remove(name, old)
	}
	m.mu.Lock()
	m.streams[name] = ms
	if !sc.OnDemand {
		m.startLocked(ms)
	}
	m.startPairsLocked(name, ms)
	m.mu.Unlock()
	m.log.Info("stream configured", "stream", name, "source", capture.Redact(sc.Source), "replaced", old != nil)
	return true, nil
}

// Delete removes a stream, closing its viewers.
func (m *Manager) Delete(name string) error {
	m.mu.RLock()
	ms := m.streams[name]
	m.mu.RUnlock()
	if ms == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	m.remove(name, ms)
	m.log.Info("stream removed", "stream", name)
	return nil
}

func (m *Manager) remove(name string, ms *managed) {
	m.mu.Lock()
	if m.streams[name] == ms {
		delete(m.streams, name)
	}
	m.mu.Unlock()
	stop(ms)
	closeStream(ms, m.log)
}

func closeStream(ms *managed, log *slog.Logger) {
	if ms.pairs != nil {
		ms.pairs.stop()
	}
	ms.enhanced.Close()
	ms.original.Close()
	if err := ms.p.Close(); err != nil {
		log.Warn("close", "stream", ms.p.Name, "err", err)
	}
}

// Apply makes the running set match cfg (hot reload): streams that are gone are
// removed, new and changed ones are (re)built, unchanged ones are untouched.
// Every stream is tried; the errors of those that failed are returned together.
func (m *Manager) Apply(cfg Config) error {
	var errs []error
	for _, name := range m.names() {
		if _, ok := cfg.Streams[name]; !ok {
			errs = append(errs, m.Delete(name))
		}
	}
	names := make([]string, 0, len(cfg.Streams))
	for n := range cfg.Streams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := m.Put(n, cfg.Streams[n]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SwapModel loads the model at path beside the one a stream runs (its ORT
// session is created and warmed up first), checks the scale matches, and
// switches the stream to it between two frames; viewers stay connected. A
// model that fails to load or has another scale changes nothing. The model it
// replaced is kept for RollbackModel. The stream's configuration is not
// changed, so a config reload that leaves the stream alone keeps the swapped
// model; one that changes the stream rebuilds it from its configured model.
func (m *Manager) SwapModel(name, path string, v *transport.ModelValidation) (previous string, err error) {
	m.swapMu.Lock()
	defer m.swapMu.Unlock()
	m.mu.RLock()
	ms := m.streams[name]
	m.mu.RUnlock()
	if ms == nil {
		return "", fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	sc := ms.cfg
	up, err := sr.LoadModel(path, sr.ModelOptions{
		Provider: sc.Provider, Threads: sc.Threads, Cache: sc.CacheEnabled(), Logger: m.log.With("stream", name),
	})
	if err != nil {
		return "", fmt.Errorf("stream %q: swap model: %w", name, err)
	}
	if cur := ms.p.upscaler().Scale(); up.Scale() != cur {
		up.Close()
		return "", fmt.Errorf("stream %q: swap model: %s is x%d but the stream runs x%d", name, path, up.Scale(), cur)
	}
	m.mu.RLock()
	still := m.streams[name] == ms
	m.mu.RUnlock()
	if !still { // replaced or removed while the model loaded
		up.Close()
		return "", fmt.Errorf("stream %q: swap model: the stream was reconfigured meanwhile", name)
	}
	if err := ms.p.SwapUpscaler(up); err != nil {
		return "", err
	}
	previous = ms.modelPath
	m.mu.Lock()
	ms.prevModel, ms.modelPath = previous, path
	ms.prevVal, ms.modelVal = ms.modelVal, v
	m.mu.Unlock()
	m.log.Info("model swap", "stream", name, "model", path, "previous", previous)
	return previous, nil
}

// RollbackModel switches a stream back to the model it ran before the last
// SwapModel (a second rollback swaps forward again).
func (m *Manager) RollbackModel(name string) (restored string, err error) {
	m.swapMu.Lock()
	m.mu.RLock()
	ms := m.streams[name]
	m.mu.RUnlock()
	var (
		prev    string
		prevVal *transport.ModelValidation
	)
	if ms != nil {
		prev, prevVal = ms.prevModel, ms.prevVal
	}
	m.swapMu.Unlock()
	if ms == nil {
		return "", fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if prev == "" {
		return "", fmt.Errorf("stream %q: no previous model to roll back to", name)
	}
	if _, err := m.SwapModel(name, prev, prevVal); err != nil {
		return "", fmt.Errorf("rollback: %w", err)
	}
	return prev, nil
}

// ModelPaths returns the model file a stream runs and the one it replaced ("" if none).
func (m *Manager) ModelPaths(name string) (current, previous string, ok bool) {
	m.swapMu.Lock()
	defer m.swapMu.Unlock()
	m.mu.RLock()
	ms := m.streams[name]
	m.mu.RUnlock()
	if ms == nil {
		return "", "", false
	}
	return ms.modelPath, ms.prevModel, true
}

// Config returns a stream's effective settings.
func (m *Manager) Config(name string) (StreamConfig, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ms, ok := m.streams[name]
	if !ok {
		return StreamConfig{}, false
	}
	return ms.cfg, true
}

func (m *Manager) names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.streams))
	for n := range m.streams {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Close stops every stream and releases encoders, viewers and ORT sessions.
func (m *Manager) Close() {
	m.mu.Lock()
	all := m.streams
	m.streams = map[string]*managed{}
	m.mu.Unlock()
	for _, ms := range all {
		stop(ms)
		closeStream(ms, m.log)
	}
}

// Statuses lists every stream in name order.
func (m *Manager) Statuses() []Status {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Status, 0, len(m.streams))
	for _, n := range m.namesLocked() {
		ms := m.streams[n]
		st := ms.p.Status()
		if ms.cfg.OnDemand && ms.cancel == nil {
			st.State = StateIdle
		}
		out = append(out, st)
	}
	return out
}

func (m *Manager) namesLocked() []string {
	out := make([]string, 0, len(m.streams))
	for n := range m.streams {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Broadcaster returns the fan-out point of a stream variant. For an on-demand
// stream this is the demand signal: it starts the pipeline.
func (m *Manager) Broadcaster(name, variant string) (*transport.Broadcaster, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, ok := m.streams[name]
	if !ok {
		return nil, false
	}
	var b *transport.Broadcaster
	switch variant {
	case "", VariantEnhanced:
		b = ms.enhanced
	case VariantOriginal:
		b = ms.original
	default:
		return nil, false
	}
	if ms.cfg.OnDemand {
		m.startLocked(ms)
		ms.idleSince = time.Time{}
	}
	return b, true
}

// List implements transport.Catalog.
func (m *Manager) List() []transport.StreamStatus {
	sts := m.Statuses()
	out := make([]transport.StreamStatus, len(sts))
	m.mu.RLock()
	defer m.mu.RUnlock()
	for i, s := range sts {
		out[i] = transport.StreamStatus{
			Name: s.Name, Source: s.Source, State: string(s.State), Error: s.Error,
			InputWidth: s.InWidth, InputHeight: s.InHeight, OutputWidth: s.OutWidth, OutputHeight: s.OutHeight,
			Scale: s.Scale, Model: s.Model, FPSIn: s.FPSIn, FPSOut: s.FPSOut, SRMillis: s.SRMillis,
			LatencyMs: s.Latency, Viewers: s.Viewers, Reconnects: s.Reconnects,
		}
		if ms, ok := m.streams[s.Name]; ok {
			out[i].ModelPath, out[i].ModelValidation = ms.modelPath, ms.modelVal
			if ms.pairs != nil {
				ps := ms.pairs.status()
				out[i].Pairs = &ps
			}
			out[i].Delivery = []transport.BroadcastStats{ms.enhanced.Stats(), ms.original.Stats()}
			if src, ok := ms.p.upscaler().(sr.MetricsSource); ok {
				srm := src.Metrics()
				out[i].CacheHitRate, out[i].TilesInferredPerFrame = srm.HitRate(), srm.TilesInferredPerFrame()
			}
		}
	}
	return out
}
