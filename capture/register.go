package capture

import (
	"fmt"
	"math"

	"gocv.io/x/gocv"

	"github.com/danstream/danstream/frame"
)

// PhaseShift measures the translation between two same-sized frames by phase
// correlation (OpenCV phaseCorrelate on luma, Hann-windowed so the frame
// borders do not dominate): (dx, dy) is how far b's content sits from a's, in
// pixels with sub-pixel precision, and response (0..1) is the height of the
// correlation peak — near 1 for the same picture, low when the two do not
// show the same scene.
func PhaseShift(a, b frame.Frame) (dx, dy, response float64, err error) {
	if err := a.Validate(); err != nil {
		return 0, 0, 0, fmt.Errorf("capture: phase shift: first frame: %w", err)
	}
	if err := b.Validate(); err != nil {
		return 0, 0, 0, fmt.Errorf("capture: phase shift: second frame: %w", err)
	}
	if a.W != b.W || a.H != b.H {
		return 0, 0, 0, fmt.Errorf("capture: phase shift: sizes differ (%dx%d and %dx%d)", a.W, a.H, b.W, b.H)
	}
	if a.W < 8 || a.H < 8 {
		return 0, 0, 0, fmt.Errorf("capture: phase shift: %dx%d is too small", a.W, a.H)
	}
	ga, err := grayFloat(a)
	if err != nil {
		return 0, 0, 0, err
	}
	defer ga.Close()
	gb, err := grayFloat(b)
	if err != nil {
		return 0, 0, 0, err
	}
	defer gb.Close()
	win, err := hann(a.W, a.H)
	if err != nil {
		return 0, 0, 0, err
	}
	defer win.Close()
	p, resp := gocv.PhaseCorrelate(ga, gb, win)
	return float64(p.X), float64(p.Y), resp, nil
}

// grayFloat copies f into C memory and returns its luma as CV_32F.
func grayFloat(f frame.Frame) (gocv.Mat, error) {
	bgr := gocv.NewMatWithSize(f.H, f.W, gocv.MatTypeCV8UC3)
	defer bgr.Close()
	data, err := bgr.DataPtrUint8()
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("capture: phase shift: %w", err)
	}
	copy(data, f.Pix)
	gray := gocv.NewMat()
	defer gray.Close()
	gocv.CvtColor(bgr, &gray, gocv.ColorBGRToGray)
	out := gocv.NewMat()
	gray.ConvertTo(&out, gocv.MatTypeCV32F)
	return out, nil
}

// hann is the 2-D Hann window OpenCV's createHanningWindow makes (not bound by GoCV 0.31).
func hann(w, h int) (gocv.Mat, error) {
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV32F)
	d, err := m.DataPtrFloat32()
	if err != nil {
		m.Close()
		return gocv.Mat{}, fmt.Errorf("capture: phase shift: %w", err)
	}
	wx := make([]float64, w)
	for x := range wx {
		wx[x] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(x)/float64(w-1))
	}
	for y := 0; y < h; y++ {
		wy := 0.5 - 0.5*math.Cos(2*math.Pi*float64(y)/float64(h-1))
		for x := 0; x < w; x++ {
			d[y*w+x] = float32(wx[x] * wy)
		}
	}
	return m, nil
}
