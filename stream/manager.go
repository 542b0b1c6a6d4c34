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
//
// Every change of one stream (API PUT and DELETE, a config reload, a model
// swap, Close) holds that stream's name lock from the moment it looks at the
// stream until it is done, so changes of one name happen one after the other
// and at most one pipeline per name exists; changes of different names still
// run side by side (a model load is slow).
type Manager struct {
	log *slog.Logger

	mu      sync.RWMutex
	ctx     context.Context // set by Run; streams added before Run start then
	streams map[string]*managed
	closed  bool // Close ran: nothing is added any more
	// reloadErr is why the config file's settings of a stream could not be
	// applied at the last reload (the stream, if any, runs its old settings).
	reloadErr map[string]string
	wg        sync.WaitGroup

	namesMu   sync.Mutex
	nameLocks map[string]*nameLock
}

// nameLock serialises the changes of one stream name; refs counts its holders
// and waiters so that the entry goes once nobody needs it.
type nameLock struct {
	mu   sync.Mutex
	refs int
}

// lockName takes the change lock of a stream name and returns its release.
func (m *Manager) lockName(name string) (unlock func()) {
	m.namesMu.Lock()
	if m.nameLocks == nil {
		m.nameLocks = map[string]*nameLock{}
	}
	l := m.nameLocks[name]
	if l == nil {
		l = &nameLock{}
		m.nameLocks[name] = l
	}
	l.refs++
	m.namesMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.namesMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.nameLocks, name)
		}
		m.namesMu.Unlock()
	}
}

// errManagerClosed refuses changes after Close.
var errManagerClosed = errors.New("stream manager closed")

// managed is one stream: its config, its pipeline and broadcasters, and its
// Run loop: cancel is set while a loop should run (nil while stopped / idle)
// and done is closed once the last loop started has ended. Both under
// Manager.mu.
type managed struct {
	cfg                StreamConfig
	p                  *Pipeline
	enhanced, original *transport.Broadcaster
	cancel             context.CancelFunc
	done               chan struct{}
	idleSince          time.Time
	// modelPath is the model file running now and prevModel the one it
	// replaced (SwapModel / RollbackModel), each with its validation figures
	// (nil if swapped in without); written under the name lock and mu.
	modelPath, prevModel string
	modelVal, prevVal    *transport.ModelValidation
	// pairs collects adaptation pairs when the stream has a main source.
	pairs *collection
}

// NewManager loads every stream's model and prepares its pipeline; nothing runs
// until Run. A missing or broken model fails here, naming the file.
func NewManager(cfg Config, log *slog.Logger) (*Manager, error) {
	m := &Manager{log: log, streams: map[string]*managed{}, reloadErr: map[string]string{}}
	sr.SetThreadBudget(cfg.Threads)
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

// loadModel gives a stream its upscaler on the shared engine of its model
// file and provider: one ONNX Runtime session for every stream of that model,
// closed when the last of them goes.
func loadModel(name, path string, sc StreamConfig, log *slog.Logger) (*sr.ONNXUpscaler, error) {
	if sc.Threads > 0 {
		log.Warn("streams.NAME.threads is ignored: the top-level threads is the process's ONNX Runtime budget", "stream", name)
	}
	return sr.LoadShared(path, sr.ModelOptions{
		Provider: sc.Provider, Cache: sc.CacheEnabled(), Deadline: sc.Deadline, Logger: log.With("stream", name),
	})
}

func buildStream(name string, sc StreamConfig, log *slog.Logger) (*managed, error) {
	path, err := ModelPath(sc)
	if err != nil {
		return nil, err
	}
	up, err := loadModel(name, path, sc, log)
	if err != nil {
		return nil, err
	}
	if sc.Scale != 0 && up.Scale() != sc.Scale {
		up.Close()
		return nil, fmt.Errorf("model %s is x%d but the stream asks for scale %d", path, up.Scale(), sc.Scale)
	}
	if sc.Width > 0 && sc.Height > 0 {
		if err := checkOutput(name, sc, sc.Width, sc.Height, up.Scale()); err != nil {
			up.Close()
			return nil, err
		}
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

// startLocked starts a stream's Run loop if it is not running. Callers hold
// m.mu. A loop that was just stopped (idle reaping) may still be ending: the
// new one waits for it, so one pipeline never runs twice at once, and done
// stands for every loop started so far.
func (m *Manager) startLocked(ms *managed) {
	if ms.cancel != nil || m.ctx == nil || m.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	prev, done := ms.done, make(chan struct{})
	ms.cancel, ms.done, ms.idleSince = cancel, done, time.Time{}
	m.wg.Add(1)
	go func(p *Pipeline) {
		defer m.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		if ctx.Err() != nil {
			return
		}
		if err := p.Run(ctx); err != nil {
			m.log.Error("stream stopped", "stream", p.Name, "err", err)
		}
	}(ms.p)
}

// stopLocked cancels a stream's Run loop and returns a channel closed once it
// has ended (nil if it never ran). Callers hold m.mu and wait after releasing it.
func stopLocked(ms *managed) <-chan struct{} {
	if ms.cancel != nil {
		ms.cancel()
		ms.cancel = nil
	}
	return ms.done
}

// startPairsLocked starts collecting adaptation pairs for a stream with a
// main source (once the manager runs). Callers hold m.mu.
func (m *Manager) startPairsLocked(name string, ms *managed) {
	if ms.cfg.Main == "" || ms.pairs != nil || m.ctx == nil || m.ctx.Err() != nil {
		return
	}
	ms.pairs = startCollection(m.ctx, name, ms.cfg, ms.p.upscaler().Scale(), m.log)
}

// reapIdle stops on-demand streams that have had no viewer for their idle
// timeout. It only cancels (under mu): whoever removes the stream later waits
// for the loop through done, and a viewer's restart waits for it too.
func (m *Manager) reapIdle(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
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
			m.log.Info("on-demand stream idle, stopping", "stream", ms.p.Name)
			stopLocked(ms)
		}
	}
}

// Put adds a stream or replaces one whose settings changed; an unchanged
// stream is left alone (its viewers stay connected). The new stream's model is
// loaded before the old one is touched, so a bad config changes nothing.
func (m *Manager) Put(name string, sc StreamConfig) (changed bool, err error) {
	_, changed, err = m.put(name, sc)
	return changed, err
}

// put is Put that also says whether the name existed, decided under the
// name's lock (so of concurrent creations exactly one reports created).
func (m *Manager) put(name string, sc StreamConfig) (existed, changed bool, err error) {
	sc, err = ValidateStream(name, sc)
	if err != nil {
		return false, false, err
	}
	unlock := m.lockName(name)
	defer unlock()
	m.mu.RLock()
	old, closed := m.streams[name], m.closed
	m.mu.RUnlock()
	if closed {
		return false, false, fmt.Errorf("stream %q: %w", name, errManagerClosed)
	}
	if old != nil && reflect.DeepEqual(old.cfg, sc) {
		return true, false, nil
	}
	ms, err := buildStream(name, sc, m.log)
	if err != nil {
		return old != nil, false, fmt.Errorf("stream %q: %w", name, err)
	}
	if old != nil {
		m.remove(name, old)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		closeStream(ms, m.log)
		return false, false, fmt.Errorf("stream %q: %w", name, errManagerClosed)
	}
	m.streams[name] = ms
	delete(m.reloadErr, name)
	if !sc.OnDemand {
		m.startLocked(ms)
	}
	m.startPairsLocked(name, ms)
	m.mu.Unlock()
	m.log.Info("stream configured", "stream", name, "source", capture.Redact(sc.Source), "replaced", old != nil)
	return old != nil, true, nil
}

// Delete removes a stream, closing its viewers.
func (m *Manager) Delete(name string) error {
	unlock := m.lockName(name)
	defer unlock()
	m.mu.Lock()
	delete(m.reloadErr, name)
	ms := m.streams[name]
	m.mu.Unlock()
	if ms == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	m.remove(name, ms)
	m.log.Info("stream removed", "stream", name)
	return nil
}

// remove takes a stream out, waits for its Run loop and releases it. Callers
// hold the name's lock.
func (m *Manager) remove(name string, ms *managed) {
	m.mu.Lock()
	if m.streams[name] == ms {
		delete(m.streams, name)
	}
	done := stopLocked(ms)
	m.mu.Unlock()
	if done != nil {
		<-done
	}
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
//
// A stream that fails (most often its model does not load) keeps running its
// old settings, if it had any, and the error shows in List (config_error, or
// state error for a stream that could not be added) and so in /healthz, until
// a later change of that stream succeeds.
func (m *Manager) Apply(cfg Config) error {
	var errs []error
	m.mu.Lock()
	for name := range m.reloadErr {
		if _, ok := cfg.Streams[name]; !ok {
			delete(m.reloadErr, name)
		}
	}
	m.mu.Unlock()
	for _, name := range m.names() {
		if _, ok := cfg.Streams[name]; !ok {
			// Gone meanwhile (an API DELETE) is what the file asks for too.
			if err := m.Delete(name); err != nil && !errors.Is(err, ErrNotFound) {
				errs = append(errs, err)
			}
		}
	}
	names := make([]string, 0, len(cfg.Streams))
	for n := range cfg.Streams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		_, err := m.Put(n, cfg.Streams[n])
		m.mu.Lock()
		if err != nil {
			errs = append(errs, err)
			m.reloadErr[n] = err.Error()
		} else {
			delete(m.reloadErr, n)
		}
		m.mu.Unlock()
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
	unlock := m.lockName(name)
	defer unlock()
	return m.swapNameLocked(name, path, v)
}

// swapNameLocked is SwapModel for a caller that holds the name's lock.
func (m *Manager) swapNameLocked(name, path string, v *transport.ModelValidation) (previous string, err error) {
	m.mu.RLock()
	ms := m.streams[name]
	m.mu.RUnlock()
	if ms == nil {
		return "", fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	sc := ms.cfg
	up, err := loadModel(name, path, sc, m.log)
	if err != nil {
		return "", fmt.Errorf("stream %q: swap model: %w", name, err)
	}
	if cur := ms.p.upscaler().Scale(); up.Scale() != cur {
		up.Close()
		return "", fmt.Errorf("stream %q: swap model: %s is x%d but the stream runs x%d", name, path, up.Scale(), cur)
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
	unlock := m.lockName(name)
	defer unlock()
	m.mu.RLock()
	ms := m.streams[name]
	var (
		prev    string
		prevVal *transport.ModelValidation
	)
	if ms != nil {
		prev, prevVal = ms.prevModel, ms.prevVal
	}
	m.mu.RUnlock()
	if ms == nil {
		return "", fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if prev == "" {
		return "", fmt.Errorf("stream %q: no previous model to roll back to", name)
	}
	if _, err := m.swapNameLocked(name, prev, prevVal); err != nil {
		return "", fmt.Errorf("rollback: %w", err)
	}
	return prev, nil
}

// ModelPaths returns the model file a stream runs and the one it replaced ("" if none).
func (m *Manager) ModelPaths(name string) (current, previous string, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ms := m.streams[name]
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
	m.closed = true
	all := m.streams
	m.streams = map[string]*managed{}
	dones := map[string]<-chan struct{}{}
	for name, ms := range all {
		dones[name] = stopLocked(ms)
	}
	m.mu.Unlock()
	for name, ms := range all {
		// A swap in progress finishes first (it hands its model to the pipeline).
		unlock := m.lockName(name)
		if done := dones[name]; done != nil {
			<-done
		}
		closeStream(ms, m.log)
		unlock()
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
		out[i].ConfigError = m.reloadErr[s.Name]
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
	// A stream the config file adds but that could not be built is not
	// running; it is listed so that /api/streams and /healthz show why.
	var failed []string
	for n := range m.reloadErr {
		if _, ok := m.streams[n]; !ok {
			failed = append(failed, n)
		}
	}
	sort.Strings(failed)
	for _, n := range failed {
		out = append(out, transport.StreamStatus{Name: n, State: transport.StateError, Error: m.reloadErr[n], ConfigError: m.reloadErr[n]})
	}
	return out
}

// Has reports whether a stream is configured (transport: an unknown stream's
// WHEP offer is a 404 whatever the offer holds), without starting it.
func (m *Manager) Has(name string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.streams[name]
	return ok
}
