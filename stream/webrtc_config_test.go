package stream

import (
	"reflect"
	"strings"
	"testing"

	"github.com/danstream/danstream/transport"
)

func TestWebRTCConfigDefaultsAndValues(t *testing.T) {
	base := "streams:\n  cam: {source: \"synthetic:\"}\n"
	c, err := ParseConfig([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.WebRTC.UDP() != ":8189" || c.WebRTC.TCP() != ":8189" || len(c.WebRTC.Servers()) != 0 {
		t.Fatalf("defaults udp %q tcp %q servers %v, want :8189, :8189, none", c.WebRTC.UDP(), c.WebRTC.TCP(), c.WebRTC.Servers())
	}
	t.Setenv("DS_TURN_PASS", "s3cret-turn")
	c, err = ParseConfig([]byte(base + `webrtc:
  udp_listen: ""
  tcp_listen: 0.0.0.0:8555
  hosts: [203.0.113.7, cam.example.com]
  ice_servers:
    - urls: ["stun:stun.example.com:3478"]
    - {urls: ["turn:turn.example.com:3478?transport=udp"], username: viewer, credential: "${DS_TURN_PASS}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []transport.ICEServer{{URLs: []string{"stun:stun.example.com:3478"}},
		{URLs: []string{"turn:turn.example.com:3478?transport=udp"}, Username: "viewer", Credential: "s3cret-turn"}}
	if c.WebRTC.UDP() != "" || c.WebRTC.TCP() != "0.0.0.0:8555" || !reflect.DeepEqual(c.WebRTC.Servers(), want) ||
		!reflect.DeepEqual(c.WebRTC.Hosts, []string{"203.0.113.7", "cam.example.com"}) {
		t.Fatalf("parsed %+v", c.WebRTC)
	}
}

func TestWebRTCConfigBadValuesNameKeyAndLine(t *testing.T) {
	base := "streams:\n  cam: {source: \"synthetic:\"}\n"
	for _, tc := range []struct{ yaml, want string }{
		{"webrtc:\n  udp_listen: \"8189\"\n", `line 4: webrtc.udp_listen: want host:port`},
		{"webrtc:\n  tcp_listen: \":99999\"\n", `line 4: webrtc.tcp_listen: want host:port`},
		{"webrtc:\n  hosts: [\"bad host\"]\n", `webrtc.hosts: "bad host" is neither`},
		{"webrtc:\n  hosts: [0.0.0.0]\n", `webrtc.hosts: "0.0.0.0" is neither`},
		{"webrtc:\n  ice_servers:\n    - urls: [\"http://stun.example.com\"]\n", `line 4: webrtc.ice_servers: ice server 1: url "http://stun.example.com"`},
		{"webrtc:\n  ice_servers:\n    - urls: [\"turn:turn.example.com\"]\n", "webrtc.ice_servers: ice server 1: turn:turn.example.com is a TURN server: username and credential are required"},
		{"webrtc:\n  ice_servers:\n    - {username: a}\n", "webrtc.ice_servers: ice server 1: no urls"},
		{"webrtc:\n  udp_port: 8189\n", "udp_port"},
	} {
		_, err := ParseConfig([]byte(base + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.yaml, err, tc.want)
		}
	}
}
