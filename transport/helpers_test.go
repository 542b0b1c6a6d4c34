package transport

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/danstream/danstream/frame"
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
	t.Cleanup(func() { srv.CloseSessions(); hs.Close() })
	return srv, hs.URL
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

// viewer is a Go pion WHEP client.
type viewer struct {
	pc        *webrtc.PeerConnection
	location  string
	packets   atomic.Int64
	keyframes atomic.Int64
	firstKey  atomic.Int32 // first RTP packet: 1 starts a keyframe, 2 does not
	mime      atomic.Value
	stop      atomic.Bool // stop reading RTP (a frozen viewer)
}

func clientAPI(t testing.TB, caps ...webrtc.RTPCodecCapability) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	for i, c := range caps {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: webrtc.PayloadType(110 + i)},
			webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

var vp8Cap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
	RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack", Parameter: "pli"}}}
var h264Cap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
	SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack", Parameter: "pli"}}}

// makeOffer returns a complete recvonly-video offer from a fresh client PC.
func makeOffer(t testing.TB, caps ...webrtc.RTPCodecCapability) (*webrtc.PeerConnection, string) {
	t.Helper()
	if len(caps) == 0 {
		caps = []webrtc.RTPCodecCapability{vp8Cap}
	}
	pc, err := clientAPI(t, caps...).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-g
	return pc, pc.LocalDescription().SDP
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
	pc, offer := makeOffer(t, caps...)
	v := &viewer{pc: pc}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.mime.Store(tr.Codec().MimeType)
		for {
			if v.stop.Load() {
				return // stop reading: pion's buffers fill, the server must not care
			}
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.packets.Add(1)
			key := false
			if tr.Codec().MimeType == webrtc.MimeTypeVP8 {
				var vp codecs.VP8Packet
				if pl, err := vp.Unmarshal(p.Payload); err == nil && vp.S == 1 && vp.PID == 0 && len(pl) > 0 && pl[0]&1 == 0 {
					key = true
				}
			} else if len(p.Payload) > 1 {
				n := p.Payload[0] & 0x1f
				if n == 5 || n == 7 || (n == 24) || (n == 28 && p.Payload[1]&0x80 != 0 && p.Payload[1]&0x1f == 5) {
					key = true
				}
			}
			if key {
				v.keyframes.Add(1)
			}
			if key {
				v.firstKey.CompareAndSwap(0, 1)
			} else {
				v.firstKey.CompareAndSwap(0, 2)
			}
		}
	})
	resp := post(t, base+"/api/streams/"+stream+"/whep"+query, "application/sdp", offer)
	answer := readBody(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP POST: status %d, body %q", resp.StatusCode, answer)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" {
		t.Fatalf("answer Content-Type %q, want application/sdp", ct)
	}
	v.location = resp.Header.Get("Location")
	if !strings.HasPrefix(v.location, "/api/streams/"+stream+"/whep/") {
		t.Fatalf("Location %q does not name a session of %s", v.location, stream)
	}
	if !strings.Contains(answer, "a=candidate") {
		t.Fatalf("answer has no ICE candidates (gathering must finish before answering):\n%s", answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("set answer: %v", err)
	}
	return v
}

// sendPLI asks the server for a keyframe the way a browser does.
func (v *viewer) sendPLI() error {
	for _, r := range v.pc.GetReceivers() {
		if tr := r.Track(); tr != nil {
			return v.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}})
		}
	}
	return nil
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
