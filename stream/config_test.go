package stream

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/capture"
)

func TestParseConfigRejectsWrongValuesNamingKeyAndLine(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"bad scale", "streams:\n  a:\n    source: synthetic:64x64\n    scale: 5\n", "line 4: streams.a.scale: must be 2, 3 or 4"},
		{"bad provider", "streams:\n  a:\n    source: synthetic:64x64\n    provider: gpu\n", "line 4: streams.a.provider"},
		{"missing source", "streams:\n  a:\n    scale: 2\n", "streams.a.source: required"},
		{"unknown key", "streams:\n  a:\n    source: x\n    sauce: y\n", "line 4: field sauce not found in type stream.StreamConfig"},
		{"unknown key beside env", "streams:\n  a: {source: ${DANSTREAM_TEST_UNSET_VAR:-x}, sauce: y}\n", "line 2: field sauce not found"},
		{"bad listen", "http:\n  listen: nowhere\nstreams:\n  a:\n    source: x\n", "line 2: http.listen"},
		{"bad name", "streams:\n  'a b':\n    source: x\n", "stream names use"},
		{"no streams", "http:\n  listen: 127.0.0.1:1\n", "no streams configured"},
		{"unset env", "streams:\n  a:\n    source: rtsp://${DANSTREAM_TEST_UNSET_VAR}/x\n", "DANSTREAM_TEST_UNSET_VAR"},
		{"not yaml", "streams: [\n", "yaml"},
		{"pairs without main", "streams:\n  a:\n    source: rtsp://cam/sub\n    pairs_dir: /tmp/p\n", "streams.a.main: pairs_dir, pairs_max and pairs_every need main"},
		{"main is source", "streams:\n  a:\n    source: rtsp://cam/sub\n    main: rtsp://cam/sub\n", "streams.a.main: must be the camera's main stream"},
		{"bad trusted proxy", "http:\n  trusted_proxies: [10.0.0.0/8, proxy.lan]\nstreams:\n  a:\n    source: x\n", `line 2: http.trusted_proxies: trusted proxy "proxy.lan"`},
		{"bad read timeout", "http:\n  read_timeout: 1ms\nstreams:\n  a:\n    source: x\n", "line 2: http.read_timeout: must be 100ms..1h"},
		{"negative cap", "http:\n  max_whep_sessions_per_stream: -1\nstreams:\n  a:\n    source: x\n", "line 2: http.max_whep_sessions_per_stream"},
		{"too few pairs", "streams:\n  a:\n    source: rtsp://cam/sub\n    main: rtsp://cam/main\n    pairs_max: 1\n", "line 5: streams.a.pairs_max"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigExpandsEnvironmentAndDefaults(t *testing.T) {
	t.Setenv("DANSTREAM_TEST_PASS", "s3cret")
	cfg, err := ParseConfig([]byte("streams:\n  cam:\n    source: rtsp://u:${DANSTREAM_TEST_PASS}@${DANSTREAM_TEST_HOST:-127.0.0.1}/s\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Streams["cam"]
	if s.Source != "rtsp://u:s3cret@127.0.0.1/s" {
		t.Errorf("source = %q", s.Source)
	}
	if cfg.HTTP.Listen != "127.0.0.1:8080" || s.Scale != 4 || s.Provider != "cpu" || !s.CacheEnabled() {
		t.Errorf("defaults not applied: %+v %+v", cfg.HTTP, s)
	}
	if got := capture.Redact(s.Source); strings.Contains(got, "s3cret") {
		t.Errorf("redacted URL still holds the password: %s", got)
	}
}

func TestShippedConfigsAreValid(t *testing.T) {
	t.Setenv("CAM_USER", "admin")
	t.Setenv("CAM_PASS", "pw")
	files, _ := filepath.Glob("../configs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no configs found")
	}
	for _, f := range files {
		if _, err := LoadConfig(f); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
	if _, err := os.Stat("../configs/default.yaml"); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"streams:\n  a:\n    source: synthetic:64x64\n", "http: {listen: ':1'}", "streams: {x: {scale: 9}}", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseConfig(data) // must never panic
	})
}

func TestParseConfigReadsHTTPTimeoutsAndCaps(t *testing.T) {
	cfg, err := ParseConfig([]byte("http:\n  read_timeout: 5s\n  idle_timeout: 2m\n  max_whep_sessions: 40\n  max_whep_sessions_per_stream: 10\nstreams:\n  a: {source: x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.HTTP; h.ReadTimeout != 5*time.Second || h.IdleTimeout != 2*time.Minute || h.MaxWHEPSessions != 40 || h.MaxWHEPSessionsPerStream != 10 || h.WriteTimeout != 0 {
		t.Fatalf("http = %+v", h)
	}
}
