package stream

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/adapt"
	"github.com/danstream/danstream/internal/rtsptest"
	"github.com/danstream/danstream/transport"
)

func pairsOf(m *Manager, name string) transport.PairsStatus {
	for _, s := range m.List() {
		if s.Name == name && s.Pairs != nil {
			return *s.Pairs
		}
	}
	return transport.PairsStatus{}
}

// A stream configured with its camera's main stream collects registered
// sub/main pairs into its folder while it serves, rotating at pairs_max, and
// /api/streams shows the counts. A main stream that cannot be reached, or a
// sub stream that shows only a crop of the main picture, stops only the
// collection, with the reason; the stream keeps running its model.
func TestStreamWithAMainSourceCollectsPairsWhileItServes(t *testing.T) {
	s := rtsptest.Start(t)
	// crop: a small 16:9 sub stream of the middle of the 4:3 main picture.
	cam := rtsptest.PublishTestCamera(t, s, rtsptest.CameraOptions{CropPath: "crop", CropWidth: 192, CropHeight: 108})
	dir := t.TempDir()
	x2 := func(src, main string) StreamConfig {
		return StreamConfig{Source: src, Main: main, PairsDir: filepath.Join(dir, strings.ReplaceAll(main, "/", "_")),
			PairsMax: 4, PairsEvery: 100 * time.Millisecond, Model: "../sr/testdata/conv_x2.onnx", Threads: 1}
	}
	crop := x2(cam.CropURL, cam.MainURL)
	crop.PairsDir, crop.FPS = filepath.Join(dir, "crop"), 2 // its pipeline only has to run
	m := startManager(t, Config{Streams: map[string]StreamConfig{
		"cam":    x2(cam.SubURL, cam.MainURL),
		"nomain": x2("synthetic:64x48@10", "rtsp://127.0.0.1:1/gone"),
		"crop":   crop,
	}})

	waitForLong(t, "6 pairs stored from the test camera", 5*time.Minute, func() bool { return pairsOf(m, "cam").Stored >= 6 })
	st := pairsOf(m, "cam")
	t.Logf("collection: %+v", st)
	if st.State != "collecting" || st.OnDisk != 4 || st.Main != cam.MainURL {
		t.Fatalf("pairs status %+v, want collecting with 4 on disk (rotated)", st)
	}
	b, err := os.ReadFile(filepath.Join(m.mustConfig(t, "cam").PairsDir, adapt.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var man adapt.Manifest
	if err := json.Unmarshal(b, &man); err != nil || len(man.Pairs) != 4 || man.Scale != 2 || man.HRWidth != 2*man.LRWidth {
		t.Fatalf("manifest %s: %d pairs, scale %d, %dx%d -> %dx%d (%v)", b[:min(len(b), 200)], len(man.Pairs), man.Scale,
			man.LRWidth, man.LRHeight, man.HRWidth, man.HRHeight, err)
	}

	waitForLong(t, "the unreachable main stream reported", 30*time.Second, func() bool {
		st := pairsOf(m, "nomain")
		return st.State == "retrying" && strings.Contains(st.Error, "127.0.0.1:1")
	})
	waitForLong(t, "the cropped sub stream reported", 4*time.Minute, func() bool {
		st := pairsOf(m, "crop")
		return st.State == "failed" && strings.Contains(st.Error, "crop of the main stream's picture")
	})
	// The streams whose collection failed keep serving ("nomain" is
	// synthetic, so nothing else can stop it; the RTSP ones read under load
	// and may be reconnecting for reasons of their own, so they are only
	// required to have run).
	if got := stateOf(m, "nomain"); got != StateRunning {
		t.Errorf("stream nomain is %s: a collection problem must not stop the stream", got)
	}
	// The crop path's reader may be reconnecting right now under load (its
	// camera is one more ffmpeg publisher), so wait for it to run rather than
	// reading its state once.
	waitForLong(t, "stream crop running at its x2 size after its collection failed", 4*time.Minute, func() bool {
		for _, st := range m.List() {
			if st.Name == "crop" && st.OutputWidth == 2*192 {
				return true
			}
		}
		return false
	})

	m.mu.RLock()
	col := m.streams["cam"].pairs
	m.mu.RUnlock()
	if err := m.Delete("cam"); err != nil {
		t.Fatal(err)
	}
	// Delete returns once the collector has ended, so it cannot write again.
	select {
	case <-col.done:
	default:
		t.Error("Delete returned while the deleted stream's collector still runs")
	}
}

func (m *Manager) mustConfig(t *testing.T, name string) StreamConfig {
	t.Helper()
	sc, ok := m.Config(name)
	if !ok {
		t.Fatalf("no stream %q", name)
	}
	return sc
}

func waitForLong(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(time.Second)
	}
}
