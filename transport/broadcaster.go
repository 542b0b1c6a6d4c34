// Package transport delivers produced frames to viewers: it encodes each
// frame once per codec in use (Broadcaster) and fans the same compressed
// samples out to every viewer through a bounded per-viewer queue, serves WHEP
// (WebRTC-HTTP Egress Protocol) sessions, the HTTP API and the player pages.
package transport

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/danstream/danstream/frame"
)

// Variants of a stream that a Broadcaster can carry.
const (
	VariantEnhanced = "enhanced"
	VariantOriginal = "original" // bicubic baseline at the same output size
)

// ErrClosed is returned by Subscribe on a closed Broadcaster.
var ErrClosed = errors.New("transport: broadcaster closed")

// Sample is one encoded video frame, shared read-only by all viewers of a codec.
type Sample struct {
	Data     []byte
	Keyframe bool
	Codec    string
	Seq      uint64    // the source frame's sequence number
	Captured time.Time // the source frame's capture time (glass-to-glass latency starts here)
	Encoded  time.Time // when encoding finished
	W, H     int
}

// Media converts s to a pion sample whose duration is the gap since the
// previous sample the viewer sent (prev zero: one 25 fps frame).
func (s Sample) Media(prev time.Time) media.Sample {
	d := 40 * time.Millisecond
	if !prev.IsZero() && s.Captured.After(prev) {
		d = s.Captured.Sub(prev)
	}
	return media.Sample{Data: s.Data, Duration: d, Timestamp: s.Captured}
}

// Broadcaster encodes one (stream, variant) once per codec that has
// viewers and fans the samples out. WriteFrame is called by the pipeline;
// everything else may be called from any goroutine.
type Broadcaster struct {
	name, variant string
	opts          EncoderOptions
	log           *slog.Logger

	latest atomic.Pointer[frame.Frame]

	encMu sync.Mutex // serialises encoding and encoder lifecycle (C objects)
	yuv   *image.YCbCr
	encs  map[string]*encState // written under encMu and mu; read under either

	mu      sync.Mutex // guards subs, closed, counters below
	subs    map[string]map[*Subscription]struct{}
	closed  bool
	gone    uint64 // drops of subscriptions already closed
	framesN uint64
	convNs  int64
	// Pace of WriteFrame by capture time: a new H.264 encoder starts at the
	// rate the stream keeps.
	pace paceMeter
}

// encState is one live encoder and its counters.
type encState struct {
	enc        videoEncoder
	w, h       int
	kfPending  atomic.Bool
	lastForced time.Time
	stats      EncoderStats
}

// EncoderStats describes one codec's encoder of a Broadcaster.
type EncoderStats struct {
	Codec      string  `json:"codec"`
	Width      int     `json:"width"`
	Height     int     `json:"height"`
	Frames     uint64  `json:"frames"`      // frames encoded by this codec since the Broadcaster started
	Keyframes  uint64  `json:"keyframes"`   // of which keyframes
	Forced     uint64  `json:"forced"`      // keyframes forced by viewers (join, PLI, resync)
	Bytes      uint64  `json:"bytes"`       // compressed bytes produced
	Errors     uint64  `json:"errors"`      // failed encodes
	Restarts   uint64  `json:"restarts"`    // encoder (re)creations, e.g. on a size change
	LastEncMs  float64 `json:"last_enc_ms"` // time of the last encode
	AvgEncMs   float64 `json:"avg_enc_ms"`  // mean encode time
	Viewers    int     `json:"viewers"`     // subscriptions of this codec
	totalEncNs int64
	running    bool
}

// BroadcastStats is a snapshot of a Broadcaster's counters.
type BroadcastStats struct {
	Name       string         `json:"name"`
	Variant    string         `json:"variant"`
	Viewers    int            `json:"viewers"`
	FramesIn   uint64         `json:"frames_in"`    // frames given to WriteFrame
	Drops      uint64         `json:"drops"`        // samples dropped for slow viewers (all, incl. departed)
	LastConvMs float64        `json:"last_conv_ms"` // BGR->I420 conversion of the last encoded frame
	Encoders   []EncoderStats `json:"encoders"`     // codecs that have ever been encoded, in SupportedCodecs order
}

// NewBroadcaster makes the Broadcaster of stream name's variant. No encoder
// runs until a viewer subscribes.
func NewBroadcaster(name, variant string, opts EncoderOptions) *Broadcaster {
	return &Broadcaster{
		name: name, variant: variant, opts: opts.withDefaults(),
		log:  slog.Default().With("stream", name, "variant", variant),
		encs: map[string]*encState{},
		subs: map[string]map[*Subscription]struct{}{},
	}
}

// Name and Variant identify the Broadcaster.
func (b *Broadcaster) Name() string    { return b.name }
func (b *Broadcaster) Variant() string { return b.variant }

// LatestFrame returns the last frame given to WriteFrame (zero Frame if none).
// Frames are immutable, so the caller may keep it.
func (b *Broadcaster) LatestFrame() frame.Frame {
	if f := b.latest.Load(); f != nil {
		return *f
	}
	return frame.Frame{}
}

// WriteFrame records f as the latest frame and, if anyone watches, encodes
// it once per codec in use and queues the samples to every viewer. It never
// waits for a viewer: a full viewer queue drops that viewer's samples.
// It is meant to be called from one goroutine (the pipeline).
func (b *Broadcaster) WriteFrame(f frame.Frame) {
	if f.Validate() != nil {
		b.log.Warn("transport: dropping invalid frame", "err", f.Validate())
		return
	}
	b.latest.Store(&f)

	b.encMu.Lock()
	defer b.encMu.Unlock()

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.framesN++
	if !f.Captured.IsZero() {
		b.pace.add(f.Captured)
	}
	var active []string
	for _, c := range SupportedCodecs() {
		if len(b.subs[c]) > 0 {
			active = append(active, c)
		}
	}
	b.mu.Unlock()
	if len(active) == 0 {
		return
	}

	t0 := time.Now()
	b.yuv = bgrToI420(b.yuv, f.Pix, f.W, f.H) // once per frame, shared by all codecs
	conv := time.Since(t0)
	captured := f.Captured
	if captured.IsZero() {
		captured = t0
	}

	for _, c := range active {
		es := b.encoderFor(c, f.W, f.H)
		if es == nil {
			continue
		}
		force := false
		if es.kfPending.Load() && time.Since(es.lastForced) >= b.opts.MinKeyframeGap {
			force = true
			es.kfPending.Store(false)
			es.lastForced = time.Now()
		}
		te := time.Now()
		data, key, err := es.enc.Encode(b.yuv, force)
		d := time.Since(te)
		if err != nil {
			b.mu.Lock()
			es.stats.Errors++
			n := es.stats.Errors
			b.mu.Unlock()
			if n == 1 || n%100 == 0 {
				b.log.Error("transport: encode failed", "codec", c, "errors", n, "err", err)
			}
			continue
		}
		if force && !key {
			es.kfPending.Store(true) // the encoder ignored us; ask again next frame
		}
		s := Sample{Data: data, Keyframe: key, Codec: c, Seq: f.Seq, Captured: captured, Encoded: time.Now(), W: f.W, H: f.H}

		b.mu.Lock()
		b.convNs = int64(conv)
		es.stats.Frames++
		es.stats.LastEncMs = float64(d) / 1e6
		es.stats.totalEncNs += int64(d)
		if data != nil {
			es.stats.Bytes += uint64(len(data))
			if key {
				es.stats.Keyframes++
				if force {
					es.stats.Forced++
				}
			}
			for sub := range b.subs[c] {
				sub.push(s)
			}
		}
		b.mu.Unlock()
	}
}

// encoderFor returns codec c's encoder for w x h, (re)creating it as needed.
// Caller holds encMu.
func (b *Broadcaster) encoderFor(c string, w, h int) *encState {
	es := b.encs[c]
	if es != nil && es.enc != nil && es.w == w && es.h == h {
		return es
	}
	if es == nil {
		es = &encState{stats: EncoderStats{Codec: c}}
		b.mu.Lock() // readers of the map (Stats, requestKeyframe) hold only mu
		b.encs[c] = es
		b.mu.Unlock()
	}
	if es.enc != nil { // size changed
		_ = es.enc.Close()
		es.enc = nil
		b.log.Info("transport: frame size changed, restarting encoder", "codec", c, "from", fmt.Sprintf("%dx%d", es.w, es.h), "to", fmt.Sprintf("%dx%d", w, h))
	}
	opts := b.opts
	b.mu.Lock()
	if opts.FrameRate <= 0 {
		opts.FrameRate = b.pace.rate() // 0 (unknown) before 8 frames
	}
	b.mu.Unlock()
	enc, err := newEncoder(c, w, h, opts)
	if err != nil {
		// Viewers of a codec we cannot encode would wait forever: end them.
		b.log.Error("transport: cannot start encoder; closing its viewers", "codec", c, "err", err)
		b.mu.Lock()
		es.stats.Errors++
		for sub := range b.subs[c] {
			b.removeLocked(sub)
		}
		b.mu.Unlock()
		return nil
	}
	es.enc, es.w, es.h = enc, w, h
	es.kfPending.Store(false) // a new encoder starts with a keyframe anyway
	es.lastForced = time.Now()
	b.mu.Lock()
	es.stats.Restarts++
	es.stats.Width, es.stats.Height = w, h
	es.stats.running = true
	b.mu.Unlock()
	return es
}

// requestKeyframe marks codec c's encoder to emit a keyframe soon.
func (b *Broadcaster) requestKeyframe(c string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requestKeyframeLocked(c)
}

func (b *Broadcaster) requestKeyframeLocked(c string) {
	if es := b.encs[c]; es != nil {
		es.kfPending.Store(true)
	}
	// No encoder yet: the one created for this viewer starts with a keyframe.
}

// Subscribe adds a viewer of the given codec. Its first sample is a keyframe
// (forced now, within MinKeyframeGap). Close the Subscription when done.
func (b *Broadcaster) Subscribe(codecName string) (*Subscription, error) {
	c, err := normalizeCodec(codecName)
	if err != nil {
		return nil, err
	}
	s := &Subscription{
		b: b, codec: c,
		ch:      make(chan Sample, b.opts.QueueLen),
		waitKey: true,
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if b.subs[c] == nil {
		b.subs[c] = map[*Subscription]struct{}{}
	}
	b.subs[c][s] = struct{}{}
	b.requestKeyframeLocked(c)
	return s, nil
}

// unsubscribe removes s and closes its codec's encoder when it was the last viewer.
func (b *Broadcaster) unsubscribe(s *Subscription) {
	b.encMu.Lock() // an encode in flight finishes before its encoder can go
	defer b.encMu.Unlock()
	b.mu.Lock()
	b.removeLocked(s)
	idle := len(b.subs[s.codec]) == 0
	b.mu.Unlock()
	if idle {
		b.closeEncoder(s.codec)
	}
}

// removeLocked drops s from the viewer set and closes its channel. Caller holds mu.
func (b *Broadcaster) removeLocked(s *Subscription) {
	if _, ok := b.subs[s.codec][s]; !ok {
		return
	}
	delete(b.subs[s.codec], s)
	b.gone += s.drops.Load()
	close(s.ch)
}

// closeEncoder frees codec c's encoder. Caller holds encMu.
func (b *Broadcaster) closeEncoder(c string) {
	es := b.encs[c]
	if es == nil || es.enc == nil {
		return
	}
	if err := es.enc.Close(); err != nil {
		b.log.Warn("transport: closing encoder", "codec", c, "err", err)
	}
	es.enc = nil
	b.mu.Lock()
	es.stats.running = false
	b.mu.Unlock()
}

// Viewers counts current subscriptions over all codecs.
func (b *Broadcaster) Viewers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.subs {
		n += len(m)
	}
	return n
}

// EncoderRunning reports whether codec's encoder currently exists.
func (b *Broadcaster) EncoderRunning(codecName string) bool {
	c, err := normalizeCodec(codecName)
	if err != nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	es := b.encs[c]
	return es != nil && es.stats.running
}

// Stats returns a snapshot of the counters.
func (b *Broadcaster) Stats() BroadcastStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := BroadcastStats{Name: b.name, Variant: b.variant, FramesIn: b.framesN, Drops: b.gone,
		LastConvMs: float64(b.convNs) / 1e6}
	for _, c := range SupportedCodecs() {
		for s := range b.subs[c] {
			st.Drops += s.drops.Load()
		}
		st.Viewers += len(b.subs[c])
		es := b.encs[c]
		if es == nil {
			continue
		}
		e := es.stats
		e.Viewers = len(b.subs[c])
		if e.Frames > 0 {
			e.AvgEncMs = float64(e.totalEncNs) / float64(e.Frames) / 1e6
		}
		st.Encoders = append(st.Encoders, e)
	}
	return st
}

// Close ends every subscription (their channels close) and frees the encoders.
func (b *Broadcaster) Close() {
	b.encMu.Lock()
	defer b.encMu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	for _, m := range b.subs {
		for s := range m {
			b.removeLocked(s)
		}
	}
	b.mu.Unlock()
	for c := range b.encs {
		b.closeEncoder(c)
	}
}

// Subscription is one viewer's feed of encoded samples.
type Subscription struct {
	b     *Broadcaster
	codec string
	ch    chan Sample

	// Touched only by push (under b.mu).
	waitKey    bool      // after a join or an overflow: skip until a keyframe
	lastResync time.Time // last keyframe this viewer forced after an overflow
	drops      atomic.Uint64
	closeOnce  sync.Once
}

// Samples delivers the encoded samples, starting with a keyframe. It is closed
// when the Subscription or its Broadcaster closes.
func (s *Subscription) Samples() <-chan Sample { return s.ch }

// Codec is the codec of the samples (CodecVP8 or CodecH264).
func (s *Subscription) Codec() string { return s.codec }

// Drops counts the samples this viewer lost for being slow.
func (s *Subscription) Drops() uint64 { return s.drops.Load() }

// RequestKeyframe asks the encoder for a keyframe (a viewer's PLI/FIR).
func (s *Subscription) RequestKeyframe() { s.b.requestKeyframe(s.codec) }

// Close unsubscribes; the last viewer of a codec stops its encoder. Idempotent.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() { s.b.unsubscribe(s) })
}

// push queues x without ever blocking. A viewer whose queue is full loses the
// whole queue (delta frames after a gap are undecodable anyway) and resumes
// at the next keyframe, which it may force at most once per second.
// Caller holds b.mu, and is the only sender on s.ch.
func (s *Subscription) push(x Sample) {
	if s.waitKey {
		if !x.Keyframe {
			return // not a drop: the viewer had nothing to decode it with
		}
		s.waitKey = false
	}
	select {
	case s.ch <- x:
		return
	default:
	}
	n := uint64(1) // x itself
	for {
		select {
		case <-s.ch:
			n++
			continue
		default:
		}
		break
	}
	if x.Keyframe {
		s.ch <- x // room now; a keyframe is a clean restart
		n--
	} else {
		s.waitKey = true
		if time.Since(s.lastResync) >= time.Second {
			s.lastResync = time.Now()
			s.b.requestKeyframeLocked(s.codec)
		}
	}
	s.drops.Add(n)
}
