package transport

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// Codec names accepted by Subscribe (case-insensitive; "video/VP8" works too).
const (
	CodecVP8  = "VP8"
	CodecH264 = "H264"
)

// SupportedCodecs lists the video codecs this build can encode, in the
// server's order of preference.
func SupportedCodecs() []string { return []string{CodecVP8, CodecH264} }

// normalizeCodec maps "vp8", "video/VP8", "H.264" ... to a Codec* constant.
func normalizeCodec(c string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(c))
	u = strings.TrimPrefix(u, "VIDEO/")
	u = strings.ReplaceAll(u, ".", "")
	switch u {
	case CodecVP8:
		return CodecVP8, nil
	case CodecH264, "AVC":
		return CodecH264, nil
	}
	return "", fmt.Errorf("transport: unsupported codec %q (supported: %s): %w",
		c, strings.Join(SupportedCodecs(), ", "), ErrUnsupportedCodec)
}

// ErrUnsupportedCodec is wrapped by errors about codecs this build cannot encode.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// EncoderOptions tune the per-codec encoders of a Broadcaster. Zero values pick defaults.
type EncoderOptions struct {
	// BitrateKbps is the target bitrate. 0: about 0.1 bit per pixel at 25 fps
	// (e.g. ~2300 kbps for 1280x720), at least 300 kbps.
	BitrateKbps int
	// KeyframeInterval is the longest run of frames between keyframes (default 50,
	// 2 s at 25 fps): bounds how long a viewer that lost a packet waits.
	KeyframeInterval int
	// MinKeyframeGap rate-limits forced keyframes (PLI, new viewers) so a
	// storm of requests cannot turn the stream into all-intra (default 250 ms).
	MinKeyframeGap time.Duration
	// QueueLen is each viewer's queue of encoded samples (default 8). A viewer
	// that falls further behind loses its queue (counted as drops) and resumes
	// at the next keyframe.
	QueueLen int
	// FrameRate is the rate the H.264 encoder starts at (its SPS declares it);
	// it then follows the pace of its input. 0: the Broadcaster's measure of
	// the frames it was given, else 25 until measured.
	FrameRate float64
	// H264Preset is the x264 preset name (default "ultrafast").
	H264Preset string
	// VP8Speed is libvpx's realtime speed, 1 (best quality) to 16 (fastest);
	// default 8, sent as cpu-used -8 (a fixed speed, no auto-selection).
	VP8Speed int
}

func (o EncoderOptions) withDefaults() EncoderOptions {
	if o.KeyframeInterval <= 0 {
		o.KeyframeInterval = 50
	}
	if o.MinKeyframeGap <= 0 {
		o.MinKeyframeGap = 250 * time.Millisecond
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 8
	}
	if o.VP8Speed <= 0 || o.VP8Speed > 16 {
		o.VP8Speed = 8
	}
	if o.H264Preset == "" {
		o.H264Preset = "ultrafast"
	}
	return o
}

func (o EncoderOptions) bitrateFor(w, h int) int {
	if o.BitrateKbps > 0 {
		return o.BitrateKbps * 1000
	}
	bps := int(float64(w*h) * 25 * 0.1)
	return max(bps, 300_000)
}

// videoEncoder encodes one I420 picture at a time, synchronously.
type videoEncoder interface {
	// Encode returns the compressed frame (nil when the encoder emitted nothing)
	// and whether it is a keyframe. forceKey asks for an intra frame.
	Encode(img *image.YCbCr, forceKey bool) (data []byte, key bool, err error)
	Close() error
}

// newEncoder builds the encoder for codec c at w x h.
func newEncoder(c string, w, h int, o EncoderOptions) (videoEncoder, error) {
	switch c {
	case CodecVP8:
		e, err := newVP8Encoder(w, h, o)
		if err != nil {
			return nil, fmt.Errorf("transport: vp8 encoder %dx%d: %w", w, h, err)
		}
		return e, nil
	case CodecH264:
		// 4:2:0 H.264 needs an even size; an odd one (x3 of an odd input)
		// loses its last column or row rather than the viewer.
		ew, eh := w&^1, h&^1
		if ew < 2 || eh < 2 {
			return nil, fmt.Errorf("transport: h264 needs at least 2x2 pixels, got %dx%d", w, h)
		}
		e, err := newX264Encoder(ew, eh, o)
		if err != nil {
			return nil, fmt.Errorf("transport: h264 encoder %dx%d: %w", ew, eh, err)
		}
		if ew != w || eh != h {
			return evenCrop{e, image.Rect(0, 0, ew, eh)}, nil
		}
		return e, nil
	}
	return nil, fmt.Errorf("transport: no encoder for %q: %w", c, ErrUnsupportedCodec)
}

// evenCrop encodes the top-left even-sized part of odd-sized pictures.
type evenCrop struct {
	videoEncoder
	r image.Rectangle
}

func (c evenCrop) Encode(img *image.YCbCr, forceKey bool) ([]byte, bool, error) {
	return c.videoEncoder.Encode(img.SubImage(c.r).(*image.YCbCr), forceKey)
}

// vp8IsKey reads the VP8 frame tag: bit 0 of the first byte is 0 for a key frame (RFC 6386 §9.1).
func vp8IsKey(b []byte) bool { return len(b) > 0 && b[0]&1 == 0 }

// h264IsKey reports whether an Annex-B access unit holds an IDR slice.
func h264IsKey(b []byte) bool {
	for len(b) > 0 {
		i := bytes.Index(b, []byte{0, 0, 1})
		if i < 0 || i+3 >= len(b) {
			return false
		}
		b = b[i+3:]
		if b[0]&0x1f == 5 {
			return true
		}
	}
	return false
}

// codecCapability is what a WebRTC track of codec c announces.
func codecCapability(c string) webrtc.RTPCodecCapability {
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	if c == CodecH264 {
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb}
	}
	return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}
}

// bgrToI420 converts a packed BGR24 picture into dst (BT.601 limited range,
// chroma averaged over each 2x2 block), reallocating dst when the size changed.
// It walks row pairs so each pixel is loaded once for luma and chroma.
func bgrToI420(dst *image.YCbCr, pix []byte, w, h int) *image.YCbCr {
	if dst == nil || dst.Rect.Dx() != w || dst.Rect.Dy() != h {
		dst = image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	}
	stride := w * 3
	cw := (w + 1) / 2
	for y0 := 0; y0 < h; y0 += 2 {
		y1 := min(y0+1, h-1) // odd height: the last row pairs with itself
		r0 := pix[y0*stride : y0*stride+stride]
		r1 := pix[y1*stride : y1*stride+stride]
		l0 := dst.Y[y0*dst.YStride : y0*dst.YStride+w]
		l1 := dst.Y[y1*dst.YStride : y1*dst.YStride+w]
		cy := y0 / 2
		cb := dst.Cb[cy*dst.CStride : cy*dst.CStride+cw]
		cr := dst.Cr[cy*dst.CStride : cy*dst.CStride+cw]
		for cx := 0; cx < cw; cx++ {
			x0 := 2 * cx
			x1 := min(x0+1, w-1) // odd width: the last column pairs with itself
			p00, p01 := r0[3*x0:3*x0+3], r0[3*x1:3*x1+3]
			p10, p11 := r1[3*x0:3*x0+3], r1[3*x1:3*x1+3]
			b00, g00, q00 := int32(p00[0]), int32(p00[1]), int32(p00[2])
			b01, g01, q01 := int32(p01[0]), int32(p01[1]), int32(p01[2])
			b10, g10, q10 := int32(p10[0]), int32(p10[1]), int32(p10[2])
			b11, g11, q11 := int32(p11[0]), int32(p11[1]), int32(p11[2])
			l0[x0] = uint8((66*q00+129*g00+25*b00+128)>>8 + 16)
			l0[x1] = uint8((66*q01+129*g01+25*b01+128)>>8 + 16)
			l1[x0] = uint8((66*q10+129*g10+25*b10+128)>>8 + 16)
			l1[x1] = uint8((66*q11+129*g11+25*b11+128)>>8 + 16)
			b := b00 + b01 + b10 + b11
			g := g00 + g01 + g10 + g11
			r := q00 + q01 + q10 + q11
			// Sums of 4 pixels: shift 2 more bits than the per-pixel formula.
			cb[cx] = uint8((-38*r-74*g+112*b+512)>>10 + 128)
			cr[cx] = uint8((112*r-94*g-18*b+512)>>10 + 128)
		}
	}
	return dst
}
