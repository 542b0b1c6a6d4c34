package transport

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCheckHealthLivenessAndReadiness: readiness passes only on 200;
// liveness also on 503 (a stream in error, the process answering); a refused
// credential is ErrHealthUnauthorized; the token goes as a bearer token.
func TestCheckHealthLivenessAndReadiness(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, c := range []struct {
		status     int
		live, pass bool
	}{{200, false, true}, {200, true, true}, {503, false, false}, {503, true, true}, {500, true, false}} {
		status = c.status
		_, err := CheckHealth(ctx, srv.URL, "tok", c.live, false)
		if (err == nil) != c.pass {
			t.Errorf("status %d live %v: err %v, want pass %v", c.status, c.live, err, c.pass)
		}
	}
	if _, err := CheckHealth(ctx, srv.URL, "", true, false); !errors.Is(err, ErrHealthUnauthorized) {
		t.Errorf("no token: %v, want ErrHealthUnauthorized", err)
	}
}
