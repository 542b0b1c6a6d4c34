package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/testdep"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/stream"
)

// startTestServer serves a synthetic camera upscaled by the tiny nearest-x4
// test model, in this process, on loopback.
func startTestServer(t *testing.T) *inProcess {
	t.Helper()
	if err := sr.InitRuntime(""); err != nil {
		testdep.Missing(t, "ONNX Runtime library not available (run scripts/setup.sh): %v", err)
	}
	model := "../../sr/testdata/nearest_x4.onnx"
	if _, err := os.Stat(model); err != nil {
		testdep.Missing(t, "test model missing: %v", err)
	}
	cfg, err := stream.ParseConfig([]byte(`
rtsp: {disabled: true}
streams:
  cam:
    source: synthetic:160x90@15
    model: ` + model + `
    threads: 1
    bitrate_kbps: 800
    keyframe_interval: 2s
`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startInProcess(context.Background(), cfg, "", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing in-process server: %v", err)
		}
	})
	if err := waitRunning(context.Background(), srv.URL, "cam", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestLoadViewersAllReceiveFramesAndLeaveNoSessions(t *testing.T) {
	srv := startTestServer(t)
	probe, err := srv.Probe("cam", "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Options{
		BaseURL: srv.URL, Stream: "cam", Viewers: 5, Duration: 3 * time.Second, Settle: time.Second,
		ServerPID: os.Getpid(), Probe: probe,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Joined != 5 || res.JoinFailed != 0 {
		t.Errorf("joined %d, failed %d; want 5, 0", res.Joined, res.JoinFailed)
	}
	if res.GotFrames != 5 {
		t.Errorf("%d of 5 viewers received frames", res.GotFrames)
	}
	if res.FPS.N != 5 || res.FPS.Min <= 0 {
		t.Errorf("frames in the window per viewer: %+v; every viewer should have received frames", res.FPS)
	}
	// The server starts every viewer at a keyframe once it is connected.
	if res.FirstFrameIsKey != 5 {
		t.Errorf("%d of 5 viewers started with a keyframe, want 5", res.FirstFrameIsKey)
	}
	if !res.Encoder.Once {
		t.Errorf("encoder check: %+v; want one encode per input frame", res.Encoder)
	}
	if res.Deleted != 5 || res.DeleteFailed != 0 {
		t.Errorf("DELETE: ok %d, failed %d; want 5, 0", res.Deleted, res.DeleteFailed)
	}
	if res.SessionsAfter != 0 || res.OwnSessionsLeft != 0 {
		t.Errorf("server reports %d sessions after every viewer left", res.SessionsAfter)
	}
	if err := res.Check(); err != nil {
		t.Error(err)
	}
	if res.Probe == nil || res.Probe.Frames == 0 {
		t.Errorf("probe placed no frames on the server's clock: %+v", res.Probe)
	}
	var sb strings.Builder
	res.Print(&sb)
	t.Log("\n" + sb.String())
}

func TestOptionsOutOfBoundsAreRefused(t *testing.T) {
	base := Options{BaseURL: "http://127.0.0.1:1", Stream: "s", Viewers: 1}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no viewers", func(o *Options) { o.Viewers = 0 }, "viewers 0"},
		{"over 500 viewers", func(o *Options) { o.Viewers = 501 }, "viewers 501"},
		{"longer than 10 minutes", func(o *Options) { o.Duration = 11 * time.Minute }, "limit is 10m0s"},
		{"slow viewers are all viewers", func(o *Options) { o.Viewers, o.Slow = 2, 2 }, "slow 2"},
		{"unknown codec", func(o *Options) { o.Codec = "AV1" }, `codec "AV1"`},
		{"not an http URL", func(o *Options) { o.BaseURL = "rtsp://x" }, "server URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.edit(&o)
			_, err := Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run(%s) error = %v, want one containing %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestKeyframeDetection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		vp8     bool
		payload []byte
		key     bool
		start   bool
	}{
		{"VP8 keyframe start", true, []byte{0x10, 0x00, 0x9d}, true, true},
		{"VP8 interframe start", true, []byte{0x10, 0x01, 0x9d}, false, true},
		{"VP8 continuation", true, []byte{0x00, 0x00, 0x9d}, false, false},
		{"H264 IDR", false, []byte{0x65, 0x88}, true, true},
		{"H264 SPS", false, []byte{0x67, 0x42}, true, true},
		{"H264 non-IDR slice", false, []byte{0x41, 0x9a}, false, true},
		{"H264 FU-A IDR start", false, []byte{0x7c, 0x85}, true, true},
		{"H264 FU-A IDR middle", false, []byte{0x7c, 0x05}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isKeyframeStart(tc.vp8, tc.payload); got != tc.key {
				t.Errorf("isKeyframeStart = %v, want %v", got, tc.key)
			}
			if got := frameStart(tc.vp8, tc.payload); got != tc.start {
				t.Errorf("frameStart = %v, want %v", got, tc.start)
			}
		})
	}
}
