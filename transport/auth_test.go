package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// adminCatalog is a testCatalog with the runtime API (records calls).
type adminCatalog struct {
	*testCatalog
	mu   sync.Mutex
	puts map[string]string
}

func (a *adminCatalog) PutStream(name string, body []byte) (bool, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		return false, false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	old, ok := a.puts[name]
	a.puts[name] = string(body)
	return !ok, old != string(body), nil
}

func (a *adminCatalog) DeleteStream(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.puts[name]; !ok {
		return fmt.Errorf("stream %q: %w", name, ErrNotFound)
	}
	delete(a.puts, name)
	return nil
}

var testMetricDesc = prometheus.NewDesc("danstream_test", "A test series.", nil, nil)

func (a *adminCatalog) Describe(ch chan<- *prometheus.Desc) { ch <- testMetricDesc }
func (a *adminCatalog) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(testMetricDesc, prometheus.GaugeValue, 1)
}

const (
	readToken  = "read-cam-0123456789abcdef"
	adminToken = "admin-0123456789abcdef00"
)

func authServer(t *testing.T) (*adminCatalog, string) {
	t.Helper()
	cat := &adminCatalog{testCatalog: newTestCatalog(), puts: map[string]string{}}
	for _, n := range []string{"cam", "yard"} {
		b := NewBroadcaster(n, VariantEnhanced, EncoderOptions{})
		t.Cleanup(b.Close)
		b.WriteFrame(testFrame(64, 48, 0))
		cat.add(b)
	}
	auth := NewAuth([]AuthRule{
		{Token: readToken, Read: []string{"cam"}},
		{Token: adminToken, Admin: true},
		{User: "alice", Pass: "wonderland", Read: []string{"*"}},
	})
	_, base := newTestServer(t, cat, ServerOptions{Auth: auth})
	return cat, base
}

// do sends a request with an optional "Bearer X", "Basic user:pass" or "" credential.
func do(t *testing.T, method, url, cred, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/sdp")
	}
	switch kind, v, _ := strings.Cut(cred, " "); kind {
	case "Bearer":
		req.Header.Set("Authorization", "Bearer "+v)
	case "Basic":
		u, p, _ := strings.Cut(v, ":")
		req.SetBasicAuth(u, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func TestAuthEveryEndpointNeedsCredentials(t *testing.T) {
	_, base := authServer(t)
	endpoints := []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/streams/cam"}, {"GET", "/healthz"}, {"GET", "/api/streams"},
		{"GET", "/metrics"}, {"GET", "/api/streams/cam/snapshot.jpg"},
		{"POST", "/api/streams/cam/whep"}, {"DELETE", "/api/streams/cam/whep/abc"},
		{"PUT", "/api/streams/new"}, {"DELETE", "/api/streams/cam"},
	}
	for _, e := range endpoints {
		for _, cred := range []string{"", "Bearer wrong-token-0123456789", "Basic alice:wrong"} {
			t.Run(e.method+" "+e.path+" "+cred, func(t *testing.T) {
				resp, body := do(t, e.method, base+e.path, cred, "")
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401 (%s)", resp.StatusCode, body)
				}
				ch := strings.Join(resp.Header.Values("WWW-Authenticate"), ", ")
				if !strings.Contains(ch, `Basic realm="danstream"`) || !strings.Contains(ch, `Bearer realm="danstream"`) {
					t.Fatalf("WWW-Authenticate %q, want Basic and Bearer challenges", ch)
				}
			})
		}
	}
	// A wrong ?token= is refused too.
	if resp, _ := do(t, "GET", base+"/api/streams?token=nope-0123456789abcdef", "", ""); resp.StatusCode != 401 {
		t.Fatalf("wrong ?token=: %d, want 401", resp.StatusCode)
	}
}

func TestAuthReadRightsAndAdmin(t *testing.T) {
	_, base := authServer(t)
	tests := []struct {
		name, method, path, cred string
		want                     int
	}{
		{"read token sees its stream page", "GET", "/streams/cam", "Bearer " + readToken, 200},
		{"read token via query", "GET", "/streams/cam?token=" + readToken, "", 200},
		{"read token snapshot", "GET", "/api/streams/cam/snapshot.jpg", "Bearer " + readToken, 200},
		{"read token other stream page", "GET", "/streams/yard", "Bearer " + readToken, 403},
		{"read token other snapshot", "GET", "/api/streams/yard/snapshot.jpg", "Bearer " + readToken, 403},
		{"read token other WHEP", "POST", "/api/streams/yard/whep", "Bearer " + readToken, 403},
		{"read token cannot PUT", "PUT", "/api/streams/new", "Bearer " + readToken, 403},
		{"read token cannot DELETE", "DELETE", "/api/streams/cam", "Bearer " + readToken, 403},
		{"read token cannot scrape", "GET", "/metrics", "Bearer " + readToken, 403},
		{"user reads all", "GET", "/api/streams/yard/snapshot.jpg", "Basic alice:wonderland", 200},
		{"user is no admin", "GET", "/metrics", "Basic alice:wonderland", 403},
		{"token as Basic password", "GET", "/streams/cam", "Basic anyone:" + readToken, 200},
		{"admin scrapes", "GET", "/metrics", "Bearer " + adminToken, 200},
		{"admin reads", "GET", "/streams/yard", "Bearer " + adminToken, 200},
		{"healthz with read token", "GET", "/healthz", "Bearer " + readToken, 200},
		{"static assets are public", "GET", "/assets/app.js", "", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, base+tc.path, tc.cred, "")
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: status %d, want %d (%s)", tc.method, tc.path, resp.StatusCode, tc.want, body)
			}
		})
	}
	// /api/streams lists only what the caller may read.
	for cred, want := range map[string]string{"Bearer " + readToken: "cam", "Basic alice:wonderland": "cam,yard"} {
		_, body := do(t, "GET", base+"/api/streams", cred, "")
		var v struct{ Streams []StreamStatus }
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range v.Streams {
			names = append(names, s.Name)
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("%s lists %q, want %q", cred, got, want)
		}
		if strings.Contains(body, readToken) || strings.Contains(body, "wonderland") {
			t.Errorf("credential in /api/streams output: %s", body)
		}
	}
}

func TestAuthWHEPViewerWithToken(t *testing.T) {
	cat, base := authServer(t)
	b, _ := cat.Broadcaster("cam", VariantEnhanced)
	feed(t, b, 64, 48)
	v := connectViewer(t, base, "cam", "?token="+readToken)
	waitFor(t, "RTP with a token", func() bool { return v.Packets.Load() > 5 })
	// Its session can be ended with the same token, not without.
	if resp, _ := do(t, "DELETE", base+v.Location, "", ""); resp.StatusCode != 401 {
		t.Fatalf("DELETE without token: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "DELETE", base+v.Location, "Bearer "+readToken, ""); resp.StatusCode != 200 {
		t.Fatalf("DELETE with token: %d", resp.StatusCode)
	}
}

func TestRuntimeAPIStatusCodesAndBodyLimit(t *testing.T) {
	_, base := authServer(t)
	admin := "Bearer " + adminToken
	steps := []struct {
		method, path, body string
		want               int
	}{
		{"PUT", "/api/streams/new", `{"source":"synthetic:"}`, 201},
		{"PUT", "/api/streams/new", `{"source":"synthetic:"}`, 200},
		{"PUT", "/api/streams/new", `{"source":"synthetic:320x180@15"}`, 200},
		{"PUT", "/api/streams/new", `{not json`, 400},
		{"PUT", "/api/streams/big", `{"source":"` + strings.Repeat("x", 70<<10) + `"}`, 413},
		{"DELETE", "/api/streams/new", "", 204},
		{"DELETE", "/api/streams/new", "", 404},
	}
	for _, s := range steps {
		resp, body := do(t, s.method, base+s.path, admin, s.body)
		if resp.StatusCode != s.want {
			t.Fatalf("%s %s %.40q: status %d, want %d (%s)", s.method, s.path, s.body, resp.StatusCode, s.want, body)
		}
	}
}

func TestWHEPRateLimitPerIP(t *testing.T) {
	cat := newTestCatalog()
	b := NewBroadcaster("cam", VariantEnhanced, EncoderOptions{})
	defer b.Close()
	cat.add(b)
	_, base := newTestServer(t, cat, ServerOptions{WHEPRate: 0.001, WHEPBurst: 3, LimitLoopback: true})
	codes := []int{}
	for range 5 {
		resp, _ := do(t, "POST", base+"/api/streams/cam/whep", "", "not sdp")
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[400 400 400 429 429]" {
		t.Fatalf("statuses %v, want 3 answered (400: bad offer) then 429", codes)
	}
	// Loopback peers are exempt by default (load tools, a local reverse proxy).
	_, open := newTestServer(t, cat, ServerOptions{WHEPRate: 0.001, WHEPBurst: 1})
	for range 3 {
		if resp, _ := do(t, "POST", open+"/api/streams/cam/whep", "", "not sdp"); resp.StatusCode == 429 {
			t.Fatal("loopback peer rate-limited without LimitLoopback")
		}
	}
	// Behind a trusted local reverse proxy, each viewer has its own bucket
	// (X-Forwarded-For), and the proxy itself is no longer exempt for them.
	_, proxied := newTestServer(t, cat, ServerOptions{WHEPRate: 0.001, WHEPBurst: 1,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	post := func(xff string) int {
		req, _ := http.NewRequest("POST", proxied+"/api/streams/cam/whep", strings.NewReader("not sdp"))
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = readBody(t, resp)
		return resp.StatusCode
	}
	if got := []int{post("198.51.100.7"), post("198.51.100.7"), post("198.51.100.8"), post("1.2.3.4, 198.51.100.7")}; fmt.Sprint(got) != "[400 429 400 429]" {
		t.Fatalf("statuses %v, want one answer per forwarded client, then 429 (a forged left-hand hop does not help)", got)
	}
	l := newRateLimiter(5, 2)
	now := time.Now()
	if !l.allow("a", now) || !l.allow("a", now) || l.allow("a", now) || !l.allow("b", now) || !l.allow("a", now.Add(250*time.Millisecond)) {
		t.Fatal("bucket: want burst 2 per IP, refilled at 5/s, IPs independent")
	}
}

func TestNoAuthMeansOpen(t *testing.T) {
	cat := &adminCatalog{testCatalog: newTestCatalog(), puts: map[string]string{}}
	_, base := newTestServer(t, cat, ServerOptions{})
	for _, p := range []string{"/api/streams", "/metrics", "/healthz"} {
		if resp, body := do(t, "GET", base+p, "", ""); resp.StatusCode != 200 {
			t.Fatalf("%s without auth configured: %d %s", p, resp.StatusCode, body)
		}
	}
	if errors.Is(fmt.Errorf("x: %w", ErrNotFound), ErrInvalid) {
		t.Fatal("sentinels must differ")
	}
}

func TestAuthSetRotatesCredentials(t *testing.T) {
	a := NewAuth(nil)
	if a.Enabled() || a.CheckToken("anything-0123456789") != nil {
		t.Fatal("no rules: auth off, no token matches")
	}
	a.Set([]AuthRule{{Token: "old-token-0123456789", Read: []string{"cam"}}})
	if p := a.CheckToken("old-token-0123456789"); !a.Enabled() || p == nil || !p.CanRead("cam") || p.CanRead("yard") || p.IsAdmin() {
		t.Fatalf("old token: %+v", p)
	}
	a.Set([]AuthRule{{Token: "new-token-0123456789", Admin: true}})
	if a.CheckToken("old-token-0123456789") != nil {
		t.Fatal("rotated-out token still accepted")
	}
	if p := a.CheckToken("new-token-0123456789"); p == nil || !p.IsAdmin() || !p.CanRead("yard") || p.Name != "token #1" {
		t.Fatalf("new token: %+v", p)
	}
}

func TestClientIPBelievesForwardedForOnlyFromTrustedProxies(t *testing.T) {
	proxies, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{opts: ServerOptions{TrustedProxies: proxies}}
	tests := []struct {
		name, remote, xff, want string
	}{
		{"no proxy configured for this peer", "203.0.113.9:5000", "198.51.100.1", "203.0.113.9"},
		{"trusted proxy, one hop", "10.1.2.3:5000", "198.51.100.1", "198.51.100.1"},
		{"trusted single address", "192.0.2.1:5000", "198.51.100.1", "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:5000", "198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"forged hop left of the real client", "10.1.2.3:5000", "6.6.6.6, 198.51.100.1", "198.51.100.1"},
		{"trusted proxy without the header", "10.1.2.3:5000", "", "10.1.2.3"},
		{"malformed hop stops the walk", "10.1.2.3:5000", "198.51.100.1, garbage", "10.1.2.3"},
		{"IPv4-mapped IPv6 hop", "10.1.2.3:5000", "::ffff:198.51.100.1", "198.51.100.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := s.clientIP(r); got != tc.want {
				t.Fatalf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := ParseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("a bad CIDR was accepted")
	}
}
