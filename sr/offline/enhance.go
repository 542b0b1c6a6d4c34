package offline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/danstream/danstream/sr"
)

// EnhanceOptions says how Enhance runs.
type EnhanceOptions struct {
	Engine  Engine
	NoCache bool      // video: run every tile of every frame (no temporal tile cache)
	Bicubic bool      // bicubic interpolation instead of the model (for comparison)
	CRF     int       // video: x264 quality (lower is better)
	Log     io.Writer // progress and the summary line; nil: none
}

// Enhance super-resolves the image or video in into out (both images or both videos).
func Enhance(ctx context.Context, in, out string, o EnhanceOptions) error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if _, err := os.Stat(in); err != nil {
		return fmt.Errorf("input %s: %w", in, err)
	}
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return fmt.Errorf("output %s: folder %s does not exist", out, filepath.Dir(out))
	}
	still := IsImage(in)
	if still != IsImage(out) {
		return fmt.Errorf("%w: %s and %s must both be images or both videos", ErrUsage, in, out)
	}
	var up sr.Upscaler
	if o.Bicubic {
		s := o.Engine.Scale
		if s == 0 {
			s = 4
		}
		up = sr.NewBicubic(s)
	} else {
		u, err := o.Engine.Load(!still && !o.NoCache)
		if err != nil {
			return err
		}
		up = u
	}
	defer up.Close()
	if still {
		f, err := ReadImage(in)
		if err != nil {
			return err
		}
		t0 := time.Now()
		img, err := up.Upscale(ctx, f)
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		if err := WriteImage(out, img); err != nil {
			return err
		}
		fmt.Fprintf(o.Log, "%s: %dx%d -> %s %dx%d with %s in %s\n", in, f.W, f.H, out, img.W, img.H, up.Name(), time.Since(t0).Round(time.Millisecond))
		return nil
	}
	return EnhanceVideo(ctx, up, in, out, o.CRF, o.Log)
}

// EnhanceVideo runs every frame of the video in through up into out (x264 at crf).
func EnhanceVideo(ctx context.Context, up sr.Upscaler, in, out string, crf int, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	vr, err := OpenVideo(ctx, in)
	if err != nil {
		return err
	}
	defer vr.Close()
	vr.Log = log
	s := up.Scale()
	vw, err := CreateVideo(ctx, out, vr.W*s, vr.H*s, vr.FPS, crf)
	if err != nil {
		return err
	}
	bar := newProgress(log, vr.Frames)
	n := 0
	for {
		f, err := vr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			vw.Abort()
			return err
		}
		o, err := up.Upscale(ctx, f)
		if err != nil {
			vw.Abort()
			return fmt.Errorf("%s frame %d: %w", in, n, err)
		}
		if err := vw.Write(o); err != nil {
			vw.Abort()
			return err
		}
		n++
		bar.update(n)
	}
	if err := vw.Close(); err != nil {
		return err
	}
	bar.done(n)
	msg := fmt.Sprintf("%s: %d frames %dx%d -> %s %dx%d with %s", in, n, vr.W, vr.H, out, vr.W*s, vr.H*s, up.Name())
	if ms, ok := up.(sr.MetricsSource); ok {
		m := ms.Metrics()
		msg += fmt.Sprintf("; %.1f tiles inferred/frame, cache hit rate %.0f%%", m.TilesInferredPerFrame(), 100*m.HitRate())
	}
	fmt.Fprintln(log, msg)
	return nil
}
