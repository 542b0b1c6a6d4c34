package transport

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// AuthRule is one credential from the config and its rights: either a bearer
// Token, or a User with a Pass (HTTP/RTSP Basic).
type AuthRule struct {
	Token      string
	User, Pass string
	Read       []string // stream names this credential may watch; "*" is every stream
	Admin      bool     // the runtime API and /metrics (admin also reads every stream)
}

// Auth checks credentials. A nil *Auth (or one with no rules) means
// authentication is off: every request is allowed, as on a loopback-only
// server with no auth configured. Set swaps the rules at runtime (hot reload).
type Auth struct {
	rules atomic.Pointer[[]authRule]
}

type authRule struct {
	name     string // for logs: "token #2", "user alice"; never the secret
	isToken  bool
	secret   [32]byte // SHA-256 of the token or password: fixed-length constant-time compare
	user     [32]byte
	userName string
	read     map[string]bool
	all      bool
	admin    bool
	pass     string // plain password, kept for RTSP Digest (which needs it)
}

// NewAuth builds the checker; no rules means authentication is off.
func NewAuth(rules []AuthRule) *Auth {
	a := &Auth{}
	a.Set(rules)
	return a
}

// Set replaces the rules; requests already authenticated keep their rights.
func (a *Auth) Set(rules []AuthRule) {
	var out []authRule
	nt := 0
	for _, r := range rules {
		ar := authRule{read: map[string]bool{}, admin: r.Admin, all: r.Admin}
		for _, n := range r.Read {
			if n == "*" {
				ar.all = true
			}
			ar.read[n] = true
		}
		if r.Token != "" {
			nt++
			ar.isToken, ar.name, ar.secret, ar.pass = true, fmt.Sprintf("token #%d", nt), sha256.Sum256([]byte(r.Token)), r.Token
		} else {
			ar.name, ar.userName, ar.user = "user "+r.User, r.User, sha256.Sum256([]byte(r.User))
			ar.secret, ar.pass = sha256.Sum256([]byte(r.Pass)), r.Pass
		}
		out = append(out, ar)
	}
	a.rules.Store(&out)
}

func (a *Auth) list() []authRule {
	if a == nil {
		return nil
	}
	if p := a.rules.Load(); p != nil {
		return *p
	}
	return nil
}

// Enabled reports whether requests need credentials.
func (a *Auth) Enabled() bool { return len(a.list()) > 0 }

// Principal is an authenticated caller and its rights.
type Principal struct {
	Name  string // "token #1", "user alice" or "anonymous" (auth off); safe to log
	all   bool
	admin bool
	read  map[string]bool
}

// anonymous is everyone when authentication is off.
var anonymous = &Principal{Name: "anonymous", all: true, admin: true}

// CanRead reports whether p may watch stream name (page, WHEP, snapshot, RTSP).
func (p *Principal) CanRead(name string) bool {
	return p != nil && (p.all || p.read[name])
}

// IsAdmin reports whether p may use the runtime API and /metrics.
func (p *Principal) IsAdmin() bool { return p != nil && p.admin }

func (r *authRule) principal() *Principal {
	return &Principal{Name: r.name, all: r.all, admin: r.admin, read: r.read}
}

// CheckToken returns the principal of a bearer token, nil if none matches.
// Every rule is compared (no early exit) so timing says nothing about which.
func (a *Auth) CheckToken(token string) *Principal {
	rules := a.list()
	if len(rules) == 0 || token == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(token))
	hit := -1
	for i := range rules {
		r := &rules[i]
		ok := subtle.ConstantTimeCompare(sum[:], r.secret[:]) & boolInt(r.isToken)
		if ok == 1 && hit < 0 {
			hit = i
		}
	}
	if hit < 0 {
		return nil
	}
	return rules[hit].principal()
}

// CheckBasic returns the principal of a user and password; a token is also
// accepted as the password with any user name (for RTSP clients and players
// that only speak Basic). nil if nothing matches.
func (a *Auth) CheckBasic(user, pass string) *Principal {
	rules := a.list()
	if len(rules) == 0 {
		return nil
	}
	us, ps := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	userHit, tokenHit := -1, -1
	for i := range rules {
		r := &rules[i]
		passOK := subtle.ConstantTimeCompare(ps[:], r.secret[:])
		if r.isToken {
			if passOK == 1 && tokenHit < 0 {
				tokenHit = i
			}
			continue
		}
		if passOK&subtle.ConstantTimeCompare(us[:], r.user[:]) == 1 && userHit < 0 {
			userHit = i
		}
	}
	switch {
	case userHit >= 0:
		return rules[userHit].principal()
	case tokenHit >= 0:
		return rules[tokenHit].principal()
	}
	return nil
}

// Match returns the principal of the first rule for which ok(user, secret)
// holds, nil if none: for protocols that must compute with the plain secret
// (RTSP Digest). user is "" for a token (any user name goes with it).
func (a *Auth) Match(ok func(user, secret string) bool) *Principal {
	rules := a.list()
	for i := range rules {
		r := &rules[i]
		if ok(r.userName, r.pass) {
			return r.principal()
		}
	}
	return nil
}

// FromRequest authenticates an HTTP request from its Authorization header
// (Bearer or Basic) or a ?token= query parameter (links, players). presented
// says whether any credential was offered at all.
func (a *Auth) FromRequest(r *http.Request) (p *Principal, presented bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		switch strings.ToLower(scheme) {
		case "bearer":
			return a.CheckToken(strings.TrimSpace(rest)), true
		case "basic":
			if u, pw, ok := r.BasicAuth(); ok {
				return a.CheckBasic(u, pw), true
			}
		}
		return nil, true
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		return a.CheckToken(tok), true
	}
	return nil, false
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

type principalKey struct{}

// principalOf returns the caller a request was authenticated as (anonymous when auth is off).
func principalOf(r *http.Request) *Principal {
	if p, ok := r.Context().Value(principalKey{}).(*Principal); ok {
		return p
	}
	return anonymous
}

// realm is shown by browsers in the login prompt.
const realm = "danstream"

// challenge answers 401 with both schemes we take.
func challenge(w http.ResponseWriter) {
	w.Header().Add("WWW-Authenticate", `Basic realm="`+realm+`", charset="UTF-8"`)
	w.Header().Add("WWW-Authenticate", `Bearer realm="`+realm+`"`)
	http.Error(w, "authentication required (Authorization: Bearer TOKEN, Basic user:pass, or ?token=)", http.StatusUnauthorized)
}

// guard authenticates every request (when auth is on) and bounds every
// request body. CORS preflights and the static assets (the same public
// JavaScript and CSS for everyone) pass without credentials: browsers send
// preflights without them and load <script> tags without the page's ?token=.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ReadTimeout bounds the client sending its request, not the handler
		// answering it, but its deadline stays on the connection and net/http
		// cancels the request's context when it passes: lift it once the
		// request is in (at once without a body, else at the body's end).
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			r.Body = http.MaxBytesReader(w, &liftAtEOF{ReadCloser: r.Body, rc: rc}, s.opts.MaxBodyBytes)
		} else {
			_ = rc.SetReadDeadline(time.Time{}) // ErrNotSupported off a real connection (tests' recorders)
		}
		if !s.opts.Auth.Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodOptions || (r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/assets/")) {
			next.ServeHTTP(w, r)
			return
		}
		p, presented := s.opts.Auth.FromRequest(r)
		if p == nil {
			if presented {
				// Path only: the query may hold the (wrong) token.
				s.log.Warn("transport: rejected credentials", "remote", s.clientIP(r), "path", r.URL.Path)
			}
			refuseBody(w, r) // credentials come in the headers: never wait for the body of a stranger
			challenge(w)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// liftAtEOF clears the connection's read deadline when the body has been read whole.
type liftAtEOF struct {
	io.ReadCloser
	rc *http.ResponseController
}

func (b *liftAtEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// refuseBody is called before answering a request whose body will not be
// read. net/http would otherwise read (up to 256 KiB of) it before sending the
// answer, to keep the connection: a client sending a byte every few seconds
// would hold the connection until the read timeout and see no answer. Instead
// the connection closes after the answer and further reads fail at once.
func refuseBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return
	}
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now()) // ErrNotSupported in tests' recorders: nothing to wait for
}

// canRead answers 403 and returns false if the caller may not watch name.
func (s *Server) canRead(w http.ResponseWriter, r *http.Request, name string) bool {
	if principalOf(r).CanRead(name) {
		return true
	}
	refuseBody(w, r)
	http.Error(w, fmt.Sprintf("no read right for stream %q", name), http.StatusForbidden)
	return false
}

// requireAdmin answers 403 and returns false if the caller is not an admin.
func (s *Server) requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	if principalOf(r).IsAdmin() {
		return true
	}
	refuseBody(w, r)
	http.Error(w, "admin right required", http.StatusForbidden)
	return false
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientIP is the address to rate-limit and log: the peer's own, or, when the
// peer is a trusted proxy, the nearest untrusted address in X-Forwarded-For.
// The header is read right to left: each trusted hop appended the address it
// saw, and whatever lies left of the first untrusted one is the client's own
// claim, which anyone can forge.
func (s *Server) clientIP(r *http.Request) string {
	peer := remoteIP(r)
	a, err := netip.ParseAddr(peer)
	if err != nil || !s.trustedProxy(a) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0 && s.trustedProxy(a); i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: do not guess past it
		}
		a = hop
	}
	return a.Unmap().String()
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range s.opts.TrustedProxies {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads addresses ("10.0.0.5") and networks ("10.0.0.0/8").
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, v := range list {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want an IP address or a CIDR network", v)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func isLoopbackIP(ip string) bool {
	a := net.ParseIP(ip)
	return a != nil && a.IsLoopback()
}

// rateLimiter is a per-IP token bucket (golang.org/x/time/rate per address;
// signaling only: it guards WHEP POST, where each request costs an ICE gather
// and a PeerConnection).
type rateLimiter struct {
	rate  rate.Limit
	burst int
	mu    sync.Mutex
	ips   map[string]*rate.Limiter
	swept time.Time
}

func newRateLimiter(r float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate.Limit(r), burst: burst, ips: map[string]*rate.Limiter{}}
}

// allow takes a token for ip; false means over the limit.
func (l *rateLimiter) allow(ip string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Forget full buckets now and then so the map stays small: a full bucket
	// is what a new address gets anyway.
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.ips {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.ips, k)
			}
		}
		l.swept = now
	}
	b := l.ips[ip]
	if b == nil {
		b = rate.NewLimiter(l.rate, l.burst)
		l.ips[ip] = b
	}
	return b.AllowN(now, 1)
}
