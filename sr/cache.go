package sr

import "math"

// CacheOptions tunes the temporal tile cache (ModelOptions.Cache switches it
// on): a tile whose LR input has not changed since its cached HR output was
// made is not run again. Zero values pick the defaults.
type CacheOptions struct {
	// Threshold is the change of a 4x4 block's mean luma (0..255 levels) above
	// which the tile holding it counts as changed. Block means average sensor
	// noise down (sigma/4 per frame), so noise alone stays far below it.
	Threshold float64 // default 6
	// MeanThreshold catches changes spread thinly over a tile (lighting): the
	// mean over its blocks of the absolute change.
	MeanThreshold float64 // default 1.5
	// RefreshFrames bounds how long a cached tile lives: every tile is run at
	// least once per this many frames (a few per frame, round robin, so the
	// cost is spread instead of spiking).
	RefreshFrames int // default 60
	// SceneCut is the fraction of changed tiles that counts as a scene change,
	// on which every tile is run.
	SceneCut float64 // default 0.7
}

func (o CacheOptions) withDefaults() CacheOptions {
	if o.Threshold <= 0 {
		o.Threshold = 6
	}
	if o.MeanThreshold <= 0 {
		o.MeanThreshold = 1.5
	}
	if o.RefreshFrames <= 0 {
		o.RefreshFrames = 60
	}
	if o.SceneCut <= 0 || o.SceneCut > 1 {
		o.SceneCut = 0.7
	}
	return o
}

// tileCache remembers, per tile, the block means of the LR input its cached HR
// output came from. Comparing with that reference (not with the previous
// frame) keeps slow drifts from creeping past the threshold unseen.
type tileCache struct {
	on    bool
	opts  CacheOptions
	valid bool        // refs describe the cached HR tiles
	ref   [][]float32 // per tile: block means it was inferred from
	bm    []float32   // this frame's block means (nby x nbx)
	sums  []uint32
	rr    int // next tile for the round-robin refresh
}

// blockMeans computes the mean luma (BT.601 weights, 0..255) of every
// blockSize x blockSize block of a packed BGR frame into dst (len nbx*nby).
func blockMeans(dst []float32, sums []uint32, pix []byte, W, H, nbx int) {
	clear(sums)
	for y := 0; y < H; y++ {
		row := pix[y*W*3 : (y+1)*W*3]
		s := sums[(y/blockSize)*nbx:]
		for x := 0; x < W; x++ {
			p := row[x*3 : x*3+3]
			s[x/blockSize] += 29*uint32(p[0]) + 150*uint32(p[1]) + 77*uint32(p[2])
		}
	}
	nby := len(dst) / nbx
	for by := 0; by < nby; by++ {
		h := min(blockSize, H-by*blockSize)
		for bx := 0; bx < nbx; bx++ {
			w := min(blockSize, W-bx*blockSize)
			dst[by*nbx+bx] = float32(sums[by*nbx+bx]) / float32(256*w*h)
		}
	}
}

// changed reports whether a tile's blocks moved past the thresholds since ref.
func (c *tileCache) changed(br blockRange, nbx int, ref []float32) bool {
	maxT, meanT := float32(c.opts.Threshold), c.opts.MeanThreshold
	var sum float64
	k := 0
	for by := br.y0; by < br.y1; by++ {
		row := c.bm[by*nbx+br.x0 : by*nbx+br.x1]
		for _, v := range row {
			d := v - ref[k]
			k++
			if d < 0 {
				d = -d
			}
			if d > maxT {
				return true
			}
			sum += float64(d)
		}
	}
	return k > 0 && sum/float64(k) > meanT
}

// remember stores the current block means as tile t's reference.
func (c *tileCache) remember(t int, br blockRange, nbx int) {
	n := (br.x1 - br.x0) * (br.y1 - br.y0)
	if cap(c.ref[t]) < n {
		c.ref[t] = make([]float32, n)
	}
	r := c.ref[t][:n]
	k := 0
	for by := br.y0; by < br.y1; by++ {
		k += copy(r[k:], c.bm[by*nbx+br.x0:by*nbx+br.x1])
	}
	c.ref[t] = r
}

// plan decides which tiles to run for this frame. reason says why all tiles
// run ("" when the cache chose a subset). mark has one entry per tile.
func (c *tileCache) plan(g *grid, pix []byte, reset bool, mark []bool) (n int, reason string) {
	nt := g.numTiles()
	all := func(why string) (int, string) {
		for i := range mark {
			mark[i] = true
		}
		c.rr = 0
		return nt, why
	}
	if !c.on {
		return all("cache off")
	}
	if len(c.bm) != g.nbx*g.nby {
		c.bm = make([]float32, g.nbx*g.nby)
		c.sums = make([]uint32, g.nbx*g.nby)
	}
	if len(c.ref) != nt {
		c.ref = make([][]float32, nt)
		c.valid = false
	}
	blockMeans(c.bm, c.sums, pix, g.W, g.H, g.nbx)
	switch {
	case !c.valid:
		return all("first frame")
	case reset:
		return all("reset")
	}
	for t := range mark {
		mark[t] = c.changed(g.tileBlocks[t], g.nbx, c.ref[t])
		if mark[t] {
			n++
		}
	}
	if float64(n) >= c.opts.SceneCut*float64(nt) && nt > 1 {
		return all("scene change")
	}
	// Round-robin refresh: ceil(nt/N) tiles per frame visit every tile within N frames.
	k := int(math.Ceil(float64(nt) / float64(c.opts.RefreshFrames)))
	for i := 0; i < k; i++ {
		t := (c.rr + i) % nt
		if !mark[t] {
			mark[t] = true
			n++
		}
	}
	c.rr = (c.rr + k) % nt
	return n, ""
}

// commit records the tiles just inferred as the new references.
func (c *tileCache) commit(g *grid, mark []bool) {
	if !c.on {
		return
	}
	for t, m := range mark {
		if m {
			c.remember(t, g.tileBlocks[t], g.nbx)
		}
	}
	c.valid = true
}
