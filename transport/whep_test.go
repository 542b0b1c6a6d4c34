package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"image/jpeg"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/whepclient"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// playing reports whether v keeps receiving: it waits for n more packets.
func playing(t *testing.T, v *viewer, n int64, what string) {
	t.Helper()
	start := v.Packets.Load()
	waitFor(t, what, func() bool { return v.Packets.Load() >= start+n })
}

func TestWHEPPlayThenDeleteEndsSession(t *testing.T) {
	srv, base, b := servedCamera(t, 320, 180, EncoderOptions{}, ServerOptions{})

	v := connectViewer(t, base, "cam", "")
	waitFor(t, "a keyframe over RTP", func() bool { return v.Keyframes.Load() > 0 })
	playing(t, v, 30, "RTP packets")
	if m, _ := v.Mime.Load().(string); m != webrtc.MimeTypeVP8 {
		t.Fatalf("negotiated %q, want VP8", m)
	}
	if b.Viewers() != 1 || srv.Sessions() != 1 {
		t.Fatalf("viewers %d sessions %d, want 1 and 1", b.Viewers(), srv.Sessions())
	}

	// A PLI yields a keyframe (the viewer already had one).
	k := v.Keyframes.Load()
	if err := v.SendPLI(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a keyframe after PLI", func() bool { return v.Keyframes.Load() > k })

	if resp := del(t, base+v.Location); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: status %d", resp.StatusCode)
	}
	if b.Viewers() != 0 || srv.Sessions() != 0 {
		t.Fatalf("after DELETE: viewers %d sessions %d", b.Viewers(), srv.Sessions())
	}
	if b.EncoderRunning(CodecVP8) {
		t.Fatal("encoder still runs with no viewers")
	}
	waitFor(t, "the client to see the server go", func() bool {
		s := v.PC.ConnectionState()
		return s == webrtc.PeerConnectionStateClosed || s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateDisconnected
	})
	if resp := del(t, base+v.Location); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second DELETE: status %d, want 404", resp.StatusCode)
	}
}

func TestWHEPTwoViewersShareOneEncoder(t *testing.T) {
	_, base, b := servedCamera(t, 320, 180, EncoderOptions{}, ServerOptions{})

	v1 := connectViewer(t, base, "cam", "")
	v2 := connectViewer(t, base, "cam", "")
	playing(t, v1, 30, "viewer 1 RTP")
	playing(t, v2, 30, "viewer 2 RTP")
	for i, v := range []*viewer{v1, v2} {
		if v.FirstKey.Load() != 1 {
			t.Errorf("viewer %d: the first RTP packet did not start a keyframe (undecodable start)", i+1)
		}
	}
	st := b.Stats()
	e := encStats(t, b, CodecVP8)
	if e.Restarts != 1 || e.Frames > st.FramesIn || e.Viewers != 2 {
		t.Fatalf("encoder %+v with %d frames in: want one encoder, at most one encode per frame, 2 viewers", e, st.FramesIn)
	}
}

func TestWHEPFrozenViewerDoesNotStallOthers(t *testing.T) {
	_, base, b := servedCamera(t, 320, 180, EncoderOptions{QueueLen: 4}, ServerOptions{})

	fast := connectViewer(t, base, "cam", "")
	stalled := connectViewer(t, base, "cam", "")
	playing(t, stalled, 10, "the second viewer's first packets")
	stalled.Stop.Store(true) // this client stops reading its track altogether
	// The server side of a frozen viewer (a write path that no longer drains)
	// is a subscription nobody reads, on the same broadcaster.
	frozen, err := b.Subscribe(CodecVP8)
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Close()
	playing(t, fast, 60, "fast viewer's packets while another viewer is frozen")
	waitFor(t, "drops on the frozen viewer", func() bool { return frozen.Drops() > 0 })
	if b.Stats().Drops < frozen.Drops() {
		t.Fatalf("broadcaster drops %d < frozen viewer's %d", b.Stats().Drops, frozen.Drops())
	}
}

func TestWHEPBadInputLeavesViewerPlaying(t *testing.T) {
	_, base, b := servedCamera(t, 320, 180, EncoderOptions{}, ServerOptions{MaxOfferBytes: 16 << 10})
	v := connectViewer(t, base, "cam", "")
	playing(t, v, 10, "the first viewer")

	_, good := makeOffer(t)
	_, vp9only := makeOffer(t, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000})
	audioOnly := strings.Replace(good, "m=video", "m=audio", 1)
	url := base + "/api/streams/cam/whep"
	cases := []struct {
		name, url, ctype, body string
		status                 int
		mention                string
	}{
		{"wrong content type", url, "application/json", good, http.StatusUnsupportedMediaType, "application/sdp"},
		{"missing content type", url, "", good, http.StatusUnsupportedMediaType, "application/sdp"},
		{"malformed SDP", url, "application/sdp", "v=0\r\nthis is not sdp\r\n", http.StatusBadRequest, "malformed SDP"},
		{"empty body", url, "application/sdp", "", http.StatusBadRequest, "empty"},
		{"unknown stream", base + "/api/streams/nope/whep", "application/sdp", good, http.StatusNotFound, "nope"},
		{"malformed SDP to an unknown stream", base + "/api/streams/nope/whep", "application/sdp", "v=0\r\nthis is not sdp\r\n", http.StatusNotFound, "nope"},
		{"unknown variant", url + "?variant=sharpest", "application/sdp", good, http.StatusBadRequest, "variant"},
		{"body over limit", url, "application/sdp", good + strings.Repeat("a=x-pad:0123456789\r\n", 2000), http.StatusRequestEntityTooLarge, "too large"},
		{"no supported codec", url, "application/sdp", vp9only, http.StatusNotAcceptable, "VP8"},
		{"no video section", url, "application/sdp", audioOnly, http.StatusBadRequest, "no video"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := post(t, c.url, c.ctype, c.body)
			body := readBody(t, resp)
			if resp.StatusCode != c.status || !strings.Contains(body, c.mention) {
				t.Fatalf("status %d body %q; want %d mentioning %q", resp.StatusCode, body, c.status, c.mention)
			}
			playing(t, v, 5, "the first viewer after "+c.name)
		})
	}
	t.Run("delete unknown session", func(t *testing.T) {
		if resp := del(t, base+"/api/streams/cam/whep/deadbeef"); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status %d, want 404", resp.StatusCode)
		}
		playing(t, v, 5, "the first viewer after a bad DELETE")
	})
	if b.Viewers() != 1 {
		t.Fatalf("viewers %d after bad requests, want 1", b.Viewers())
	}
}

func TestWHEPPreflightAndPatch(t *testing.T) {
	cat := newTestCatalog()
	_, base := newTestServer(t, cat, ServerOptions{})
	req, _ := http.NewRequest(http.MethodOptions, base+"/api/streams/cam/whep", nil)
	req.Header.Set("Origin", "http://example.test")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest(http.MethodPatch, base+"/api/streams/cam/whep/x", strings.NewReader("a=candidate"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("PATCH: %d, want 405 (no trickle)", resp.StatusCode)
	}
}

func TestWHEPOriginalVariantAndH264(t *testing.T) {
	cat := newTestCatalog()
	enh := NewBroadcaster("cam", VariantEnhanced, EncoderOptions{})
	orig := NewBroadcaster("cam", VariantOriginal, EncoderOptions{})
	defer enh.Close()
	defer orig.Close()
	cat.add(enh)
	cat.add(orig)
	feed(t, enh, 320, 180)
	feed(t, orig, 320, 180)
	_, base := newTestServer(t, cat, ServerOptions{})

	v := connectViewer(t, base, "cam", "?variant=original", h264Cap, vp8Cap) // prefers H.264
	waitFor(t, "an H.264 keyframe", func() bool { return v.Keyframes.Load() > 0 })
	playing(t, v, 20, "H.264 RTP")
	if m, _ := v.Mime.Load().(string); m != webrtc.MimeTypeH264 {
		t.Fatalf("negotiated %q, want H264 (the viewer's first choice)", m)
	}
	if orig.Viewers() != 1 || enh.Viewers() != 0 || !orig.EncoderRunning(CodecH264) || orig.EncoderRunning(CodecVP8) {
		t.Fatalf("original viewers %d, enhanced %d: the variant query was not honoured", orig.Viewers(), enh.Viewers())
	}
}

func TestWHEPReapsViewerThatNeverConnects(t *testing.T) {
	srv, base, b := servedCamera(t, 160, 96, EncoderOptions{}, ServerOptions{ReapAfter: 300 * time.Millisecond})

	pc, offer := makeOffer(t)
	resp := post(t, base+"/api/streams/cam/whep", "application/sdp", offer)
	_ = readBody(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_ = pc.Close() // vanish without DELETE and without ever connecting
	waitFor(t, "the reaper to remove the session", func() bool { return srv.Sessions() == 0 && b.Viewers() == 0 })
}

func TestSnapshotIsJPEGOfFrameSize(t *testing.T) {
	cat := newTestCatalog()
	enh := NewBroadcaster("cam", VariantEnhanced, EncoderOptions{})
	orig := NewBroadcaster("cam", VariantOriginal, EncoderOptions{})
	cat.add(enh)
	cat.add(orig)
	_, base := newTestServer(t, cat, ServerOptions{})

	get := func(path string) *http.Response {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := get("/api/streams/cam/snapshot.jpg"); r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("snapshot before any frame: %d, want 503", r.StatusCode)
	}
	enh.WriteFrame(testFrame(320, 180, 1))
	orig.WriteFrame(testFrame(160, 90, 1))
	for _, c := range []struct {
		query string
		w, h  int
	}{{"", 320, 180}, {"?variant=enhanced", 320, 180}, {"?variant=original", 160, 90}} {
		r := get("/api/streams/cam/snapshot.jpg" + c.query)
		body := readBody(t, r)
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("snapshot%s: %d %q", c.query, r.StatusCode, r.Header.Get("Content-Type"))
		}
		img, err := jpeg.Decode(bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatalf("snapshot%s does not decode: %v", c.query, err)
		}
		if img.Bounds().Dx() != c.w || img.Bounds().Dy() != c.h {
			t.Fatalf("snapshot%s is %v, want %dx%d", c.query, img.Bounds(), c.w, c.h)
		}
	}
	if r := get("/api/streams/nope/snapshot.jpg"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown stream snapshot: %d", r.StatusCode)
	}
}

func TestHTTPPagesHealthAndAPI(t *testing.T) {
	cat := newTestCatalog()
	b := NewBroadcaster("cam", VariantEnhanced, EncoderOptions{})
	cat.add(b)
	b.WriteFrame(testFrame(64, 32, 0))
	_, base := newTestServer(t, cat, ServerOptions{})
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp, readBody(t, resp)
	}
	cases := []struct {
		path    string
		status  int
		ctype   string
		mention string
	}{
		{"/", 200, "text/html", "/assets/app.js"},
		{"/streams/cam", 200, "text/html", "/assets/player.js"},
		{"/streams/nope", 404, "text/plain", "nope"},
		{"/assets/style.css", 200, "text/css", "body"},
		{"/assets/", 404, "text/plain", "not found"}, // no folder listing
		{"/healthz", 200, "application/json", `"ok"`},
		{"/api/streams", 200, "application/json", `"output_width": 64`},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			r, body := get(c.path)
			if r.StatusCode != c.status || !strings.HasPrefix(r.Header.Get("Content-Type"), c.ctype) || !strings.Contains(body, c.mention) {
				t.Fatalf("%s: %d %q, body %.200q; want %d %s mentioning %q", c.path, r.StatusCode, r.Header.Get("Content-Type"), body, c.status, c.ctype, c.mention)
			}
		})
	}
	var api struct {
		Streams []StreamStatus `json:"streams"`
	}
	_, body := get("/api/streams")
	if err := json.Unmarshal([]byte(body), &api); err != nil || len(api.Streams) != 1 || api.Streams[0].Name != "cam" {
		t.Fatalf("api/streams: %v %+v", err, api)
	}
	cat.mu.Lock()
	cat.state = StateError
	cat.mu.Unlock()
	if r, body := get("/healthz"); r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "error") {
		t.Fatalf("healthz with a failed stream: %d %s", r.StatusCode, body)
	}
}

// blackholeConn is a UDP socket that can go silent at once, like a viewer
// whose laptop lid closed: no DTLS close, no RTCP BYE, nothing.
type blackholeConn struct {
	net.PacketConn
	dead atomic.Bool
}

func (c *blackholeConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if c.dead.Load() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, a)
}

func (c *blackholeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.dead.Load() {
			return n, a, err
		}
	}
}

func TestWHEPReapsViewerThatVanishes(t *testing.T) {
	srv, base, b := servedCamera(t, 160, 96, EncoderOptions{}, ServerOptions{ICEDisconnectedTimeout: time.Second, ReapAfter: 3 * time.Second})

	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hole := &blackholeConn{PacketConn: udp}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: hole})
	defer mux.Close()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: vp8Cap, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(mux)
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var got atomic.Int64
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			got.Add(1)
		}
	})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, _ := pc.CreateOffer(nil)
	g := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-g
	resp := post(t, base+"/api/streams/cam/whep", "application/sdp", pc.LocalDescription().SDP)
	answer := readBody(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "RTP on the soon-vanishing viewer", func() bool { return got.Load() > 10 })
	hole.dead.Store(true)
	waitFor(t, "the vanished viewer to be reaped", func() bool { return srv.Sessions() == 0 && b.Viewers() == 0 })
}

// A viewer that reports a lost packet (RTCP NACK, as browsers do) gets it again from the
// server's send history: the reason the responder is the one interceptor kept per viewer.
func TestWHEPRetransmitsANackedPacket(t *testing.T) {
	_, base, _ := servedCamera(t, 320, 180, EncoderOptions{}, ServerOptions{})

	var mu sync.Mutex
	seen := map[uint16]int{}
	var order []uint16
	v, err := whepclient.Connect(context.Background(), base, "cam", "", whepclient.Options{Retransmits: true,
		OnPacket: func(p *rtp.Packet) {
			mu.Lock()
			seen[p.SequenceNumber]++
			order = append(order, p.SequenceNumber)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.PC.Close() })
	playing(t, v, 40, "RTP packets")

	mu.Lock()
	want := order[len(order)-20] // recent: well inside the server's history
	mu.Unlock()
	if err := v.SendNACK(want); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the NACKed packet again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen[want] >= 2
	})
}
