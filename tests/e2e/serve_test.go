// Package e2e starts the real `danstream serve` binary and drives it with real
// clients: Debian's headless Chromium (playwright-core), ffprobe over RTSP and
// plain HTTP.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/rtsptest"
)

var (
	repoRoot string
	binPath  string
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	dir, err := os.MkdirTemp("", "danstream-e2e-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "danstream")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/danstream")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building danstream: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// server is one running `danstream serve`.
type server struct {
	http, rtsp string
	cmd        *exec.Cmd
	mu         sync.Mutex
	log        bytes.Buffer
	done       chan error
}

func (s *server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}
func (s *server) logs() string { s.mu.Lock(); defer s.mu.Unlock(); return s.log.String() }

// startServe runs the binary on config text (HTTP_ADDR and RTSP_ADDR replaced by free ports)
// and waits until /healthz answers.
func startServe(t *testing.T, config string) *server {
	t.Helper()
	return startServeEnv(t, config)
}

// startServeEnv is startServe with extra environment variables (for ${ENV}
// in the config). The config's HTTP_ADDR/RTSP_ADDR (host:port) and
// HTTP_PORT/RTSP_PORT are replaced by free ports. Ready once the HTTP port
// accepts connections (TLS configs included); stopped by SIGINT at cleanup,
// its exit error left in s.done for tests that check it.
func startServeEnv(t *testing.T, config string, env ...string) *server {
	t.Helper()
	s := &server{http: freePort(t), rtsp: freePort(t), done: make(chan error, 1)}
	config = strings.NewReplacer("HTTP_ADDR", s.http, "RTSP_ADDR", s.rtsp,
		"HTTP_PORT", portOf(s.http), "RTSP_PORT", portOf(s.rtsp)).Replace(config)
	if !strings.HasPrefix(config, "webrtc:") && !strings.Contains(config, "\nwebrtc:") {
		// The default WebRTC port (8189) is one per machine: tests beside each
		// other (and other servers here) take any free port instead.
		config = strings.TrimRight(config, "\n") + "\nwebrtc: {udp_listen: \"127.0.0.1:0\", tcp_listen: \"127.0.0.1:0\"}\n"
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.launch(t, []string{"serve", "--config", cfg}, env...)
	return s
}

// launch runs the binary with args, stops it at cleanup and waits until its
// HTTP port (s.http) accepts connections.
func (s *server) launch(t *testing.T, args []string, env ...string) {
	t.Helper()
	s.cmd = exec.Command(binPath, args...)
	s.cmd.Dir = repoRoot
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-s.done:
			s.done <- err
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			s.done <- <-s.done
			t.Error("serve did not stop within 15 s of SIGINT")
		}
		if t.Failed() {
			t.Logf("serve log:\n%s", s.logs())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err // for the cleanup, which would otherwise wait for it forever
			t.Fatalf("serve exited early: %v\n%s", err, s.logs())
		default:
		}
		if c, err := net.Dial("tcp", s.http); err == nil {
			c.Close()
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("serve not listening on %s\n%s", s.http, s.logs())
}

func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

type streamStatus struct {
	Name         string  `json:"name"`
	State        string  `json:"state"`
	Error        string  `json:"error"`
	InputWidth   int     `json:"input_width"`
	OutputWidth  int     `json:"output_width"`
	OutputHeight int     `json:"output_height"`
	Scale        int     `json:"scale"`
	FPSOut       float64 `json:"fps_out"`
}

func (s *server) streams(t *testing.T) map[string]streamStatus {
	t.Helper()
	r, err := http.Get("http://" + s.http + "/api/streams")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var body struct {
		Streams []streamStatus `json:"streams"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	out := map[string]streamStatus{}
	for _, st := range body.Streams {
		out[st.Name] = st
	}
	return out
}

// waitRunning waits until the stream has produced frames and returns its status.
func (s *server) waitRunning(t *testing.T, name string) streamStatus {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if st := s.streams(t)[name]; st.State == "running" && st.OutputWidth > 0 {
			return st
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("stream %s never ran; status %+v", name, s.streams(t)[name])
	return streamStatus{}
}

// defaultConfig is configs/default.yaml with test ports: the embedded default as a newcomer runs it.
func defaultConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "configs", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The rtsp block goes first so that callers may append more streams at the end.
	return "rtsp:\n  listen: RTSP_ADDR\n" + strings.Replace(string(b), "listen: 127.0.0.1:8080", "listen: HTTP_ADDR", 1)
}

type playerResult struct {
	OK     bool `json:"ok"`
	Videos []struct {
		FramesDecoded int    `json:"framesDecoded"`
		FrameWidth    int    `json:"frameWidth"`
		FrameHeight   int    `json:"frameHeight"`
		Codec         string `json:"codec"`
	} `json:"videos"`
	Logs  []string `json:"logs"`
	Error string   `json:"error"`
}

// runProbe runs the tests/browser script against url in headless Chromium, giving the page
// pageMs to show what it must, and decodes the one JSON line the script prints into res.
func runProbe(t *testing.T, script, url string, pageMs int, res any, extra ...string) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("Debian chromium is missing: run scripts/setup.sh --test")
	}
	dir := filepath.Join(repoRoot, "tests", "browser")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatal("playwright-core is missing: run scripts/setup.sh --test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(pageMs)*time.Millisecond+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script, url, "--timeout-ms", strconv.Itoa(pageMs)}, extra...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.Output()
	if err := json.Unmarshal(bytes.TrimSpace(out), res); err != nil {
		t.Fatalf("%s output %q: %v\nstderr: %s", script, out, err, stderr.String())
	}
}

// runPlayer opens url in headless Chromium and returns what its WebRTC stack decoded.
func runPlayer(t *testing.T, url string, extra ...string) playerResult {
	t.Helper()
	var res playerResult
	runProbe(t, "player.mjs", url, 60000, &res, extra...)
	return res
}

func TestBrowserDecodesEnhancedStreamAtModelScale(t *testing.T) {
	s := startServe(t, defaultConfig(t))
	st := s.waitRunning(t, "demo")
	want := st.InputWidth * st.Scale
	if st.Scale < 2 || st.OutputWidth != want {
		t.Fatalf("status %+v: want output width = input width x scale", st)
	}
	for _, codec := range []string{"VP8", "H264"} {
		t.Run(codec, func(t *testing.T) {
			shot := filepath.Join(t.TempDir(), "player.png")
			res := runPlayer(t, "http://"+s.http+"/streams/demo", "--codec", codec, "--screenshot", shot)
			if !res.OK || len(res.Videos) == 0 {
				t.Fatalf("browser decoded nothing: %+v", res)
			}
			v := res.Videos[0]
			if v.FramesDecoded <= 0 || v.FrameWidth != want {
				t.Fatalf("browser decoded %d frames of width %d, want > 0 frames of width %d (%+v)", v.FramesDecoded, v.FrameWidth, want, res)
			}
			if !strings.Contains(strings.ToLower(v.Codec), strings.ToLower(codec)) {
				t.Errorf("negotiated %q, want %s", v.Codec, codec)
			}
			if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
				t.Errorf("player screenshot missing or blank: %v", err)
			}
		})
	}
}

func TestRTSPRelayDeliversEnhancedSizeToFFprobe(t *testing.T) {
	s := startServe(t, defaultConfig(t))
	st := s.waitRunning(t, "demo")
	r, err := rtsptest.ProbeRTSP(context.Background(), "rtsp://"+s.rtsp+"/demo", 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Codec != "h264" || r.Width != st.OutputWidth || r.Height != st.OutputHeight || r.Frames == 0 {
		t.Fatalf("ffprobe read %+v, want h264 %dx%d with frames", r, st.OutputWidth, st.OutputHeight)
	}
}

func TestSnapshotIsJPEGOfOutputSize(t *testing.T) {
	s := startServe(t, defaultConfig(t))
	st := s.waitRunning(t, "demo")
	for _, q := range []string{"", "?variant=original"} {
		r, err := http.Get("http://" + s.http + "/api/streams/demo/snapshot.jpg" + q)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(r.Body)
		r.Body.Close()
		if err != nil {
			t.Fatalf("snapshot%s: %v", q, err)
		}
		if b := img.Bounds(); b.Dx() != st.OutputWidth || b.Dy() != st.OutputHeight {
			t.Errorf("snapshot%s is %v, want %dx%d", q, b, st.OutputWidth, st.OutputHeight)
		}
	}
}

func TestServeRefusesBadModelFilesNamingThem(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.onnx")
	os.WriteFile(corrupt, []byte("this is not an onnx file"), 0o600)
	tests := []struct{ name, model, want string }{
		{"missing", filepath.Join(dir, "nope.onnx"), "nope.onnx"},
		{"corrupt", corrupt, "corrupt.onnx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("http: {listen: %s}\nstreams:\n  a:\n    source: synthetic:64x64@5\n    model: %s\n", freePort(t), tc.model)), 0o600)
			out, err := exec.Command(binPath, "serve", "--config", cfg).CombinedOutput()
			if err == nil {
				t.Fatalf("serve started with a %s model", tc.name)
			}
			if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "panic") {
				t.Fatalf("error does not name %s (or panicked):\n%s", tc.want, out)
			}
		})
	}
}

func TestUnreachableCameraIsReportedWhileOtherStreamsServe(t *testing.T) {
	closed := freePort(t) // nothing listens here
	s := startServe(t, defaultConfig(t)+fmt.Sprintf(`
  gate:
    source: rtsp://admin:hunter2@%s/cam
    scale: 4
`, closed))
	s.waitRunning(t, "demo")
	deadline := time.Now().Add(30 * time.Second)
	var gate streamStatus
	for time.Now().Before(deadline) {
		gate = s.streams(t)["gate"]
		if gate.Error != "" {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if gate.State == "running" || !strings.Contains(gate.Error, closed) {
		t.Fatalf("gate status %+v: want a not-running state with an error naming %s", gate, closed)
	}
	if strings.Contains(gate.Error, "hunter2") || strings.Contains(s.logs(), "hunter2") {
		t.Fatal("camera password leaked into the API or the log")
	}
	if st := s.streams(t)["demo"]; st.State != "running" {
		t.Fatalf("demo stopped while gate was failing: %+v", st)
	}
}
