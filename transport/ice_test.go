package transport

import (
	"context"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/danstream/danstream/internal/whepclient"
)

// answerCandidates returns the "a=candidate" lines of an SDP answer as fields
// (foundation component protocol priority address port typ type ...).
func answerCandidates(t *testing.T, sdp string) [][]string {
	t.Helper()
	var out [][]string
	for _, l := range strings.Split(sdp, "\n") {
		if f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "a=candidate:")); strings.HasPrefix(strings.TrimSpace(l), "a=candidate:") && len(f) >= 8 {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatalf("answer has no candidates:\n%s", sdp)
	}
	return out
}

// selectedRemote is the server's candidate of the viewer's selected ICE pair.
func selectedRemote(t *testing.T, v *viewer) *webrtc.ICECandidate {
	t.Helper()
	for _, r := range v.PC.GetReceivers() {
		if tr := r.Transport(); tr != nil {
			if p, err := tr.ICETransport().GetSelectedCandidatePair(); err == nil && p != nil {
				return p.Remote
			}
		}
	}
	t.Fatal("viewer has no selected candidate pair")
	return nil
}

func portOf(t *testing.T, a net.Addr) int {
	t.Helper()
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// Every viewer is served from the one configured UDP port: each answer offers
// only that port, and media arrives from it.
func TestWHEPViewersShareOneUDPPort(t *testing.T) {
	srv, base, b := servedCamera(t, 320, 180, EncoderOptions{}, ServerOptions{ICEUDPListen: "127.0.0.1:0"})
	addrs := srv.ICEUDPAddrs()
	if len(addrs) != 1 {
		t.Fatalf("shared UDP addresses %v, want one", addrs)
	}
	port := portOf(t, addrs[0])
	var vs []*viewer
	for i := 0; i < 3; i++ {
		v := connectViewer(t, base, "cam", "")
		for _, c := range answerCandidates(t, v.Answer) {
			if !strings.EqualFold(c[2], "udp") || c[5] != strconv.Itoa(port) {
				t.Fatalf("viewer %d: candidate %v is not on the shared UDP port %d", i, c, port)
			}
		}
		vs = append(vs, v)
	}
	for i, v := range vs {
		playing(t, v, 30, "RTP on the shared port")
		if r := selectedRemote(t, v); r.Protocol != webrtc.ICEProtocolUDP || int(r.Port) != port {
			t.Fatalf("viewer %d receives from %s %s:%d, want udp port %d", i, r.Protocol, r.Address, r.Port, port)
		}
	}
	if b.Viewers() != 3 {
		t.Fatalf("viewers %d, want 3", b.Viewers())
	}
}

// A viewer that can only use TCP (no UDP candidates at all) plays over the
// ICE-TCP listener.
func TestWHEPOverICETCP(t *testing.T) {
	srv, base, _ := servedCamera(t, 320, 180, EncoderOptions{},
		ServerOptions{ICEUDPListen: "127.0.0.1:0", ICETCPListen: "127.0.0.1:0"})
	tcpPort := portOf(t, srv.ICETCPAddr())
	v, err := whepclient.Connect(context.Background(), base, "cam", "",
		whepclient.Options{Networks: []webrtc.NetworkType{webrtc.NetworkTypeTCP4}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.PC.Close() })
	var tcp int
	for _, c := range answerCandidates(t, v.Answer) {
		if strings.EqualFold(c[2], "tcp") {
			tcp++
			if c[5] != strconv.Itoa(tcpPort) || !strings.Contains(strings.Join(c, " "), "tcptype passive") {
				t.Fatalf("TCP candidate %v: want passive on port %d", c, tcpPort)
			}
		}
	}
	if tcp == 0 {
		t.Fatalf("answer has no TCP candidate:\n%s", v.Answer)
	}
	waitFor(t, "a keyframe over ICE-TCP", func() bool { return v.Keyframes.Load() > 0 })
	playing(t, v, 30, "RTP over ICE-TCP")
	if r := selectedRemote(t, v); r.Protocol != webrtc.ICEProtocolTCP || int(r.Port) != tcpPort {
		t.Fatalf("receiving from %s %s:%d, want tcp port %d", r.Protocol, r.Address, r.Port, tcpPort)
	}
}

// STUN/TURN servers reach viewers as RFC 9725 Link headers: on the WHEP answer,
// and on an OPTIONS request before the offer (not on a CORS preflight, and
// not to a caller who may not watch the stream).
func TestWHEPICEServerLinkHeaders(t *testing.T) {
	servers := []ICEServer{
		{URLs: []string{"stun:stun.example.net:3478"}},
		{URLs: []string{"turn:turn.example.net:3478?transport=udp", "turns:turn.example.net:5349?transport=tcp"},
			Username: "viewer", Credential: `p"a\ss, ok`},
	}
	want := []webrtc.ICEServer{
		{URLs: []string{"stun:stun.example.net:3478"}},
		{URLs: []string{"turn:turn.example.net:3478?transport=udp"}, Username: "viewer", Credential: `p"a\ss, ok`},
		{URLs: []string{"turns:turn.example.net:5349?transport=tcp"}, Username: "viewer", Credential: `p"a\ss, ok`},
	}
	_, base, _ := servedCamera(t, 160, 90, EncoderOptions{}, ServerOptions{ICEServers: servers})
	v := connectViewer(t, base, "cam", "")
	got, err := whepclient.ICEServersFromLinks(v.Links)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("answer Link headers %q parsed to %+v (%v), want %+v", v.Links, got, err, want)
	}
	options := func(base, cred string, preflight bool) []string {
		req, _ := http.NewRequest(http.MethodOptions, base+"/api/streams/cam/whep", nil)
		if preflight {
			req.Header.Set("Origin", "http://example.test")
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("OPTIONS: status %d", resp.StatusCode)
		}
		return resp.Header.Values("Link")
	}
	if got, err := whepclient.ICEServersFromLinks(options(base, "", false)); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("OPTIONS Link headers parsed to %+v (%v), want %+v", got, err, want)
	}
	if l := options(base, "", true); len(l) != 0 {
		t.Fatalf("CORS preflight answered Link headers %q", l)
	}

	cat := newTestCatalog()
	auth := NewAuth([]AuthRule{{Token: "cam-reader-0123456789", Read: []string{"cam"}}, {Token: "yard-reader-0123456789", Read: []string{"yard"}}})
	_, abase := newTestServer(t, cat, ServerOptions{ICEServers: servers, Auth: auth})
	if l := options(abase, "", false); len(l) != 0 {
		t.Fatalf("OPTIONS without credentials got the TURN credentials: %q", l)
	}
	if l := options(abase, "yard-reader-0123456789", false); len(l) != 0 {
		t.Fatalf("OPTIONS by a caller who may not watch cam got the TURN credentials: %q", l)
	}
	if l := options(abase, "cam-reader-0123456789", false); len(l) != len(want) {
		t.Fatalf("OPTIONS by a reader of cam: Link headers %q, want %d", l, len(want))
	}
}

// Bad WebRTC settings stop the server with an error that names the value.
func TestWebRTCOptionsBadValuesAreClearErrors(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyTCP.Close()
	for _, c := range []struct {
		o    ServerOptions
		want string
	}{
		{ServerOptions{ICEUDPListen: "8189"}, `UDP listen address "8189"`},
		{ServerOptions{ICEUDPListen: "127.0.0.1:70000"}, "not 0..65535"},
		{ServerOptions{ICEUDPListen: busy.LocalAddr().String()}, "address already in use"},
		{ServerOptions{ICETCPListen: busyTCP.Addr().String()}, "address already in use"},
		{ServerOptions{ICEHosts: []string{"no-such-host.invalid"}}, `WebRTC host "no-such-host.invalid"`},
		{ServerOptions{ICEHosts: []string{"0.0.0.0"}}, "not a unicast address"},
		{ServerOptions{ICEServers: []ICEServer{{URLs: []string{"http://stun.example.net"}}}}, `url "http://stun.example.net"`},
		{ServerOptions{ICEServers: []ICEServer{{URLs: []string{"turn:turn.example.net"}}}}, "username and credential are required"},
		{ServerOptions{ICEServers: []ICEServer{{}}}, "ice server 1: no urls"},
	} {
		srv := NewServer(newTestCatalog(), c.o)
		err := srv.Run(context.Background(), "127.0.0.1:0")
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want it to say %q", c.o, err, c.want)
		}
	}
}

// A default port another process holds is no reason to serve nothing: the
// server logs it and gives each viewer its own socket, as before. A port the
// user chose must bind (TestWebRTCOptionsBadValuesAreClearErrors).
func TestWHEPDefaultPortTakenFallsBackToPerViewerSockets(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyTCP.Close()
	srv, base, _ := servedCamera(t, 160, 90, EncoderOptions{}, ServerOptions{
		ICEUDPListen: busy.LocalAddr().String(), ICEUDPOptional: true,
		ICETCPListen: busyTCP.Addr().String(), ICETCPOptional: true})
	if srv.apiErr != nil || len(srv.ICEUDPAddrs()) != 0 || srv.ICETCPAddr() != nil {
		t.Fatalf("err %v, shared UDP %v, TCP %v: want no error and no shared sockets", srv.apiErr, srv.ICEUDPAddrs(), srv.ICETCPAddr())
	}
	v := connectViewer(t, base, "cam", "")
	playing(t, v, 20, "RTP on a per-viewer socket")
	if r := selectedRemote(t, v); r.Port == uint16(portOf(t, busy.LocalAddr())) {
		t.Fatalf("media from the taken port %d", r.Port)
	}
}
