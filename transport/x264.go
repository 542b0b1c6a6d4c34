package transport

/*
#cgo pkg-config: x264
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <x264.h>

typedef struct { x264_t *h; x264_picture_t pic; x264_param_t p; } ds_x264;

// ds_x264_open: realtime settings (preset + zerolatency: no lookahead, no
// B-frames, one output per input: x264's variable-frame-rate mode would hold
// every frame back until the next one arrives) at a frame rate of
// fps10/10, with ABR held by a 1 s VBV.
static int ds_x264_open(ds_x264 *e, const char *preset, int w, int h, int kbps, int keyint, int fps10) {
	x264_param_t *p = &e->p;
	if (x264_param_default_preset(p, preset, "zerolatency") < 0) return -1;
	p->i_csp = X264_CSP_I420;
	p->i_width = w;
	p->i_height = h;
	p->i_fps_num = fps10;
	p->i_fps_den = 10;
	p->i_keyint_max = keyint;
	p->rc.i_rc_method = X264_RC_ABR;
	p->rc.i_bitrate = kbps;
	p->rc.i_vbv_max_bitrate = kbps;
	p->rc.i_vbv_buffer_size = kbps;
	p->b_repeat_headers = 1;
	p->b_annexb = 1;
	p->i_log_level = X264_LOG_WARNING;
	// bgrToI420 writes BT.601 limited range; say so, or players assume BT.709 for HD sizes.
	if (x264_param_parse(p, "colormatrix", "smpte170m") < 0) return -2;
	if (x264_param_apply_profile(p, "high") < 0) return -2;
	if (x264_picture_alloc(&e->pic, X264_CSP_I420, w, h) < 0) return -3;
	e->h = x264_encoder_open(p);
	if (!e->h) {
		x264_picture_clean(&e->pic);
		return -4;
	}
	return 0;
}

// ds_x264_bitrate retargets rate control (x264 applies it from the next frame).
static int ds_x264_bitrate(ds_x264 *e, int kbps) {
	e->p.rc.i_bitrate = kbps;
	e->p.rc.i_vbv_max_bitrate = kbps;
	e->p.rc.i_vbv_buffer_size = kbps;
	return x264_encoder_reconfig(e->h, &e->p);
}

static void ds_x264_copy(uint8_t *dst, int dstride, const uint8_t *src, int sstride, int w, int h) {
	for (int y = 0; y < h; y++) memcpy(dst + (size_t)y * dstride, src + (size_t)y * sstride, w);
}

// ds_x264_encode encodes e->pic at pts; *out (valid until the next call) holds
// the Annex-B access unit, its size is returned (0: nothing, <0: error).
static int ds_x264_encode(ds_x264 *e, int64_t pts, int force, uint8_t **out, int *key) {
	x264_nal_t *nal;
	int n;
	x264_picture_t po;
	e->pic.i_pts = pts; // in frames at the configured rate
	e->pic.i_type = force ? X264_TYPE_IDR : X264_TYPE_AUTO;
	int size = x264_encoder_encode(e->h, &nal, &n, &e->pic, &po);
	*out = NULL;
	*key = 0;
	if (size > 0) {
		*out = nal[0].p_payload; // x264 lays the NALs out back to back
		*key = po.b_keyframe;
	}
	return size;
}

static void ds_x264_close(ds_x264 *e) {
	x264_encoder_close(e->h);
	x264_picture_clean(&e->pic);
}
*/
import "C"

import (
	"fmt"
	"image"
	"log/slog"
	"math"
	"strings"
	"time"
	"unsafe"
)

// x264Encoder drives libx264 directly rather than through mediadevices' x264
// wrapper, which sets no frame rate: x264 then assumes 25 fps, writes a fixed
// 25 fps into the SPS and spends bitrate/25 per frame, so a 15 fps stream
// delivered 1.5 of the configured 2.5 Mbit/s. Here x264 runs at the rate the
// stream keeps: opened at the rate the Broadcaster measured (EncoderOptions.
// FrameRate), it measures the pace of its own input, retargets rate control
// so that the configured bitrate holds, and reopens (a keyframe, a new SPS)
// when the pace stays more than 20% off the declared rate.
type x264Encoder struct {
	e    *C.ds_x264
	w, h int
	o    EncoderOptions
	now  func() time.Time // time.Now; tests step it

	fps    float64   // the rate x264 runs at and the SPS declares
	guess  bool      // fps was not measured: replace it as soon as the pace is known
	kbps   int       // rate control's current target
	pts    int64     // frames since open
	pace   paceMeter // of Encode calls since open
	offFor time.Time // since when the pace has been off fps
}

const (
	x264RateSlack = 0.2             // pace off the declared rate by more than this...
	x264RateHold  = 2 * time.Second // ...for this long reopens the encoder
)

func newX264Encoder(w, h int, o EncoderOptions) (*x264Encoder, error) {
	x := &x264Encoder{w: w, h: h, o: o, now: time.Now, fps: o.FrameRate}
	if x.fps <= 0 {
		x.fps, x.guess = 25, true
	}
	if err := x.open(); err != nil {
		return nil, err
	}
	return x, nil
}

func (x *x264Encoder) open() error {
	x.fps = min(max(x.fps, 1), 120)
	x.kbps = max(1, x.o.bitrateFor(x.w, x.h)/1000)
	e := (*C.ds_x264)(C.calloc(1, C.sizeof_ds_x264))
	preset := C.CString(x264PresetName(x.o.H264Preset))
	defer C.free(unsafe.Pointer(preset))
	if rc := C.ds_x264_open(e, preset, C.int(x.w), C.int(x.h), C.int(x.kbps), C.int(x.o.KeyframeInterval),
		C.int(math.Round(x.fps*10))); rc != 0 {
		C.free(unsafe.Pointer(e))
		what := map[C.int]string{-1: "preset", -2: "parameters", -3: "picture allocation", -4: "encoder open"}[rc]
		return fmt.Errorf("libx264: %s failed for %dx%d", what, x.w, x.h)
	}
	x.e, x.pts, x.pace, x.offFor = e, 0, paceMeter{}, time.Time{}
	return nil
}

// adapt measures the input's pace at t and adapts x264 to it.
func (x *x264Encoder) adapt(t time.Time) error {
	x.pace.add(t)
	rate := x.pace.rate()
	if rate == 0 {
		return nil
	}
	if math.Abs(rate/x.fps-1) > x264RateSlack {
		if x.offFor.IsZero() {
			x.offFor = t
		}
		if x.guess || t.Sub(x.offFor) >= x264RateHold {
			slog.Info("transport: h264 frame rate follows the stream", "from", math.Round(x.fps*10)/10, "to", math.Round(rate*10)/10)
			x.close()
			x.fps, x.guess = rate, false
			return x.open()
		}
	} else {
		x.offFor = time.Time{}
	}
	// Within the slack, bits per frame follow the real pace.
	want := max(1, int(math.Round(float64(x.o.bitrateFor(x.w, x.h))/1000*x.fps/rate)))
	if math.Abs(float64(want-x.kbps)) > 0.03*float64(x.kbps) {
		if C.ds_x264_bitrate(x.e, C.int(want)) == 0 {
			x.kbps = want
		}
	}
	return nil
}

func (x *x264Encoder) Encode(img *image.YCbCr, forceKey bool) ([]byte, bool, error) {
	if img.Rect.Dx() != x.w || img.Rect.Dy() != x.h || img.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		return nil, false, fmt.Errorf("h264: picture %v %v, encoder is %dx%d I420", img.Rect, img.SubsampleRatio, x.w, x.h)
	}
	if x.e == nil {
		return nil, false, fmt.Errorf("h264: encoder closed")
	}
	if err := x.adapt(x.now()); err != nil {
		return nil, false, err
	}
	pic := &x.e.pic.img
	planes := (*[4]*C.uint8_t)(unsafe.Pointer(&pic.plane[0]))
	strides := (*[4]C.int)(unsafe.Pointer(&pic.i_stride[0]))
	cw, ch := (x.w+1)/2, (x.h+1)/2
	C.ds_x264_copy(planes[0], strides[0], (*C.uint8_t)(&img.Y[0]), C.int(img.YStride), C.int(x.w), C.int(x.h))
	C.ds_x264_copy(planes[1], strides[1], (*C.uint8_t)(&img.Cb[0]), C.int(img.CStride), C.int(cw), C.int(ch))
	C.ds_x264_copy(planes[2], strides[2], (*C.uint8_t)(&img.Cr[0]), C.int(img.CStride), C.int(cw), C.int(ch))

	force := C.int(0)
	if forceKey {
		force = 1
	}
	var out *C.uint8_t
	var key C.int
	n := C.ds_x264_encode(x.e, C.int64_t(x.pts), force, &out, &key)
	x.pts++
	if n < 0 {
		return nil, false, fmt.Errorf("libx264: encode failed (%d)", int(n))
	}
	if n == 0 {
		return nil, false, nil
	}
	return C.GoBytes(unsafe.Pointer(out), n), key != 0, nil
}

func (x *x264Encoder) close() {
	if x.e != nil {
		C.ds_x264_close(x.e)
		C.free(unsafe.Pointer(x.e))
		x.e = nil
	}
}

func (x *x264Encoder) Close() error {
	x.close()
	return nil
}

var x264Presets = []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"}

// x264PresetName returns the x264 preset called name (case-insensitive), ultrafast if unknown.
func x264PresetName(name string) string {
	for _, n := range x264Presets {
		if strings.EqualFold(n, name) {
			return n
		}
	}
	return "ultrafast"
}

// paceMeter is the rate of recent events: the last 16 over the time they span.
type paceMeter struct {
	t    [16]time.Time
	n, i int
}

func (p *paceMeter) add(t time.Time) {
	p.t[p.i] = t
	p.i = (p.i + 1) % len(p.t)
	p.n = min(p.n+1, len(p.t))
}

// rate is events per second, 0 until 8 events were seen.
func (p *paceMeter) rate() float64 {
	if p.n < 8 {
		return 0
	}
	newest := p.t[(p.i+len(p.t)-1)%len(p.t)]
	oldest := p.t[(p.i+len(p.t)-p.n)%len(p.t)]
	if !newest.After(oldest) {
		return 0
	}
	return float64(p.n-1) / newest.Sub(oldest).Seconds()
}
