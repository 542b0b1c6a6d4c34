package capture

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"

	"github.com/danstream/danstream/frame"
)

// Interp selects the resampling filter for Resize.
type Interp int

const (
	InterpNearest Interp = iota
	InterpLinear
	InterpCubic // the classic bicubic baseline for super-resolution comparisons
	InterpArea  // best for shrinking
	InterpLanczos
)

var interpFlags = map[Interp]gocv.InterpolationFlags{
	InterpNearest: gocv.InterpolationNearestNeighbor,
	InterpLinear:  gocv.InterpolationLinear,
	InterpCubic:   gocv.InterpolationCubic,
	InterpArea:    gocv.InterpolationArea,
	InterpLanczos: gocv.InterpolationLanczos4,
}

// Resize returns f scaled to w x h with OpenCV, so packages outside capture
// need no cgo. The result keeps f's Seq, Captured and Reset; f is unchanged.
func Resize(f frame.Frame, w, h int, interp Interp) (frame.Frame, error) {
	if err := f.Validate(); err != nil {
		return frame.Frame{}, fmt.Errorf("capture: resize: %w", err)
	}
	if w <= 0 || h <= 0 || w > maxDim || h > maxDim {
		return frame.Frame{}, fmt.Errorf("capture: resize: invalid target size %dx%d", w, h)
	}
	flag, ok := interpFlags[interp]
	if !ok {
		return frame.Frame{}, fmt.Errorf("capture: resize: unknown interpolation %d", interp)
	}
	src := gocv.NewMatWithSize(f.H, f.W, gocv.MatTypeCV8UC3)
	defer src.Close()
	// Copy into C memory: a Mat must not point at Go memory (cgo pointer rules).
	data, err := src.DataPtrUint8()
	if err != nil {
		return frame.Frame{}, fmt.Errorf("capture: resize: %w", err)
	}
	copy(data, f.Pix)
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.Resize(src, &dst, image.Pt(w, h), 0, 0, flag)
	out := f
	out.Pix, out.W, out.H = dst.ToBytes(), w, h
	return out, nil
}
