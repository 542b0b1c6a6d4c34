package rtsp

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/danstream/danstream/internal/rtsptest"
	"github.com/danstream/danstream/transport"
)

// waitFor checks cond every 50 ms until it holds: for state that has no event
// to wait on. The deadline is generous; reaching it fails the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitIdle waits until nobody reads key's H.264 (the relay's feed has stopped).
func (tr *testRelay) waitIdle(t *testing.T, key string) {
	t.Helper()
	waitFor(t, key+" to go idle", func() bool { return !tr.cat.get(key).EncoderRunning(transport.CodecH264) })
}

// rebuild replaces key's Broadcaster as stream.Manager does on PUT or reload:
// the old one closes (its subscribers' channels close), then a new one appears.
func (tr *testRelay) rebuild(key string) {
	tr.cat.mu.Lock()
	old := tr.cat.m[key]
	delete(tr.cat.m, key)
	tr.cat.mu.Unlock()
	old.Close()
	tr.cat.mu.Lock()
	tr.cat.m[key] = transport.NewBroadcaster(old.Name(), old.Variant(), transport.EncoderOptions{KeyframeInterval: 25})
	tr.cat.mu.Unlock()
}

// remove deletes key's stream as DELETE does.
func (tr *testRelay) remove(key string) {
	tr.cat.mu.Lock()
	old := tr.cat.m[key]
	delete(tr.cat.m, key)
	tr.cat.mu.Unlock()
	old.Close()
}

// firstPlay plays url with gortsplib's client and returns the PLAY's RTP-Info
// entry and the first RTP packet received.
func firstPlay(t *testing.T, url string) (*headers.RTPInfoEntry, *rtp.Packet) {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := gortsplib.Client{Transport: &tcp}
	if err := c.Start(u.Scheme, u.Host); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	first := make(chan *rtp.Packet, 1)
	c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, pkt *rtp.Packet) {
		select {
		case first <- pkt.Clone():
		default:
		}
	})
	res, err := c.Play(nil)
	if err != nil {
		t.Fatal(err)
	}
	var ri headers.RTPInfo
	if v, ok := res.Header["RTP-Info"]; ok {
		if err := ri.Unmarshal(v); err != nil {
			t.Fatalf("RTP-Info %q: %v", v, err)
		}
	}
	select {
	case pkt := <-first:
		if len(ri) != 1 {
			t.Fatalf("RTP-Info %v: want one entry", res.Header["RTP-Info"])
		}
		return ri[0], pkt
	case <-time.After(30 * time.Second):
		t.Fatal("no RTP packet within 30 s of PLAY")
	}
	return nil, nil
}

// TestRelayRTPInfoNamesTheNextPacket: GStreamer's rtspsrc drops every packet
// "before seqnum-base", so each PLAY's RTP-Info must name the sequence number
// and timestamp the reader actually gets next, also for the first reader after
// the relay went idle (the feed stopped and started again).
func TestRelayRTPInfoNamesTheNextPacket(t *testing.T) {
	tr := startRelay(t, Options{})
	url := "rtsp://" + tr.addr + "/cam"
	for round := range 3 {
		ri, pkt := firstPlay(t, url)
		if ri.SequenceNumber == nil || ri.Timestamp == nil {
			if round > 0 {
				t.Fatalf("round %d: RTP-Info without seq/rtptime after the first feed", round)
			}
		} else {
			// One packet may be written between the reader's activation and
			// RTP-Info inside gortsplib; the next one is what matters.
			dseq := int16(pkt.SequenceNumber - *ri.SequenceNumber)
			dts := int32(pkt.Timestamp - *ri.Timestamp)
			t.Logf("round %d: RTP-Info seq=%d rtptime=%d, first packet seq=%d ts=%d (%+d packets, %+.3f s)",
				round, *ri.SequenceNumber, *ri.Timestamp, pkt.SequenceNumber, pkt.Timestamp, dseq, float64(dts)/90000)
			if dseq < -1 || dseq > 50 {
				t.Errorf("round %d: first packet is %+d packets from RTP-Info's seq", round, dseq)
			}
			if dts < -45000 || dts > 2*90000 {
				t.Errorf("round %d: first packet is %+.3f s from RTP-Info's rtptime", round, float64(dts)/90000)
			}
		}
		tr.waitIdle(t, "cam/enhanced")
	}
}

type client struct {
	name  string
	start func(testing.TB, string, string) *rtsptest.Reader
}

var clients = []client{{"ffmpeg", rtsptest.FFmpegReader}, {"gstreamer", rtsptest.GStreamerReader}}

// TestRelayClientsDecodeOverTCPAndUDP runs real clients (ffmpeg, Debian's
// GStreamer rtspsrc) over TCP and UDP through the cases that broke them: the
// first reader after an idle period, a late joiner, and readers across a feed
// restart (the stream rebuilt under them, as PUT and reload do) and after it.
func TestRelayClientsDecodeOverTCPAndUDP(t *testing.T) {
	for _, cl := range clients {
		for _, proto := range []string{"tcp", "udp"} {
			t.Run(cl.name+"/"+proto, func(t *testing.T) {
				tr := startRelay(t, Options{})
				url := "rtsp://" + tr.addr + "/cam"
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				wait := func(r *rtsptest.Reader, n int, what string) {
					t.Helper()
					t0 := time.Now()
					if err := r.WaitFrames(ctx, n); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					t.Logf("%s: %d frames after %.1f s", what, n, time.Since(t0).Seconds())
				}
				r1 := cl.start(t, url, proto)
				wait(r1, 5, "first reader")
				r1.Stop()
				tr.waitIdle(t, "cam/enhanced")

				r2 := cl.start(t, url, proto)
				wait(r2, 10, "first reader after idle")
				r3 := cl.start(t, url, proto)
				wait(r3, 10, "late joiner")

				n2, n3 := r2.Frames(), r3.Frames()
				tr.rebuild("cam/enhanced")
				wait(r2, n2+30, "reader across the restart")
				wait(r3, n3+30, "late joiner across the restart")
				r4 := cl.start(t, url, proto)
				wait(r4, 10, "reader after the restart")
			})
		}
	}
}

// TestRelayEndsSessionsWhenTheStreamGoes: a deleted stream ends its readers'
// sessions (they reconnect and get 404) instead of leaving them frozen.
func TestRelayEndsSessionsWhenTheStreamGoes(t *testing.T) {
	tr := startRelay(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := rtsptest.FFmpegReader(t, "rtsp://"+tr.addr+"/cam/original", "tcp")
	if err := r.WaitFrames(ctx, 5); err != nil {
		t.Fatal(err)
	}
	tr.remove("cam/original")
	select {
	case <-r.Exited():
	case <-ctx.Done():
		t.Fatalf("ffmpeg still connected %s after the stream was deleted (%d frames)", "60 s", r.Frames())
	}
	if !strings.Contains(tr.log.String(), "stream removed") {
		t.Errorf("no log line about ending the sessions:\n%s", tr.log.String())
	}
}

// TestRelayTransportsAreConfigurable: a transport left out of
// rtsp.transports is refused with 461, so that the client falls back.
func TestRelayTransportsAreConfigurable(t *testing.T) {
	tr := startRelay(t, Options{Transports: []string{TransportTCP}})
	if got := strings.Join(tr.Transports(), ","); got != "tcp" {
		t.Fatalf("transports %q, want tcp", got)
	}
	u, err := base.ParseURL("rtsp://" + tr.addr + "/cam")
	if err != nil {
		t.Fatal(err)
	}
	udp := gortsplib.TransportUDP
	c := gortsplib.Client{Transport: &udp}
	if err := c.Start(u.Scheme, u.Host); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Setup(desc.BaseURL, desc.Medias[0], 0, 0)
	if err == nil || !strings.Contains(err.Error(), "461") {
		t.Fatalf("UDP SETUP on a TCP-only relay: %v, want 461", err)
	}

	// Multicast is offered when configured (no multicast traffic is sent
	// here: it would leave the loopback interface).
	mrtp, _ := freeUDPPair(t)
	mport := port(mrtp)
	all := startRelay(t, Options{Transports: []string{TransportUDP, TransportMulticast, TransportTCP},
		MulticastIPRange: "239.255.42.0/24", MulticastRTPPort: mport, MulticastRTCPPort: mport + 1})
	if got := strings.Join(all.Transports(), ","); got != "udp,multicast,tcp" {
		t.Fatalf("transports %q, want udp,multicast,tcp", got)
	}

	if err := CheckOptions(Options{Transports: []string{"quic"}}); err == nil || !strings.HasPrefix(err.Error(), "transports: ") {
		t.Errorf("unknown transport: %v", err)
	}
	if err := CheckOptions(Options{RTPAddress: ":8001", RTCPAddress: ":8002"}); err == nil || !strings.HasPrefix(err.Error(), "rtp_address: ") {
		t.Errorf("odd RTP port: %v", err)
	}
}

// TestRelayCountsAStalledReaderAndLogsOncePerInterval: a reader that stops
// reading loses packets; that is counted and logged once per interval, not
// once per packet.
func TestRelayCountsAStalledReaderAndLogsOncePerInterval(t *testing.T) {
	tr := startRelayEnc(t, Options{WriteQueueSize: 16, StallLogEvery: time.Hour},
		transport.EncoderOptions{KeyframeInterval: 25, BitrateKbps: 4000})
	// A hand-driven RTSP session whose socket is never read after PLAY, as
	// with a reader stuck on a full disk (a small receive buffer fills fast).
	conn, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	br := bufio.NewReader(conn)
	session := ""
	for i, req := range []string{
		"DESCRIBE rtsp://" + tr.addr + "/cam RTSP/1.0\r\nCSeq: 1\r\n",
		"SETUP rtsp://" + tr.addr + "/cam/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
		"PLAY rtsp://" + tr.addr + "/cam RTSP/1.0\r\nCSeq: 3\r\n",
	} {
		if session != "" {
			req += "Session: " + session + "\r\n"
		}
		if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
			t.Fatal(err)
		}
		var res base.Response
		if err := res.Unmarshal(br); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if res.StatusCode != base.StatusOK {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
		if v := res.Header["Session"]; len(v) > 0 {
			session, _, _ = strings.Cut(v[0], ";")
		}
	}
	waitFor(t, "lost packets to be counted", func() bool { return tr.StalledPackets() > 100 })
	if n := strings.Count(tr.log.String(), "slow readers lost packets"); n != 1 {
		t.Fatalf("%d log lines for %d lost packets, want 1 per interval", n, tr.StalledPackets())
	}
	t.Logf("%d packets lost, 1 log line", tr.StalledPackets())

	// Both are on /metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(tr.Relay)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			got[name] = v
		}
	}
	if got["danstream_rtsp_stalled_packets_total"] < 100 || got["danstream_rtsp_readers,stream=cam,variant=enhanced"] != 1 {
		t.Fatalf("metrics %v", got)
	}
}
