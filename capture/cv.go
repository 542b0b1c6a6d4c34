package capture

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include <stdlib.h>
#include "cvcap.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"time"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/danstream/danstream/frame"
)

// cvTarget says what to (re)open.
type cvTarget struct {
	kind   string // "rtsp", "file", "webcam"
	shown  string // for errors and Info: redacted URL or the path as given
	path   string // URL or file path handed to FFmpeg
	device int    // webcam index
	live   bool   // reconnect on failure instead of ending
}

type cvCap struct{ p C.DanCap }

func (c *cvCap) read(m *gocv.Mat) bool {
	return C.dan_cap_read(c.p, unsafe.Pointer(m.Ptr())) != 0
}
func (c *cvCap) get(p gocv.VideoCaptureProperties) float64 {
	return float64(C.dan_cap_get(c.p, C.int(p)))
}
func (c *cvCap) close() {
	if c != nil && c.p != nil {
		C.dan_cap_close(c.p)
		c.p = nil
	}
}

var errOpenFailed = errors.New("could not open")

// openOnce opens t, giving up after timeout even if OpenCV does not honour its
// own limit (webcams take no timeout); a late success is closed, not leaked.
func (t cvTarget) openOnce(ctx context.Context, timeout time.Duration) (*cvCap, error) {
	type result struct{ c *cvCap }
	ch := make(chan result, 1)
	go func() {
		var p C.DanCap
		if t.kind == "webcam" {
			p = C.dan_cap_open_device(C.int(t.device))
		} else {
			cs := C.CString(t.path)
			ms := C.int(timeout.Milliseconds())
			p = C.dan_cap_open_url(cs, ms, ms)
			C.free(unsafe.Pointer(cs))
		}
		if p == nil {
			ch <- result{}
			return
		}
		ch <- result{&cvCap{p: p}}
	}()
	// OpenCV's own timeout fires first; the guard only catches backends without one.
	guard := time.NewTimer(timeout + 2*time.Second)
	defer guard.Stop()
	abandon := func() { go func() { (<-ch).c.close() }() }
	select {
	case r := <-ch:
		if r.c == nil {
			return nil, errOpenFailed
		}
		return r.c, nil
	case <-guard.C:
		abandon()
		return nil, fmt.Errorf("no answer within %v", timeout)
	case <-ctx.Done():
		abandon()
		return nil, ctx.Err()
	}
}

func openFile(ctx context.Context, path, shown string, opts Options) (Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("capture: open file %q: %w", shown, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("capture: open file %q: is a directory", shown)
	}
	return openCV(ctx, cvTarget{kind: "file", shown: shown, path: path}, opts)
}

func openCV(ctx context.Context, t cvTarget, opts Options) (Source, error) {
	timeout := opts.openTimeout()
	c, err := t.openOnce(ctx, timeout)
	if err != nil {
		switch {
		case errors.Is(err, errOpenFailed) && t.kind == "file":
			return nil, fmt.Errorf("capture: open file %q: OpenCV/FFmpeg cannot decode it (unsupported or corrupt video)", t.shown)
		case errors.Is(err, errOpenFailed) && t.kind == "rtsp":
			return nil, fmt.Errorf("capture: open %s: camera unreachable, refused, not found or silent within %v", t.shown, timeout)
		case errors.Is(err, errOpenFailed):
			return nil, fmt.Errorf("capture: open %s: no such camera or it is busy", t.shown)
		}
		return nil, fmt.Errorf("capture: open %s: %w", t.shown, err)
	}
	w, h := int(c.get(gocv.VideoCaptureFrameWidth)), int(c.get(gocv.VideoCaptureFrameHeight))
	fps := c.get(gocv.VideoCaptureFPS)
	if fps < 0 || fps > 1000 || fps != fps {
		fps = 0 // containers and cameras report nonsense (90000, NaN) surprisingly often
	}
	if opts.Width > 0 {
		w, h = opts.Width, opts.Height
	}
	l := &loop{info: Info{URL: t.shown, Kind: t.kind, Width: w, Height: h, FPS: fps}}
	r := &cvRunner{t: t, opts: opts, box: nil, fps: fps, timeout: timeout}
	l.start(func(ctx context.Context) error {
		r.box = l.box
		return r.run(ctx, c)
	})
	return l, nil
}

type cvRunner struct {
	t       cvTarget
	opts    Options
	box     *mailbox
	fps     float64
	timeout time.Duration
}

// run reads until ctx ends (nil), a file ends (io.EOF), or a file fails.
func (r *cvRunner) run(ctx context.Context, c *cvCap) error {
	log := r.opts.logger().With("source", r.t.shown)
	defer func() { c.close() }()
	mat, conv, sized := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer mat.Close()
	defer conv.Close()
	defer sized.Close()

	var (
		seq       uint64
		reset     = true
		passStart = time.Now() // real-time file pacing restarts with every pass
		passN     = 0
		lastPub   time.Time
		minGap    time.Duration
	)
	if r.opts.FPS > 0 {
		// 2% slack so a camera at exactly the cap is not halved by jitter.
		minGap = time.Duration(float64(time.Second) / r.opts.FPS * 0.98)
	}
	for ctx.Err() == nil {
		if !c.read(&mat) || mat.Empty() {
			if !r.t.live {
				if !r.opts.Loop {
					return fmt.Errorf("capture: %s: %w", r.t.shown, io.EOF)
				}
				if passN == 0 {
					return fmt.Errorf("capture: open file %q: no decodable frames", r.t.shown)
				}
				c.close()
				nc, err := r.t.openOnce(ctx, r.timeout)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("capture: reopen file %q to loop: %w", r.t.shown, err)
				}
				c, reset, passStart, passN = nc, true, time.Now(), 0
				continue
			}
			r.box.note(func(s *Stats) { s.LastError = "read failed: stream ended or timed out" })
			log.Warn("capture: read failed, reconnecting")
			c.close()
			if c = r.reconnect(ctx, log); c == nil {
				return nil // closed while reconnecting
			}
			reset = true
			continue
		}
		if !r.t.live && !r.opts.AsFastAsPossible && r.fps > 0 {
			due := passStart.Add(time.Duration(float64(passN) / r.fps * float64(time.Second)))
			if !sleepUntil(ctx, due) {
				return nil
			}
		}
		passN++
		now := time.Now()
		if minGap > 0 && !lastPub.IsZero() && now.Sub(lastPub) < minGap && !reset {
			continue // over the FPS cap: skip at the source rather than queue
		}
		f, err := r.toFrame(&mat, &conv, &sized)
		if err != nil {
			return fmt.Errorf("capture: %s: %w", r.t.shown, err)
		}
		seq++
		f.Seq, f.Captured, f.Reset = seq, now, reset
		reset, lastPub = false, now
		r.box.put(f)
	}
	return nil
}

// reconnect retries opening a live source with capped backoff until ctx ends.
func (r *cvRunner) reconnect(ctx context.Context, log interface {
	Warn(string, ...any)
	Info(string, ...any)
}) *cvCap {
	backoff := 250 * time.Millisecond
	for {
		if !sleepUntil(ctx, time.Now().Add(backoff)) {
			return nil
		}
		c, err := r.t.openOnce(ctx, r.timeout)
		if err == nil {
			r.box.note(func(s *Stats) { s.Reconnects++ })
			log.Info("capture: reconnected")
			return c
		}
		if ctx.Err() != nil {
			return nil
		}
		r.box.note(func(s *Stats) { s.LastError = "reconnect failed: " + err.Error() })
		backoff = min(backoff*2, 5*time.Second)
	}
}

// toFrame converts the decoded Mat to a packed BGR frame.Frame, resizing when
// asked; the bytes are copied once into Go memory and the Mats are reused.
func (r *cvRunner) toFrame(mat, conv, sized *gocv.Mat) (frame.Frame, error) {
	src := mat
	switch mat.Channels() {
	case 3:
	case 1:
		gocv.CvtColor(*mat, conv, gocv.ColorGrayToBGR)
		src = conv
	case 4:
		gocv.CvtColor(*mat, conv, gocv.ColorBGRAToBGR)
		src = conv
	default:
		return frame.Frame{}, fmt.Errorf("unsupported frame with %d channels", mat.Channels())
	}
	if src.Type() != gocv.MatTypeCV8UC3 {
		return frame.Frame{}, fmt.Errorf("unsupported pixel type %v", src.Type())
	}
	if w, h := r.opts.Width, r.opts.Height; w > 0 && (w != src.Cols() || h != src.Rows()) {
		interp := gocv.InterpolationLinear
		if w < src.Cols() && h < src.Rows() {
			interp = gocv.InterpolationArea // avoids aliasing when shrinking
		}
		gocv.Resize(*src, sized, image.Pt(w, h), 0, 0, interp)
		src = sized
	}
	if !src.IsContinuous() {
		return frame.Frame{}, errors.New("non-continuous frame buffer")
	}
	f := frame.Frame{Pix: src.ToBytes(), W: src.Cols(), H: src.Rows()}
	return f, f.Validate()
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}
