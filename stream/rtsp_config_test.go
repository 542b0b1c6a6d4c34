package stream

import (
	"reflect"
	"strings"
	"testing"

	"github.com/danstream/danstream/transport/rtsp"
)

func TestRTSPConfigTransportKeys(t *testing.T) {
	base := "streams:\n  cam: {source: \"synthetic:\"}\n"
	c, err := ParseConfig([]byte(base + `rtsp:
  listen: 127.0.0.1:8554
  transports: [udp, multicast, tcp]
  rtp_address: 127.0.0.1:18000
  rtcp_address: 127.0.0.1:18001
  multicast_ip_range: 239.10.0.0/16
  multicast_rtp_port: 18002
  multicast_rtcp_port: 18003
  write_queue_size: 1024
`))
	if err != nil {
		t.Fatal(err)
	}
	want := rtsp.Options{Listen: "127.0.0.1:8554", Transports: []string{"udp", "multicast", "tcp"},
		RTPAddress: "127.0.0.1:18000", RTCPAddress: "127.0.0.1:18001", MulticastIPRange: "239.10.0.0/16",
		MulticastRTPPort: 18002, MulticastRTCPPort: 18003, WriteQueueSize: 1024}
	if got := c.RTSP.Options(); !reflect.DeepEqual(got, want) {
		t.Fatalf("options %+v, want %+v", got, want)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"rtsp:\n  transports: [udp, quic]\n", `line 4: rtsp.transports: unknown transport "quic"`},
		{"rtsp:\n  rtp_address: \":8001\"\n  rtcp_address: \":8002\"\n", "line 4: rtsp.rtp_address: want an even port"},
		{"rtsp:\n  rtp_address: \":8000\"\n", "rtsp.rtcp_address: set both"},
		{"rtsp:\n  multicast_ip_range: 10.0.0.0/8\n", "line 4: rtsp.multicast_ip_range: want a multicast CIDR"},
		{"rtsp:\n  write_queue_size: 300\n", "line 4: rtsp.write_queue_size: want a power of two"},
	} {
		_, err := ParseConfig([]byte(base + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.yaml, err, tc.want)
		}
	}
}
