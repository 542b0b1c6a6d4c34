package sr

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/danstream/danstream/frame"
)

// Bicubic is the comparison baseline: separable bicubic interpolation (Keys
// kernel, a = -0.5, as MATLAB's imresize and PIL use; pixel centres aligned,
// edges replicated). Pure Go, so it needs no cgo and no Mats.
type Bicubic struct {
	scale int
}

// NewBicubic returns a bicubic Upscaler for an integer scale >= 1.
func NewBicubic(scale int) Upscaler {
	if scale < 1 {
		scale = 1
	}
	return &Bicubic{scale: scale}
}

func (b *Bicubic) Scale() int   { return b.scale }
func (b *Bicubic) Name() string { return "bicubic" }
func (b *Bicubic) Close() error { return nil }

// Upscale implements Upscaler. It stops early with ctx's error when ctx ends
// (a big frame takes seconds; a stream being deleted must not wait for it).
func (b *Bicubic) Upscale(ctx context.Context, in frame.Frame) (frame.Frame, error) {
	if err := in.Validate(); err != nil {
		return frame.Frame{}, fmt.Errorf("sr: bicubic: %w", err)
	}
	out, err := resizeBicubic(ctx, in.Pix, in.W, in.H, in.W*b.scale, in.H*b.scale)
	if err != nil {
		return frame.Frame{}, fmt.Errorf("sr: bicubic: %w", err)
	}
	return frame.Frame{Pix: out, W: in.W * b.scale, H: in.H * b.scale, Seq: in.Seq, Captured: in.Captured, Reset: in.Reset}, nil
}

// cubicTaps holds, per output coordinate, the first source index and the four
// weights of the Keys kernel (indices clamped at the edges).
type cubicTaps struct {
	idx [][4]int
	w   [][4]float32
}

func keys(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	switch {
	case x <= 1:
		return (a+2)*x*x*x - (a+3)*x*x + 1
	case x < 2:
		return a*x*x*x - 5*a*x*x + 8*a*x - 4*a
	}
	return 0
}

func makeTaps(src, dst int) cubicTaps {
	t := cubicTaps{idx: make([][4]int, dst), w: make([][4]float32, dst)}
	r := float64(src) / float64(dst)
	for o := 0; o < dst; o++ {
		x := (float64(o)+0.5)*r - 0.5
		x0 := int(floor(x)) - 1
		var sum float64
		var w [4]float64
		for k := 0; k < 4; k++ {
			w[k] = keys(x - float64(x0+k))
			sum += w[k]
			t.idx[o][k] = min(max(x0+k, 0), src-1)
		}
		for k := range w {
			t.w[o][k] = float32(w[k] / sum)
		}
	}
	return t
}

func floor(x float64) float64 {
	i := float64(int(x))
	if i > x {
		i--
	}
	return i
}

// ResizeBicubic resizes a packed 3-channel image (upscaling; for downscaling
// it does not low-pass, use area averaging instead).
func ResizeBicubic(pix []byte, w, h, ow, oh int) []byte {
	out, _ := resizeBicubic(context.Background(), pix, w, h, ow, oh)
	return out
}

// resizeBicubic is ResizeBicubic that checks ctx every cancelRows rows.
func resizeBicubic(ctx context.Context, pix []byte, w, h, ow, oh int) ([]byte, error) {
	const cancelRows = 64
	tx, ty := makeTaps(w, ow), makeTaps(h, oh)
	// Horizontal pass into float rows, then vertical pass into bytes.
	tmp := make([]float32, h*ow*3)
	for y := 0; y < h; y++ {
		if y%cancelRows == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		src := pix[y*w*3 : (y+1)*w*3]
		dst := tmp[y*ow*3 : (y+1)*ow*3]
		for o := 0; o < ow; o++ {
			id, wt := tx.idx[o], tx.w[o]
			for c := 0; c < 3; c++ {
				dst[o*3+c] = wt[0]*float32(src[id[0]*3+c]) + wt[1]*float32(src[id[1]*3+c]) +
					wt[2]*float32(src[id[2]*3+c]) + wt[3]*float32(src[id[3]*3+c])
			}
		}
	}
	out := make([]byte, oh*ow*3)
	for o := 0; o < oh; o++ {
		if o%cancelRows == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		id, wt := ty.idx[o], ty.w[o]
		r0, r1 := tmp[id[0]*ow*3:], tmp[id[1]*ow*3:]
		r2, r3 := tmp[id[2]*ow*3:], tmp[id[3]*ow*3:]
		dst := out[o*ow*3 : (o+1)*ow*3]
		for i := range dst {
			v := wt[0]*r0[i] + wt[1]*r1[i] + wt[2]*r2[i] + wt[3]*r3[i] + 0.5
			switch {
			case v <= 0:
				dst[i] = 0
			case v >= 255:
				dst[i] = 255
			default:
				dst[i] = byte(v)
			}
		}
	}
	return out, nil
}

// ResizeArea downscales a packed 3-channel image by an integer factor with box
// averaging (OpenCV INTER_AREA for integer factors); the image is cropped to a
// multiple of the factor first.
func ResizeArea(pix []byte, w, h, factor int) ([]byte, int, int) {
	ow, oh := w/factor, h/factor
	out := make([]byte, ow*oh*3)
	n := uint32(factor * factor)
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			var s [3]uint32
			for dy := 0; dy < factor; dy++ {
				row := pix[((oy*factor+dy)*w+ox*factor)*3:]
				for dx := 0; dx < factor; dx++ {
					s[0] += uint32(row[dx*3])
					s[1] += uint32(row[dx*3+1])
					s[2] += uint32(row[dx*3+2])
				}
			}
			for c := 0; c < 3; c++ {
				out[(oy*ow+ox)*3+c] = byte((s[c] + n/2) / n)
			}
		}
	}
	return out, ow, oh
}

// correction adds to the kept HR output the bicubic enlargement of how the LR
// luma moved since the kept pixels were made (cur - ref), writing dst. Small
// changes below the cache thresholds (noise, compression flicker, slow light)
// then still reach the output, to first order. Luma only, added equally to
// B, G and R: a third of the cost of a colour resize, and what PSNR-Y and the
// eye weigh most.
type correction struct {
	w, h, ow, oh int
	tx, ty       cubicTaps
	diff, tmp    []float32
	rowNZ        []bool
}

func (c *correction) apply(dst, kept, cur, ref []byte, w, h, s int) {
	ow, oh := w*s, h*s
	if c.w != w || c.h != h || c.ow != ow {
		*c = correction{w: w, h: h, ow: ow, oh: oh, tx: makeTaps(w, ow), ty: makeTaps(h, oh),
			diff: make([]float32, w*h), tmp: make([]float32, h*ow), rowNZ: make([]bool, h)}
	}
	// The model is idle meanwhile, so its cores split the rows.
	parallelRows(h, func(y0, y1 int) { c.horizontal(cur, ref, y0, y1) })
	parallelRows(oh, func(o0, o1 int) { c.vertical(dst, kept, o0, o1) })
}

func (c *correction) horizontal(cur, ref []byte, y0, y1 int) {
	w, ow := c.w, c.ow
	for y := y0; y < y1; y++ {
		nz := false
		d := c.diff[y*w : (y+1)*w]
		for x := range d {
			p, q := cur[(y*w+x)*3:(y*w+x)*3+3], ref[(y*w+x)*3:(y*w+x)*3+3]
			v := 0.114*float32(int(p[0])-int(q[0])) + 0.587*float32(int(p[1])-int(q[1])) + 0.299*float32(int(p[2])-int(q[2]))
			d[x] = v
			nz = nz || v != 0
		}
		c.rowNZ[y] = nz
		t := c.tmp[y*ow : (y+1)*ow]
		if !nz {
			clear(t)
			continue
		}
		for o := range t {
			id, wt := c.tx.idx[o], c.tx.w[o]
			t[o] = wt[0]*d[id[0]] + wt[1]*d[id[1]] + wt[2]*d[id[2]] + wt[3]*d[id[3]]
		}
	}
}

func (c *correction) vertical(dst, kept []byte, o0, o1 int) {
	ow := c.ow
	for o := o0; o < o1; o++ {
		id, wt := c.ty.idx[o], c.ty.w[o]
		dr := dst[o*ow*3 : (o+1)*ow*3]
		kr := kept[o*ow*3 : (o+1)*ow*3]
		if !c.rowNZ[id[0]] && !c.rowNZ[id[1]] && !c.rowNZ[id[2]] && !c.rowNZ[id[3]] {
			copy(dr, kr)
			continue
		}
		r0, r1 := c.tmp[id[0]*ow:(id[0]+1)*ow], c.tmp[id[1]*ow:(id[1]+1)*ow]
		r2, r3 := c.tmp[id[2]*ow:(id[2]+1)*ow], c.tmp[id[3]*ow:(id[3]+1)*ow]
		for x := range r0 {
			v := wt[0]*r0[x] + wt[1]*r1[x] + wt[2]*r2[x] + wt[3]*r3[x] + 0.5
			k := kr[3*x : 3*x+3]
			d := dr[3*x : 3*x+3]
			d[0] = addClamp(k[0], v)
			d[1] = addClamp(k[1], v)
			d[2] = addClamp(k[2], v)
		}
	}
}

// parallelRows runs fn over [0, n) split into one chunk per CPU (at most 4).
func parallelRows(n int, fn func(a, b int)) {
	p := min(runtime.GOMAXPROCS(0), 4, max(1, n/32))
	if p <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < p; i++ {
		a, b := n*i/p, n*(i+1)/p
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(a, b)
		}()
	}
	wg.Wait()
}

// addClamp returns b + v (v already carries the +0.5 for rounding) in 0..255.
func addClamp(b byte, v float32) byte {
	r := float32(b) + v
	switch {
	case r <= 0:
		return 0
	case r >= 255:
		return 255
	}
	return byte(r)
}
