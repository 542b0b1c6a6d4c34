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
// /api/streams shows the counts. A main stream that cannot be reached, or one
// of another aspect ratio, stops only the collection, with the reason; the
// stream keeps running its model.
func TestStreamWithAMainSourceCollectsPairsWhileItServes(t *testing.T) {
	s := rtsptest.Start(t)
	cam := rtsptest.PublishTestCamera(t, s, rtsptest.CameraOptions{})
	dir := t.TempDir()
	x2 := func(src, main string) StreamConfig {
		return StreamConfig{Source: src, Main: main, PairsDir: filepath.Join(dir, strings.ReplaceAll(main, "/", "_")),
			PairsMax: 4, PairsEvery: 100 * time.Millisecond, Model: "../sr/testdata/conv_x2.onnx", Threads: 1}
	}
	m := startManager(t, Config{Streams: map[string]StreamConfig{
		"cam":    x2(cam.SubURL, cam.MainURL),
		"nomain": x2("synthetic:64x48@10", "rtsp://127.0.0.1:1/gone"),
		"aspect": x2("synthetic:64x36@10", cam.MainURL), // 16:9 against a 4:3 main stream
	}})

	waitForLong(t, "6 pairs stored from the test camera", 120*time.Second, func() bool { return pairsOf(m, "cam").Stored >= 6 })
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
	waitForLong(t, "the aspect mismatch reported", 30*time.Second, func() bool {
		st := pairsOf(m, "aspect")
		return st.State == "failed" && strings.Contains(st.Error, "aspect")
	})
	// The streams whose collection failed keep serving (their sources are
	// synthetic, so nothing else can stop them; "cam" reads RTSP under load
	// and may be reconnecting for reasons of its own).
	for _, name := range []string{"nomain", "aspect"} {
		if got := stateOf(m, name); got != StateRunning {
			t.Errorf("stream %s is %s: a collection problem must not stop the stream", name, got)
		}
	}

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
