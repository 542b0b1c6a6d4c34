// Package rtsp serves every stream as an RTSP/H.264 relay for NVRs, VLC and
// ffmpeg: rtsp://HOST:8554/{name} (enhanced) and rtsp://HOST:8554/{name}/original.
// It reads the same encoded samples the WebRTC viewers get (one H.264 encoder
// per stream variant, shared) and only subscribes while someone is playing.
package rtsp

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
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

	"github.com/danstream/danstream/transport"
)

// Catalog finds the fan-out point of a stream variant (stream.Manager is one).
type Catalog interface {
	Broadcaster(name, variant string) (*transport.Broadcaster, bool)
}

// Relay is the RTSP server.
type Relay struct {
	// Auth, when enabled, requires credentials (Basic or Digest user/password,
	// a token as the password, or ?token= in the URL) and a read right for
	// the stream. Set it before Run.
	Auth *transport.Auth

	cat   Catalog
	nonce string // Digest nonce, one per relay
	log   *slog.Logger
	srv   *gortsplib.Server
	mu    sync.Mutex
	path  map[string]*relayPath // by RTSP path, e.g. "/demo/original"
}

// relayPath is one readable stream variant: a gortsplib stream plus the
// subscription that feeds it while it has readers.
type relayPath struct {
	b       *transport.Broadcaster
	stream  *gortsplib.ServerStream
	media   *description.Media
	readers map[*gortsplib.ServerSession]struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

// New makes a relay listening on addr (e.g. ":8554").
func New(cat Catalog, addr string, log *slog.Logger) *Relay {
	nonce, err := auth.GenerateNonce()
	if err != nil {
		panic("rtsp: no randomness for a nonce: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	r := &Relay{cat: cat, nonce: nonce, log: log.With("component", "rtsp"), path: map[string]*relayPath{}}
	r.srv = &gortsplib.Server{Handler: r, RTSPAddress: addr, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	return r
}

// Run serves until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.srv.Start(); err != nil {
		return fmt.Errorf("rtsp: listen %s: %w", r.srv.RTSPAddress, err)
	}
	r.log.Info("rtsp relay listening", "addr", r.srv.RTSPAddress)
	errc := make(chan error, 1)
	go func() { errc <- r.srv.Wait() }()
	select {
	case <-ctx.Done():
		r.srv.Close()
		<-errc
	case err := <-errc:
		if ctx.Err() == nil {
			return fmt.Errorf("rtsp: %w", err)
		}
	}
	r.mu.Lock()
	for _, p := range r.path {
		p.halt()
		p.stream.Close()
	}
	r.mu.Unlock()
	return nil
}

// Addr is the listening address (useful with port 0 in tests).
func (r *Relay) Addr() string { return r.srv.RTSPAddress }

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

// lookup returns (creating on first use) the relay path of an RTSP path, or nil for an unknown stream.
func (r *Relay) lookup(path string) *relayPath {
	name, variant, ok := split(path)
	if !ok {
		return nil
	}
	b, ok := r.cat.Broadcaster(name, variant)
	if !ok {
		return nil
	}
	key := "/" + name + "/" + variant
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.path[key]; ok && p.b == b {
		return p
	}
	medi := &description.Media{
		Type:    description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}},
	}
	p := &relayPath{
		b:       b,
		media:   medi,
		stream:  gortsplib.NewServerStream(r.srv, &description.Session{Medias: []*description.Media{medi}}),
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

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (r *Relay) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res := r.authorize(ctx.Conn, ctx.Request, ctx.Path, ctx.Query); res != nil {
		return res, nil, nil
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

// OnPlay starts feeding the path when its first reader plays and asks for a keyframe for every new reader.
func (r *Relay) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	if res := r.authorize(ctx.Conn, ctx.Request, ctx.Path, ctx.Query); res != nil {
		return res, nil
	}
	p := r.lookup(ctx.Path)
	if p == nil {
		res, _, err := notFound(ctx.Path)
		return res, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p.readers[ctx.Session] = struct{}{}
	if p.stop == nil {
		sub, err := p.b.Subscribe(transport.CodecH264)
		if err != nil {
			delete(p.readers, ctx.Session)
			return &base.Response{StatusCode: base.StatusServiceUnavailable}, fmt.Errorf("rtsp: %w", err)
		}
		fctx, cancel := context.WithCancel(context.Background())
		p.stop, p.done = cancel, make(chan struct{})
		go p.feed(fctx, sub, r.log.With("path", ctx.Path))
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

// halt stops the feed goroutine, if any. Callers hold Relay.mu.
func (p *relayPath) halt() {
	if p.stop != nil {
		p.stop()
		<-p.done
		p.stop, p.done = nil, nil
	}
}

// feed packetises H.264 access units from the subscription into RTP on the path's stream.
func (p *relayPath) feed(ctx context.Context, sub *transport.Subscription, log *slog.Logger) {
	defer close(p.done)
	defer sub.Close()
	enc := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1}
	if err := enc.Init(); err != nil {
		log.Error("rtp encoder", "err", err)
		return
	}
	forma := p.media.Formats[0].(*format.H264)
	sub.RequestKeyframe()
	var start time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case s, ok := <-sub.Samples():
			if !ok {
				return
			}
			au, err := h264.AnnexBUnmarshal(s.Data)
			if err != nil {
				log.Warn("bad H.264 sample", "err", err)
				continue
			}
			for _, nalu := range au {
				if len(nalu) == 0 {
					continue
				}
				// Keep SPS/PPS in the SDP current so late readers can configure their decoder.
				switch h264.NALUType(nalu[0] & 0x1f) {
				case h264.NALUTypeSPS:
					_, pps := forma.SafeParams()
					forma.SafeSetParams(nalu, pps)
				case h264.NALUTypePPS:
					sps, _ := forma.SafeParams()
					forma.SafeSetParams(sps, nalu)
				}
			}
			pkts, err := enc.Encode(au)
			if err != nil {
				log.Warn("packetise", "err", err)
				continue
			}
			if start.IsZero() {
				start = s.Captured
			}
			ts := uint32(s.Captured.Sub(start).Seconds() * 90000)
			for _, pkt := range pkts {
				pkt.Timestamp = ts
				if err := p.stream.WritePacketRTPWithNTP(p.media, pkt, s.Captured); err != nil {
					log.Debug("write rtp", "err", err)
				}
			}
		}
	}
}
