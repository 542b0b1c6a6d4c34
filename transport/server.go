package transport

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/danstream/danstream/frame"
)

//go:embed web
var webFS embed.FS

// Stream states reported in StreamStatus.State. Only StateError makes /healthz fail.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateIdle     = "idle" // on-demand stream with no viewers: healthy, not capturing
	StateStopped  = "stopped"
	StateError    = "error"
)

// StreamStatus is one stream as /api/streams reports it. The stream manager fills it.
type StreamStatus struct {
	Name         string `json:"name"`
	Source       string `json:"source"` // URL with credentials redacted
	State        string `json:"state"`  // one of the State* constants
	Error        string `json:"error,omitempty"`
	InputWidth   int    `json:"input_width"`
	InputHeight  int    `json:"input_height"`
	OutputWidth  int    `json:"output_width"`
	OutputHeight int    `json:"output_height"`
	Scale        int    `json:"scale"`
	Model        string `json:"model"`
	ModelPath    string `json:"model_path,omitempty"` // the ONNX file it was loaded from
	// ModelValidation is what the running model scored on the camera's
	// held-out pairs when `danstream adapt` swapped it in (nil otherwise).
	ModelValidation *ModelValidation `json:"model_validation,omitempty"`
	// ConfigError is why the config file's last reload could not apply this
	// stream's settings (it runs its earlier ones, if any); /healthz is degraded.
	ConfigError string `json:"config_error,omitempty"`
	// Pairs is the adaptation-pair collection of a stream with a main source.
	Pairs      *PairsStatus `json:"pairs,omitempty"`
	FPSIn      float64      `json:"fps_in"`
	FPSOut     float64      `json:"fps_out"`
	SRMillis   float64      `json:"sr_ms"`
	LatencyMs  float64      `json:"latency_ms,omitempty"` // capture -> encoded, if measured
	Viewers    int          `json:"viewers"`
	Reconnects uint64       `json:"reconnects"` // source reconnects and watchdog restarts
	// SR tile-cache counters since the stream started (0 when the upscaler
	// does not count its work): reused/(reused+inferred), and tiles run per frame.
	CacheHitRate          float64 `json:"cache_hit_rate"`
	TilesInferredPerFrame float64 `json:"tiles_inferred_per_frame"`
	// Delivery is optional: the manager may add Broadcaster.Stats() of each variant.
	Delivery []BroadcastStats `json:"delivery,omitempty"`
}

// ModelValidation is a model's score on a camera's held-out sub/main pairs
// (PSNR-Y, dB): the adapted model, the one it replaced, and bicubic.
type ModelValidation struct {
	Pairs   int       `json:"pairs"`
	Bicubic float64   `json:"psnr_y_bicubic"`
	Before  float64   `json:"psnr_y_before"`
	After   float64   `json:"psnr_y_after"`
	When    time.Time `json:"when"`
}

// Check refuses figures that cannot be real (the API takes them from a client).
func (v ModelValidation) Check() error {
	for _, x := range []float64{v.Bicubic, v.Before, v.After} {
		if math.IsNaN(x) || x < 0 || x > 200 {
			return fmt.Errorf("validation PSNR %g dB out of range 0..200", x)
		}
	}
	if v.Pairs < 1 {
		return fmt.Errorf("validation over %d pairs", v.Pairs)
	}
	return nil
}

// PairsStatus is a stream's collection of sub/main pairs for adaptation.
type PairsStatus struct {
	Main  string `json:"main"` // URL, credentials redacted
	Dir   string `json:"dir"`
	State string `json:"state"` // collecting | retrying | failed
	Error string `json:"error,omitempty"`
	// Counters since the collector last (re)started, and pairs on disk.
	Considered   uint64 `json:"considered"`
	Stored       uint64 `json:"stored"`
	OnDisk       int    `json:"on_disk"`
	Motion       uint64 `json:"rejected_motion"`
	NoMain       uint64 `json:"rejected_no_main"`
	Content      uint64 `json:"rejected_content"`
	Registration uint64 `json:"rejected_registration"`
	WriteErrors  uint64 `json:"write_errors"`
	Restarts     uint64 `json:"restarts"`
}

// Catalog is what the server needs from the stream manager.
type Catalog interface {
	// List returns every configured stream, in display order.
	List() []StreamStatus
	// Broadcaster returns the Broadcaster of a stream's variant (VariantEnhanced
	// or VariantOriginal); false if there is no such stream. Called once per
	// WHEP offer and per snapshot, so an on-demand manager may start the
	// pipeline here and stop it when Viewers() stays 0.
	Broadcaster(name, variant string) (*Broadcaster, bool)
}

// streamChecker is what a Catalog may add so that the server can tell an
// unknown stream without Broadcaster's side effect (an on-demand start).
type streamChecker interface {
	Has(name string) bool
}

// hasStream reports whether a stream is configured, without starting it.
func (s *Server) hasStream(name string) bool {
	if c, ok := s.cat.(streamChecker); ok {
		return c.Has(name)
	}
	for _, st := range s.cat.List() {
		if st.Name == name {
			return true
		}
	}
	return false
}

// ServerOptions configure the HTTP/WHEP server. Zero values pick defaults.
type ServerOptions struct {
	Logger *slog.Logger
	// MaxOfferBytes bounds a WHEP offer body (default 64 KiB); larger gets 413.
	MaxOfferBytes int64
	// AllowOrigin is the CORS Access-Control-Allow-Origin for /api/ (default "*").
	AllowOrigin string
	// LoopbackOnly offers only loopback ICE candidates (tests, local-only serving).
	LoopbackOnly bool
	// ICEUDPListen is the one UDP host:port every viewer's media uses (ICE UDP
	// mux, as MediaMTX's webrtcLocalUDPAddress); an empty host means every local
	// address. "" gives each viewer its own ephemeral socket (ICEPortMin/Max).
	ICEUDPListen string
	// ICETCPListen is the ICE-TCP fallback (passive candidates, RFC 6544) for
	// viewers whose UDP is blocked; "" is off.
	ICETCPListen string
	// ICEUDPOptional and ICETCPOptional: the address is a default, not the
	// user's choice; when its port is taken (a second server on the host) the
	// server logs it and serves per-viewer sockets / no ICE-TCP instead of failing.
	ICEUDPOptional, ICETCPOptional bool
	// ICEHosts are addresses or names offered as extra host candidates beside the
	// local ones (a public address mapped 1:1 to this host, a container's host);
	// names are resolved when the server starts.
	ICEHosts []string
	// ICEServers are the STUN/TURN servers handed to viewers (WHEP Link headers, the player page).
	ICEServers []ICEServer
	// ICEPortMin/Max bound the per-viewer UDP ports without ICEUDPListen (0: any ephemeral port).
	ICEPortMin, ICEPortMax uint16
	// ICEDisconnectedTimeout: silence after which a viewer counts as disconnected (default 5 s).
	ICEDisconnectedTimeout time.Duration
	// ReapAfter: a viewer not connected for this long after that (or after its
	// offer) is closed (default 20 s; with the default above, gone within 25 s).
	ReapAfter time.Duration
	// GatherTimeout bounds ICE gathering before the answer (default 10 s).
	GatherTimeout time.Duration
	// Auth, when it has rules, requires credentials on every endpoint (nil: open).
	Auth *Auth
	// TLSConfig, if set, makes Serve speak HTTPS.
	TLSConfig *tls.Config
	// MaxBodyBytes bounds every request body (default 64 KiB).
	MaxBodyBytes int64
	// WHEPRate and WHEPBurst are the per-IP token bucket of WHEP POSTs
	// (default 5/s, burst 20); over it gets 429. A negative rate turns it off
	// (fuzzing). Loopback peers are exempt (load tests, a reverse proxy on the
	// same host) unless LimitLoopback is set.
	WHEPRate      float64
	WHEPBurst     int
	LimitLoopback bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is believed:
	// behind one, the rate limit and logs see each viewer's own address
	// instead of the proxy's (MediaMTX's trustedProxies). Empty: header ignored.
	TrustedProxies []netip.Prefix
	// MaxWHEPSessions and MaxWHEPSessionsPerStream cap concurrent WHEP
	// viewers, process-wide and per stream (both variants together; default
	// 500 each). Past a cap a new offer gets 503 with Retry-After. Unlike the
	// rate limit they also bound loopback clients.
	MaxWHEPSessions          int
	MaxWHEPSessionsPerStream int
	// HTTP server timeouts (net/http's, applied by Serve): ReadHeaderTimeout
	// (default 10 s) and ReadTimeout (30 s) bound how long a client may take
	// to send its request headers and whole request (a body at one byte every
	// few seconds is cut off); IdleTimeout (60 s) a kept-alive connection
	// between requests; WriteTimeout (30 s) the answer. Nothing on this
	// server streams over HTTP (media goes over WebRTC and RTSP); the runtime
	// API, which may load a model for minutes, lifts its own write deadline.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// Collectors are served on /metrics beside the catalog's (the RTSP relay's).
	Collectors []prometheus.Collector
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxOfferBytes <= 0 {
		o.MaxOfferBytes = 64 << 10
	}
	if o.AllowOrigin == "" {
		o.AllowOrigin = "*"
	}
	if o.ICEDisconnectedTimeout <= 0 {
		o.ICEDisconnectedTimeout = 5 * time.Second
	}
	if o.ReapAfter <= 0 {
		o.ReapAfter = 20 * time.Second
	}
	if o.GatherTimeout <= 0 {
		o.GatherTimeout = 10 * time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.WHEPRate == 0 {
		o.WHEPRate = 5
	}
	if o.WHEPBurst <= 0 {
		o.WHEPBurst = 20
	}
	if o.MaxWHEPSessions <= 0 {
		o.MaxWHEPSessions = 500
	}
	if o.MaxWHEPSessionsPerStream <= 0 {
		o.MaxWHEPSessionsPerStream = 500
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.ReadHeaderTimeout, 10 * time.Second}, {&o.ReadTimeout, 30 * time.Second},
		{&o.WriteTimeout, 30 * time.Second}, {&o.IdleTimeout, 60 * time.Second}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	return o
}

// Server serves the pages, the JSON API, snapshots and WHEP.
type Server struct {
	cat    Catalog
	opts   ServerOptions
	log    *slog.Logger
	api    *webrtc.API
	apiErr error
	ice    *iceListeners // sockets shared by every viewer; closed by Close
	mux    *http.ServeMux
	h      http.Handler // mux behind guard (auth, body limits)
	limit  *rateLimiter
	// metricsHandler serves /metrics when the catalog is an Admin.
	metricsHandler http.Handler

	mu       sync.Mutex
	sessions map[string]*whepSession
	// pending counts offers admitted under the caps whose session is not yet
	// in sessions (ICE gathering), per stream and in all.
	pending      map[string]int
	pendingTotal int
}

// NewServer makes a server over cat. WebRTC set-up errors (e.g. a bad ICE
// port range) surface from Run and as 500s on WHEP requests.
func NewServer(cat Catalog, opts ServerOptions) *Server {
	o := opts.withDefaults()
	s := &Server{cat: cat, opts: o, log: o.Logger, sessions: map[string]*whepSession{}, pending: map[string]int{},
		limit: newRateLimiter(o.WHEPRate, o.WHEPBurst)}
	if o.WHEPRate < 0 {
		s.limit = nil
	}
	s.api, s.ice, s.apiErr = newWebRTCAPI(o)
	if s.ice != nil && (s.ice.udp != nil || s.ice.tcp != nil) {
		tcp := ""
		if s.ice.tcpLn != nil {
			tcp = s.ice.tcpLn.Addr().String()
		}
		s.log.Info("transport: WebRTC media on shared sockets", "udp", s.ice.udpStr, "tcp", tcp, "hosts", o.ICEHosts)
	}
	if a, ok := cat.(Admin); ok {
		s.metricsHandler = newMetricsHandler(a, o.Collectors, s.log)
	}
	s.routes()
	return s
}

// Close ends every WHEP session and releases the WebRTC sockets shared by all
// viewers. Serve calls it on return; a server only used through Handler must.
func (s *Server) Close() {
	s.CloseSessions()
	s.mu.Lock()
	l := s.ice
	s.ice = nil
	s.mu.Unlock()
	l.close()
}

// ICETCPAddr is the ICE-TCP listener's address (nil when off).
func (s *Server) ICETCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ice == nil || s.ice.tcpLn == nil {
		return nil
	}
	return s.ice.tcpLn.Addr()
}

// ICEUDPAddrs are the local addresses of the shared WebRTC UDP port (none without one).
func (s *Server) ICEUDPAddrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ice.UDPAddrs()
}

// Handler returns the HTTP handler (for tests or an outer mux).
func (s *Server) Handler() http.Handler { return s.h }

// Sessions counts live WHEP sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Run serves on addr until ctx ends, then shuts down gracefully and closes
// every WHEP session.
func (s *Server) Run(ctx context.Context, addr string) error {
	if s.apiErr != nil {
		return s.apiErr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("transport: listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener (e.g. 127.0.0.1:0 in tests).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.h, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout, ReadTimeout: s.opts.ReadTimeout,
		WriteTimeout: s.opts.WriteTimeout, IdleTimeout: s.opts.IdleTimeout}
	scheme := "http://"
	if s.opts.TLSConfig != nil {
		ln, scheme = tls.NewListener(ln, s.opts.TLSConfig), "https://"
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("transport: serving", "addr", scheme+ln.Addr().String(), "auth", s.opts.Auth.Enabled())
	select {
	case err := <-errc:
		s.Close()
		return fmt.Errorf("transport: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Close()
	err := hs.Shutdown(shut)
	if errors.Is(err, context.DeadlineExceeded) {
		err = hs.Close()
	}
	if err != nil {
		return fmt.Errorf("transport: shutdown: %w", err)
	}
	return nil
}

// CloseSessions ends every WHEP session.
func (s *Server) CloseSessions() {
	s.mu.Lock()
	all := make([]*whepSession, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		ss.close("server shutdown")
	}
}

func (s *Server) forget(ss *whepSession) {
	s.mu.Lock()
	delete(s.sessions, ss.id)
	s.mu.Unlock()
}

// admit reserves a place for a new viewer of stream under both caps. The
// reservation turns into the registered session under the same lock
// (admission.settleLocked, called by startSession), so a session is never
// counted twice; release frees it if the offer fails before that. Reserving
// before the ICE gather keeps concurrent offers from all passing the check and
// overshooting the cap.
func (s *Server) admit(stream string) (*admission, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.sessions) + s.pendingTotal; n >= s.opts.MaxWHEPSessions {
		return nil, fmt.Errorf("server has %d WebRTC viewers, its limit (http.max_whep_sessions)", n)
	}
	n := s.pending[stream]
	for _, ss := range s.sessions {
		if ss.stream == stream {
			n++
		}
	}
	if n >= s.opts.MaxWHEPSessionsPerStream {
		return nil, fmt.Errorf("stream %q has %d WebRTC viewers, its limit (http.max_whep_sessions_per_stream)", stream, n)
	}
	s.pending[stream]++
	s.pendingTotal++
	return &admission{s: s, stream: stream}, nil
}

// admission is one reserved place under the WHEP caps.
type admission struct {
	s      *Server
	stream string
	done   bool // guarded by s.mu
}

// settleLocked ends the reservation; the caller holds s.mu.
func (a *admission) settleLocked() {
	if a == nil || a.done {
		return
	}
	a.done = true
	a.s.pendingTotal--
	if a.s.pending[a.stream]--; a.s.pending[a.stream] == 0 {
		delete(a.s.pending, a.stream)
	}
}

// release frees the reservation if no session took it over.
func (a *admission) release() {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	a.settleLocked()
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.page("web/index.html"))
	m.HandleFunc("GET /streams/{name}", s.playerPage)
	static, _ := fs.Sub(webFS, "web")
	m.Handle("GET /assets/", http.StripPrefix("/assets/", noListing(static, http.FileServerFS(static))))
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /api/streams", s.apiStreams)
	m.HandleFunc("GET /api/streams/{name}/snapshot.jpg", s.snapshot)
	m.HandleFunc("POST /api/streams/{name}/whep", s.cors(s.whepPost))
	m.HandleFunc("OPTIONS /api/streams/{name}/whep", s.cors(s.preflight))
	m.HandleFunc("DELETE /api/streams/{name}/whep/{id}", s.cors(s.whepDelete))
	m.HandleFunc("PATCH /api/streams/{name}/whep/{id}", s.cors(s.whepPatch))
	m.HandleFunc("OPTIONS /api/streams/{name}/whep/{id}", s.cors(s.preflight))
	m.HandleFunc("PUT /api/streams/{name}", s.apiPutStream)
	m.HandleFunc("DELETE /api/streams/{name}", s.apiDeleteStream)
	m.HandleFunc("POST /api/streams/{name}/model", s.apiSwapModel)
	m.HandleFunc("GET /metrics", s.metrics)
	s.mux = m
	s.h = s.guard(m)
}

// noListing answers 404 for a folder of static: the assets are files to
// fetch, not a tree to browse (http.FileServer would list the folder).
func noListing(static fs.FS, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimSuffix(r.URL.Path, "/")
		if name == "" {
			name = "."
		}
		if fi, err := fs.Stat(static, name); err == nil && fi.IsDir() {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", s.opts.AllowOrigin)
		hd.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Post")
		h(w, r)
	}
}

func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Methods", "POST, DELETE, PATCH, OPTIONS")
	hd.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, If-Match")
	hd.Set("Access-Control-Max-Age", "86400")
	hd.Set("Accept-Post", "application/sdp")
	// A client may ask for the ICE servers before its offer (the player does, to
	// build its RTCPeerConnection with them); a CORS preflight carries no
	// credentials, so it gets none of them, nor does a caller who may not watch.
	if r.Header.Get("Access-Control-Request-Method") == "" && r.PathValue("id") == "" {
		p := anonymous
		if s.opts.Auth.Enabled() {
			p, _ = s.opts.Auth.FromRequest(r)
		}
		if p.CanRead(r.PathValue("name")) {
			s.setICELinks(w)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// variantOf reads ?variant=, defaulting to enhanced.
func variantOf(r *http.Request) (string, error) {
	switch v := r.URL.Query().Get("variant"); v {
	case "", VariantEnhanced:
		return VariantEnhanced, nil
	case VariantOriginal:
		return VariantOriginal, nil
	default:
		return "", fmt.Errorf("unknown variant %q (want %q or %q)", v, VariantEnhanced, VariantOriginal)
	}
}

func (s *Server) whepPost(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	// Every refusal below comes before the body is read: refuseBody answers
	// at once instead of letting net/http wait for the rest of it.
	if ip := s.clientIP(r); (s.opts.LimitLoopback || !isLoopbackIP(ip)) && !s.limit.allow(ip, time.Now()) {
		refuseBody(w, r)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many WHEP requests from this address; retry shortly", http.StatusTooManyRequests)
		return
	}
	if !s.canRead(w, r, name) {
		return
	}
	if !s.hasStream(name) { // before the offer's checks: this is what is wrong
		http.Error(w, fmt.Sprintf("unknown stream %q", name), http.StatusNotFound)
		return
	}
	if s.apiErr != nil {
		refuseBody(w, r)
		http.Error(w, "WebRTC unavailable: "+s.apiErr.Error(), http.StatusInternalServerError)
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/sdp" {
		refuseBody(w, r)
		w.Header().Set("Accept-Post", "application/sdp")
		http.Error(w, fmt.Sprintf("WHEP offer must have Content-Type application/sdp, got %q", r.Header.Get("Content-Type")),
			http.StatusUnsupportedMediaType)
		return
	}
	variant, err := variantOf(r)
	if err != nil {
		refuseBody(w, r)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.ContentLength > s.opts.MaxOfferBytes {
		refuseBody(w, r)
		http.Error(w, fmt.Sprintf("SDP offer too large: %d bytes, limit %d", r.ContentLength, s.opts.MaxOfferBytes),
			http.StatusRequestEntityTooLarge)
		return
	}
	adm, err := s.admit(name)
	if err != nil {
		refuseBody(w, r)
		s.log.Warn("transport: WHEP viewer refused", "stream", name, "remote", s.clientIP(r), "reason", err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, err.Error()+"; retry later", http.StatusServiceUnavailable)
		return
	}
	defer adm.release()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxOfferBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			http.Error(w, fmt.Sprintf("SDP offer too large: limit %d bytes", s.opts.MaxOfferBytes), http.StatusRequestEntityTooLarge)
		case errors.Is(err, os.ErrDeadlineExceeded):
			http.Error(w, "SDP offer not received within the read timeout", http.StatusRequestTimeout)
		default:
			http.Error(w, "reading SDP offer: "+err.Error(), http.StatusBadRequest)
		}
		return
	}
	if len(body) == 0 {
		http.Error(w, "empty SDP offer", http.StatusBadRequest)
		return
	}
	// Check the offer before looking the stream up: an on-demand catalog may
	// start a pipeline on lookup, which a bad offer should not cause.
	if _, err := chooseCodec(string(body)); err != nil {
		writeOfferError(w, err)
		return
	}
	b, ok := s.cat.Broadcaster(name, variant)
	if !ok || b == nil {
		http.Error(w, fmt.Sprintf("unknown stream %q", name), http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.GatherTimeout)
	defer cancel()
	sess, answer, err := s.startSession(ctx, b, string(body), adm)
	if err != nil {
		var oe *offerError
		if errors.As(err, &oe) {
			writeOfferError(w, err)
			return
		}
		s.log.Error("transport: WHEP session failed", "stream", name, "variant", variant, "err", err)
		status := http.StatusInternalServerError
		if errors.Is(err, ErrClosed) {
			status = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), status)
		return
	}
	s.log.Info("transport: viewer joined", "stream", name, "variant", variant, "session", sess.id[:8], "codec", sess.codec)

	loc := "/api/streams/" + url.PathEscape(name) + "/whep/" + sess.id
	w.Header().Set("Location", loc)
	w.Header().Set("ETag", `"`+sess.id+`"`)
	w.Header().Set("Content-Type", "application/sdp")
	s.setICELinks(w)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

func writeOfferError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	var oe *offerError
	if errors.As(err, &oe) {
		status = oe.status
	}
	http.Error(w, err.Error(), status)
}

func (s *Server) whepDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.canRead(w, r, r.PathValue("name")) {
		return
	}
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil || ss.stream != r.PathValue("name") {
		http.Error(w, "no such WHEP session", http.StatusNotFound)
		return
	}
	ss.close("DELETE")
	w.WriteHeader(http.StatusOK)
}

// whepPatch: candidates travel in the offer/answer (no trickle), as RFC 9725 allows.
func (s *Server) whepPatch(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "DELETE, OPTIONS")
	http.Error(w, "trickle ICE and ICE restarts are not supported; send a complete offer", http.StatusMethodNotAllowed)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// readable is the catalog filtered to the streams the caller may watch.
func (s *Server) readable(r *http.Request) []StreamStatus {
	p := principalOf(r)
	out := []StreamStatus{}
	for _, st := range s.cat.List() {
		if p.CanRead(st.Name) {
			out = append(out, st)
		}
	}
	return out
}

func (s *Server) apiStreams(w http.ResponseWriter, r *http.Request) {
	list := s.readable(r)
	w.Header().Set("Access-Control-Allow-Origin", s.opts.AllowOrigin)
	writeJSON(w, http.StatusOK, map[string]any{"streams": list, "sessions": s.Sessions()})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	list := s.readable(r)
	states := map[string]string{}
	ok := true
	for _, st := range list {
		states[st.Name] = st.State
		if st.State == StateError || st.ConfigError != "" {
			ok = false
		}
	}
	status, word := http.StatusOK, "ok"
	if !ok {
		status, word = http.StatusServiceUnavailable, "degraded"
	}
	writeJSON(w, status, map[string]any{"status": word, "streams": states})
}

func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.canRead(w, r, name) {
		return
	}
	variant, err := variantOf(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b, ok := s.cat.Broadcaster(name, variant)
	if !ok || b == nil {
		http.Error(w, fmt.Sprintf("unknown stream %q", name), http.StatusNotFound)
		return
	}
	f := b.LatestFrame()
	if f.Empty() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("stream %q has no frame yet", name), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Access-Control-Allow-Origin", s.opts.AllowOrigin)
	if err := EncodeJPEG(w, f, 85); err != nil {
		s.log.Debug("transport: snapshot write", "stream", name, "err", err)
	}
}

// EncodeJPEG writes f as a JPEG of the same size.
func EncodeJPEG(w io.Writer, f frame.Frame, quality int) error {
	if err := f.Validate(); err != nil {
		return err
	}
	img := image.NewRGBA(image.Rect(0, 0, f.W, f.H))
	for i, j := 0, 0; i < len(f.Pix); i, j = i+3, j+4 {
		img.Pix[j], img.Pix[j+1], img.Pix[j+2], img.Pix[j+3] = f.Pix[i+2], f.Pix[i+1], f.Pix[i], 255
	}
	return jpeg.Encode(w, img, &jpeg.Options{Quality: quality})
}

func (s *Server) page(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := webFS.ReadFile(path)
		if err != nil {
			http.Error(w, "page missing from build: "+path, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	}
}

func (s *Server) playerPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.canRead(w, r, name) {
		return
	}
	names := []string{}
	for _, st := range s.readable(r) {
		if st.Name == name {
			s.page("web/player.html")(w, r)
			return
		}
		names = append(names, st.Name)
	}
	sort.Strings(names)
	http.Error(w, fmt.Sprintf("unknown stream %q (streams: %v)", name, names), http.StatusNotFound)
}
