package stream

import (
	"fmt"
	"image"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/danstream/danstream/frame"
)

// placeholder returns last dimmed to a third with a banner saying the source is
// reconnecting and for how long, so viewers see why the picture froze and keep
// receiving frames (their decoders and connections stay up).
func placeholder(last frame.Frame, down time.Duration, now time.Time) frame.Frame {
	out := frame.Frame{Pix: make([]byte, len(last.Pix)), W: last.W, H: last.H, Seq: last.Seq, Captured: now}
	for i, v := range last.Pix {
		out.Pix[i] = v / 3
	}
	text := fmt.Sprintf("RECONNECTING  %ds", int(down.Seconds()))
	drawBanner(out, text)
	return out
}

// drawBanner writes text in white on a dark band across the middle of f,
// scaled up from the 7x13 bitmap font to about a third of the width.
func drawBanner(f frame.Frame, text string) {
	face := basicfont.Face7x13
	tw := font.MeasureString(face, text).Ceil()
	th := 13
	mask := image.NewAlpha(image.Rect(0, 0, tw, th))
	d := font.Drawer{Dst: mask, Src: image.Opaque, Face: face, Dot: fixed.P(0, 10)}
	d.DrawString(text)
	k := max(1, f.W/(3*tw))
	if th*k > f.H/3 {
		k = max(1, f.H/(3*th))
	}
	bw, bh := tw*k, th*k
	x0, y0 := (f.W-bw)/2, (f.H-bh)/2
	pad := k * 3
	for y := max(0, y0-pad); y < min(f.H, y0+bh+pad); y++ {
		for x := 0; x < f.W; x++ {
			p := (y*f.W + x) * 3
			f.Pix[p], f.Pix[p+1], f.Pix[p+2] = f.Pix[p]/3, f.Pix[p+1]/3, f.Pix[p+2]/3
		}
	}
	for y := 0; y < bh; y++ {
		fy := y0 + y
		if fy < 0 || fy >= f.H {
			continue
		}
		for x := 0; x < bw; x++ {
			fx := x0 + x
			if fx < 0 || fx >= f.W || mask.AlphaAt(x/k, y/k).A < 128 {
				continue
			}
			p := (fy*f.W + fx) * 3
			f.Pix[p], f.Pix[p+1], f.Pix[p+2] = 255, 255, 255
		}
	}
}
