package stream

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestAuthConfigFromEnvAndValidation(t *testing.T) {
	t.Setenv("DS_TOKEN", "tok-0123456789abcdef")
	t.Setenv("DS_SHORT", "short")
	base := "streams:\n  cam: {source: \"synthetic:\"}\n"
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"token from env", base + "auth:\n  tokens:\n    - token: ${DS_TOKEN}\n      read: [cam]\n", ""},
		{"users and tls", base + "auth:\n  users:\n    - {user: alice, pass: wonderland, read: [\"*\"], admin: true}\ntls: {cert: c.pem, key: k.pem}\n", ""},
		{"short token names key and line", base + "auth:\n  tokens:\n    - token: ${DS_SHORT}\n", "line 5: auth.tokens.0.token: must be at least 16"},
		{"bad read name", base + "auth:\n  tokens:\n    - {token: ${DS_TOKEN}, read: [\"a b\"]}\n", "auth.tokens.0.read"},
		{"duplicate user", base + "auth:\n  users:\n    - {user: a, pass: 12345678}\n    - {user: a, pass: 87654321}\n", "auth.users.1.user: duplicate"},
		{"short pass", base + "auth:\n  users:\n    - {user: a, pass: \"1234\"}\n", "auth.users.0.pass"},
		{"tls half", base + "tls: {cert: c.pem}\n", "tls: set both"},
		{"unknown auth key", base + "auth:\n  tokenz: []\n", "tokenz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "short") || strings.Contains(err.Error(), "1234") {
				t.Fatalf("error quotes a secret: %v", err)
			}
		})
	}
}

func TestExposureNeedsAuthOffLoopback(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"loopback without auth", Config{HTTP: HTTPConfig{Listen: "127.0.0.1:8080"}, RTSP: RTSPConfig{Listen: "localhost:8554"}}, ""},
		{"any address without auth", Config{HTTP: HTTPConfig{Listen: ":8080"}, RTSP: RTSPConfig{Listen: "127.0.0.1:8554"}}, "http.listen is :8080 (not loopback) but auth is not configured"},
		{"rtsp exposed without auth", Config{HTTP: HTTPConfig{Listen: "127.0.0.1:8080"}, RTSP: RTSPConfig{Listen: "0.0.0.0:8554"}}, "rtsp.listen"},
		{"rtsp exposed but disabled", Config{HTTP: HTTPConfig{Listen: "[::1]:8080"}, RTSP: RTSPConfig{Listen: "0.0.0.0:8554", Disabled: true}}, ""},
		{"exposed with auth", Config{HTTP: HTTPConfig{Listen: "0.0.0.0:8080"}, RTSP: RTSPConfig{Listen: "0.0.0.0:8554"},
			Auth: AuthConfig{Tokens: []TokenConfig{{Token: "0123456789abcdef"}}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.CheckExposure()
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestReloadHookGetsCredentialsAndCanRejectTheReload(t *testing.T) {
	m, path, write := startWatchedManager(t)
	base := watchedBase
	var mu sync.Mutex
	var seen []string
	hook := func(c Config) error {
		mu.Lock()
		defer mu.Unlock()
		for _, tk := range c.Auth.Tokens {
			seen = append(seen, tk.Token)
			if strings.HasPrefix(tk.Token, "reject") {
				return errors.New("refused by hook")
			}
		}
		return nil
	}
	handled := watchConfig(t, m, path, hook)
	waitFor(t, "a running", func() bool { return stateOf(m, "a") == StateRunning })
	stream := "  b: {source: 'synthetic:32x32@20', model: ../sr/testdata/nearest_x4.onnx, threads: 1}\n"
	write(base + stream + "auth:\n  tokens: [{token: rotated-0123456789abc, read: ['*']}]\n")
	if err := nextReload(t, handled); err != nil {
		t.Fatalf("reload with the rotated token: %v", err)
	}
	if _, ok := m.Config("b"); !ok {
		t.Fatal("b not added by the accepted reload")
	}
	write(base + stream + "  c: {source: 'synthetic:32x32@20', model: ../sr/testdata/nearest_x4.onnx, threads: 1}\n" +
		"auth:\n  tokens: [{token: reject-0123456789abcd}]\n")
	if err := nextReload(t, handled); err == nil || !strings.Contains(err.Error(), "refused by hook") {
		t.Fatalf("reload the hook refuses: %v, want the hook's error", err)
	}
	mu.Lock()
	n := len(seen)
	mu.Unlock()
	if n != 2 {
		t.Fatalf("the hook saw %d tokens over two edits, want 2", n)
	}
	if _, ok := m.Config("c"); ok {
		t.Fatal("a reload its hook refused was applied")
	}
}
