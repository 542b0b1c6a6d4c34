package stream

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/transport"
)

// Variants every stream is served in: the DAN output and the bicubic baseline at the same size.
const (
	VariantEnhanced = transport.VariantEnhanced
	VariantOriginal = transport.VariantOriginal
)

// Manager owns every configured stream. It implements transport.Catalog.
type Manager struct {
	log     *slog.Logger
	mu      sync.RWMutex
	streams map[string]*managed
	order   []string
}

type managed struct {
	p                  *Pipeline
	enhanced, original *transport.Broadcaster
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
		m.order = append(m.order, name)
	}
	sort.Strings(m.order)
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
		enhanced: transport.NewBroadcaster(name, VariantEnhanced, enc),
		original: transport.NewBroadcaster(name, VariantOriginal, enc),
	}
	opts := capture.Options{Width: sc.Width, Height: sc.Height, FPS: sc.FPS, Loop: sc.Loop, Logger: log.With("stream", name)}
	open := func(ctx context.Context) (capture.Source, error) { return capture.Open(ctx, sc.Source, opts) }
	ms.p = NewPipeline(name, sc, open, up, baseline, ms.enhanced, ms.original, log)
	return ms, nil
}

// Run runs every pipeline until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	m.mu.RLock()
	for _, ms := range m.streams {
		g.Go(func() error { return ms.p.Run(ctx) })
	}
	m.mu.RUnlock()
	return g.Wait()
}

// Close releases encoders, viewers and ORT sessions.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ms := range m.streams {
		if ms.enhanced != nil {
			ms.enhanced.Close()
			ms.original.Close()
		}
		if ms.p != nil {
			if err := ms.p.Close(); err != nil {
				m.log.Warn("close", "stream", ms.p.Name, "err", err)
			}
		}
	}
}

// Statuses lists every stream in name order.
func (m *Manager) Statuses() []Status {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Status, 0, len(m.order))
	for _, n := range m.order {
		out = append(out, m.streams[n].p.Status())
	}
	return out
}

// Broadcaster returns the fan-out point of a stream variant.
func (m *Manager) Broadcaster(name, variant string) (*transport.Broadcaster, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ms, ok := m.streams[name]
	if !ok {
		return nil, false
	}
	switch variant {
	case "", VariantEnhanced:
		return ms.enhanced, true
	case VariantOriginal:
		return ms.original, true
	}
	return nil, false
}

// List implements transport.Catalog.
func (m *Manager) List() []transport.StreamStatus {
	sts := m.Statuses()
	out := make([]transport.StreamStatus, len(sts))
	for i, s := range sts {
		out[i] = transport.StreamStatus{
			Name: s.Name, Source: s.Source, State: string(s.State), Error: s.Error,
			InputWidth: s.InWidth, InputHeight: s.InHeight, OutputWidth: s.OutWidth, OutputHeight: s.OutHeight,
			Scale: s.Scale, Model: s.Model, FPSIn: s.FPSIn, FPSOut: s.FPSOut, SRMillis: s.SRMillis,
			LatencyMs: s.Latency, Viewers: s.Viewers,
		}
		if b, ok := m.Broadcaster(s.Name, VariantEnhanced); ok {
			out[i].Delivery = append(out[i].Delivery, b.Stats())
		}
		if b, ok := m.Broadcaster(s.Name, VariantOriginal); ok {
			out[i].Delivery = append(out[i].Delivery, b.Stats())
		}
	}
	return out
}
