package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/whepclient"
)

// The http: caps and timeouts of the config reach the running server.
func TestServeAppliesWHEPCapAndReadTimeoutFromConfig(t *testing.T) {
	s := startServe(t, `http: {listen: "HTTP_ADDR", max_whep_sessions_per_stream: 1, read_timeout: 1s}
rtsp: {listen: "RTSP_ADDR"}
streams:
  cam:
    source: "synthetic:64x48@5"
    `+testModel+`
`)
	s.waitRunning(t, "cam")
	offer := func() *http.Response {
		pc, sdp, err := whepclient.Offer(whepclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		resp, err := http.Post("http://"+s.http+"/api/streams/cam/whep", "application/sdp", strings.NewReader(sdp))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	// A body that never completes is cut off by read_timeout (before any
	// viewer: past the cap the offer would be refused without reading it).
	c, err := net.Dial("tcp", s.http)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /api/streams/cam/whep HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n\r\nv=0\r\n")
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // bounds a broken server only
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a body that stalls: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d, want 408", resp.StatusCode)
	}

	if r := offer(); r.StatusCode != http.StatusCreated {
		t.Fatalf("first viewer: %d", r.StatusCode)
	}
	if r := offer(); r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("second viewer past max_whep_sessions_per_stream 1: %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
}
