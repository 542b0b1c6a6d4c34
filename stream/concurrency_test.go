package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/transport"
)

// Every way a stream changes (API PUT and DELETE, a config reload, a model
// swap, a viewer's demand and idle reaping of an on-demand stream) hammers one
// name at once. At no instant may two pipelines of that name run, and once the
// stream is deleted the pipelines, ONNX Runtime sessions and goroutines are
// back where they were; the other stream is untouched. Run under -race, this
// also covers the managed stream's cancel function.
func TestConcurrentChangesOfOneStreamKeepOnePipeline(t *testing.T) {
	other := testStream("synthetic:32x32@20")
	m := startManager(t, Config{Streams: map[string]StreamConfig{"other": other}})
	h := transport.NewServer(m, transport.ServerOptions{LoopbackOnly: true}).Handler()
	waitFor(t, "other running", func() bool { return stateOf(m, "other") == StateRunning })
	bOther, _ := m.Broadcaster("other", VariantEnhanced)
	basePipes, baseSess, baseG := livePipelines.Load(), sr.LiveSessions(), runtime.NumGoroutine()
	baseOverlaps := overlaps.Load()

	cam := func(kbps int, onDemand bool) StreamConfig {
		sc := testStream("synthetic:32x32@20")
		sc.Bitrate, sc.OnDemand = kbps, onDemand
		return sc
	}
	const workers, rounds = 8, 6
	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				kbps := 1000 + 10*w + i
				switch (w + i) % 6 {
				case 0:
					body := fmt.Sprintf(`{"source":"synthetic:32x32@20","bitrate_kbps":%d,%s}`, kbps, testModelJSON)
					if code, b := apiDo(t, h, "PUT", "/api/streams/cam", body); code != 200 && code != 201 {
						errc <- fmt.Errorf("PUT: %d %s", code, b)
					}
				case 1:
					if code, b := apiDo(t, h, "DELETE", "/api/streams/cam", ""); code != 204 && code != 404 {
						errc <- fmt.Errorf("DELETE: %d %s", code, b)
					}
				case 2: // a config reload with the stream changed
					if err := m.Apply(Config{Streams: map[string]StreamConfig{"other": other, "cam": cam(kbps, i%2 == 0)}}); err != nil {
						errc <- fmt.Errorf("reload with cam: %w", err)
					}
				case 3: // a config reload without it
					if err := m.Apply(Config{Streams: map[string]StreamConfig{"other": other}}); err != nil {
						errc <- fmt.Errorf("reload without cam: %w", err)
					}
				case 4:
					if _, err := m.SwapModel("cam", testNearestX4, nil); err != nil && !errors.Is(err, ErrNotFound) {
						errc <- fmt.Errorf("swap: %w", err)
					}
				case 5: // a viewer's demand starts an on-demand stream; the reaper stops it
					m.Broadcaster("cam", VariantEnhanced)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if err := m.Delete("cam"); err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	// Concurrent creations of one new name: one of them creates it.
	codes := make(chan int, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			code, _ := apiDo(t, h, "PUT", "/api/streams/fresh", fmt.Sprintf(`{"source":"synthetic:32x32@20","bitrate_kbps":%d,%s}`, 2000+w, testModelJSON))
			codes <- code
		}(w)
	}
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		if c == http.StatusCreated {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d of %d concurrent PUTs of a new stream answered 201 Created, want 1", created, workers)
	}
	if err := m.Delete("fresh"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pipelines and ONNX Runtime sessions back to their baseline", func() bool {
		return livePipelines.Load() == basePipes && sr.LiveSessions() == baseSess
	})
	waitFor(t, "goroutines back to their baseline", func() bool { return runtime.NumGoroutine() <= baseG })
	if n := overlaps.Load() - baseOverlaps; n != 0 {
		t.Errorf("two pipelines of one stream ran at once %d times", n)
	}
	if b, _ := m.Broadcaster("other", VariantEnhanced); b != bOther || stateOf(m, "other") != StateRunning {
		t.Error("the other stream was rebuilt or stopped")
	}
	t.Logf("pipelines %d, sessions %d, goroutines %d (baseline %d, %d, %d)",
		livePipelines.Load(), sr.LiveSessions(), runtime.NumGoroutine(), basePipes, baseSess, baseG)
}

// A config reload whose model does not load keeps the stream on its old
// settings, and says so in /api/streams (config_error) and /healthz
// (degraded); a stream the reload adds but cannot build is listed as failed.
// A reload that works clears both.
func TestReloadWithAFailingModelShowsInStreamsAndHealthz(t *testing.T) {
	m, path, write := startWatchedManager(t)
	h := transport.NewServer(m, transport.ServerOptions{LoopbackOnly: true}).Handler()
	handled := watchConfig(t, m, path)
	waitFor(t, "a running", func() bool { return stateOf(m, "a") == StateRunning })

	write("streams:\n" +
		"  a: {source: 'synthetic:32x32@20', model: /nonexistent/changed.onnx, threads: 1}\n" +
		"  b: {source: 'synthetic:32x32@20', model: /nonexistent/added.onnx, threads: 1}\n")
	if err := nextReload(t, handled); err == nil {
		t.Fatal("a reload with two missing models reported no error")
	}
	code, body := apiDo(t, h, "GET", "/healthz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"degraded"`) {
		t.Fatalf("/healthz: %d %s, want 503 degraded", code, body)
	}
	var list struct {
		Streams []transport.StreamStatus `json:"streams"`
	}
	_, body = apiDo(t, h, "GET", "/api/streams", "")
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]transport.StreamStatus{}
	for _, s := range list.Streams {
		got[s.Name] = s
	}
	if a := got["a"]; a.State != string(StateRunning) || !strings.Contains(a.ConfigError, "/nonexistent/changed.onnx") {
		t.Errorf("a: state %q config_error %q: want running on its old settings, the error naming the model", a.State, a.ConfigError)
	}
	if b := got["b"]; b.State != transport.StateError || !strings.Contains(b.Error, "/nonexistent/added.onnx") {
		t.Errorf("b: state %q error %q: want error naming the model", b.State, b.Error)
	}

	write(watchedBase)
	if err := nextReload(t, handled); err != nil {
		t.Fatalf("reload back to the first config: %v", err)
	}
	if code, body = apiDo(t, h, "GET", "/healthz", ""); code != http.StatusOK {
		t.Fatalf("/healthz after a reload that works: %d %s", code, body)
	}
	if _, body = apiDo(t, h, "GET", "/api/streams", ""); strings.Contains(body, "config_error") || strings.Contains(body, `"b"`) {
		t.Fatalf("/api/streams still shows the failed reload: %s", body)
	}
}

// Output frames above max_output (default 3840x2160) are refused: a config
// or API stream whose width/height make them is an error naming the key, and
// a source whose native frames are too big puts the stream in state error
// (so /healthz is degraded) without running SR on them. max_output raises it.
func TestOutputAboveTheCeilingIsRefusedNamingMaxOutput(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"x4 of 1920x1080", "streams:\n  cam: {source: 'synthetic:', width: 1920, height: 1080, scale: 4}\n",
			"streams.cam.width: 1920x1080 frames at x4 make 7680x4320 output, above the 3840x2160 ceiling"},
		{"bad max_output", "streams:\n  cam: {source: 'synthetic:', max_output: huge}\n", "line 2: streams.cam.max_output: want WIDTHxHEIGHT"},
		{"raised", "streams:\n  cam: {source: 'synthetic:', width: 1920, height: 1080, scale: 4, max_output: 7680x4320}\n", ""},
	} {
		_, err := ParseConfig([]byte(tc.yaml))
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "max_output")) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}

	m := startManager(t, Config{Streams: map[string]StreamConfig{}})
	sized := testStream("synthetic:32x32@20") // the model, not the settings, says x4
	sized.Width, sized.Height = 1280, 720
	if _, err := m.Put("sized", sized); err == nil || !strings.Contains(err.Error(), "streams.sized.max_output") {
		t.Fatalf("Put of 1280x720 with an x4 model: %v, want an error naming streams.sized.max_output", err)
	}
	if _, err := m.Put("native", testStream("synthetic:1280x720@5")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream in state error", func() bool { return stateOf(m, "native") == StateError })
	var st Status
	for _, s := range m.Statuses() {
		if s.Name == "native" {
			st = s
		}
	}
	if !strings.Contains(st.Error, "5120x2880") || !strings.Contains(st.Error, "streams.native.max_output") {
		t.Errorf("status error %q: want the output size and the key", st.Error)
	}
	m.mu.RLock()
	in := m.streams["native"].p.framesIn.Load()
	m.mu.RUnlock()
	if in != 0 {
		t.Errorf("%d refused frames went to SR", in)
	}
	h := transport.NewServer(m, transport.ServerOptions{LoopbackOnly: true}).Handler()
	if code, body := apiDo(t, h, "GET", "/healthz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz %d %s, want 503 degraded", code, body)
	}
}

// DELETE of a stream whose big frame is being enhanced returns without
// waiting for the frame: the frame in flight is abandoned (no output frame
// was made) and its model released.
func TestDeleteAbandonsAHugeFrameInFlight(t *testing.T) {
	m := startManager(t, Config{Streams: map[string]StreamConfig{}})
	sessions := sr.LiveSessions()
	big := testStream("synthetic:1280x720@2")
	big.MaxOutput = "5120x2880"
	if _, err := m.Put("big", big); err != nil {
		t.Fatal(err)
	}
	m.mu.RLock()
	p := m.streams["big"].p
	m.mu.RUnlock()
	waitFor(t, "the first 1280x720 frame in SR", func() bool { return p.framesIn.Load() >= 1 })
	if err := m.Delete("big"); err != nil {
		t.Fatal(err)
	}
	if n := p.framesOut.Load(); n != 0 {
		t.Errorf("Delete waited for %d 5120x2880 output frame(s) to finish", n)
	}
	if n := sr.LiveSessions(); n != sessions {
		t.Errorf("ONNX Runtime sessions %d after Delete, %d before Put", n, sessions)
	}
}
