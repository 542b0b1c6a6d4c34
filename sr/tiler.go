package sr

import (
	"math"
)

// grid is the tiling of one frame size for one model: where the T x T LR tiles
// sit, how edges are padded, and the feathered weights that blend their HR
// outputs. It depends only on (W, H, T, overlap, scale), so it is built once
// per frame size and reused.
//
// Coordinates: the "canvas" is the frame reflection-padded by P pixels on each
// side (and further on the right/bottom when the frame is smaller than a tile).
// Canvas pixel c reads frame pixel xmap[c]. HR canvas pixel C is HR frame pixel
// C - P*scale.
type grid struct {
	W, H, T, O, S, P, scale int
	Wp, Hp                  int
	xs, ys                  []int       // tile origins on the canvas (LR), columns and rows
	xmap, ymap              []int       // canvas -> frame coordinate, reflected
	ax, ay                  [][]float32 // per column/row: normalised HR weight, len T*scale
	segX, segY              []segment   // HR frame intervals with the tiles that cover them
	ring                    int         // tile rows of HR outputs kept while blending a full frame
	// Change detection blocks (frame coordinates, blockSize pixels square).
	nbx, nby int
	// Freely placed tiles (the cache): a tile's weight is one from inset
	// pixels inside each edge that has a neighbour; rx, ry is the refresh grid
	// whose solid regions abut; wfree[l][r] are HR weights for a tile whose
	// left/right (top/bottom) edge is (1) or is not (0) at the canvas edge.
	inset  int
	rx, ry []int
	wfree  [2][2][]float32
}

type segment struct {
	a, b  int   // HR frame coordinates [a, b)
	tiles []int // tile columns (or rows) with non-zero weight here
}

// blockSize is the side of the LR blocks whose mean luma the change detector
// compares: averaging 16 pixels divides sensor-noise deviation by 4 while a
// moving object still shifts the mean of the blocks it covers.
const blockSize = 4

func newGrid(W, H, T, O, scale int) *grid {
	g := &grid{W: W, H: H, T: T, O: O, S: T - O, P: O / 2, scale: scale}
	g.Wp = max(W+2*g.P, T)
	g.Hp = max(H+2*g.P, T)
	g.xs = tileOrigins(g.Wp, T, g.S)
	g.ys = tileOrigins(g.Hp, T, g.S)
	g.xmap = reflectMap(g.Wp, W, g.P)
	g.ymap = reflectMap(g.Hp, H, g.P)
	g.ax = blendWeights(g.xs, g.Wp, T, O, scale)
	g.ay = blendWeights(g.ys, g.Hp, T, O, scale)
	g.segX = segments(g.ax, g.xs, W*scale, g.P*scale, scale)
	g.segY = segments(g.ay, g.ys, H*scale, g.P*scale, scale)
	// A band of output rows can be blended once its lowest tile row has run;
	// it needs at most the tile rows its cover spans, so a ring of that many
	// rows (plus the one being filled) holds every tile output still needed.
	g.ring = 1
	for _, sy := range g.segY {
		if len(sy.tiles) > 0 {
			g.ring = max(g.ring, sy.tiles[len(sy.tiles)-1]-sy.tiles[0]+2)
		}
	}
	g.ring = min(g.ring, len(g.ys))
	g.nbx = (W + blockSize - 1) / blockSize
	g.nby = (H + blockSize - 1) / blockSize
	g.inset = O - O/4
	g.rx = tileOrigins(g.Wp, T, T-2*g.inset)
	g.ry = tileOrigins(g.Hp, T, T-2*g.inset)
	for l := 0; l < 2; l++ {
		for r := 0; r < 2; r++ {
			w := make([]float32, T*scale)
			for u := range w {
				d := (float64(u) + 0.5) / float64(scale)
				v := 1.0
				if l == 0 {
					v *= ramp(d, O)
				}
				if r == 0 {
					v *= ramp(float64(T)-d, O)
				}
				w[u] = float32(v)
			}
			g.wfree[l][r] = w
		}
	}
	return g
}

func (g *grid) numTiles() int { return len(g.xs) * len(g.ys) }

// tileOrigins places tiles every S pixels and aligns the last one with the far
// edge, so every tile is whole (the model's shape is fixed) and the last
// overlap may be wider than O.
func tileOrigins(n, T, S int) []int {
	if n <= T {
		return []int{0}
	}
	cnt := (n-T+S-1)/S + 1
	o := make([]int, cnt)
	for i := range o {
		o[i] = min(i*S, n-T)
	}
	return o
}

// reflectMap maps canvas coordinates to frame coordinates, mirroring at the
// edges without repeating the edge pixel (OpenCV BORDER_REFLECT_101), and
// folding again for frames far smaller than the canvas.
func reflectMap(n, size, pad int) []int {
	m := make([]int, n)
	for c := range m {
		m[c] = reflect101(c-pad, size)
	}
	return m
}

func reflect101(i, size int) int {
	if size == 1 {
		return 0
	}
	period := 2 * (size - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= size {
		i = period - i
	}
	return i
}

// ramp is the feather across an overlap of width O (LR pixels, d measured from
// the tile's edge): zero over the outer O/4, where the model sees its own zero
// padding, then linear to one. Two neighbours' ramps sum to one across a
// standard overlap; a wider last overlap is handled by normalisation.
func ramp(d float64, O int) float64 {
	if O == 0 {
		return 1
	}
	m := float64(O / 4)
	w := (d - m) / (float64(O) - 2*m)
	return math.Max(0, math.Min(1, w))
}

// blendWeights returns, for each tile along one axis, its HR weights divided by
// the sum of all tiles' weights at that pixel (so blending is a plain weighted
// sum). Edges without a neighbour get weight one: nothing to blend with there.
func blendWeights(origins []int, n, T, O, scale int) [][]float32 {
	Ts := T * scale
	raw := make([][]float64, len(origins))
	sum := make([]float64, n*scale)
	for i, o := range origins {
		w := make([]float64, Ts)
		for u := range w {
			d := (float64(u) + 0.5) / float64(scale)
			v := 1.0
			if i > 0 {
				v *= ramp(d, O)
			}
			if i < len(origins)-1 {
				v *= ramp(float64(T)-d, O)
			}
			w[u] = v
			sum[o*scale+u] += v
		}
		raw[i] = w
	}
	out := make([][]float32, len(origins))
	for i, o := range origins {
		out[i] = make([]float32, Ts)
		for u, v := range raw[i] {
			if s := sum[o*scale+u]; s > 0 {
				out[i][u] = float32(v / s)
			}
		}
	}
	return out
}

// segments splits HR frame coordinates [0, n) into runs covered by the same set
// of tiles with non-zero weight; blending walks these runs.
func segments(w [][]float32, origins []int, n, off, scale int) []segment {
	var segs []segment
	var cur []int
	for X := 0; X < n; X++ {
		C := X + off
		var cover []int
		for i, o := range origins {
			u := C - o*scale
			if u >= 0 && u < len(w[i]) && w[i][u] > 0 {
				cover = append(cover, i)
			}
		}
		if X > 0 && equalInts(cover, cur) {
			segs[len(segs)-1].b = X + 1
			continue
		}
		segs = append(segs, segment{a: X, b: X + 1, tiles: cover})
		cur = cover
	}
	return segs
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// solid returns, in frame coordinates along one axis, the range where a tile
// at canvas origin o (canvas size n) has blend weight one: inset pixels in
// from an edge that has neighbours, all the way out at the canvas edge.
func (g *grid) solid(o, n int) (int, int) {
	a, b := o+g.inset-g.P, o+g.T-g.inset-g.P
	if o == 0 {
		a = math.MinInt32
	}
	if o+g.T >= n {
		b = math.MaxInt32
	}
	return a, b
}

var u8ToF32 = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return
}()

// fillTile writes the LR input of the tile at canvas origin (ox, oy) as planar
// RGB float32 in [0,1] into dst (len 3*T*T), reading the BGR frame through
// the reflection maps.
func (g *grid) fillTile(dst []float32, pix []byte, ox, oy int) {
	T, W := g.T, g.W
	plane := T * T
	r, gr, b := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	xm := g.xmap[ox : ox+T]
	for v := 0; v < T; v++ {
		row := pix[g.ymap[oy+v]*W*3:]
		o := v * T
		for u, sx := range xm {
			p := row[sx*3 : sx*3+3]
			b[o+u] = u8ToF32[p[0]]
			gr[o+u] = u8ToF32[p[1]]
			r[o+u] = u8ToF32[p[2]]
		}
	}
}

// tileFromHR writes into dst (planar RGB, as the model's output) the HR
// tile at canvas origin (ox, oy) taken from a whole HR frame (packed BGR),
// e.g. the bicubic enlargement for a tile that missed its deadline. Canvas
// pixels outside the frame take the nearest edge pixel: blending never
// writes them out.
func (g *grid) tileFromHR(dst []float32, hr []byte, ox, oy int) {
	s := g.scale
	Ts := g.T * s
	plane := Ts * Ts
	Wo, Ho, off := g.W*s, g.H*s, g.P*s
	for v := 0; v < Ts; v++ {
		Y := clampInt(oy*s+v-off, 0, Ho-1)
		row := hr[Y*Wo*3 : (Y+1)*Wo*3]
		for x := 0; x < Ts; x++ {
			X := clampInt(ox*s+x-off, 0, Wo-1)
			p := row[X*3 : X*3+3]
			dst[v*Ts+x] = u8ToF32[p[2]]
			dst[plane+v*Ts+x] = u8ToF32[p[1]]
			dst[2*plane+v*Ts+x] = u8ToF32[p[0]]
		}
	}
}

// blend writes the HR output (packed BGR, (W*s) x (H*s)) of the horizontal
// bands whose lowest covering tile row is row (all bands if row < 0). hr holds
// tile outputs (planar RGB) in a ring of g.ring tile rows: tile (j, i) at
// hr[(j%g.ring)*nx+i]. acc is scratch of at least 3*W*s floats.
func (g *grid) blend(out []byte, hr [][]float32, row int, acc []float32) {
	s := g.scale
	Ts := g.T * s
	plane := Ts * Ts
	Wo := g.W * s
	off := g.P * s
	nx := len(g.xs)
	for _, sy := range g.segY {
		if len(sy.tiles) == 0 || row >= 0 && sy.tiles[len(sy.tiles)-1] != row {
			continue
		}
		for _, sx := range g.segX {
			n := sx.b - sx.a
			if len(sx.tiles) == 1 && len(sy.tiles) == 1 {
				// Covered by one tile alone (most of the frame): its normalised
				// weight is exactly one, so convert directly.
				i, j := sx.tiles[0], sy.tiles[0]
				t := hr[(j%g.ring)*nx+i]
				u0 := sx.a + off - g.xs[i]*s
				for Y := sy.a; Y < sy.b; Y++ {
					o := (Y+off-g.ys[j]*s)*Ts + u0
					tr, tg, tb := t[o:o+n], t[plane+o:plane+o+n], t[2*plane+o:2*plane+o+n]
					row := out[(Y*Wo+sx.a)*3 : (Y*Wo+sx.b)*3]
					for k := range tr {
						row[3*k] = toU8(tb[k])
						row[3*k+1] = toU8(tg[k])
						row[3*k+2] = toU8(tr[k])
					}
				}
				continue
			}
			ar, ag, ab := acc[:n], acc[n:2*n], acc[2*n:3*n]
			for Y := sy.a; Y < sy.b; Y++ {
				clear(acc[:3*n])
				for _, j := range sy.tiles {
					v := Y + off - g.ys[j]*s
					wy := g.ay[j][v]
					for _, i := range sx.tiles {
						t := hr[(j%g.ring)*nx+i]
						u0 := sx.a + off - g.xs[i]*s
						wx := g.ax[i][u0 : u0+n]
						tr := t[v*Ts+u0 : v*Ts+u0+n]
						tg := t[plane+v*Ts+u0 : plane+v*Ts+u0+n]
						tb := t[2*plane+v*Ts+u0 : 2*plane+v*Ts+u0+n]
						for k, w := range wx {
							w *= wy
							ar[k] += tr[k] * w
							ag[k] += tg[k] * w
							ab[k] += tb[k] * w
						}
					}
				}
				row := out[(Y*Wo+sx.a)*3 : (Y*Wo+sx.b)*3]
				for k := 0; k < n; k++ {
					row[3*k] = toU8(ab[k])
					row[3*k+1] = toU8(ag[k])
					row[3*k+2] = toU8(ar[k])
				}
			}
		}
	}
}

// blendFree feathers one freely placed tile's HR output t (planar RGB) into
// the kept output: weight one inside its solid region, the ramp towards edges
// that have neighbours, so it meets the older pixels around it without a seam.
func (g *grid) blendFree(out []byte, t []float32, ox, oy int) {
	s, T := g.scale, g.T
	Ts := T * s
	plane := Ts * Ts
	Wo, Ho, off := g.W*s, g.H*s, g.P*s
	wx := g.wfree[b2i(ox == 0)][b2i(ox+T >= g.Wp)]
	wy := g.wfree[b2i(oy == 0)][b2i(oy+T >= g.Hp)]
	X0, X1 := max(0, ox*s-off), min(Wo, (ox+T)*s-off)
	Y0, Y1 := max(0, oy*s-off), min(Ho, (oy+T)*s-off)
	u0 := X0 + off - ox*s
	n := X1 - X0
	for Y := Y0; Y < Y1; Y++ {
		v := Y + off - oy*s
		w0 := wy[v]
		if w0 == 0 {
			continue
		}
		o := v*Ts + u0
		tr, tg, tb := t[o:o+n], t[plane+o:plane+o+n], t[2*plane+o:2*plane+o+n]
		row := out[(Y*Wo+X0)*3 : (Y*Wo+X1)*3]
		for k, w := range wx[u0 : u0+n] {
			w *= w0
			switch {
			case w >= 1:
				row[3*k] = toU8(tb[k])
				row[3*k+1] = toU8(tg[k])
				row[3*k+2] = toU8(tr[k])
			case w > 0:
				const inv = 1.0 / 255
				row[3*k] = toU8(w*tb[k] + (1-w)*float32(row[3*k])*inv)
				row[3*k+1] = toU8(w*tg[k] + (1-w)*float32(row[3*k+1])*inv)
				row[3*k+2] = toU8(w*tr[k] + (1-w)*float32(row[3*k+2])*inv)
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// toU8 clamps a model output in [0,1] (the contract leaves it unclamped) and rounds.
func toU8(v float32) byte {
	v = v*255 + 0.5
	if !(v > 0) { // also NaN
		return 0
	}
	if v >= 255 {
		return 255
	}
	return byte(v)
}
