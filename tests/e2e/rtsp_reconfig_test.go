package e2e

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/rtsptest"
)

// TestRTSPReaderAcrossPutReloadAndDelete (issue 17 item 3): an ffmpeg reader
// of the RTSP relay keeps decoding when its stream is rebuilt by PUT and by
// a config reload, its session ends (no frozen reader) when the stream is
// deleted, and a new reader plays the stream once it is back.
func TestRTSPReaderAcrossPutReloadAndDelete(t *testing.T) {
	const stream = "    source: synthetic:64x48@10\n    " + testModel + "\n"
	config := "http: {listen: HTTP_ADDR}\nrtsp: {listen: RTSP_ADDR, transports: [tcp]}\nstreams:\n  cam:\n" + stream + "    bitrate_kbps: 300\n"
	s := startServe(t, config)
	s.waitRunning(t, "cam")
	base, url := "http://"+s.http, "rtsp://"+s.rtsp+"/cam"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := func(r *rtsptest.Reader, n int, what string) {
		t.Helper()
		if err := r.WaitFrames(ctx, n); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	configured := func() int { return strings.Count(s.logs(), `msg="stream configured"`) }

	r := rtsptest.FFmpegReader(t, url, "tcp")
	wait(r, 10, "before any change")

	n := r.Frames()
	put := `{"source":"synthetic:64x48@10","model":"sr/testdata/nearest_x4.onnx","threads":1,"bitrate_kbps":400}`
	if code, body := get(t, http.DefaultClient, "PUT", base+"/api/streams/cam", "", put); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, body)
	}
	wait(r, n+20, "after PUT rebuilt the stream")

	n, before := r.Frames(), configured()
	cfgPath := ""
	for i, a := range s.cmd.Args[:len(s.cmd.Args)-1] {
		if a == "--config" {
			cfgPath = s.cmd.Args[i+1]
		}
	}
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(text), "bitrate_kbps: 300", "bitrate_kbps: 500", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the reload to rebuild the stream", time.Minute, func() bool { return configured() > before })
	wait(r, n+20, "after the reload rebuilt the stream")

	if code, body := get(t, http.DefaultClient, "DELETE", base+"/api/streams/cam", "", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	select {
	case <-r.Exited():
	case <-ctx.Done():
		t.Fatalf("the reader is still connected after DELETE, at %d frames", r.Frames())
	}

	if code, body := get(t, http.DefaultClient, "PUT", base+"/api/streams/cam", "", put); code != http.StatusCreated {
		t.Fatalf("PUT after DELETE: %d %s", code, body)
	}
	s.waitRunning(t, "cam")
	wait(rtsptest.FFmpegReader(t, url, "tcp"), 10, "a new reader once the stream is back")
}
