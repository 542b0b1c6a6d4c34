package transport

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/internal/whepclient"
)

// testFrame draws a moving pattern: diagonal colour bands plus a bright box
// that slides with i, so consecutive frames differ like a live camera.
func testFrame(w, h int, i int) frame.Frame {
	f := frame.New(w, h)
	bx, by := (i*4)%max(w-16, 1), (i*2)%max(h-16, 1)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			p := (y*w + x) * 3
			v := uint8((x + y + i*3) & 0xff)
			f.Pix[p], f.Pix[p+1], f.Pix[p+2] = v, uint8(x*255/w), uint8(y*255/h)
			if x >= bx && x < bx+16 && y >= by && y < by+16 {
				f.Pix[p], f.Pix[p+1], f.Pix[p+2] = 255, 255, 255
			}
		}
	}
	f.Seq = uint64(i)
	f.Captured = time.Now()
	return f
}

// feed writes frames to b at about 30 fps until the test ends.
func feed(t *testing.T, b *Broadcaster, w, h int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(33 * time.Millisecond)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			b.WriteFrame(testFrame(w, h, i))
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// testCatalog serves fixed Broadcasters.
type testCatalog struct {
	mu    sync.Mutex
	bs    map[string]*Broadcaster // key name+"/"+variant
	state string
}

func newTestCatalog() *testCatalog {
	return &testCatalog{bs: map[string]*Broadcaster{}, state: StateRunning}
}

func (c *testCatalog) add(b *Broadcaster) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bs[b.Name()+"/"+b.Variant()] = b
}

func (c *testCatalog) List() []StreamStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	var out []StreamStatus
	for _, b := range c.bs {
		if seen[b.Name()] {
			continue
		}
		seen[b.Name()] = true
		f := b.LatestFrame()
		out = append(out, StreamStatus{Name: b.Name(), Source: "test://pattern", State: c.state,
			OutputWidth: f.W, OutputHeight: f.H, Scale: 1, Model: "none", Viewers: b.Viewers()})
	}
	// Catalog.List is in display order (the real manager sorts by name); map order is random.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *testCatalog) Broadcaster(name, variant string) (*Broadcaster, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.bs[name+"/"+variant]
	return b, ok
}

// newTestServer starts a Server on loopback over cat.
func newTestServer(t *testing.T, cat Catalog, o ServerOptions) (*Server, string) {
	t.Helper()
	o.LoopbackOnly = true
	srv := NewServer(cat, o)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close() })
	return srv, hs.URL
}

// servedCamera serves one enhanced stream "cam" fed with w x h test frames; the
// broadcaster closes when the test ends, after the server.
func servedCamera(t *testing.T, w, h int, eo EncoderOptions, so ServerOptions) (*Server, string, *Broadcaster) {
	t.Helper()
	cat := newTestCatalog()
	b := NewBroadcaster("cam", VariantEnhanced, eo)
	t.Cleanup(b.Close)
	cat.add(b)
	feed(t, b, w, h)
	srv, base := newTestServer(t, cat, so)
	return srv, base, b
}

// waitFor polls cond; the bound only stops a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// viewer is the shared pion WHEP test client.
type viewer = whepclient.Viewer

var vp8Cap, h264Cap = whepclient.VP8, whepclient.H264

// makeOffer returns a complete recvonly-video offer from a fresh client PC.
func makeOffer(t testing.TB, caps ...webrtc.RTPCodecCapability) (*webrtc.PeerConnection, string) {
	t.Helper()
	pc, offer, err := whepclient.Offer(whepclient.Options{Codecs: caps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc, offer
}

func post(t *testing.T, url, ctype, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readBody(t *testing.T, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// connectViewer runs the whole WHEP exchange and counts received RTP.
func connectViewer(t *testing.T, base, stream, query string, caps ...webrtc.RTPCodecCapability) *viewer {
	t.Helper()
	v, err := whepclient.Connect(context.Background(), base, stream, query, whepclient.Options{Codecs: caps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.PC.Close() })
	return v
}

func del(t *testing.T, url string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = readBody(t, resp)
	return resp
}
