package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrHealthUnauthorized is CheckHealth's error when the server refused the credentials (or their absence).
var ErrHealthUnauthorized = errors.New("credentials refused")

// CheckHealth asks a running server's /healthz (url) with an optional bearer
// token, for probes that cannot carry a credential themselves (Kubernetes
// exec probes run `danstream healthcheck` with the token from a Secret).
// 200 passes; with live, so does 503: the server answers, and a stream in
// error does not call for restarting the process. insecure skips TLS
// verification (a probe dials 127.0.0.1, which certificates rarely name).
func CheckHealth(ctx context.Context, url, token string, live, insecure bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure}} //nolint:gosec // opt-in, loopback probe
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK, live && resp.StatusCode == http.StatusServiceUnavailable:
		return body, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%s: %s: %w", url, resp.Status, ErrHealthUnauthorized)
	default:
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
}
