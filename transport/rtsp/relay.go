// Package rtsp serves every stream as an RTSP/H.264 relay for NVRs, VLC,
// GStreamer and ffmpeg: rtsp://HOST:8554/{name} (enhanced) and
// rtsp://HOST:8554/{name}/original, over TCP, UDP and (when configured) UDP
// multicast. It reads the same encoded samples the WebRTC viewers get (one
// H.264 encoder per stream variant, shared) and only subscribes while someone
// is playing.
package rtsp

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/danstream/danstream/transport"
)

// Catalog finds the fan-out point of a stream variant (stream.Manager is one).
type Catalog interface {
	Broadcaster(name, variant string) (*transport.Broadcaster, bool)
}

// Transport names accepted in Options.Transports (MediaMTX's rtspTransports).
const (
	TransportUDP       = "udp"
	TransportMulticast = "multicast"
	TransportTCP       = "tcp"
)

// Options configure the relay. Zero values pick the defaults shown, which are
// MediaMTX's.
type Options struct {
	// Listen is the RTSP (TCP) address, e.g. "127.0.0.1:8554".
	Listen string
	// Transports offered to readers: any of "udp", "multicast", "tcp"
	// (default udp and tcp). A SETUP asking for another gets 461.
	Transports []string
	// RTPAddress and RTCPAddress are the UDP ports of unicast UDP (an even
	// port and the next one). Default: Listen's host, ports 8000 and 8001;
	// when those defaults cannot be bound the relay logs it once and serves
	// TCP (and multicast) only, so that several servers can share a host.
	RTPAddress, RTCPAddress string
	// MulticastIPRange is where multicast groups are taken from
	// (default 224.1.0.0/16), MulticastRTPPort/MulticastRTCPPort the ports
	// (default 8002/8003).
	MulticastIPRange                    string
	MulticastRTPPort, MulticastRTCPPort int
	// WriteQueueSize is each reader's queue of outgoing packets, a power of
	// two (default 512). A reader whose queue is full loses packets: counted
	// and logged once per StallLogEvery (default 10 s).
	WriteQueueSize int
	StallLogEvery  time.Duration
}

// DefaultTransports is what Options.Transports means when empty.
var DefaultTransports = []string{TransportUDP, TransportTCP}

// CheckOptions reports the first invalid setting as "key: problem", the key
// named as in the config's rtsp section.
func CheckOptions(o Options) error {
	for _, t := range o.Transports {
		switch t {
		case TransportUDP, TransportMulticast, TransportTCP:
		default:
			return fmt.Errorf("transports: unknown transport %q (want udp, multicast or tcp)", t)
		}
	}
	for _, a := range []struct{ key, addr string }{{"rtp_address", o.RTPAddress}, {"rtcp_address", o.RTCPAddress}} {
		if a.addr == "" {
			continue
		}
		if _, p, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s: want host:port, got %q", a.key, a.addr)
		} else if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("%s: bad port in %q", a.key, a.addr)
		}
	}
	if (o.RTPAddress == "") != (o.RTCPAddress == "") {
		return fmt.Errorf("rtcp_address: set both rtp_address and rtcp_address, or neither")
	}
	if o.RTPAddress != "" {
		rtp, rtcp := port(o.RTPAddress), port(o.RTCPAddress)
		if rtp%2 != 0 || rtcp != rtp+1 {
			return fmt.Errorf("rtp_address: want an even port and rtcp_address the next one, got %d and %d", rtp, rtcp)
		}
	}
	if o.MulticastIPRange != "" {
		if _, n, err := net.ParseCIDR(o.MulticastIPRange); err != nil || !n.IP.IsMulticast() {
			return fmt.Errorf("multicast_ip_range: want a multicast CIDR such as 224.1.0.0/16, got %q", o.MulticastIPRange)
		}
	}
	if o.MulticastRTPPort != 0 || o.MulticastRTCPPort != 0 {
		if o.MulticastRTPPort%2 != 0 || o.MulticastRTCPPort != o.MulticastRTPPort+1 {
			return fmt.Errorf("multicast_rtp_port: want an even port and multicast_rtcp_port the next one, got %d and %d",
				o.MulticastRTPPort, o.MulticastRTCPPort)
		}
	}
	if q := o.WriteQueueSize; q < 0 || q&(q-1) != 0 {
		return fmt.Errorf("write_queue_size: want a power of two, got %d", q)
	}
	return nil
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Relay is the RTSP server.
type Relay struct {
	// Auth, when enabled, requires credentials (Basic or Digest user/password,
	// a token as the password, or ?token= in the URL) and a read right for
	// the stream. Set it before Run.
	Auth *transport.Auth

	cat   Catalog
	opts  Options
	nonce string // Digest nonce, one per relay
	log   *slog.Logger
	srv   *gortsplib.Server
	stall stallCounter

	mu      sync.Mutex
	offered map[string]bool       // transports actually served (UDP may be off when its default ports were taken)
	path    map[string]*relayPath // by RTSP path, e.g. "/demo/original"
	feeds   sync.WaitGroup
}

// New makes a relay for opts (see CheckOptions); Run starts it.
func New(cat Catalog, opts Options, log *slog.Logger) *Relay {
	nonce, err := auth.GenerateNonce()
	if err != nil {
		panic("rtsp: no randomness for a nonce: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	if len(opts.Transports) == 0 {
		opts.Transports = DefaultTransports
	}
	if opts.WriteQueueSize == 0 {
		opts.WriteQueueSize = 512
	}
	if opts.StallLogEvery <= 0 {
		opts.StallLogEvery = 10 * time.Second
	}
	r := &Relay{cat: cat, opts: opts, nonce: nonce, log: log.With("component", "rtsp"), path: map[string]*relayPath{}}
	r.stall.every = opts.StallLogEvery
	return r
}

func (r *Relay) server(udp, multicast bool) *gortsplib.Server {
	s := &gortsplib.Server{Handler: r, RTSPAddress: r.opts.Listen, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, WriteQueueSize: r.opts.WriteQueueSize}
	host, _, _ := net.SplitHostPort(r.opts.Listen)
	if udp {
		s.UDPRTPAddress, s.UDPRTCPAddress = r.opts.RTPAddress, r.opts.RTCPAddress
		if s.UDPRTPAddress == "" {
			s.UDPRTPAddress, s.UDPRTCPAddress = net.JoinHostPort(host, "8000"), net.JoinHostPort(host, "8001")
		}
	}
	if multicast {
		s.MulticastIPRange, s.MulticastRTPPort, s.MulticastRTCPPort = r.opts.MulticastIPRange, r.opts.MulticastRTPPort, r.opts.MulticastRTCPPort
		if s.MulticastIPRange == "" {
			s.MulticastIPRange = "224.1.0.0/16"
		}
		if s.MulticastRTPPort == 0 {
			s.MulticastRTPPort, s.MulticastRTCPPort = 8002, 8003
		}
	}
	return s
}

// Run serves until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	if err := CheckOptions(r.opts); err != nil {
		return fmt.Errorf("rtsp: %w", err)
	}
	udp := slices.Contains(r.opts.Transports, TransportUDP)
	multicast := slices.Contains(r.opts.Transports, TransportMulticast)
	srv := r.server(udp, multicast)
	err := srv.Start()
	if err != nil && udp && r.opts.RTPAddress == "" {
		// The default UDP ports are shared by every relay on the host: a second
		// server keeps TCP rather than failing (an explicit address must bind).
		r.log.Warn("rtsp: default UDP ports taken, serving without UDP (set rtsp.rtp_address/rtcp_address)",
			"rtp", srv.UDPRTPAddress, "err", err)
		udp = false
		srv = r.server(false, multicast)
		err = srv.Start()
	}
	if err != nil {
		return fmt.Errorf("rtsp: listen %s: %w", r.opts.Listen, err)
	}
	offered := map[string]bool{TransportTCP: slices.Contains(r.opts.Transports, TransportTCP), TransportUDP: udp, TransportMulticast: multicast}
	r.mu.Lock()
	r.srv, r.offered = srv, offered
	r.mu.Unlock()
	r.log.Info("rtsp relay listening", "addr", srv.RTSPAddress, "udp", srv.UDPRTPAddress, "multicast", srv.MulticastIPRange,
		"transports", strings.Join(r.Transports(), ","))
	errc := make(chan error, 1)
	go func() { errc <- srv.Wait() }()
	select {
	case <-ctx.Done():
		srv.Close()
		<-errc
	case err := <-errc:
		if ctx.Err() == nil {
			r.shutdown()
			return fmt.Errorf("rtsp: %w", err)
		}
	}
	r.shutdown()
	return nil
}

func (r *Relay) shutdown() {
	r.mu.Lock()
	paths := make([]*relayPath, 0, len(r.path))
	for _, p := range r.path {
		p.halt()
		paths = append(paths, p)
	}
	r.path = map[string]*relayPath{}
	r.mu.Unlock()
	r.feeds.Wait()
	for _, p := range paths {
		p.stream.Close()
	}
}

// Addr is the listening address (useful with port 0 in tests).
func (r *Relay) Addr() string { return r.opts.Listen }

// Transports lists the transports being served, in the order udp, multicast, tcp.
func (r *Relay) Transports() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, t := range []string{TransportUDP, TransportMulticast, TransportTCP} {
		if r.offered[t] {
			out = append(out, t)
		}
	}
	return out
}

// StalledPackets counts the packets lost for readers whose write queue was full.
func (r *Relay) StalledPackets() uint64 {
	r.stall.mu.Lock()
	defer r.stall.mu.Unlock()
	return r.stall.total
}

var (
	descStalled = prometheus.NewDesc("danstream_rtsp_stalled_packets_total",
		"RTP/RTCP packets lost for RTSP readers whose write queue was full (slow readers).", nil, nil)
	descReaders = prometheus.NewDesc("danstream_rtsp_readers", "RTSP sessions playing, by stream and variant.",
		[]string{"stream", "variant"}, nil)
)

// Describe implements prometheus.Collector (served on /metrics).
func (r *Relay) Describe(ch chan<- *prometheus.Desc) {
	ch <- descStalled
	ch <- descReaders
}

// Collect implements prometheus.Collector.
func (r *Relay) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descStalled, prometheus.CounterValue, float64(r.StalledPackets()))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.path {
		ch <- prometheus.MustNewConstMetric(descReaders, prometheus.GaugeValue, float64(len(p.readers)), p.name, p.variant)
	}
}

// split maps "/demo" and "/demo/original" to a stream name and variant.
func split(path string) (name, variant string, ok bool) {
	p := strings.Trim(path, "/")
	name, variant, _ = strings.Cut(p, "/")
	switch variant {
	case "":
		variant = transport.VariantEnhanced
	case transport.VariantOriginal, transport.VariantEnhanced:
	default:
		return "", "", false
	}
	return name, variant, name != ""
}

// relayPath is one readable stream variant: a gortsplib stream, the readers
// playing it and the feed that fills it while it has readers. The stream
// outlives its feeds and the Broadcaster behind it (a PUT or reload rebuilds
// that), so RTP sequence numbers and timestamps continue and every PLAY's
// RTP-Info names the next packet a reader will get.
type relayPath struct {
	key, name, variant string
	log                *slog.Logger
	stream             *gortsplib.ServerStream
	media              *description.Media
	forma              *format.H264
	keyReq             chan struct{} // a new reader asks the running feed for a keyframe

	// Under Relay.mu.
	b       *transport.Broadcaster
	readers map[*gortsplib.ServerSession]struct{}
	stop    context.CancelFunc // of the running feed, nil when none
	done    chan struct{}      // closed when the last started feed returned
	closed  bool

	// Owned by the feed goroutine; a feed starts only after the previous one
	// returned (done), which hands this state over.
	rtp   *rtph264.Encoder
	clock rtpClock
	w, h  int
}

// lookup returns the relay path of an RTSP path (creating it on first use),
// or nil for an unknown stream.
func (r *Relay) lookup(path string) *relayPath {
	name, variant, ok := split(path)
	if !ok {
		return nil
	}
	b, ok := r.cat.Broadcaster(name, variant) // outside r.mu: the catalog has its own lock
	if !ok {
		return nil
	}
	key := "/" + name + "/" + variant
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.path[key]; ok && !p.closed {
		if p.b == b || p.stop != nil {
			return p // a running feed moves to a rebuilt Broadcaster by itself
		}
		// Rebuilt while nobody played: start afresh (the old size's SPS must not
		// reach the next reader's SDP). Readers that only SETUP are closed.
		p.closed = true
		go p.stream.Close()
	}
	medi := &description.Media{
		Type:    description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}},
	}
	p := &relayPath{
		key: key, name: name, variant: variant,
		log:     r.log.With("path", key),
		media:   medi,
		forma:   medi.Formats[0].(*format.H264),
		stream:  gortsplib.NewServerStream(r.srv, &description.Session{Medias: []*description.Media{medi}}),
		keyReq:  make(chan struct{}, 1),
		b:       b,
		readers: map[*gortsplib.ServerSession]struct{}{},
	}
	r.path[key] = p
	return p
}

func notFound(path string) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusNotFound}, nil, fmt.Errorf("rtsp: no stream at %q", path)
}

const realm = "danstream"

// authorize returns nil when the request may read path, else the 401/403 to answer.
// A connection that authenticated once keeps its principal (players often drop
// the query string from SETUP URLs).
func (r *Relay) authorize(conn *gortsplib.ServerConn, req *base.Request, path, query string) *base.Response {
	if !r.Auth.Enabled() {
		return nil
	}
	p, _ := conn.UserData().(*transport.Principal)
	if p == nil {
		p = r.principal(req, query)
	}
	if p == nil {
		if req.Header["Authorization"] != nil || query != "" {
			r.log.Warn("rtsp: rejected credentials", "remote", conn.NetConn().RemoteAddr().String(), "path", path)
		}
		return &base.Response{StatusCode: base.StatusUnauthorized, Header: base.Header{
			"WWW-Authenticate": auth.GenerateWWWAuthenticate(
				[]auth.ValidateMethod{auth.ValidateMethodDigestMD5, auth.ValidateMethodBasic}, realm, r.nonce),
		}}
	}
	conn.SetUserData(p)
	name, _, ok := split(path)
	if !ok || !p.CanRead(name) {
		return &base.Response{StatusCode: base.StatusForbidden}
	}
	return nil
}

func (r *Relay) principal(req *base.Request, query string) *transport.Principal {
	if q, err := url.ParseQuery(query); err == nil && q.Get("token") != "" {
		return r.Auth.CheckToken(q.Get("token"))
	}
	var h headers.Authorization
	if err := h.Unmarshal(req.Header["Authorization"]); err != nil {
		return nil
	}
	switch h.Method {
	case headers.AuthMethodBasic:
		return r.Auth.CheckBasic(h.BasicUser, h.BasicPass)
	case headers.AuthMethodDigest:
		// Digest needs the plain secret: try each credential (a token goes with any user name).
		return r.Auth.Match(func(user, secret string) bool {
			if user == "" {
				user = h.Username
			}
			return user == h.Username && auth.Validate(req, user, secret,
				[]auth.ValidateMethod{auth.ValidateMethodDigestMD5, auth.ValidateMethodSHA256}, realm, r.nonce) == nil
		})
	}
	return nil
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (r *Relay) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res := r.authorize(ctx.Conn, ctx.Request, ctx.Path, ctx.Query); res != nil {
		return res, nil, nil
	}
	p := r.lookup(ctx.Path)
	if p == nil {
		return notFound(ctx.Path)
	}
	return &base.Response{StatusCode: base.StatusOK}, p.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup; a transport the config
// does not offer gets 461, so that the client tries the next one.
func (r *Relay) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res := r.authorize(ctx.Conn, ctx.Request, ctx.Path, ctx.Query); res != nil {
		return res, nil, nil
	}
	name := map[gortsplib.Transport]string{gortsplib.TransportUDP: TransportUDP,
		gortsplib.TransportUDPMulticast: TransportMulticast, gortsplib.TransportTCP: TransportTCP}[ctx.Transport]
	r.mu.Lock()
	offered := r.offered[name]
	r.mu.Unlock()
	if !offered {
		return &base.Response{StatusCode: base.StatusUnsupportedTransport}, nil,
			fmt.Errorf("rtsp: transport %s is not enabled (rtsp.transports)", ctx.Transport)
	}
	p := r.lookup(ctx.Path)
	if p == nil {
		return notFound(ctx.Path)
	}
	return &base.Response{StatusCode: base.StatusOK}, p.stream, nil
}

// OnAnnounce refuses publishing: the relay only serves.
func (r *Relay) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusMethodNotAllowed}, fmt.Errorf("rtsp: publishing is not supported")
}

// OnPlay starts feeding the path when its first reader plays and asks for a
// keyframe for every new reader, so a late joiner decodes at once.
func (r *Relay) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	if res := r.authorize(ctx.Conn, ctx.Request, ctx.Path, ctx.Query); res != nil {
		return res, nil
	}
	p := r.lookup(ctx.Path)
	if p == nil || ctx.Session.SetuppedStream() != p.stream {
		// Unknown, or rebuilt between this session's SETUP and PLAY.
		res, _, err := notFound(ctx.Path)
		return res, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.closed {
		res, _, err := notFound(ctx.Path)
		return res, err
	}
	p.readers[ctx.Session] = struct{}{}
	if p.stop == nil {
		fctx, cancel := context.WithCancel(context.Background())
		prev, done := p.done, make(chan struct{})
		p.stop, p.done = cancel, done
		r.feeds.Add(1)
		go func() {
			defer r.feeds.Done()
			defer close(done)
			if prev != nil {
				<-prev // the previous feed hands over the RTP state
			}
			r.feed(fctx, p)
		}()
	}
	select {
	case p.keyReq <- struct{}{}:
	default: // one pending request is enough
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose drops a reader; the last one out stops the feed (and, if no
// WebRTC viewer needs it, the H.264 encoder).
func (r *Relay) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.path {
		if _, ok := p.readers[ctx.Session]; ok {
			delete(p.readers, ctx.Session)
			if len(p.readers) == 0 {
				p.halt()
			}
		}
	}
}

// OnStreamWriteError counts packets a slow reader lost (its write queue was
// full) and logs them once per interval rather than once per packet.
func (r *Relay) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	if n, readers, total, ok := r.stall.add(ctx.Session); ok {
		r.log.Warn("rtsp: slow readers lost packets (write queue full)", "packets", n, "readers", readers,
			"total", total, "interval", r.stall.every, "err", ctx.Error)
	}
}

// stallCounter aggregates write-queue overflows for one log line per interval.
type stallCounter struct {
	every time.Duration

	mu      sync.Mutex
	total   uint64
	n       uint64
	readers map[*gortsplib.ServerSession]struct{}
	last    time.Time
}

// add counts one lost packet; ok says it is time to log the counts since the last line.
func (s *stallCounter) add(ss *gortsplib.ServerSession) (n uint64, readers int, total uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	s.n++
	if s.readers == nil {
		s.readers = map[*gortsplib.ServerSession]struct{}{}
	}
	s.readers[ss] = struct{}{}
	now := time.Now()
	if !s.last.IsZero() && now.Sub(s.last) < s.every {
		return 0, 0, 0, false
	}
	n, readers, total = s.n, len(s.readers), s.total
	s.n, s.last = 0, now
	clear(s.readers)
	return n, readers, total, true
}

// halt stops the running feed, if any, without waiting for it (the feed may
// need Relay.mu to finish). Callers hold Relay.mu.
func (p *relayPath) halt() {
	if p.stop != nil {
		p.stop()
		p.stop = nil
	}
}

// rebuildGrace is how long a feed whose Broadcaster closed waits for the
// stream to come back rebuilt (PUT, config reload) before it ends the
// readers' sessions (DELETE). The catalog has no change notification, so
// the feed polls it.
const rebuildGrace = 5 * time.Second

// feed subscribes to the path's Broadcaster and packetises its H.264 access
// units into RTP on the path's stream until ctx ends (the last reader left).
// When the Broadcaster closes it moves to the rebuilt one; when the stream is
// gone, or its picture size changed (recorders cannot change it mid-file),
// it ends the path so readers reconnect.
func (r *Relay) feed(ctx context.Context, p *relayPath) {
	if p.rtp == nil {
		p.rtp = &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1}
		if err := p.rtp.Init(); err != nil {
			p.log.Error("rtp encoder", "err", err)
			r.end(p, "rtp encoder failed")
			return
		}
	}
	r.mu.Lock()
	b := p.b
	r.mu.Unlock()
	for {
		sub, err := b.Subscribe(transport.CodecH264)
		if err == nil {
			reason := r.pump(ctx, p, sub)
			sub.Close()
			if ctx.Err() != nil {
				return
			}
			if reason != "" {
				r.end(p, reason)
				return
			}
		}
		// The Broadcaster closed: rebuilt or deleted.
		nb := r.awaitRebuilt(ctx, p, b)
		if ctx.Err() != nil {
			return
		}
		if nb == nil {
			r.end(p, "stream removed")
			return
		}
		p.log.Info("rtsp: stream rebuilt, readers continue")
		r.mu.Lock()
		p.b = nb
		r.mu.Unlock()
		b = nb
	}
}

// awaitRebuilt polls the catalog for a Broadcaster other than old.
func (r *Relay) awaitRebuilt(ctx context.Context, p *relayPath, old *transport.Broadcaster) *transport.Broadcaster {
	deadline := time.NewTimer(rebuildGrace)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, ok := r.cat.Broadcaster(p.name, p.variant); ok && b != old {
			return b
		}
		select {
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return nil
		case <-tick.C:
		}
	}
}

// end closes the path's stream, which ends its readers' sessions (clients
// reconnect and get the current stream, or 404).
func (r *Relay) end(p *relayPath, reason string) {
	r.mu.Lock()
	if !p.closed {
		p.closed = true
		if r.path[p.key] == p {
			delete(r.path, p.key)
		}
	}
	n := len(p.readers)
	r.mu.Unlock()
	p.log.Info("rtsp: ending the path's sessions", "reason", reason, "readers", n)
	p.stream.Close()
}

// pump writes sub's samples to the path until ctx ends or sub closes (""),
// or returns why the path must end.
func (r *Relay) pump(ctx context.Context, p *relayPath, sub *transport.Subscription) string {
	for {
		select {
		case <-ctx.Done():
			return ""
		case <-p.keyReq:
			sub.RequestKeyframe()
		case s, ok := <-sub.Samples():
			if !ok {
				return ""
			}
			if p.w != 0 && (s.W != p.w || s.H != p.h) {
				return fmt.Sprintf("picture size changed from %dx%d to %dx%d", p.w, p.h, s.W, s.H)
			}
			p.w, p.h = s.W, s.H
			p.write(s)
		}
	}
}

// write packetises one access unit.
func (p *relayPath) write(s transport.Sample) {
	au, err := h264.AnnexBUnmarshal(s.Data)
	if err != nil {
		p.log.Warn("bad H.264 sample", "err", err)
		return
	}
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		// Keep SPS/PPS in the SDP current so late readers can configure their decoder.
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			_, pps := p.forma.SafeParams()
			p.forma.SafeSetParams(nalu, pps)
		case h264.NALUTypePPS:
			sps, _ := p.forma.SafeParams()
			p.forma.SafeSetParams(sps, nalu)
		}
	}
	pkts, err := p.rtp.Encode(au)
	if err != nil {
		p.log.Warn("packetise", "err", err)
		return
	}
	ts := p.clock.at(s.Captured)
	// The NTP time given with a packet is when it is sent, not captured:
	// gortsplib computes a PLAY's RTP-Info rtptime as the last keyframe's
	// timestamp plus the time since its NTP, and with the send time that lands
	// at or before the next frame whatever the processing latency (a capture
	// time would put it up to one latency past the next frame).
	now := time.Now()
	for _, pkt := range pkts {
		pkt.Timestamp = ts
		if err := p.stream.WritePacketRTPWithNTP(p.media, pkt, now); err != nil {
			p.log.Debug("write rtp", "err", err)
		}
	}
}

// rtpClock turns capture times into 90 kHz RTP timestamps that only move
// forward, across feeds and rebuilt Broadcasters alike: the timestamps keep
// wall-clock pace, so RTP-Info (last timestamp plus time elapsed) stays right
// after any idle period.
type rtpClock struct {
	base   time.Time // capture time of timestamp base0
	base0  uint32
	lastTS uint32
	last   time.Time // capture time of lastTS
}

func (c *rtpClock) at(captured time.Time) uint32 {
	if c.base.IsZero() {
		c.base, c.base0 = captured, rand.Uint32() // RFC 3550: a random start
		c.lastTS, c.last = c.base0-1, captured.Add(-time.Millisecond)
	}
	if !captured.After(c.last) {
		// A capture time that does not move on (a restarted source's clock)
		// still gets a later timestamp: decoders need increasing ones.
		captured = c.last.Add(time.Millisecond)
		c.base, c.base0 = captured, c.lastTS+90
	}
	ts := c.base0 + uint32(captured.Sub(c.base).Seconds()*90000)
	c.lastTS, c.last = ts, captured
	return ts
}
