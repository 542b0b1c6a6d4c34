package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/adapt"
	"github.com/danstream/danstream/internal/rtsptest"
	"github.com/danstream/danstream/transport"
)

// x3Model is the tiny x3 test network: the path is what the serve config and
// the commands are given, relative to the repository root.
const x3Model = "sr/testdata/conv_x3.onnx"

// The most common camera pairing at x3 with a 4:3 sub stream of a 16:9 main
// (anamorphic pixels), served: the test camera publishes a 768x432 main and a
// 256x192 sub; `danstream serve`, given no model, runs the realistic x3 file
// for this camera source, enhances the sub x3 (768x576 out over the RTSP
// relay, to ffprobe, and through WHEP, to the player page in Chromium) and
// collects x3 pairs from the two streams at once.
func TestServeScale3StreamOfA4by3SubCollectsPairsOfIts16by9Main(t *testing.T) {
	srv := rtsptest.Start(t)
	cam := rtsptest.PublishTestCamera(t, srv, rtsptest.CameraOptions{MainCrop: "768:432", SubWidth: 256, SubHeight: 192})
	pairs := filepath.Join(t.TempDir(), "pairs")
	s := startServe(t, `http: {listen: HTTP_ADDR}
rtsp: {listen: RTSP_ADDR}
streams:
  cam:
    source: `+cam.SubURL+`
    main: `+cam.MainURL+`
    scale: 3
    threads: 1
    pairs_dir: `+pairs+`
    pairs_every: 200ms
`)
	st := s.waitRunning(t, "cam")
	if st.Scale != 3 || st.OutputWidth != 768 || st.OutputHeight != 576 {
		t.Fatalf("status %+v: want x3, 256x192 -> 768x576", st)
	}
	if full := s.status(t, "cam"); !strings.HasSuffix(full.ModelPath, "sr/models/dan_lite_x3_real.onnx") {
		t.Fatalf("a camera at x3 runs %q, want the realistic sr/models/dan_lite_x3_real.onnx", full.ModelPath)
	}
	r, err := rtsptest.ProbeRTSP(context.Background(), "rtsp://"+s.rtsp+"/cam", 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Codec != "h264" || r.Width != 768 || r.Height != 576 || r.Frames == 0 {
		t.Fatalf("ffprobe read %+v from the relay, want h264 768x576 with frames", r)
	}
	// The player page (WHEP, headless Chromium) shows the x3 picture.
	res := runPlayer(t, "http://"+s.http+"/streams/cam")
	if !res.OK || len(res.Videos) == 0 || res.Videos[0].FramesDecoded <= 0 || res.Videos[0].FrameWidth != 768 || res.Videos[0].FrameHeight != 576 {
		t.Fatalf("the player decoded %+v, want frames of 768x576", res)
	}

	waitUntil(t, "2 pairs of the 4:3 sub and the 16:9 main", 3*time.Minute, func() bool {
		ps := s.status(t, "cam").Pairs
		if ps != nil && ps.State == "failed" {
			t.Fatalf("pair collection failed: %+v", *ps)
		}
		return ps != nil && ps.Stored >= 2
	})
	b, err := os.ReadFile(filepath.Join(pairs, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man adapt.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	if man.Scale != 3 || man.LRWidth != 256 || man.LRHeight != 192 || man.HRWidth != 768 || man.HRHeight != 576 {
		t.Fatalf("manifest %s", b[:min(len(b), 200)])
	}
}

// eval and bench take --scale 3 (with an x3 model) like 2 and 4; enhance makes 3x the size.
func TestEvalBenchAndEnhanceAtScale3(t *testing.T) {
	dir := t.TempDir()
	lr, hr := filepath.Join(dir, "LR"), filepath.Join(dir, "HR")
	os.Mkdir(lr, 0o755)
	os.Mkdir(hr, 0o755)
	writePNG(t, filepath.Join(hr, "a.png"), 96, 72, 1)
	writePNG(t, filepath.Join(lr, "a.png"), 32, 24, 3)
	msg, err := run(t, "eval", "--scale", "3", "--model", x3Model, "--lr", lr, "--hr", hr, "--json")
	if err != nil || !strings.Contains(msg, `"scale": 3`) {
		t.Fatalf("eval --scale 3: %v\n%s", err, msg)
	}
	msg, err = run(t, "bench", "--input", "synthetic:96x54@15", "--scale", "3", "--model", x3Model, "--frames", "6", "--json")
	if err != nil || !strings.Contains(msg, `"scale": 3`) {
		t.Fatalf("bench --scale 3: %v\n%s", err, msg)
	}
	out := filepath.Join(dir, "out.png")
	if msg, err := run(t, "enhance", "--scale", "3", "--model", x3Model, filepath.Join(lr, "a.png"), out); err != nil {
		t.Fatalf("enhance --scale 3: %v\n%s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [24]byte
	if _, err := f.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	if w, h := be32(b[16:]), be32(b[20:]); w != 96 || h != 72 { // PNG IHDR
		t.Fatalf("enhance --scale 3 wrote %dx%d, want 96x72", w, h)
	}
	// Without --model, x3 has no clean file bundled: the realistic one.
	if msg, err := run(t, "enhance", "--scale", "3", filepath.Join(lr, "a.png"), out); err != nil {
		t.Fatalf("enhance --scale 3 with the bundled model: %v\n%s", err, msg)
	}
	// A model of another scale is named.
	if msg, err := run(t, "eval", "--scale", "3", "--model", "sr/testdata/conv_x2.onnx", "--lr", lr, "--hr", hr); err == nil || !strings.Contains(msg, "is x2, not x3") {
		t.Fatalf("eval --scale 3 with an x2 model: %v\n%s", err, msg)
	}
}

// status is the stream's full /api/streams entry.
func (s *server) status(t *testing.T, name string) transport.StreamStatus {
	t.Helper()
	resp, err := http.Get("http://" + s.http + "/api/streams")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Streams []transport.StreamStatus }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, st := range body.Streams {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no stream %q in /api/streams", name)
	return transport.StreamStatus{}
}

func be32(b []byte) int { return int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3]) }
