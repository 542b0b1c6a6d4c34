package transport

/*
#cgo pkg-config: vpx
#include <stdlib.h>
#include <string.h>
#include <vpx/vpx_encoder.h>
#include <vpx/vp8cx.h>

typedef struct { const void *buf; size_t sz; int key; } ds_out;

static vpx_codec_err_t ds_init(vpx_codec_ctx_t *c, vpx_codec_enc_cfg_t *cfg) {
	return vpx_codec_enc_init(c, vpx_codec_vp8_cx(), cfg, 0);
}
static vpx_codec_err_t ds_default_cfg(vpx_codec_enc_cfg_t *cfg) {
	return vpx_codec_enc_config_default(vpx_codec_vp8_cx(), cfg, 0);
}
static vpx_codec_err_t ds_ctl(vpx_codec_ctx_t *c, int id, int v) { return vpx_codec_control_(c, id, v); }

static void ds_copy(unsigned char *dst, int dstride, const unsigned char *src, int sstride, int w, int h) {
	for (int y = 0; y < h; y++) memcpy(dst + (size_t)y * dstride, src + (size_t)y * sstride, w);
}

// ds_encode encodes img and returns its frame packet (valid until the next call).
static vpx_codec_err_t ds_encode(vpx_codec_ctx_t *c, vpx_image_t *img, vpx_codec_pts_t pts,
		unsigned long dur, int force, ds_out *out) {
	out->buf = NULL; out->sz = 0; out->key = 0;
	vpx_codec_err_t e = vpx_codec_encode(c, img, pts, dur, force ? VPX_EFLAG_FORCE_KF : 0, VPX_DL_REALTIME);
	if (e != VPX_CODEC_OK) return e;
	vpx_codec_iter_t it = NULL;
	const vpx_codec_cx_pkt_t *p;
	while ((p = vpx_codec_get_cx_data(c, &it)) != NULL) {
		if (p->kind == VPX_CODEC_CX_FRAME_PKT) {
			out->buf = p->data.frame.buf;
			out->sz = p->data.frame.sz;
			out->key = (p->data.frame.flags & VPX_FRAME_IS_KEY) != 0;
		}
	}
	return VPX_CODEC_OK;
}
*/
import "C"

import (
	"fmt"
	"image"
	"runtime"
	"time"
	"unsafe"
)

// vp8Encoder drives libvpx directly rather than through mediadevices' vpx
// wrapper, which cannot set cpu-used: at its default speed 1280x720 took
// ~50 ms a frame here, too slow for 25 fps; with realtime cpu-used -8 it is
// several times faster. Settings follow libwebrtc's VP8 encoder.
type vp8Encoder struct {
	ctx   *C.vpx_codec_ctx_t
	img   *C.vpx_image_t
	w, h  int
	start time.Time
	last  int64 // pts of the previous frame, ms
}

func vpxErr(ctx *C.vpx_codec_ctx_t, what string, e C.vpx_codec_err_t) error {
	msg := C.GoString(C.vpx_codec_err_to_string(e))
	if ctx != nil {
		if d := C.vpx_codec_error_detail(ctx); d != nil {
			msg += ": " + C.GoString(d)
		}
	}
	return fmt.Errorf("libvpx %s: %s", what, msg)
}

func newVP8Encoder(w, h int, o EncoderOptions) (*vp8Encoder, error) {
	var cfg C.vpx_codec_enc_cfg_t
	if e := C.ds_default_cfg(&cfg); e != C.VPX_CODEC_OK {
		return nil, vpxErr(nil, "default config", e)
	}
	threads := min(4, max(1, runtime.NumCPU()/2))
	cfg.g_w, cfg.g_h = C.uint(w), C.uint(h)
	cfg.g_timebase.num, cfg.g_timebase.den = 1, 1000 // pts in ms of wall time
	cfg.g_threads = C.uint(threads)
	cfg.g_lag_in_frames = 0 // no lookahead: each input yields its output now
	cfg.g_error_resilient = C.VPX_ERROR_RESILIENT_DEFAULT
	cfg.g_pass = C.VPX_RC_ONE_PASS
	cfg.rc_end_usage = C.VPX_CBR
	cfg.rc_target_bitrate = C.uint(o.bitrateFor(w, h) / 1000)
	cfg.rc_min_quantizer, cfg.rc_max_quantizer = 2, 56
	cfg.rc_undershoot_pct, cfg.rc_overshoot_pct = 100, 15
	cfg.rc_buf_initial_sz, cfg.rc_buf_optimal_sz, cfg.rc_buf_sz = 500, 600, 1000
	cfg.rc_dropframe_thresh = 0 // one output per input: viewers' pacing relies on it
	cfg.rc_resize_allowed = 0
	cfg.kf_mode = C.VPX_KF_AUTO
	cfg.kf_min_dist = 0
	cfg.kf_max_dist = C.uint(o.KeyframeInterval)

	ctx := (*C.vpx_codec_ctx_t)(C.calloc(1, C.sizeof_vpx_codec_ctx_t))
	if e := C.ds_init(ctx, &cfg); e != C.VPX_CODEC_OK {
		err := vpxErr(ctx, fmt.Sprintf("init %dx%d", w, h), e)
		C.free(unsafe.Pointer(ctx))
		return nil, err
	}
	enc := &vp8Encoder{ctx: ctx, w: w, h: h, start: time.Now(), last: -1}
	speed := o.VP8Speed
	for _, c := range []struct {
		id   C.int
		v    int
		what string
	}{
		{C.VP8E_SET_CPUUSED, -speed, "cpu-used"}, // negative: fixed speed, no auto-selection
		{C.VP8E_SET_NOISE_SENSITIVITY, 0, "noise sensitivity"},
		{C.VP8E_SET_STATIC_THRESHOLD, 1, "static threshold"},
		{C.VP8E_SET_TOKEN_PARTITIONS, map[int]int{1: 0, 2: 1, 3: 1, 4: 2}[threads], "token partitions"},
		{C.VP8E_SET_MAX_INTRA_BITRATE_PCT, 300, "max intra bitrate"}, // keyframes stay a few frames' size
	} {
		if e := C.ds_ctl(ctx, c.id, C.int(c.v)); e != C.VPX_CODEC_OK {
			err := vpxErr(ctx, "set "+c.what, e)
			_ = enc.Close()
			return nil, err
		}
	}
	enc.img = C.vpx_img_alloc(nil, C.VPX_IMG_FMT_I420, C.uint(w), C.uint(h), 16)
	if enc.img == nil {
		_ = enc.Close()
		return nil, fmt.Errorf("libvpx: cannot allocate a %dx%d image", w, h)
	}
	return enc, nil
}

func (e *vp8Encoder) Encode(img *image.YCbCr, forceKey bool) ([]byte, bool, error) {
	if img.Rect.Dx() != e.w || img.Rect.Dy() != e.h || img.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		return nil, false, fmt.Errorf("vp8: picture %v %v, encoder is %dx%d I420", img.Rect, img.SubsampleRatio, e.w, e.h)
	}
	cw, ch := (e.w+1)/2, (e.h+1)/2
	planes := (*[3]*C.uchar)(unsafe.Pointer(&e.img.planes[0]))
	strides := (*[3]C.int)(unsafe.Pointer(&e.img.stride[0]))
	C.ds_copy(planes[0], strides[0], (*C.uchar)(&img.Y[0]), C.int(img.YStride), C.int(e.w), C.int(e.h))
	C.ds_copy(planes[1], strides[1], (*C.uchar)(&img.Cb[0]), C.int(img.CStride), C.int(cw), C.int(ch))
	C.ds_copy(planes[2], strides[2], (*C.uchar)(&img.Cr[0]), C.int(img.CStride), C.int(cw), C.int(ch))

	pts := time.Since(e.start).Milliseconds()
	if pts <= e.last {
		pts = e.last + 1 // libvpx needs strictly increasing pts
	}
	dur := int64(40)
	if e.last >= 0 {
		dur = pts - e.last
	}
	e.last = pts
	force := C.int(0)
	if forceKey {
		force = 1
	}
	var out C.ds_out
	if rc := C.ds_encode(e.ctx, e.img, C.vpx_codec_pts_t(pts), C.ulong(dur), force, &out); rc != C.VPX_CODEC_OK {
		return nil, false, vpxErr(e.ctx, "encode", rc)
	}
	if out.buf == nil || out.sz == 0 {
		return nil, false, nil
	}
	return C.GoBytes(out.buf, C.int(out.sz)), out.key != 0, nil
}

func (e *vp8Encoder) Close() error {
	if e.img != nil {
		C.vpx_img_free(e.img)
		e.img = nil
	}
	if e.ctx != nil {
		rc := C.vpx_codec_destroy(e.ctx)
		C.free(unsafe.Pointer(e.ctx))
		e.ctx = nil
		if rc != C.VPX_CODEC_OK {
			return vpxErr(nil, "destroy", rc)
		}
	}
	return nil
}
