package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveReal runs srv behind net/http's own server (Serve, with its timeouts)
// on a loopback port and returns the address.
func serveReal(t *testing.T, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// slowRequest sends a request's headers and the first byte of a 1000-byte
// body, then one more byte every 50 ms until the connection breaks or the
// test ends; it returns the connection to read the answer from.
func slowRequest(t *testing.T, addr, method, path string, headers ...string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); c.Close(); wg.Wait() })
	head := method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n"
	for _, h := range headers {
		head += h + "\r\n"
	}
	if _, err := io.WriteString(c, head+"\r\nv"); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			if _, err := c.Write([]byte("=")); err != nil {
				return
			}
		}
	}()
	return c
}

// answerThenClose reads the server's answer and waits for it to close the
// connection. The deadline only keeps a broken server from hanging the test.
func answerThenClose(t *testing.T, c net.Conn) *http.Response {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v (the server is still waiting for the body)", err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := br.ReadByte(); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("connection still open after the answer: %v", err)
	}
	return resp
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestSlowBodyIsCutOffAtTheReadTimeout(t *testing.T) {
	cat := newTestCatalog()
	b := NewBroadcaster("cam", VariantEnhanced, EncoderOptions{})
	defer b.Close()
	cat.add(b)
	srv := NewServer(cat, ServerOptions{LoopbackOnly: true, ReadTimeout: 300 * time.Millisecond})
	addr := serveReal(t, srv)
	resp := answerThenClose(t, slowRequest(t, addr, "POST", "/api/streams/cam/whep"))
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
	// An idle kept-alive connection is closed too.
	srv2 := NewServer(cat, ServerOptions{LoopbackOnly: true, IdleTimeout: 200 * time.Millisecond})
	c2, err := net.Dial("tcp", serveReal(t, srv2))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c2.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c2)
	r, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("idle connection not closed by the server: %v", err)
	}
}

// Credentials are in the headers: a client without them (or without the
// right) is answered at once, never after waiting for its slow body.
func TestSlowBodyWithoutCredentialsIsRefusedAtOnce(t *testing.T) {
	cat := &adminCatalog{testCatalog: newTestCatalog(), puts: map[string]string{}}
	b := NewBroadcaster("cam", VariantEnhanced, EncoderOptions{})
	defer b.Close()
	cat.add(b)
	auth := NewAuth([]AuthRule{{Token: readToken, Read: []string{"cam"}}, {Token: adminToken, Admin: true}})
	// A read timeout far beyond the test's own bound: it cannot be what answers.
	addr := serveReal(t, NewServer(cat, ServerOptions{LoopbackOnly: true, Auth: auth, ReadTimeout: 10 * time.Minute}))
	for _, c := range []struct {
		name, method, path string
		headers            []string
		want               int
	}{
		{"no credentials", "POST", "/api/streams/cam/whep", nil, 401},
		{"wrong token", "PUT", "/api/streams/x", []string{"Authorization: Bearer wrong-0123456789abcdef"}, 401},
		{"read-only token on the API", "PUT", "/api/streams/x", []string{"Authorization: Bearer " + readToken}, 403},
		{"no read right", "POST", "/api/streams/yard/whep", []string{"Authorization: Bearer " + readToken}, 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			if resp := answerThenClose(t, slowRequest(t, addr, c.method, c.path, c.headers...)); resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
}

func TestWHEPSessionCapsAnswer503WithRetryAfter(t *testing.T) {
	cat := newTestCatalog()
	for _, n := range []string{"cam", "yard"} {
		b := NewBroadcaster(n, VariantEnhanced, EncoderOptions{})
		t.Cleanup(b.Close)
		cat.add(b)
	}
	// The test client is on loopback, exempt from the rate limit: the caps still hold.
	srv, base := newTestServer(t, cat, ServerOptions{MaxWHEPSessions: 3, MaxWHEPSessionsPerStream: 2})
	offer := func(stream string) *http.Response {
		_, sdp := makeOffer(t, vp8Cap)
		resp := post(t, base+"/api/streams/"+stream+"/whep", "application/sdp", sdp)
		_ = readBody(t, resp)
		return resp
	}
	var locs []string
	for i, c := range []struct {
		stream string
		want   int
	}{{"cam", 201}, {"cam", 201}, {"cam", 503}, {"yard", 201}, {"yard", 503}} {
		resp := offer(c.stream)
		if resp.StatusCode != c.want {
			t.Fatalf("offer %d to %s: %d, want %d", i, c.stream, resp.StatusCode, c.want)
		}
		if c.want == 503 && resp.Header.Get("Retry-After") == "" {
			t.Fatalf("offer %d: 503 without Retry-After", i)
		}
		if c.want == 201 {
			locs = append(locs, resp.Header.Get("Location"))
		}
	}
	if n := srv.Sessions(); n != 3 {
		t.Fatalf("%d sessions, want 3", n)
	}
	// A viewer leaving frees its place.
	if resp := del(t, base+locs[0]); resp.StatusCode != 200 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if resp := offer("cam"); resp.StatusCode != 201 {
		t.Fatalf("after a DELETE: %d, want 201", resp.StatusCode)
	}

	// Concurrent offers cannot all slip past the check: exactly the cap gets in.
	cat2 := newTestCatalog()
	b := NewBroadcaster("cam", VariantEnhanced, EncoderOptions{})
	t.Cleanup(b.Close)
	cat2.add(b)
	srv2, base2 := newTestServer(t, cat2, ServerOptions{MaxWHEPSessionsPerStream: 3})
	offers := make([]string, 8)
	for i := range offers {
		_, offers[i] = makeOffer(t, vp8Cap)
	}
	codes := make(chan int, len(offers))
	var wg sync.WaitGroup
	for _, o := range offers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", base2+"/api/streams/cam/whep", strings.NewReader(o))
			req.Header.Set("Content-Type", "application/sdp")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	if got[201] != 3 || got[503] != 5 || srv2.Sessions() != 3 {
		t.Fatalf("statuses %v, sessions %d: want 3 created and 5 refused", got, srv2.Sessions())
	}
}
