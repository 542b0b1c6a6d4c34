package stream

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/testdep"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/transport"
)

const testModelJSON = `"model":"../sr/testdata/nearest_x4.onnx","threads":1`

func apiDo(t testing.TB, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

func TestRuntimeAPIAddsChangesAndRemovesStreams(t *testing.T) {
	m := startManager(t, Config{Streams: map[string]StreamConfig{"keep": testStream("synthetic:32x32@20")}})
	h := transport.NewServer(m, transport.ServerOptions{LoopbackOnly: true}).Handler()
	waitFor(t, "keep running", func() bool { return stateOf(m, "keep") == StateRunning })
	keep, _ := m.Broadcaster("keep", VariantEnhanced)

	steps := []struct {
		name, method, path, body string
		want                     int
		wantBody                 string
	}{
		{"create", "PUT", "/api/streams/cam", `{"source":"synthetic:32x32@15",` + testModelJSON + `}`, 201, `"created": true`},
		{"same again is unchanged", "PUT", "/api/streams/cam", `{"source":"synthetic:32x32@15",` + testModelJSON + `}`, 200, `"changed": false`},
		{"change", "PUT", "/api/streams/cam", `{"source":"synthetic:48x32@15","keyframe_interval":"1s",` + testModelJSON + `}`, 200, `"changed": true`},
		{"unknown key", "PUT", "/api/streams/cam", `{"source":"synthetic:","colour":"red"}`, 400, `unknown field "colour"`},
		{"bad scale names the key", "PUT", "/api/streams/cam", `{"source":"synthetic:","scale":5}`, 400, "streams.cam.scale: must be 2, 3 or 4"},
		{"bad duration", "PUT", "/api/streams/cam", `{"source":"synthetic:","watchdog":"soon"}`, 400, "duration"},
		{"bad name", "PUT", "/api/streams/bad.name", `{"source":"synthetic:"}`, 400, "stream names"},
		{"empty body", "PUT", "/api/streams/cam", ``, 400, "empty body"},
		{"missing model", "PUT", "/api/streams/cam2", `{"source":"synthetic:","model":"/nope/x.onnx"}`, 400, "/nope/x.onnx"},
		{"delete", "DELETE", "/api/streams/cam", ``, 204, ``},
		{"delete again", "DELETE", "/api/streams/cam", ``, 404, `not found`},
	}
	for _, s := range steps {
		code, body := apiDo(t, h, s.method, s.path, s.body)
		if code != s.want || !strings.Contains(body, s.wantBody) {
			t.Fatalf("%s: %s %s -> %d %q, want %d containing %q", s.name, s.method, s.path, code, body, s.want, s.wantBody)
		}
		if s.name == "change" {
			if sc, _ := m.Config("cam"); sc.Keyframe != time.Second || sc.Source != "synthetic:48x32@15" {
				t.Fatalf("after change: %+v", sc)
			}
		}
	}
	if b, _ := m.Broadcaster("keep", VariantEnhanced); b != keep || stateOf(m, "keep") != StateRunning {
		t.Fatal("the untouched stream was replaced or stopped by API calls on another")
	}
	code, body := apiDo(t, h, "GET", "/metrics", "")
	if code != 200 || !strings.Contains(body, `danstream_stream_reconnects_total{stream="keep"}`) {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
}

// FuzzAPIStreamJSON feeds arbitrary bodies to PUT /api/streams/{name}: the
// answer is 201/200 (then the stream exists and is removed again) or 400/413
// with a message; never a panic or a 5xx.
func FuzzAPIStreamJSON(f *testing.F) {
	for _, s := range []string{
		`{"source":"synthetic:320x180@15","scale":4}`,
		`{"source":"synthetic:",` + testModelJSON + `}`,
		`{"source":"synthetic:",` + testModelJSON + `,"keyframe_interval":"500ms","idle_timeout":30,"on_demand":true}`,
		`{"source":"rtsp://u:p@cam/x","width":640,"height":360,"fps":12.5,"cache":false}`,
		`{"source":""}`, `{}`, `[]`, `null`, `"x"`, `{"source":1}`, `{"scale":"4"}`,
		`{"source":"synthetic:"} {"again":1}`, `{"watchdog":-5}`, `{"keyframe_interval":"1e400h"}`,
		`{"source":"synthetic:","width":1e300}`, `{"cache":null}`, "\x00\xff",
	} {
		f.Add(s)
	}
	if err := sr.InitRuntime(""); err != nil {
		testdep.Missing(f, "ONNX Runtime not available (run scripts/setup.sh): %v", err)
	}
	// Not Run: streams are built (model loaded) but never started, so only the API path is exercised.
	m, err := NewManager(Config{Streams: map[string]StreamConfig{}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	defer m.Close()
	h := transport.NewServer(m, transport.ServerOptions{LoopbackOnly: true}).Handler()
	f.Fuzz(func(t *testing.T, body string) {
		code, msg := apiDo(t, h, "PUT", "/api/streams/fz", body)
		switch code {
		case 200, 201:
			if _, ok := m.Config("fz"); !ok {
				t.Fatalf("%d but no stream", code)
			}
			if c, _ := apiDo(t, h, "DELETE", "/api/streams/fz", ""); c != 204 {
				t.Fatalf("DELETE after create: %d", c)
			}
		case 400, 413:
			if strings.TrimSpace(msg) == "" {
				t.Fatalf("%d without a message", code)
			}
		default:
			t.Fatalf("status %d for %q: %s", code, body, msg)
		}
	})
}

func TestDecodeStreamJSONWrapsErrInvalid(t *testing.T) {
	_, err := DecodeStreamJSON("x", []byte(`{"source":""}`))
	if !errors.Is(err, transport.ErrInvalid) || !strings.Contains(err.Error(), "streams.x.source") {
		t.Fatalf("err = %v", err)
	}
	if err := (&Manager{streams: map[string]*managed{}}).DeleteStream("x"); !errors.Is(err, transport.ErrNotFound) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete unknown: %v", err)
	}
	sc, err := DecodeStreamJSON("x", bytes.TrimSpace([]byte(`{"source":"synthetic:","idle_timeout":30,"watchdog":"5s"}`)))
	if err != nil || sc.IdleTimeout != 30*time.Second || sc.Watchdog != 5*time.Second || sc.Scale != 4 {
		t.Fatalf("decoded %+v, %v", sc, err)
	}
}
