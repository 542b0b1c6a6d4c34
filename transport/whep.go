package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Payload types we announce; the answer echoes the viewer's own numbers.
var codecPayloadTypes = map[string]webrtc.PayloadType{CodecVP8: 96, CodecH264: 102}

// nackHistoryPackets is how many sent packets a viewer's connection keeps for NACK
// retransmission: ~2 s of video at 2.5 Mbit/s, far beyond a round trip.
const nackHistoryPackets = 512

// newWebRTCAPI builds the pion API shared by all sessions, with the sockets
// they share (the one UDP port, the ICE-TCP listener) when configured.
func newWebRTCAPI(o ServerOptions) (*webrtc.API, *iceListeners, error) {
	if err := CheckICEServers(o.ICEServers); err != nil {
		return nil, nil, fmt.Errorf("transport: %w", err)
	}
	me := &webrtc.MediaEngine{}
	for _, c := range SupportedCodecs() {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: codecCapability(c),
			PayloadType: codecPayloadTypes[c]}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, nil, fmt.Errorf("transport: register %s: %w", c, err)
		}
	}
	// A viewer's connection only sends video: it needs NACK repair (the responder; the
	// codecs advertise nack feedback) and sender reports. pion's default set adds, per
	// connection, a NACK generator, TWCC feedback, a stats recorder and simulcast headers,
	// which only a receiver uses, and a 1024-packet history; without them a viewer costs
	// about a third less memory (docs/bench/fanout.md).
	ir := &interceptor.Registry{}
	responder, err := nack.NewResponderInterceptor(nack.ResponderSize(nackHistoryPackets))
	if err != nil {
		return nil, nil, fmt.Errorf("transport: webrtc NACK responder: %w", err)
	}
	ir.Add(responder)
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, nil, fmt.Errorf("transport: webrtc RTCP reports: %w", err)
	}
	se := webrtc.SettingEngine{}
	// Loopback candidates let a viewer on the same host (and the tests) connect
	// with no network; mDNS would only add multicast traffic and delay.
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	socks, err := configureICE(&se, o)
	if err != nil {
		return nil, nil, err
	}
	// Disconnected after ICEDisconnectedTimeout of silence; we reap after ReapAfter more.
	se.SetICETimeouts(o.ICEDisconnectedTimeout, o.ICEDisconnectedTimeout+o.ReapAfter, time.Second)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), socks, nil
}

// offerError is a client mistake in a WHEP offer, with the status to answer.
type offerError struct {
	status int
	msg    string
}

func (e *offerError) Error() string { return e.msg }

// chooseCodec picks the first codec in the viewer's preference order
// (the video m-line's format list) that we can encode.
func chooseCodec(offer string) (string, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return "", &offerError{http.StatusBadRequest, "malformed SDP offer: " + err.Error()}
	}
	var video *sdp.MediaDescription
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media == "video" {
			video = md
			break
		}
	}
	if video == nil {
		return "", &offerError{http.StatusBadRequest, "SDP offer has no video m-section (WHEP viewers must offer to receive video)"}
	}
	rtpmap := map[string]string{}
	fmtp := map[string]string{}
	for _, a := range video.Attributes {
		pt, rest, ok := strings.Cut(a.Value, " ")
		if !ok {
			continue
		}
		switch a.Key {
		case "rtpmap":
			name, _, _ := strings.Cut(rest, "/")
			rtpmap[pt] = strings.ToUpper(name)
		case "fmtp":
			fmtp[pt] = rest
		}
	}
	for _, pt := range video.MediaName.Formats {
		switch rtpmap[pt] {
		case CodecVP8:
			return CodecVP8, nil
		case CodecH264:
			// Our payloader fragments NAL units (FU-A): mode 1 only.
			if strings.Contains(strings.ReplaceAll(fmtp[pt], " ", ""), "packetization-mode=1") {
				return CodecH264, nil
			}
		}
	}
	return "", &offerError{http.StatusNotAcceptable, fmt.Sprintf(
		"SDP offer has no supported video codec; supported: video/VP8, video/H264 (packetization-mode=1); offered: %s",
		offeredCodecs(video.MediaName.Formats, rtpmap))}
}

func offeredCodecs(formats []string, rtpmap map[string]string) string {
	seen := map[string]bool{}
	var out []string
	for _, pt := range formats {
		n := rtpmap[pt]
		if n == "" {
			n = "pt " + pt
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// whepSession is one viewer: a PeerConnection fed from a Subscription.
type whepSession struct {
	id, stream, variant, codec string
	created                    time.Time

	srv   *Server
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticRTP
	sub   *Subscription
	log   *slog.Logger

	connected atomic.Bool
	plis      atomic.Uint64
	closeOnce sync.Once
	done      chan struct{}

	reapMu sync.Mutex
	reap   *time.Timer
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startSession negotiates a viewer of b and returns it with its SDP answer.
// adm, when not nil, is the caller's place under the WHEP caps: it becomes the
// registered session under s.mu so no concurrent offer sees both.
func (s *Server) startSession(ctx context.Context, b *Broadcaster, offer string, adm *admission) (*whepSession, string, error) {
	c, err := chooseCodec(offer)
	if err != nil {
		return nil, "", err
	}
	sess := &whepSession{id: newSessionID(), stream: b.Name(), variant: b.Variant(), codec: c,
		created: time.Now(), srv: s, done: make(chan struct{})}
	sess.log = s.log.With("stream", sess.stream, "variant", sess.variant, "session", sess.id[:8], "codec", c)

	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", fmt.Errorf("transport: new peer connection: %w", err)
	}
	sess.pc = pc
	fail := func(e error) (*whepSession, string, error) {
		_ = pc.Close()
		if sess.sub != nil {
			sess.sub.Close()
		}
		return nil, "", e
	}
	track, err := webrtc.NewTrackLocalStaticRTP(codecCapability(c), "video", "danstream-"+sess.stream+"-"+sess.variant)
	if err != nil {
		return fail(fmt.Errorf("transport: new track: %w", err))
	}
	sess.track = track
	sender, err := pc.AddTrack(track)
	if err != nil {
		return fail(fmt.Errorf("transport: add track: %w", err))
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(&offerError{http.StatusBadRequest, "SDP offer rejected: " + err.Error()})
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(&offerError{http.StatusBadRequest, "cannot answer SDP offer: " + err.Error()})
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		// Everything here derives from the offer (e.g. an rtpmap pion cannot bind).
		return fail(&offerError{http.StatusNotAcceptable,
			"cannot negotiate a video track with this offer (" + err.Error() + "); supported: video/VP8, video/H264 (packetization-mode=1) at 90000 Hz"})
	}
	// No trickle: the answer carries every candidate.
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail(fmt.Errorf("transport: ICE gathering: %w", ctx.Err()))
	}
	sub, err := b.Subscribe(c)
	if err != nil {
		return fail(fmt.Errorf("transport: subscribe %s/%s: %w", sess.stream, sess.variant, err))
	}
	sess.sub = sub

	// Registered before anything can close it, so close always finds it to forget.
	s.mu.Lock()
	s.sessions[sess.id] = sess
	adm.settleLocked()
	s.mu.Unlock()
	pc.OnConnectionStateChange(sess.onState)
	sess.armReaper() // a viewer that never connects is reaped like one that vanished
	go sess.readRTCP(sender)
	go sess.writeLoop()
	return sess, pc.LocalDescription().SDP, nil
}

func (ss *whepSession) armReaper() {
	ss.reapMu.Lock()
	defer ss.reapMu.Unlock()
	if ss.reap != nil {
		return
	}
	// ICE reports "disconnected" after ICEDisconnectedTimeout of silence; the
	// timer adds ReapAfter, so a vanished viewer goes within their sum.
	ss.reap = time.AfterFunc(ss.srv.opts.ReapAfter, func() {
		ss.log.Info("transport: reaping viewer that is not connected", "after", ss.srv.opts.ReapAfter)
		ss.close("reaped")
	})
}

func (ss *whepSession) disarmReaper() {
	ss.reapMu.Lock()
	defer ss.reapMu.Unlock()
	if ss.reap != nil {
		ss.reap.Stop()
		ss.reap = nil
	}
}

func (ss *whepSession) onState(st webrtc.PeerConnectionState) {
	ss.log.Debug("transport: peer connection state", "state", st.String())
	switch st {
	case webrtc.PeerConnectionStateConnected:
		ss.disarmReaper()
		ss.connected.Store(true)
		ss.sub.RequestKeyframe() // anything sent before now went nowhere
	case webrtc.PeerConnectionStateDisconnected:
		ss.connected.Store(false)
		ss.armReaper()
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		go ss.close(st.String()) // not from inside pion's callback
	}
}

// writeLoop packetizes the viewer's samples onto its track. RTP timestamps
// follow capture time, so pacing survives dropped frames.
func (ss *whepSession) writeLoop() {
	defer ss.close("feed ended")
	var payloader rtp.Payloader = &codecs.VP8Payloader{EnablePictureID: true}
	if ss.codec == CodecH264 {
		payloader = &codecs.H264Payloader{}
	}
	pk := rtp.NewPacketizer(1200, 0, 0, payloader, rtp.NewRandomSequencer(), 90000)
	var first time.Time
	var base uint32
	// Samples before ICE/DTLS is up are lost, often the join keyframe among them:
	// after connecting, start at a keyframe (asking for one) so the first frame decodes.
	waitKey, asked := true, false
	for smp := range ss.sub.Samples() {
		if !ss.connected.Load() {
			continue
		}
		if waitKey {
			if !smp.Keyframe {
				if !asked {
					ss.sub.RequestKeyframe()
					asked = true
				}
				continue
			}
			waitKey = false
		}
		if first.IsZero() {
			first = smp.Captured
			var rb [4]byte
			_, _ = rand.Read(rb[:])
			base = uint32(rb[0])<<24 | uint32(rb[1])<<16 | uint32(rb[2])<<8 | uint32(rb[3])
		}
		ts := base + uint32(smp.Captured.Sub(first).Seconds()*90000)
		for _, p := range pk.Packetize(smp.Data, 0) {
			p.Timestamp = ts
			if err := ss.track.WriteRTP(p); err != nil {
				if errors.Is(err, io.ErrClosedPipe) {
					return
				}
				ss.log.Debug("transport: write rtp", "err", err)
			}
		}
	}
}

func (ss *whepSession) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				ss.plis.Add(1)
				ss.sub.RequestKeyframe()
			}
		}
	}
}

// close ends the session once: unsubscribe, close the PeerConnection, forget it.
func (ss *whepSession) close(reason string) {
	ss.closeOnce.Do(func() {
		ss.disarmReaper()
		ss.srv.forget(ss)
		if ss.sub != nil {
			ss.sub.Close()
		}
		if err := ss.pc.Close(); err != nil {
			ss.log.Debug("transport: close peer connection", "err", err)
		}
		ss.log.Info("transport: viewer left", "reason", reason, "drops", ss.sub.Drops(), "plis", ss.plis.Load(),
			"duration", time.Since(ss.created).Round(time.Millisecond))
		close(ss.done)
	})
}
