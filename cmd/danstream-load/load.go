package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// Bounds that keep a mistyped command from hogging a shared machine.
const (
	MaxViewers  = 500
	MaxDuration = 10 * time.Minute
)

// Options configure one load run. Zero values pick the defaults noted.
type Options struct {
	BaseURL string // http://127.0.0.1:8080
	Stream  string // stream name
	Variant string // "" (enhanced) or "original"
	Codec   string // "VP8" (default) or "H264": the only codec the viewers offer

	Viewers   int           // concurrent viewers, 1..MaxViewers
	Slow      int           // of which this many stop reading RTP
	SlowAfter time.Duration // a slow viewer stops this long after its first frame (default 2 s)
	RampRate  float64       // viewers started per second (default 20)
	Duration  time.Duration // steady measuring window once all have joined (default 60 s)
	Settle    time.Duration // wait after the last join before the window opens (default 3 s)
	Baseline  time.Duration // length of the idle and one-viewer CPU phases (0: skip both)

	ServerPID int // server process for CPU/RSS (0: not measured)
	// NominalFPS projects the per-frame fan-out cost to a frame rate (0: the one-viewer phase's rate).
	NominalFPS  float64
	NominalKbps float64 // likewise per kB, to this bitrate per viewer
	// RcvBuf, if > 0, gives each viewer its own UDP socket with this receive
	// buffer (bytes; the kernel caps it at net.core.rmem_max).
	RcvBuf int

	// Probe, in-process only, receives the same encoded samples as the viewers
	// (a Subscription of the stream's Broadcaster); it gives each frame's
	// capture and encode-end times, so RTP arrival can be placed on the
	// server's clock (loopback: one clock) instead of relative to the first frame.
	Probe ProbeSubscriber

	HTTP *http.Client
	Log  *slog.Logger
}

// ProbeSubscriber is what Run needs of transport.Broadcaster (kept to an
// interface so the load tool does not reach into transport internals).
type ProbeSubscriber interface {
	SubscribeSamples(codec string) (samples <-chan ProbeSample, stop func(), err error)
}

// ProbeSample is one encoded frame as the server saw it.
type ProbeSample struct {
	Captured, Encoded time.Time
}

func (o Options) withDefaults() (Options, error) {
	if o.Codec == "" {
		o.Codec = "VP8"
	}
	o.Codec = strings.ToUpper(o.Codec)
	if o.Codec != "VP8" && o.Codec != "H264" {
		return o, fmt.Errorf("codec %q: want VP8 or H264", o.Codec)
	}
	if o.Viewers < 1 || o.Viewers > MaxViewers {
		return o, fmt.Errorf("viewers %d: want 1..%d", o.Viewers, MaxViewers)
	}
	if o.Slow < 0 || o.Slow >= o.Viewers {
		return o, fmt.Errorf("slow %d: want 0..viewers-1 (%d)", o.Slow, o.Viewers-1)
	}
	if o.SlowAfter <= 0 {
		o.SlowAfter = 2 * time.Second
	}
	if o.RampRate <= 0 {
		o.RampRate = 20
	}
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 3 * time.Second
	}
	total := 2*o.Baseline + time.Duration(float64(o.Viewers)/o.RampRate*float64(time.Second)) + o.Settle + o.Duration
	if total > MaxDuration {
		return o, fmt.Errorf("run would take %s (baseline x2 + ramp + settle + duration); the limit is %s", total.Round(time.Second), MaxDuration)
	}
	if o.Stream == "" {
		return o, errors.New("no stream name")
	}
	if _, err := url.Parse(o.BaseURL); err != nil || !strings.HasPrefix(o.BaseURL, "http") {
		return o, fmt.Errorf("server URL %q: want http://host:port", o.BaseURL)
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 20 * time.Second}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o, nil
}

// maxDelaySamples bounds the per-viewer memory for per-frame delays (10 min at 30 fps).
const maxDelaySamples = 18000

// viewer is one WHEP client. Fields under mu are written by its RTP reader.
type viewer struct {
	id       int
	slow     bool
	pc       *webrtc.PeerConnection
	mux      *ice.UDPMuxDefault // with Options.RcvBuf: the viewer's own socket
	location string
	joinAt   time.Time
	answerAt time.Time
	joinErr  error

	frames, bytes, packets, lost, late atomic.Int64 // lost: sequence gaps; late: packets older than the newest (NACK repairs, reordering)
	stalled                            atomic.Bool  // a slow viewer that stopped reading
	readerDone                         chan struct{}

	mu          sync.Mutex
	codec       string
	connectedAt time.Time
	firstPacket time.Time
	firstFrame  time.Time
	firstKey    time.Time
	firstIsKey  bool
	// capture->arrival relative to the first frame: d_i = arrival_i - rtpTime_i;
	// rel_i = d_i - d_0 (ms). The first frame's own delay is not in RTP.
	rel []float32
	// (unwrapped RTP timestamp, arrival) per frame, kept when a probe can place them.
	recs []frameRec
}

type frameRec struct {
	ts      int64 // 90 kHz units since the viewer's first frame
	arrival time.Time
}

// Run performs one load run and returns its measurements. It always tries to
// DELETE every session it created, even when ctx ends early.
func Run(ctx context.Context, opts Options) (*Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &runner{o: o, api: clientAPI(o.Codec, nil), res: &Result{Options: summaryOptions(o), Started: time.Now()}}
	if _, err := r.apiStatus(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type runner struct {
	o       Options
	api     *webrtc.API
	res     *Result
	viewers []*viewer

	probeMu sync.Mutex
	probe   []ProbeSample
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	o, res := r.o, r.res
	log := o.Log
	r.viewers = make([]*viewer, o.Viewers)
	for i := range r.viewers {
		// Slow viewers are the ones right after the first, so they stall early.
		r.viewers[i] = &viewer{id: i, slow: i >= 1 && i <= o.Slow}
	}
	defer r.leave(context.WithoutCancel(ctx))

	if o.Probe != nil {
		samples, stop, err := o.Probe.SubscribeSamples(o.Codec)
		if err != nil {
			return nil, fmt.Errorf("probe subscription: %w", err)
		}
		defer stop()
		go func() {
			for s := range samples {
				r.probeMu.Lock()
				if len(r.probe) < 4*maxDelaySamples {
					r.probe = append(r.probe, s)
				}
				r.probeMu.Unlock()
			}
		}()
	}

	// Phase 1: nobody watching (no encoder runs).
	if o.Baseline > 0 && o.ServerPID > 0 {
		log.Info("load: idle baseline", "for", o.Baseline)
		u, err := r.measure(ctx, o.Baseline)
		if err != nil {
			return nil, err
		}
		res.Idle = &u
	}
	start := 0
	// Phase 2: one viewer (the encoder runs once; the fan-out is one).
	if o.Baseline > 0 && o.ServerPID > 0 && o.Viewers > 1 {
		v := r.viewers[0]
		r.join(ctx, v)
		if v.joinErr != nil {
			return nil, fmt.Errorf("first viewer: %w", v.joinErr)
		}
		if !r.waitFirstFrame(ctx, v, 15*time.Second) {
			return nil, fmt.Errorf("first viewer got no frame within 15 s of joining %s", o.BaseURL)
		}
		log.Info("load: one-viewer baseline", "for", o.Baseline)
		u, err := r.measure(ctx, o.Baseline)
		if err != nil {
			return nil, err
		}
		res.OneViewer = &u
		start = 1
	}

	// Phase 3: ramp up the rest, at most 16 negotiations in flight.
	log.Info("load: ramping up", "viewers", o.Viewers, "per_second", o.RampRate, "slow", o.Slow)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	gap := time.Duration(float64(time.Second) / o.RampRate)
	next := time.Now()
	rampStart := time.Now()
	for i := start; i < o.Viewers && ctx.Err() == nil; i++ {
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		next = next.Add(gap)
		sem <- struct{}{}
		wg.Add(1)
		go func(v *viewer) {
			defer wg.Done()
			defer func() { <-sem }()
			r.join(ctx, v)
		}(r.viewers[i])
	}
	wg.Wait()
	res.RampSeconds = time.Since(rampStart).Seconds()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(o.Settle):
	}

	// Phase 4: the steady window.
	log.Info("load: measuring", "for", o.Duration)
	before, err := r.apiStatus(ctx)
	if err != nil {
		return res, err
	}
	startFrames := make([]int64, len(r.viewers))
	for i, v := range r.viewers {
		startFrames[i] = v.frames.Load()
	}
	var sm, cm *meter
	if o.ServerPID > 0 {
		if sm, err = startMeter(o.ServerPID, time.Second); err != nil {
			return res, err
		}
	}
	cm, _ = startMeter(os.Getpid(), time.Second)
	udp0, udpErr := readUDPErrors()
	t0 := time.Now()
	polls := r.pollAPI(ctx, o.Duration)
	window := time.Since(t0)
	if sm != nil {
		u := sm.Stop()
		res.Loaded = &u
	}
	if cm != nil {
		u := cm.Stop()
		res.LoadTool = &u
	}
	after, err := r.apiStatus(context.WithoutCancel(ctx))
	if err != nil {
		return res, err
	}
	if udp1, err := readUDPErrors(); err == nil && udpErr == nil {
		res.UDPRcvbufErrors = udp1.rcvbuf - udp0.rcvbuf
		res.UDPSndbufErrors = udp1.sndbuf - udp0.sndbuf
	}
	if res.Loaded != nil {
		r.perFrame(res.Loaded, before, after)
	}
	res.WindowSeconds = window.Seconds()
	res.API = polls
	r.summarise(before, after, startFrames, window)
	return res, ctx.Err()
}

// measure samples the server process for d.
func (r *runner) measure(ctx context.Context, d time.Duration) (usage, error) {
	before, err := r.apiStatus(ctx)
	if err != nil {
		return usage{}, err
	}
	m, err := startMeter(r.o.ServerPID, time.Second)
	if err != nil {
		return usage{}, err
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	u := m.Stop()
	if after, err := r.apiStatus(context.WithoutCancel(ctx)); err == nil {
		r.perFrame(&u, before, after)
	}
	return u, ctx.Err()
}

// perFrame adds the stream's frame rate and the CPU per output frame to u.
func (r *runner) perFrame(u *usage, before, after *apiStreams) {
	db, da := r.deliveryOf(before), r.deliveryOf(after)
	if db == nil || da == nil || u.Seconds <= 0 {
		return
	}
	frames := float64(da.FramesIn - db.FramesIn)
	u.FPS = frames / u.Seconds
	if frames > 0 {
		u.CPUMsPerFrame = u.Cores * u.Seconds * 1000 / frames
		if ea, eb := r.encoderOf(da), r.encoderOf(db); ea != nil {
			var b0 uint64
			if eb != nil {
				b0 = eb.Bytes
			}
			u.EncKBPerFrame = float64(ea.Bytes-b0) / 1000 / frames
		}
	}
}

func (r *runner) waitFirstFrame(ctx context.Context, v *viewer, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if v.frames.Load() > 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// clientAPI is a lean pion receiver: the viewers share this machine's cores
// with the server, so only what a browser must do for a clean stream runs
// (NACKs for lost packets, receiver reports); no congestion-control feedback.
func clientAPI(codec string, mux ice.UDPMux) *webrtc.API {
	me := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	c := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}
	if codec == "H264" {
		c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: fb,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	}
	// Registering a constant capability cannot fail.
	_ = me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: 96}, webrtc.RTPCodecTypeVideo)
	ir := &interceptor.Registry{}
	if g, err := nack.NewGeneratorInterceptor(); err == nil {
		ir.Add(g)
	}
	if rr, err := report.NewReceiverInterceptor(); err == nil {
		ir.Add(rr)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	if mux != nil {
		se.SetICEUDPMux(mux)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// join negotiates v with the server (WHEP POST) and starts its RTP reader.
func (r *runner) join(ctx context.Context, v *viewer) {
	v.joinAt = time.Now()
	if err := r.negotiate(ctx, v); err != nil {
		v.joinErr = err
		r.o.Log.Warn("load: viewer failed to join", "viewer", v.id, "err", err)
	}
}

func (r *runner) negotiate(ctx context.Context, v *viewer) error {
	api := r.api
	if r.o.RcvBuf > 0 {
		// Its own socket with a larger receive buffer: a hundred viewers on
		// the server's own cores are scheduled late, and a keyframe's burst
		// would otherwise overflow the default 208 KiB (drops a real viewer on
		// its own machine would not see).
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return fmt.Errorf("viewer socket: %w", err)
		}
		if err := conn.SetReadBuffer(r.o.RcvBuf); err != nil {
			conn.Close()
			return fmt.Errorf("viewer socket receive buffer %d: %w", r.o.RcvBuf, err)
		}
		v.mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn})
		api = clientAPI(r.o.Codec, v.mux)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("new peer connection: %w", err)
	}
	v.pc = pc
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return fmt.Errorf("add transceiver: %w", err)
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			v.mu.Lock()
			if v.connectedAt.IsZero() {
				v.connectedAt = time.Now()
			}
			v.mu.Unlock()
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { r.read(v, tr) })
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	u := r.o.BaseURL + "/api/streams/" + url.PathEscape(r.o.Stream) + "/whep"
	if r.o.Variant != "" {
		u += "?variant=" + url.QueryEscape(r.o.Variant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("WHEP POST %s: %w", u, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("WHEP POST %s: reading answer: %w", u, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("WHEP POST %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("WHEP POST %s: 201 without a usable Location: %w", u, err)
	}
	v.location = loc.String()
	v.answerAt = time.Now()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		return fmt.Errorf("set answer from %s: %w", u, err)
	}
	return nil
}

// read counts v's RTP: packets, payload bytes, frames (marker bit), the
// first keyframe, losses (sequence gaps) and per-frame arrival vs RTP time.
func (r *runner) read(v *viewer, tr *webrtc.TrackRemote) {
	isVP8 := strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeVP8)
	v.mu.Lock()
	v.codec = tr.Codec().MimeType
	v.mu.Unlock()
	var (
		haveSeq       bool
		lastSeq       uint16
		haveTS        bool
		lastTS        uint32
		tsU           int64
		d0            int64
		firstFrameAt  time.Time
		keepRecs      = r.o.Probe != nil
		sawFrameStart bool
	)
	for {
		if v.slow && !firstFrameAt.IsZero() && time.Since(firstFrameAt) > r.o.SlowAfter {
			// Stop reading: pion's buffers fill and drop; the server must not notice.
			v.stalled.Store(true)
			return
		}
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		v.packets.Add(1)
		v.bytes.Add(int64(len(p.Payload)))
		if haveSeq {
			switch gap := p.SequenceNumber - lastSeq; {
			case gap > 1 && gap < 0x8000:
				v.lost.Add(int64(gap - 1))
			case gap >= 0x8000:
				v.late.Add(1)
			}
		}
		if !haveSeq || p.SequenceNumber-lastSeq < 0x8000 {
			haveSeq, lastSeq = true, p.SequenceNumber
		}
		key := isKeyframeStart(isVP8, p.Payload)
		if !sawFrameStart && frameStart(isVP8, p.Payload) {
			sawFrameStart = true
		}
		v.mu.Lock()
		if v.firstPacket.IsZero() {
			v.firstPacket = now
		}
		if key && v.firstKey.IsZero() {
			v.firstKey = now
		}
		if !p.Marker || !sawFrameStart {
			v.mu.Unlock()
			continue
		}
		// A complete frame (its last packet).
		if !haveTS {
			haveTS, lastTS = true, p.Timestamp
			v.firstFrame = now
			v.firstIsKey = !v.firstKey.IsZero()
			firstFrameAt = now
		} else {
			tsU += int64(int32(p.Timestamp - lastTS))
			lastTS = p.Timestamp
		}
		d := now.UnixNano() - tsU*1e9/90000
		if len(v.rel) == 0 {
			d0 = d
		}
		if len(v.rel) < maxDelaySamples {
			v.rel = append(v.rel, float32(float64(d-d0)/1e6))
		}
		if keepRecs && len(v.recs) < maxDelaySamples {
			v.recs = append(v.recs, frameRec{ts: tsU, arrival: now})
		}
		v.mu.Unlock()
		v.frames.Add(1)
	}
}

// frameStart: the packet begins a video frame.
func frameStart(isVP8 bool, payload []byte) bool {
	if isVP8 {
		var vp codecs.VP8Packet
		_, err := vp.Unmarshal(payload)
		return err == nil && vp.S == 1 && vp.PID == 0
	}
	if len(payload) < 2 {
		return false
	}
	switch n := payload[0] & 0x1f; {
	case n >= 1 && n <= 23, n == 24:
		return true
	case n == 28:
		return payload[1]&0x80 != 0 // FU-A start
	}
	return false
}

// isKeyframeStart: the packet begins a keyframe (VP8 P bit clear; H.264 IDR or SPS).
func isKeyframeStart(isVP8 bool, payload []byte) bool {
	if isVP8 {
		var vp codecs.VP8Packet
		pl, err := vp.Unmarshal(payload)
		return err == nil && vp.S == 1 && vp.PID == 0 && len(pl) > 0 && pl[0]&1 == 0
	}
	if len(payload) < 2 {
		return false
	}
	switch n := payload[0] & 0x1f; n {
	case 5, 7:
		return true
	case 24: // STAP-A: first aggregated NAL
		return len(payload) > 3 && (payload[3]&0x1f == 7 || payload[3]&0x1f == 5)
	case 28:
		return payload[1]&0x80 != 0 && payload[1]&0x1f == 5
	}
	return false
}

// leave DELETEs every session, closes the PeerConnections and waits (up to
// 10 s) for the server to report no sessions.
func (r *runner) leave(ctx context.Context) {
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	sem := make(chan struct{}, 16)
	for _, v := range r.viewers {
		if v.pc == nil {
			if v.mux != nil {
				_ = v.mux.Close()
			}
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(v *viewer) {
			defer wg.Done()
			defer func() { <-sem }()
			if v.location != "" {
				if err := r.del(ctx, v.location); err != nil {
					failed.Add(1)
					r.o.Log.Warn("load: DELETE failed", "viewer", v.id, "err", err)
				} else {
					ok.Add(1)
				}
			}
			_ = v.pc.Close()
			if v.mux != nil {
				_ = v.mux.Close()
			}
		}(v)
	}
	wg.Wait()
	r.res.Deleted, r.res.DeleteFailed = int(ok.Load()), int(failed.Load())
	// Each of our sessions must be gone: a second DELETE must find nothing
	// (the server's session count may include other viewers, e.g. a browser).
	var alive atomic.Int64
	for _, v := range r.viewers {
		if v.location == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(v *viewer) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.del(ctx, v.location); err == nil {
				alive.Add(1)
			}
		}(v)
	}
	wg.Wait()
	r.res.OwnSessionsLeft = int(alive.Load())
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.apiStatus(ctx)
		if err == nil {
			r.res.SessionsAfter = st.Sessions
			if st.Sessions == 0 {
				break
			}
		} else {
			r.res.SessionsAfter = -1
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *runner) del(ctx context.Context, loc string) error {
	base, _ := url.Parse(r.o.BaseURL + "/")
	u, err := base.Parse(loc)
	if err != nil {
		return fmt.Errorf("Location %q: %w", loc, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("DELETE %s: %w", u, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("DELETE %s: %s", u, resp.Status)
	}
	return nil
}

// apiStreams is the part of GET /api/streams the load tool reads.
type apiStreams struct {
	Streams  []apiStream `json:"streams"`
	Sessions int         `json:"sessions"`
}

type apiStream struct {
	Name      string        `json:"name"`
	State     string        `json:"state"`
	Model     string        `json:"model"`
	InW       int           `json:"input_width"`
	InH       int           `json:"input_height"`
	OutW      int           `json:"output_width"`
	OutH      int           `json:"output_height"`
	FPSOut    float64       `json:"fps_out"`
	SRMillis  float64       `json:"sr_ms"`
	LatencyMs float64       `json:"latency_ms"`
	Viewers   int           `json:"viewers"`
	Delivery  []apiDelivery `json:"delivery"`
}

type apiDelivery struct {
	Variant    string       `json:"variant"`
	Viewers    int          `json:"viewers"`
	FramesIn   uint64       `json:"frames_in"`
	Drops      uint64       `json:"drops"`
	LastConvMs float64      `json:"last_conv_ms"`
	Encoders   []apiEncoder `json:"encoders"`
}

type apiEncoder struct {
	Codec     string  `json:"codec"`
	Frames    uint64  `json:"frames"`
	Keyframes uint64  `json:"keyframes"`
	Forced    uint64  `json:"forced"`
	Bytes     uint64  `json:"bytes"`
	Restarts  uint64  `json:"restarts"`
	AvgEncMs  float64 `json:"avg_enc_ms"`
	LastEncMs float64 `json:"last_enc_ms"`
	Viewers   int     `json:"viewers"`
}

func (r *runner) apiStatus(ctx context.Context) (*apiStreams, error) {
	u := r.o.BaseURL + "/api/streams"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var st apiStreams
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET %s: decoding JSON: %w", u, err)
	}
	found := false
	for _, s := range st.Streams {
		found = found || s.Name == r.o.Stream
	}
	if !found {
		return nil, fmt.Errorf("GET %s: no stream %q", u, r.o.Stream)
	}
	return &st, nil
}

// pollAPI samples /api/streams every 2 s for d and averages the stream's stage timings.
func (r *runner) pollAPI(ctx context.Context, d time.Duration) APIStats {
	var a APIStats
	n := 0
	end := time.Now().Add(d)
	for {
		if st, err := r.apiStatus(ctx); err == nil {
			s := r.streamOf(st)
			a.FPSOut += s.FPSOut
			a.SRMillis += s.SRMillis
			a.LatencyMs += s.LatencyMs
			if dv := r.deliveryOf(st); dv != nil {
				a.ConvMs += dv.LastConvMs
				for _, e := range dv.Encoders {
					if strings.EqualFold(e.Codec, r.o.Codec) {
						a.EncMs += e.LastEncMs
					}
				}
			}
			n++
		}
		left := time.Until(end)
		if left <= 0 || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(left, 2*time.Second)):
		}
	}
	if n > 0 {
		f := float64(n)
		a.FPSOut, a.SRMillis, a.LatencyMs, a.ConvMs, a.EncMs = a.FPSOut/f, a.SRMillis/f, a.LatencyMs/f, a.ConvMs/f, a.EncMs/f
	}
	a.Polls = n
	return a
}

func (r *runner) streamOf(st *apiStreams) *apiStream {
	for i := range st.Streams {
		if st.Streams[i].Name == r.o.Stream {
			return &st.Streams[i]
		}
	}
	return &apiStream{}
}

// deliveryOf is the stream's delivery entry for the variant the viewers watch.
func (r *runner) deliveryOf(st *apiStreams) *apiDelivery {
	want := r.o.Variant
	if want == "" {
		want = "enhanced"
	}
	s := r.streamOf(st)
	for i := range s.Delivery {
		if s.Delivery[i].Variant == want {
			return &s.Delivery[i]
		}
	}
	return nil
}

// encoderOf is the delivery's encoder of the viewers' codec.
func (r *runner) encoderOf(d *apiDelivery) *apiEncoder {
	if d == nil {
		return nil
	}
	for i := range d.Encoders {
		if strings.EqualFold(d.Encoders[i].Codec, r.o.Codec) {
			return &d.Encoders[i]
		}
	}
	return nil
}

// sortedFloats returns a sorted copy.
func sortedFloats(x []float64) []float64 {
	y := append([]float64(nil), x...)
	sort.Float64s(y)
	return y
}

// withDefaultsLoose fills the HTTP client and logger only (for API polling helpers).
func (o Options) withDefaultsLoose() (Options, error) {
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 20 * time.Second}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	return o, nil
}
