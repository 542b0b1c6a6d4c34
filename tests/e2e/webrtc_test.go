package e2e

import (
	"fmt"
	"net"
	"strconv"
	"testing"
)

// freeUDPPort returns a loopback UDP port nobody listens on now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// The player in Chromium plays over the one configured UDP port, and over the
// ICE-TCP port when Chromium refuses UDP (its IP handling policy
// disable_non_proxied_udp, what an administrator sets where UDP is blocked):
// the server offers both, the browser picks what it can use. The page also
// builds its RTCPeerConnection with the configured STUN/TURN servers, which it
// learns from the WHEP endpoint's Link headers.
func TestBrowserPlaysOverOneUDPPortAndOverICETCP(t *testing.T) {
	udp := freeUDPPort(t)
	tcp, _ := strconv.Atoi(portOf(freePort(t)))
	stunURL, turnURL := fmt.Sprintf("stun:127.0.0.1:%d", freeUDPPort(t)), fmt.Sprintf("turn:127.0.0.1:%d?transport=tcp", udp)
	cfg := defaultConfig(t) + fmt.Sprintf(`webrtc:
  udp_listen: 127.0.0.1:%d
  tcp_listen: 127.0.0.1:%d
  ice_servers:
    - urls: [%q]
    - {urls: [%q], username: viewer, credential: "not-a-secret"}
`, udp, tcp, stunURL, turnURL)
	s := startServe(t, cfg)
	s.waitRunning(t, "demo")
	for _, c := range []struct {
		name, protocol string
		port           int
		args           []string
	}{
		{"one UDP port", "udp", udp, nil},
		{"ICE-TCP with UDP refused", "tcp", tcp, []string{"--no-udp"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var res struct {
				playerResult
				Videos []struct {
					FramesDecoded int `json:"framesDecoded"`
					Selected      *struct {
						Remote struct {
							Protocol string `json:"protocol"`
							Port     int    `json:"port"`
						} `json:"remote"`
					} `json:"selected"`
					ICEServers []struct {
						URLs     []string `json:"urls"`
						Username string   `json:"username"`
					} `json:"iceServers"`
				} `json:"videos"`
			}
			runProbe(t, "player.mjs", "http://"+s.http+"/streams/demo?mode=enhanced", 60000, &res, c.args...)
			if !res.OK || len(res.Videos) == 0 || res.Videos[0].FramesDecoded == 0 {
				t.Fatalf("browser decoded nothing: %+v", res)
			}
			v := res.Videos[0]
			if v.Selected == nil || v.Selected.Remote.Protocol != c.protocol || v.Selected.Remote.Port != c.port {
				t.Fatalf("media flows over %+v, want the server's %s port %d", v.Selected, c.protocol, c.port)
			}
			if len(v.ICEServers) != 2 || v.ICEServers[0].URLs[0] != stunURL || v.ICEServers[1].URLs[0] != turnURL ||
				v.ICEServers[1].Username != "viewer" {
				t.Errorf("page's ICE servers %+v, want %s and %s (user viewer)", v.ICEServers, stunURL, turnURL)
			}
			t.Logf("%d frames over %s port %d", v.FramesDecoded, v.Selected.Remote.Protocol, v.Selected.Remote.Port)
		})
	}
}
