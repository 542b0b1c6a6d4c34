package rtsp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/internal/rtsptest"
	"github.com/danstream/danstream/transport"
)

// catalog is a stream.Manager stand-in whose Broadcasters a test can
// rebuild (as PUT and reload do) or remove (DELETE).
type catalog struct {
	mu sync.Mutex
	m  map[string]*transport.Broadcaster
}

func (c *catalog) Broadcaster(name, variant string) (*transport.Broadcaster, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[name+"/"+variant]
	return b, ok
}

func (c *catalog) get(key string) *transport.Broadcaster {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// freeUDPPair finds an even UDP port whose successor is free too (RTP, RTCP).
func freeUDPPair(t *testing.T) (rtp, rtcp string) {
	t.Helper()
	for range 100 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port &^ 1
		c.Close()
		a, errA := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		b, errB := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if a != nil {
			a.Close()
		}
		if b != nil {
			b.Close()
		}
		if errA == nil && errB == nil {
			return fmt.Sprintf("127.0.0.1:%d", p), fmt.Sprintf("127.0.0.1:%d", p+1)
		}
	}
	t.Fatal("no free UDP port pair")
	return "", ""
}

// feedFrames writes a moving pattern of w x h frames at 25 fps to whatever
// Broadcaster key names in cat (the current one after a rebuild) until ctx ends.
func feedFrames(ctx context.Context, cat *catalog, key string, w, h int) {
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	for seq := uint64(0); ; seq++ {
		f := frame.New(w, h)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				i := (y*w + x) * 3
				f.Pix[i], f.Pix[i+1], f.Pix[i+2] = byte(x+int(seq)*4), byte(y), byte((x^y)+int(seq))
			}
		}
		f.Seq, f.Captured = seq, time.Now()
		if b := cat.get(key); b != nil {
			b.WriteFrame(f)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type testRelay struct {
	*Relay
	addr string
	cat  *catalog
	log  *logBuffer
}

// startRelay serves cam (256x144) and cam/original (128x96) over TCP and UDP on loopback.
func startRelay(t *testing.T, opts Options, auth ...transport.AuthRule) *testRelay {
	t.Helper()
	return startRelayEnc(t, opts, transport.EncoderOptions{KeyframeInterval: 25}, auth...)
}

func startRelayEnc(t *testing.T, opts Options, enc transport.EncoderOptions, auth ...transport.AuthRule) *testRelay {
	t.Helper()
	cat := &catalog{m: map[string]*transport.Broadcaster{
		"cam/enhanced": transport.NewBroadcaster("cam", "enhanced", enc),
		"cam/original": transport.NewBroadcaster("cam", "original", enc),
	}}
	ctx, cancel := context.WithCancel(context.Background())
	opts.Listen = freeAddr(t)
	if opts.RTPAddress == "" {
		opts.RTPAddress, opts.RTCPAddress = freeUDPPair(t)
	}
	logs := &logBuffer{}
	r := New(cat, opts, slog.New(slog.NewTextHandler(io.MultiWriter(logs, os.Stderr), nil)))
	r.Auth = transport.NewAuth(auth)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	go feedFrames(ctx, cat, "cam/enhanced", 256, 144)
	go feedFrames(ctx, cat, "cam/original", 128, 96)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
		cat.mu.Lock()
		for _, b := range cat.m {
			b.Close()
		}
		cat.mu.Unlock()
	})
	// Wait until the port accepts connections.
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", opts.Listen); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &testRelay{Relay: r, addr: opts.Listen, cat: cat, log: logs}
}

// logBuffer collects the relay's log for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRelayServesDecodableH264ToFFprobe(t *testing.T) {
	rtsptest.Need(t, "ffprobe", "apt-get install ffmpeg")
	tr := startRelay(t, Options{})
	addr, cat := tr.addr, tr.cat
	tests := []struct {
		path string
		w, h int
	}{
		{"/cam", 256, 144},
		{"/cam/original", 128, 96},
	}
	for _, tc := range tests {
		t.Run(strings.Trim(tc.path, "/"), func(t *testing.T) {
			r, err := rtsptest.ProbeRTSP(context.Background(), "rtsp://"+addr+tc.path, 2)
			if err != nil {
				t.Fatal(err)
			}
			if r.Codec != "h264" || r.Width != tc.w || r.Height != tc.h {
				t.Fatalf("got %s %dx%d, want h264 %dx%d", r.Codec, r.Width, r.Height, tc.w, tc.h)
			}
			// Frames are counted by waiting for them, not within a time
			// window a loaded machine can miss.
			rd := rtsptest.FFmpegReader(t, "rtsp://"+addr+tc.path, "tcp")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := rd.WaitFrames(ctx, 10); err != nil {
				t.Fatalf("ffmpeg reader: %v (decoded %d frames)\n%s", err, rd.Frames(), rd.Output())
			}
			rd.Stop()
		})
	}
	// The last reader gone, the H.264 encoder stops (nobody else watches).
	deadline := time.Now().Add(5 * time.Second)
	for cat.get("cam/enhanced").EncoderRunning(transport.CodecH264) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if cat.get("cam/enhanced").EncoderRunning(transport.CodecH264) {
		t.Error("H.264 encoder still running after the last RTSP reader left")
	}
}

func TestRelayAnswersUnknownPathsWith404(t *testing.T) {
	addr := startRelay(t, Options{}).addr
	for _, p := range []string{"/nope", "/cam/sideways", "/"} {
		t.Run(p, func(t *testing.T) {
			u, err := base.ParseURL("rtsp://" + addr + p)
			if err != nil {
				t.Fatal(err)
			}
			c := gortsplib.Client{}
			if err := c.Start(u.Scheme, u.Host); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, res, err := c.Describe(u)
			var bad liberrors.ErrClientBadStatusCode
			if res != nil && res.StatusCode == base.StatusNotFound {
				return
			}
			if !errors.As(err, &bad) || bad.Code != base.StatusNotFound {
				t.Fatalf("DESCRIBE %s: res=%v err=%v, want 404", p, res, err)
			}
		})
	}
}

func TestRelayRequiresCredentialsAndReadRight(t *testing.T) {
	addr := startRelay(t, Options{},
		transport.AuthRule{User: "nvr", Pass: "nvr-secret-1", Read: []string{"cam"}},
		transport.AuthRule{User: "other", Pass: "other-secret", Read: []string{"yard"}},
		transport.AuthRule{Token: "tok-0123456789abcdef", Read: []string{"*"}},
	).addr
	tests := []struct {
		name, url string
		want      base.StatusCode
	}{
		{"no credentials", "rtsp://" + addr + "/cam", base.StatusUnauthorized},
		{"wrong password", "rtsp://nvr:wrong@" + addr + "/cam", base.StatusUnauthorized},
		{"user with read right (Digest)", "rtsp://nvr:nvr-secret-1@" + addr + "/cam", base.StatusOK},
		{"original variant too", "rtsp://nvr:nvr-secret-1@" + addr + "/cam/original", base.StatusOK},
		{"user without read right", "rtsp://other:other-secret@" + addr + "/cam", base.StatusForbidden},
		{"token as password", "rtsp://any:tok-0123456789abcdef@" + addr + "/cam", base.StatusOK},
		{"token in query", "rtsp://" + addr + "/cam?token=tok-0123456789abcdef", base.StatusOK},
		{"wrong token in query", "rtsp://" + addr + "/cam?token=nope", base.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := base.ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			c := gortsplib.Client{}
			if err := c.Start(u.Scheme, u.Host); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, res, err := c.Describe(u)
			got := base.StatusCode(0)
			var bad liberrors.ErrClientBadStatusCode
			switch {
			case errors.As(err, &bad):
				got = bad.Code
			case res != nil:
				got = res.StatusCode
			}
			if got != tc.want {
				t.Fatalf("DESCRIBE %s: status %d (err %v), want %d", tc.url, got, err, tc.want)
			}
		})
	}
	rtsptest.Need(t, "ffprobe", "apt-get install ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width", "-of", "csv=p=0", "rtsp://nvr:nvr-secret-1@"+addr+"/cam").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "h264,256") {
		t.Fatalf("ffprobe with credentials: %v\n%s", err, out)
	}
}
