package sr

import (
	"fmt"
	"math"
)

// LumaY converts a packed BGR image to the BT.601 Y channel (16..235 range, as
// MATLAB's rgb2ycbcr, which the super-resolution literature reports on),
// cropping border pixels on each side.
func LumaY(pix []byte, w, h, border int) ([]float64, int, int) {
	cw, ch := w-2*border, h-2*border
	if cw <= 0 || ch <= 0 {
		return nil, 0, 0
	}
	y := make([]float64, cw*ch)
	for r := 0; r < ch; r++ {
		row := pix[((r+border)*w+border)*3:]
		for c := 0; c < cw; c++ {
			b, g, rr := float64(row[c*3]), float64(row[c*3+1]), float64(row[c*3+2])
			y[r*cw+c] = 16 + (65.481*rr+128.553*g+24.966*b)/255
		}
	}
	return y, cw, ch
}

// BlockRMSEY appends to dst the luma (BT.601 Y, as LumaY) RMSE of a against
// ref over every whole block x block square, row by row, `border` pixels
// cropped: local errors (a trail behind a moving object) that a frame's mean
// hides.
func BlockRMSEY(dst []float64, a, ref []byte, w, h, border, block int) ([]float64, error) {
	ya, yr, err := lumaPair(a, ref, w, h, border)
	if err != nil {
		return dst, err
	}
	cw, ch := w-2*border, h-2*border
	for by := 0; by+block <= ch; by += block {
		for bx := 0; bx+block <= cw; bx += block {
			var se float64
			for y := by; y < by+block; y++ {
				for x := bx; x < bx+block; x++ {
					d := ya[y*cw+x] - yr[y*cw+x]
					se += d * d
				}
			}
			dst = append(dst, math.Sqrt(se/float64(block*block)))
		}
	}
	return dst, nil
}

// PSNRY is the PSNR (dB) of the Y channels of two same-size BGR images with
// `border` pixels cropped at each edge. Identical images give +Inf.
func PSNRY(a, b []byte, w, h, border int) (float64, error) {
	ya, yb, err := lumaPair(a, b, w, h, border)
	if err != nil {
		return 0, err
	}
	var se float64
	for i := range ya {
		d := ya[i] - yb[i]
		se += d * d
	}
	return psnr(se / float64(len(ya))), nil
}

// PSNR is the PSNR (dB) over all bytes of two same-size images (all channels).
func PSNR(a, b []byte) float64 {
	var se float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		se += d * d
	}
	return psnr(se / float64(len(a)))
}

func psnr(mse float64) float64 {
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

// SSIMY is the mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5,
// valid region only) of the Y channels, `border` pixels cropped.
func SSIMY(a, b []byte, w, h, border int) (float64, error) {
	ya, yb, err := lumaPair(a, b, w, h, border)
	if err != nil {
		return 0, err
	}
	cw, ch := w-2*border, h-2*border
	const win = 11
	if cw < win || ch < win {
		return 0, fmt.Errorf("image %dx%d too small for SSIM after a %d-pixel border crop", w, h, border)
	}
	k := gaussian(win, 1.5)
	sq := func(x, y []float64) []float64 {
		o := make([]float64, len(x))
		for i := range x {
			o[i] = x[i] * y[i]
		}
		return o
	}
	mua, ow, oh := filterValid(ya, cw, ch, k)
	mub, _, _ := filterValid(yb, cw, ch, k)
	saa, _, _ := filterValid(sq(ya, ya), cw, ch, k)
	sbb, _, _ := filterValid(sq(yb, yb), cw, ch, k)
	sab, _, _ := filterValid(sq(ya, yb), cw, ch, k)
	c1, c2 := math.Pow(0.01*255, 2), math.Pow(0.03*255, 2)
	var sum float64
	for i := 0; i < ow*oh; i++ {
		ma, mb := mua[i], mub[i]
		va, vb, cov := saa[i]-ma*ma, sbb[i]-mb*mb, sab[i]-ma*mb
		sum += ((2*ma*mb + c1) * (2*cov + c2)) / ((ma*ma + mb*mb + c1) * (va + vb + c2))
	}
	return sum / float64(ow*oh), nil
}

func lumaPair(a, b []byte, w, h, border int) ([]float64, []float64, error) {
	if len(a) != w*h*3 || len(b) != w*h*3 {
		return nil, nil, fmt.Errorf("images differ from %dx%d (%d and %d bytes)", w, h, len(a), len(b))
	}
	ya, cw, ch := LumaY(a, w, h, border)
	yb, _, _ := LumaY(b, w, h, border)
	if cw == 0 || ch == 0 {
		return nil, nil, fmt.Errorf("image %dx%d smaller than twice the %d-pixel border", w, h, border)
	}
	return ya, yb, nil
}

func gaussian(n int, sigma float64) []float64 {
	k := make([]float64, n)
	var s float64
	for i := range k {
		x := float64(i - n/2)
		k[i] = math.Exp(-x * x / (2 * sigma * sigma))
		s += k[i]
	}
	for i := range k {
		k[i] /= s
	}
	return k
}

// filterValid convolves with the separable kernel k, keeping only positions
// where the window fits inside the image.
func filterValid(img []float64, w, h int, k []float64) ([]float64, int, int) {
	n := len(k)
	ow, oh := w-n+1, h-n+1
	tmp := make([]float64, h*ow)
	for y := 0; y < h; y++ {
		for x := 0; x < ow; x++ {
			var s float64
			for i, kv := range k {
				s += img[y*w+x+i] * kv
			}
			tmp[y*ow+x] = s
		}
	}
	out := make([]float64, oh*ow)
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			var s float64
			for i, kv := range k {
				s += tmp[(y+i)*ow+x] * kv
			}
			out[y*ow+x] = s
		}
	}
	return out, ow, oh
}
