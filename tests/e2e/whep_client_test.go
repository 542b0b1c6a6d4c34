package e2e

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/whepclient"
)

// connectWHEP joins stream on base (http:// or https://) with client (the
// shared pion WHEP test client, noticing a vanished server within seconds);
// query may carry ?token=. It returns once the answer is applied.
func connectWHEP(t *testing.T, client *http.Client, base, stream, query string) *whepclient.Viewer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := whepclient.Connect(ctx, base, stream, query, whepclient.Options{HTTP: client, FastICE: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.PC.Close() })
	return v
}

// waitUntil polls cond; the bound only stops a broken test from hanging.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tlsClient trusts exactly the given certificate pool.
func tlsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}
