package stream

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/danstream/danstream/internal/testdep"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/transport"
)

// Values from the environment are data (issue 17): whatever they hold, they
// land in the one scalar that named them and change nothing else.
func TestEnvValuesAreDataNotYAML(t *testing.T) {
	t.Setenv("DS_PASS", "p@ss #1")
	t.Setenv("DS_NEWLINE", "rtsp://cam/sub\n    main: rtsp://evil/main\n    scale: 2")
	t.Setenv("DS_ESCAPE", `\u0041`)
	t.Setenv("DS_QUOTE", `say "hi": there`)
	t.Setenv("DS_SCALE", "2")
	tests := []struct {
		name, yaml string
		check      func(t *testing.T, s StreamConfig)
	}{
		{"hash in a password", "    source: rtsp://u:${DS_PASS}@cam/s\n", func(t *testing.T, s StreamConfig) {
			if s.Source != "rtsp://u:p@ss #1@cam/s" {
				t.Errorf("source = %q", s.Source)
			}
		}},
		{"hash in a quoted password", "    source: \"rtsp://u:${DS_PASS}@cam/s\"\n", func(t *testing.T, s StreamConfig) {
			if s.Source != "rtsp://u:p@ss #1@cam/s" {
				t.Errorf("source = %q", s.Source)
			}
		}},
		{"newline adds no keys", "    source: ${DS_NEWLINE}\n", func(t *testing.T, s StreamConfig) {
			if s.Source != os.Getenv("DS_NEWLINE") || s.Main != "" || s.Scale != 4 {
				t.Errorf("source %q main %q scale %d: the value changed the stream's keys", s.Source, s.Main, s.Scale)
			}
		}},
		{"escape stays literal", "    source: \"rtsp://cam/${DS_ESCAPE}\"\n", func(t *testing.T, s StreamConfig) {
			if s.Source != `rtsp://cam/\u0041` {
				t.Errorf("source = %q", s.Source)
			}
		}},
		{"quote and colon, plain", "    source: ${DS_QUOTE}\n", func(t *testing.T, s StreamConfig) {
			if s.Source != `say "hi": there` {
				t.Errorf("source = %q", s.Source)
			}
		}},
		{"quote and colon, quoted", "    source: 'x ${DS_QUOTE}'\n", func(t *testing.T, s StreamConfig) {
			if s.Source != `x say "hi": there` {
				t.Errorf("source = %q", s.Source)
			}
		}},
		{"plain value is typed again", "    source: x\n    scale: ${DS_SCALE}\n    bitrate_kbps: ${DS_UNSET_RATE:-900}\n", func(t *testing.T, s StreamConfig) {
			if s.Scale != 2 || s.Bitrate != 900 {
				t.Errorf("scale %d bitrate %d", s.Scale, s.Bitrate)
			}
		}},
		{"default with specials", "    source: \"${DS_UNSET_SRC:-rtsp://a/b#c}\"\n", func(t *testing.T, s StreamConfig) {
			if s.Source != "rtsp://a/b#c" {
				t.Errorf("source = %q", s.Source)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte("streams:\n  cam:\n" + tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg.Streams["cam"])
		})
	}
}

// smuggle is the tail that, pasted into the YAML text, closed the flow
// mapping of a read-only credential and made it an admin of every stream.
const smuggle = `", admin: true, read: ["*"]} #`

func TestEnvTokenCannotGrantItselfAdmin(t *testing.T) {
	t.Setenv("DS_VIEW_TOKEN", "view-0123456789abcdef"+smuggle)
	cfg, err := ParseConfig([]byte("streams:\n  cam: {source: x}\nauth:\n  tokens:\n    - {token: \"${DS_VIEW_TOKEN}\", read: [cam]}\n"))
	if err == nil {
		if tk := cfg.Auth.Tokens; len(tk) != 1 || tk[0].Admin || len(tk[0].Read) != 1 || tk[0].Read[0] != "cam" {
			t.Fatalf("the token's value changed its rights: %+v", tk)
		}
		return
	}
	// A token with spaces is refused outright, naming the key and not the secret.
	if !strings.Contains(err.Error(), "line 5: auth.tokens.0.token: must not contain spaces") || strings.Contains(err.Error(), "view-") {
		t.Fatalf("err = %v", err)
	}
}

// A read-only user whose password carries the same tail stays read-only on a
// real server: it watches its stream, and /metrics, PUT and DELETE refuse it.
func TestEnvPasswordCannotGrantAdminOverHTTP(t *testing.T) {
	pass := "view-pass-1" + smuggle
	t.Setenv("DS_VIEW_PASS", pass)
	t.Setenv("DS_OPS_TOKEN", "ops-0123456789abcdef")
	cfg, err := ParseConfig([]byte("streams:\n  cam: {source: \"synthetic:32x32@20\", model: ../sr/testdata/nearest_x4.onnx, threads: 1}\n" +
		"auth:\n  users:\n    - {user: viewer, pass: \"${DS_VIEW_PASS}\", read: [cam]}\n  tokens:\n    - {token: \"${DS_OPS_TOKEN}\", admin: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if u := cfg.Auth.Users; len(u) != 1 || u[0].Admin || u[0].Pass != pass {
		t.Errorf("users = %d, admin %v, password kept whole: %v", len(u), len(u) == 1 && u[0].Admin, len(u) == 1 && u[0].Pass == pass)
	}
	if err := sr.InitRuntime(""); err != nil {
		testdep.Missing(t, "ONNX Runtime not available (run scripts/setup.sh): %v", err)
	}
	m, err := NewManager(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) // not Run: only the API is asked
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ts := httptest.NewServer(transport.NewServer(m, transport.ServerOptions{LoopbackOnly: true,
		Auth: transport.NewAuth(cfg.Auth.Rules())}).Handler())
	defer ts.Close()
	do := func(method, path, body string, auth func(*http.Request)) int {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		auth(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	viewer := func(r *http.Request) { r.SetBasicAuth("viewer", pass) }
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/api/streams", "", 200},
		{"GET", "/streams/cam", "", 200},
		{"GET", "/metrics", "", 403},
		{"PUT", "/api/streams/evil", `{"source":"synthetic:"}`, 403},
		{"DELETE", "/api/streams/cam", "", 403},
	} {
		if got := do(c.method, c.path, c.body, viewer); got != c.want {
			t.Errorf("viewer %s %s: %d, want %d", c.method, c.path, got, c.want)
		}
	}
	if got := do("GET", "/metrics", "", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ops-0123456789abcdef") }); got != 200 {
		t.Errorf("admin /metrics: %d", got)
	}
}
