// Package whepclient is a loopback-only pion WHEP viewer for tests: it posts a
// recvonly-video offer, applies the answer, and counts what arrives. Transport
// tests and end-to-end tests share it so both speak WHEP the same way.
package whepclient

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// VP8 and H264 are the video codecs a browser offers; feedback includes PLI.
var (
	VP8 = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack", Parameter: "pli"}}}
	H264 = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack", Parameter: "pli"}}}
)

// Options shape a viewer; zero values pick the defaults shown.
type Options struct {
	Codecs []webrtc.RTPCodecCapability // offered codecs ([VP8])
	HTTP   *http.Client                // (http.DefaultClient)
	// FastICE notices a vanished server within seconds instead of pion's 30 s.
	FastICE bool
	// Retransmits turns off SRTP replay protection, so a retransmission of a packet
	// already received reaches OnPacket (generic NACK feedback is offered either way, by
	// pion's default interceptors, as browsers offer it).
	Retransmits bool
	// OnPacket, when set, sees every RTP packet read (from the track's goroutine).
	OnPacket func(*rtp.Packet)
	// Networks the viewer gathers on ([UDP4]); [TCP4] alone makes it reach the
	// server over ICE-TCP only (active candidates), as a viewer whose UDP is blocked.
	Networks []webrtc.NetworkType
}

// API builds a pion API that offers codecs and gathers loopback candidates only (UDP4 unless o.Networks).
func API(o Options) (*webrtc.API, error) {
	caps := o.Codecs
	if len(caps) == 0 {
		caps = []webrtc.RTPCodecCapability{VP8}
	}
	me := &webrtc.MediaEngine{}
	for i, c := range caps {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: webrtc.PayloadType(110 + i)},
			webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	nets := o.Networks
	if len(nets) == 0 {
		nets = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	}
	se.SetNetworkTypes(nets)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	if o.Retransmits {
		se.DisableSRTPReplayProtection(true)
	}
	if o.FastICE {
		se.SetICETimeouts(3*time.Second, 6*time.Second, time.Second)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Offer returns a fresh peer connection and its complete (gathered) recvonly-video offer.
func Offer(o Options) (*webrtc.PeerConnection, string, error) {
	api, err := API(o)
	if err != nil {
		return nil, "", err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", err
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		_ = pc.Close()
		return nil, "", err
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		_ = pc.Close()
		return nil, "", err
	}
	g := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		_ = pc.Close()
		return nil, "", err
	}
	<-g
	return pc, pc.LocalDescription().SDP, nil
}

// Viewer is one WHEP session's client side and what it has seen.
type Viewer struct {
	PC       *webrtc.PeerConnection
	Location string // the session URL the server answered with
	Answer   string // the server's SDP answer
	// Links are the answer's Link headers (RFC 9725: rel="ice-server" entries name STUN/TURN servers).
	Links []string

	Packets   atomic.Int64
	Keyframes atomic.Int64
	FirstKey  atomic.Int32 // first RTP packet: 1 starts a keyframe, 2 does not
	Mime      atomic.Value // the negotiated codec's MIME type (string)
	Stop      atomic.Bool  // set to stop reading RTP (a frozen viewer)
	Lost      atomic.Bool  // state left "connected" for disconnected/failed/closed
	TrackEnd  chan struct{}
	States    chan webrtc.PeerConnectionState
	connected atomic.Bool
}

// Connect runs the whole WHEP exchange with base (http:// or https://) for
// stream; query may carry ?token= or ?variant=. It checks what WHEP requires
// of the answer (201, application/sdp, a session Location, ICE candidates,
// since the server answers after gathering) and returns once it is applied.
// The caller closes v.PC.
func Connect(ctx context.Context, base, stream, query string, o Options) (*Viewer, error) {
	pc, offer, err := Offer(o)
	if err != nil {
		return nil, err
	}
	v := &Viewer{PC: pc, TrackEnd: make(chan struct{}), States: make(chan webrtc.PeerConnectionState, 64)}
	pc.OnConnectionStateChange(v.onState)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { v.read(tr, o.OnPacket) })
	answer, loc, links, err := post(ctx, o.HTTP, base+"/api/streams/"+stream+"/whep"+query, offer)
	if err == nil {
		v.Location, v.Answer, v.Links = loc, answer, links
		switch {
		case !strings.HasPrefix(loc, "/api/streams/"+stream+"/whep/"):
			err = fmt.Errorf("Location %q does not name a session of %s", loc, stream)
		case !strings.Contains(answer, "a=candidate"):
			err = fmt.Errorf("answer has no ICE candidates (gathering must finish before answering):\n%s", answer)
		default:
			err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
		}
	}
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	return v, nil
}

func post(ctx context.Context, c *http.Client, url, offer string) (answer, location string, links []string, err error) {
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(offer))
	if err != nil {
		return "", "", nil, err
	}
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := c.Do(req)
	if err != nil {
		return "", "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", nil, err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", "", nil, fmt.Errorf("WHEP POST: status %d, body %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" {
		return "", "", nil, fmt.Errorf("answer Content-Type %q, want application/sdp", ct)
	}
	return string(body), resp.Header.Get("Location"), resp.Header.Values("Link"), nil
}

func (v *Viewer) onState(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateConnected:
		v.connected.Store(true)
	case webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		if v.connected.Load() {
			v.Lost.Store(true)
		}
	}
	select {
	case v.States <- s:
	default:
	}
}

func (v *Viewer) read(tr *webrtc.TrackRemote, onPacket func(*rtp.Packet)) {
	defer close(v.TrackEnd)
	mime := tr.Codec().MimeType
	v.Mime.Store(mime)
	for {
		if v.Stop.Load() {
			return // stop reading: pion's buffers fill, the server must not care
		}
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		v.Packets.Add(1)
		if onPacket != nil {
			onPacket(p)
		}
		key := isKeyframeStart(mime, p.Payload)
		if key {
			v.Keyframes.Add(1)
			v.FirstKey.CompareAndSwap(0, 1)
		} else {
			v.FirstKey.CompareAndSwap(0, 2)
		}
	}
}

// isKeyframeStart reports whether an RTP payload begins (or carries) a keyframe.
func isKeyframeStart(mime string, payload []byte) bool {
	if mime == webrtc.MimeTypeVP8 {
		var vp codecs.VP8Packet
		pl, err := vp.Unmarshal(payload)
		return err == nil && vp.S == 1 && vp.PID == 0 && len(pl) > 0 && pl[0]&1 == 0
	}
	if len(payload) < 2 {
		return false
	}
	n := payload[0] & 0x1f // H.264: IDR, SPS, STAP-A, or the start of a fragmented IDR
	return n == 5 || n == 7 || n == 24 || (n == 28 && payload[1]&0x80 != 0 && payload[1]&0x1f == 5)
}

// SendNACK asks the server to send the packets with these sequence numbers again.
func (v *Viewer) SendNACK(seqs ...uint16) error {
	ssrc, ok := v.trackSSRC()
	if !ok {
		return fmt.Errorf("no track to NACK yet")
	}
	return v.PC.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}})
}

// SendPLI asks the server for a keyframe the way a browser does.
func (v *Viewer) SendPLI() error {
	ssrc, ok := v.trackSSRC()
	if !ok {
		return nil
	}
	return v.PC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}

// trackSSRC is the SSRC of the received video track, once there is one.
func (v *Viewer) trackSSRC() (uint32, bool) {
	for _, r := range v.PC.GetReceivers() {
		if tr := r.Track(); tr != nil {
			return uint32(tr.SSRC()), true
		}
	}
	return 0, false
}

// ICEServersFromLinks reads the rel="ice-server" entries of Link header values
// (RFC 9725 section 4.6, RFC 8288 syntax; one header may hold several
// comma-separated links): URL, username and credential of each STUN/TURN server.
// Hand-written: the small Link parsers on the proxy split on every comma,
// including those inside a quoted credential.
func ICEServersFromLinks(values []string) ([]webrtc.ICEServer, error) {
	var out []webrtc.ICEServer
	for _, v := range values {
		for rest := strings.TrimSpace(v); rest != ""; {
			if rest[0] != '<' {
				return nil, fmt.Errorf("link %q: want <URI>", rest)
			}
			end := strings.IndexByte(rest, '>')
			if end < 0 {
				return nil, fmt.Errorf("link %q: no closing >", rest)
			}
			uri := rest[1:end]
			rest = strings.TrimSpace(rest[end+1:])
			params := map[string]string{}
			for strings.HasPrefix(rest, ";") {
				rest = strings.TrimSpace(rest[1:])
				eq := strings.IndexAny(rest, "=;,")
				if eq < 0 || rest[eq] != '=' {
					return nil, fmt.Errorf("link <%s>: parameter without value in %q", uri, rest)
				}
				key := strings.ToLower(strings.TrimSpace(rest[:eq]))
				rest = strings.TrimSpace(rest[eq+1:])
				var val string
				if strings.HasPrefix(rest, `"`) {
					var b strings.Builder
					i := 1
					for ; i < len(rest) && rest[i] != '"'; i++ {
						if rest[i] == '\\' && i+1 < len(rest) {
							i++
						}
						b.WriteByte(rest[i])
					}
					if i >= len(rest) {
						return nil, fmt.Errorf("link <%s>: unterminated quoted %s", uri, key)
					}
					val, rest = b.String(), strings.TrimSpace(rest[i+1:])
				} else {
					e := strings.IndexAny(rest, ";,")
					if e < 0 {
						e = len(rest)
					}
					val, rest = strings.TrimSpace(rest[:e]), strings.TrimSpace(rest[e:])
				}
				params[key] = val
			}
			if strings.HasPrefix(rest, ",") {
				rest = strings.TrimSpace(rest[1:])
			} else if rest != "" {
				return nil, fmt.Errorf("link <%s>: unexpected %q", uri, rest)
			}
			if params["rel"] != "ice-server" {
				continue
			}
			s := webrtc.ICEServer{URLs: []string{uri}, Username: params["username"]}
			if c, ok := params["credential"]; ok {
				s.Credential = c
			}
			out = append(out, s)
		}
	}
	return out, nil
}
