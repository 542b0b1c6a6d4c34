package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/rtsptest"
	"github.com/danstream/danstream/internal/testdep"
)

// testModel keeps SR cheap where the test is about operations, not pictures.
const testModel = "model: sr/testdata/nearest_x4.onnx\n    threads: 1"

// get fetches url with an optional bearer token and returns status and body.
func get(t *testing.T, c *http.Client, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeRefusesNonLoopbackWithoutAuth(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("http: {listen: \"0.0.0.0:"+portOf(freePort(t))+"\"}\nstreams:\n  a: {source: \"synthetic:64x64@5\"}\n"), 0o600)
	out, err := exec.Command(binPath, "serve", "--config", cfg).CombinedOutput()
	if err == nil {
		t.Fatal("serve started on 0.0.0.0 without auth")
	}
	if !strings.Contains(string(out), "http.listen") || !strings.Contains(string(out), "auth is not configured") {
		t.Fatalf("error does not name http.listen and auth:\n%s", out)
	}
}

// selfSigned writes a fresh self-signed certificate for 127.0.0.1 and returns
// its PEM files and a client config that trusts only it.
func selfSigned(t *testing.T) (certFile, keyFile string, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "danstream test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, &tls.Config{RootCAs: pool}
}

// TestAuthOnNonLoopbackBindOverTLS: bound to every interface with auth and
// TLS, every endpoint refuses a caller without credentials (401), a read
// token cannot use the admin API (403), and no secret reaches the log or the API.
func TestAuthOnNonLoopbackBindOverTLS(t *testing.T) {
	testdep.Command(t, "ffprobe") // RTSP's credentials are checked with a real client
	const (
		readTok  = "e2e-read-token-5f3c9a1b"
		adminTok = "e2e-admin-token-77d1e0c2"
		wrongTok = "e2e-wrong-token-0000aaaa"
		userPass = "e2e-pass-c0ffee42"
	)
	certFile, keyFile, clientTLS := selfSigned(t)
	s := startServeEnv(t, fmt.Sprintf(`
http: {listen: "0.0.0.0:HTTP_PORT"}
rtsp: {listen: "0.0.0.0:RTSP_PORT"}
tls: {cert: %s, key: %s}
auth:
  tokens:
    - {token: "${DS_READ}", read: [cam]}
    - {token: "${DS_ADMIN}", admin: true}
  users:
    - {user: viewer, pass: "${DS_PASS}", read: ["*"]}
streams:
  cam:
    source: synthetic:64x48@10
    %s
  hidden:
    source: synthetic:64x48@5
    %s
`, certFile, keyFile, testModel, testModel), "DS_READ="+readTok, "DS_ADMIN="+adminTok, "DS_PASS="+userPass)
	c := tlsClient(clientTLS)
	base := "https://127.0.0.1:" + portOf(s.http)
	var apiOut strings.Builder

	// Plain HTTP to the TLS port gets nothing useful.
	if code, _ := get(t, http.DefaultClient, "GET", "http://127.0.0.1:"+portOf(s.http)+"/healthz", readTok, ""); code == 200 {
		t.Fatal("plain HTTP answered 200 on the TLS port")
	}
	endpoints := []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/streams/cam"}, {"GET", "/healthz"}, {"GET", "/api/streams"}, {"GET", "/metrics"},
		{"GET", "/api/streams/cam/snapshot.jpg"}, {"POST", "/api/streams/cam/whep"},
		{"PUT", "/api/streams/x"}, {"DELETE", "/api/streams/cam"},
	}
	for _, e := range endpoints {
		for _, tok := range []string{"", wrongTok} {
			if code, body := get(t, c, e.method, base+e.path, tok, ""); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401 (%s)", e.method, e.path, tok, code, body)
			}
		}
	}
	if code, _ := get(t, c, "GET", base+"/api/streams?token="+wrongTok, "", ""); code != 401 {
		t.Errorf("wrong ?token=: %d, want 401", code)
	}
	// The read token cannot administer.
	for _, e := range []struct{ method, path, body string }{
		{"PUT", "/api/streams/x", `{"source":"synthetic:"}`}, {"DELETE", "/api/streams/cam", ""}, {"GET", "/metrics", ""},
	} {
		if code, body := get(t, c, e.method, base+e.path, readTok, e.body); code != http.StatusForbidden {
			t.Errorf("read token %s %s: %d, want 403 (%s)", e.method, e.path, code, body)
		}
	}
	// It lists and watches only its stream.
	code, body := get(t, c, "GET", base+"/api/streams", readTok, "")
	apiOut.WriteString(body)
	if code != 200 || !strings.Contains(body, `"cam"`) || strings.Contains(body, `"hidden"`) {
		t.Fatalf("/api/streams with the read token: %d %s", code, body)
	}
	if code, _ := get(t, c, "GET", base+"/streams/hidden", readTok, ""); code != 403 {
		t.Errorf("read token on another stream's page: %d, want 403", code)
	}
	// Basic user.
	req, _ := http.NewRequest("GET", base+"/api/streams", nil)
	req.SetBasicAuth("viewer", userPass)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	apiOut.Write(b)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"hidden"`) {
		t.Fatalf("basic user: %d %s", resp.StatusCode, b)
	}
	// The admin adds and removes a stream at runtime.
	code, body = get(t, c, "PUT", base+"/api/streams/added", adminTok, `{"source":"synthetic:32x32@5","model":"sr/testdata/nearest_x4.onnx","threads":1}`)
	apiOut.WriteString(body)
	if code != http.StatusCreated {
		t.Fatalf("admin PUT: %d %s", code, body)
	}
	code, body = get(t, c, "GET", base+"/metrics", adminTok, "")
	if code != 200 || !regexp.MustCompile(`danstream_stream_up\{[^}]*stream="added"`).MatchString(body) {
		t.Fatalf("admin /metrics: %d\n%.500s", code, body)
	}
	if code, body := get(t, c, "DELETE", base+"/api/streams/added", adminTok, ""); code != http.StatusNoContent {
		t.Fatalf("admin DELETE: %d %s", code, body)
	}
	// A viewer over HTTPS with ?token= plays.
	v := connectWHEP(t, c, base, "cam", "?token="+readTok)
	waitUntil(t, "RTP to the token viewer", 60*time.Second, func() bool { return v.Packets.Load() > 10 })
	// RTSP wants credentials too.
	{
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
			"rtsp://127.0.0.1:"+portOf(s.rtsp)+"/cam").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "401") {
			t.Errorf("ffprobe without credentials: err=%v, want a 401:\n%s", err, out)
		}
		out, err = exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name",
			"-of", "csv=p=0", "rtsp://viewer:"+userPass+"@127.0.0.1:"+portOf(s.rtsp)+"/cam").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "h264") {
			t.Errorf("ffprobe with credentials: %v\n%s", err, out)
		}
	}
	// No secret, right or wrong, in the log or in anything the API returned.
	for _, secret := range []string{readTok, adminTok, wrongTok, userPass} {
		if strings.Contains(s.logs(), secret) {
			t.Errorf("secret %q appears in the log", secret)
		}
		if strings.Contains(apiOut.String(), secret) {
			t.Errorf("secret %q appears in API output", secret)
		}
	}
	if !strings.Contains(s.logs(), "rejected credentials") {
		t.Error("wrong credentials were not logged (without the secret)")
	}
}

// TestSIGTERMClosesViewersAndExitsZero: graceful shutdown with a viewer watching.
func TestSIGTERMClosesViewersAndExitsZero(t *testing.T) {
	s := startServeEnv(t, "http: {listen: HTTP_ADDR}\nrtsp: {listen: RTSP_ADDR}\nstreams:\n  cam:\n    source: synthetic:64x48@10\n    "+testModel+"\n")
	base := "http://" + s.http
	v := connectWHEP(t, http.DefaultClient, base, "cam", "")
	waitUntil(t, "RTP to the viewer", 60*time.Second, func() bool { return v.Packets.Load() > 10 })
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM, want 0\n%s", err, s.logs())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("serve still running 10 s after SIGTERM\n%s", s.logs())
	}
	select {
	case <-v.TrackEnd:
	case <-time.After(15 * time.Second):
		t.Fatalf("viewer's track still open 15 s after shutdown (state %s)", v.PC.ConnectionState())
	}
	if !strings.Contains(s.logs(), "stopped") {
		t.Errorf("no orderly 'stopped' in the log:\n%s", s.logs())
	}
}

// TestCameraLossViewerSurvives kills the RTSP publisher mid-stream and
// restarts it 10 s later, DANSTREAM_CAMERA_LOSS_REPS times (default 2): the
// viewer's connection survives, it keeps receiving (placeholder frames during
// the outage), frames resume and each reconnect is counted.
func TestCameraLossViewerSurvives(t *testing.T) {
	reps := 2
	if n, err := strconv.Atoi(os.Getenv("DANSTREAM_CAMERA_LOSS_REPS")); err == nil && n > 0 {
		reps = n
	}
	cam := rtsptest.Start(t)
	const w, h, fps = 160, 90, 10
	stop := rtsptest.PublishTestPattern(t, cam.URL("cam"), w, h, fps)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := cam.WaitPublishing(ctx, "cam"); err != nil {
		t.Fatal(err)
	}
	cancel()
	s := startServeEnv(t, "http: {listen: HTTP_ADDR}\nrtsp: {listen: RTSP_ADDR}\nstreams:\n  cam:\n    source: "+cam.URL("cam")+"\n    "+testModel+"\n")
	base := "http://" + s.http
	status := func() map[string]any {
		_, body := get(t, http.DefaultClient, "GET", base+"/api/streams", "", "")
		var v struct{ Streams []map[string]any }
		json.Unmarshal([]byte(body), &v)
		for _, st := range v.Streams {
			if st["name"] == "cam" {
				return st
			}
		}
		return nil
	}
	state := func() string { st := status(); s, _ := st["state"].(string); return s }
	reconnects := func() int { st := status(); n, _ := st["reconnects"].(float64); return int(n) }
	waitUntil(t, "cam running", 90*time.Second, func() bool { return state() == "running" })
	v := connectWHEP(t, http.DefaultClient, base, "cam", "")
	waitUntil(t, "RTP to the viewer", 60*time.Second, func() bool { return v.Packets.Load() > 20 })

	for rep := 1; rep <= reps; rep++ {
		stop()
		lost := time.Now()
		waitUntil(t, "the outage to show", 30*time.Second, func() bool { return state() == "reconnecting" })
		before := v.Packets.Load()
		time.Sleep(10*time.Second - time.Since(lost))
		if v.Packets.Load() <= before {
			t.Errorf("rep %d: viewer received nothing during the outage (want the placeholder about once a second)", rep)
		}
		stop = rtsptest.PublishTestPattern(t, cam.URL("cam"), w, h, fps)
		back := time.Now()
		waitUntil(t, "frames to resume", 60*time.Second, func() bool { return state() == "running" && reconnects() >= rep })
		n := v.Packets.Load()
		waitUntil(t, "RTP after the camera returned", 30*time.Second, func() bool { return v.Packets.Load() > n+20 })
		t.Logf("rep %d: source back after %.1f s outage, stream running again %.1f s after the publisher restarted, reconnects=%d",
			rep, back.Sub(lost).Seconds(), time.Since(back).Seconds(), reconnects())
		if v.Lost.Load() {
			t.Fatalf("rep %d: the viewer's connection dropped (state %s)", rep, v.PC.ConnectionState())
		}
	}
	_, metrics := get(t, http.DefaultClient, "GET", base+"/metrics", "", "")
	m := regexp.MustCompile(`danstream_stream_reconnects_total\{stream="cam"\} (\d+)`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no reconnect counter in /metrics:\n%s", metrics)
	}
	if n, _ := strconv.Atoi(m[1]); n < reps {
		t.Fatalf("/metrics counts %d reconnects after %d outages", n, reps)
	}
	if v.PC.ConnectionState().String() != "connected" {
		t.Fatalf("viewer state %s at the end", v.PC.ConnectionState())
	}
}
