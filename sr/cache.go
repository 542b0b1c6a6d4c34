package sr

// CacheOptions tunes the temporal tile cache (ModelOptions.Cache switches it
// on). Zero values pick the defaults.
//
// How the cache works: the blended HR output of earlier frames is kept. Each
// LR frame is cut into 4x4 blocks whose luma (mean, and mean absolute pixel
// change) is compared with what the block had when its HR pixels were last
// produced. Changed blocks are covered by as few model tiles as possible,
// placed freely (not on the fixed grid) so each changed block lies where the
// new tile's blend weight is one; those tiles run and are feathered into the
// kept output. Blocks whose input did not change keep their HR pixels. A lone
// changed block must score twice the thresholds (noise spikes and compression
// flicker are lone); the detector watches luma only, so a hue change at equal
// brightness waits for the refresh.
type CacheOptions struct {
	// Threshold is the change of a 4x4 block's mean luma (0..255 levels) above
	// which the block counts as changed. Block means average sensor noise down
	// (sigma/4 per frame), so noise alone stays far below it.
	Threshold float64 // default 8
	// TextureThreshold is the mean absolute per-pixel luma change within a
	// block above which it counts as changed even if its mean did not move
	// (texture shifting, thin edges). Its noise floor is about 1.1 sigma of
	// the sensor's luma noise.
	TextureThreshold float64 // default 12
	// RefreshFrames bounds how long cached pixels live: every part of the
	// frame is re-inferred at least once per this many frames (about
	// tiles/N per frame, the most drifted first, so the cost is spread
	// instead of spiking).
	RefreshFrames int // default 120
	// NoCorrection turns off the first-order correction of reused pixels:
	// by default the output is the kept HR plus the bicubic enlargement of
	// how the LR input moved since those pixels were made, so changes below
	// the thresholds (noise, compression flicker, slow light) still show.
	NoCorrection bool
	// SceneCut is the fraction of changed blocks that counts as a scene change,
	// on which the whole frame runs on the fixed grid.
	SceneCut float64 // default 0.5
	// Near is the share of the thresholds above which a block next to a
	// changed one (8 neighbours) counts as changed too: the edge of a moving
	// object and its shadow change less per block than its body, and reused
	// there they left faint trails. 1 turns it off.
	Near float64 // default 0.5
}

func (o CacheOptions) withDefaults() CacheOptions {
	if o.Threshold <= 0 {
		o.Threshold = 8
	}
	if o.TextureThreshold <= 0 {
		o.TextureThreshold = 12
	}
	if o.RefreshFrames <= 0 {
		o.RefreshFrames = 120
	}
	if o.SceneCut <= 0 || o.SceneCut > 1 {
		o.SceneCut = 0.5
	}
	if o.Near <= 0 || o.Near > 1 {
		o.Near = 0.5
	}
	return o
}

// tileCache holds, per block, the luma of the LR input its HR pixels came
// from. Comparing with that reference (not with the previous frame) keeps slow
// drifts from creeping past the threshold unseen.
type tileCache struct {
	on       bool
	opts     CacheOptions
	valid    bool      // ref describes the kept HR output
	ref      []float32 // per block: mean luma its HR pixels were made from
	bm       []float32 // this frame's block means (nby x nbx)
	sums     []uint32
	changed  []bool    // per block, this frame
	score    []float32 // per block: change measure / threshold
	luma     []byte    // this frame's luma
	refLuma  []byte    // per pixel: luma its HR pixels were made from
	refPix   []byte    // per pixel: BGR its HR pixels were made from
	cur      []byte    // this frame's BGR pixels (the caller's, read-only)
	covered  []bool
	age      []int   // per refresh tile: frames since it last ran
	picked   []bool  // per refresh tile, this frame
	credit   float64 // refresh tiles owed (fractional)
	driftBuf []float64
}

// placed is a tile to run at a free canvas position (LR coordinates).
type placed struct{ x, y int }

// blockMeans computes the BT.601 luma (0..255) of a packed BGR frame into
// luma and the mean luma of every blockSize x blockSize block into dst (len nbx*nby).
func blockMeans(dst []float32, sums []uint32, luma, pix []byte, W, H, nbx int) {
	clear(sums)
	for y := 0; y < H; y++ {
		row := pix[y*W*3 : (y+1)*W*3]
		l := luma[y*W : (y+1)*W]
		s := sums[(y/blockSize)*nbx:]
		for x := range l {
			p := row[x*3 : x*3+3]
			v := (29*uint32(p[0]) + 150*uint32(p[1]) + 77*uint32(p[2]) + 128) >> 8
			l[x] = byte(v)
			s[x/blockSize] += v
		}
	}
	nby := len(dst) / nbx
	for by := 0; by < nby; by++ {
		h := min(blockSize, H-by*blockSize)
		for bx := 0; bx < nbx; bx++ {
			w := min(blockSize, W-bx*blockSize)
			dst[by*nbx+bx] = float32(sums[by*nbx+bx]) / float32(w*h)
		}
	}
}

// blockSAD sums, per block, the absolute luma difference from the reference.
func blockSAD(sums []uint32, luma, ref []byte, W, H, nbx int) {
	clear(sums)
	for y := 0; y < H; y++ {
		l, r := luma[y*W:(y+1)*W], ref[y*W:(y+1)*W]
		s := sums[(y/blockSize)*nbx:]
		for x, v := range l {
			d := int32(v) - int32(r[x])
			s[x/blockSize] += uint32(max(d, -d))
		}
	}
}

// plan decides the work for this frame: either the whole fixed grid (full,
// with the reason) or a list of freely placed tiles covering the changed
// blocks plus this frame's share of the round-robin refresh.
func (c *tileCache) plan(g *grid, pix []byte, reset bool) (tiles []placed, full bool, reason string) {
	if !c.on {
		return nil, true, "cache off"
	}
	nb := g.nbx * g.nby
	if len(c.bm) != nb {
		c.bm = make([]float32, nb)
		c.sums = make([]uint32, nb)
		c.ref = make([]float32, nb)
		c.changed = make([]bool, nb)
		c.score = make([]float32, nb)
		c.covered = make([]bool, nb)
		c.valid = false
	}
	if len(c.luma) != g.W*g.H {
		c.luma = make([]byte, g.W*g.H)
		c.refLuma = make([]byte, g.W*g.H)
		c.refPix = make([]byte, g.W*g.H*3)
		c.valid = false
	}
	c.cur = pix
	blockMeans(c.bm, c.sums, c.luma, pix, g.W, g.H, g.nbx)
	switch {
	case !c.valid:
		return nil, true, "first frame"
	case reset:
		return nil, true, "reset"
	}
	// Score each block: its mean moved (lighting, large objects), or its
	// pixels moved while the mean stayed (texture, thin edges). > 1 is a change.
	blockSAD(c.sums, c.luma, c.refLuma, g.W, g.H, g.nbx)
	th, th2 := float32(c.opts.Threshold), float32(c.opts.TextureThreshold)
	nbx, nby := g.nbx, g.nby
	for i, v := range c.bm {
		d := v - c.ref[i]
		bw := min(blockSize, g.W-(i%nbx)*blockSize)
		bh := min(blockSize, g.H-(i/nbx)*blockSize)
		sc := max(d/th, -d/th, float32(c.sums[i])/float32(bw*bh)/th2)
		c.score[i] = sc
		c.changed[i] = sc > 1
		c.covered[i] = false
	}
	// A lone changed block must score twice as high: compression flicker and
	// noise spikes come one block at a time, moving objects span several, and
	// each lone block would cost a whole tile.
	n := 0
	for i, ch := range c.changed {
		if !ch {
			continue
		}
		bx, by := i%nbx, i/nbx
		lone := true
		for y := max(by-1, 0); y <= min(by+1, nby-1) && lone; y++ {
			for x := max(bx-1, 0); x <= min(bx+1, nbx-1); x++ {
				if (x != bx || y != by) && c.changed[y*nbx+x] {
					lone = false
					break
				}
			}
		}
		if lone && c.score[i] <= 2 {
			c.changed[i] = false
			continue
		}
		n++
	}
	// Near a change, a lower bar: blocks beside a changed one scoring above
	// Near count as changed (marked in covered first, so that the new marks
	// do not spread further).
	if near := float32(c.opts.Near); near < 1 {
		for i, ch := range c.changed {
			if ch || c.score[i] <= near {
				continue
			}
			bx, by := i%nbx, i/nbx
		look:
			for y := max(by-1, 0); y <= min(by+1, nby-1); y++ {
				for x := max(bx-1, 0); x <= min(bx+1, nbx-1); x++ {
					if c.changed[y*nbx+x] {
						c.covered[i] = true // borrowed as "near" until cover starts
						break look
					}
				}
			}
		}
		for i, nr := range c.covered {
			if nr {
				c.changed[i], c.covered[i] = true, false
				n++
			}
		}
	}
	if float64(n) >= c.opts.SceneCut*float64(nb) {
		return nil, true, "scene change"
	}
	tiles, ok := c.cover(g)
	if !ok || len(tiles) >= g.numTiles() {
		return nil, true, "scene change" // the grid is as cheap, and seamless by construction
	}
	return append(tiles, c.refresh(g)...), false, ""
}

// refresh picks this frame's share of the refresh grid (whose tiles' solid
// regions abut): nr/N tiles per frame on average, the fraction carried over.
// Tiles N frames old are always taken; the rest of the share goes to the
// tiles whose input drifted most below the thresholds (then the oldest), so
// the budget goes where the kept output is most stale.
func (c *tileCache) refresh(g *grid) []placed {
	nrx := len(g.rx)
	nr := nrx * len(g.ry)
	if len(c.age) != nr {
		c.age = make([]int, nr)
		c.picked = make([]bool, nr)
	}
	N := c.opts.RefreshFrames
	c.credit += float64(nr) / float64(N)
	k := int(c.credit)
	c.credit -= float64(k)
	var out []placed
	take := func(t int) {
		c.picked[t] = true
		c.age[t] = 0
		out = append(out, placed{g.rx[t%nrx], g.ry[t/nrx]})
	}
	for t := range c.age {
		c.age[t]++
		c.picked[t] = false
	}
	for t, a := range c.age {
		if a >= N {
			take(t)
		}
	}
	// The rest of the share goes to the tiles whose blocks drifted most
	// (each below the thresholds), then to the oldest.
	drift := c.driftBuf[:0]
	for t := range c.age {
		drift = append(drift, c.drift(g, t))
	}
	c.driftBuf = drift
	for len(out) < k {
		best, bestP := -1, -1.0
		for t := range c.age {
			if c.picked[t] {
				continue
			}
			if p := drift[t] + float64(c.age[t])/float64(N); p > bestP {
				best, bestP = t, p
			}
		}
		if best < 0 {
			break
		}
		take(best)
	}
	return out
}

// drift is the mean absolute change of block mean luma (levels) in refresh
// tile t's solid region, over the blocks no change tile covers this frame.
// Averaged over a tile's ~150 blocks, sensor noise nearly cancels out.
func (c *tileCache) drift(g *grid, t int) float64 {
	xa, xb := g.solid(g.rx[t%len(g.rx)], g.Wp)
	ya, yb := g.solid(g.ry[t/len(g.rx)], g.Hp)
	bx0, bx1 := max(xa, 0)/blockSize, min((min(xb, g.W)+blockSize-1)/blockSize, g.nbx)
	by0, by1 := max(ya, 0)/blockSize, min((min(yb, g.H)+blockSize-1)/blockSize, g.nby)
	var sum float64
	n := 0
	for by := by0; by < by1; by++ {
		for bx := bx0; bx < bx1; bx++ {
			if i := by*g.nbx + bx; !c.covered[i] {
				d := c.bm[i] - c.ref[i]
				sum += float64(max(d, -d))
				n++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// cover places tiles greedily, in raster order of the first uncovered changed
// block, so that every changed block lies inside some tile's solid region
// (where its blend weight is one). ok is false if a tile failed to cover the
// block it was placed for, which the geometry rules out; the caller then runs
// the full grid rather than trusting it.
func (c *tileCache) cover(g *grid) (tiles []placed, ok bool) {
	nbx, nby := g.nbx, g.nby
	for i := 0; i < nbx*nby; i++ {
		if !c.changed[i] || c.covered[i] {
			continue
		}
		by0, bx0 := i/nbx, i%nbx
		oy := clampInt(by0*blockSize+g.P-g.inset, 0, g.Hp-g.T)
		ya, yb := g.solid(oy, g.Hp)
		// Leftmost uncovered changed block among the rows this tile will hold.
		byL, bxL := by0, bx0
		for by := by0; by < nby && blockIn(by, ya, yb, g.H); by++ {
			for bx := 0; bx < bxL; bx++ {
				if j := by*nbx + bx; c.changed[j] && !c.covered[j] {
					byL, bxL = by, bx
					break
				}
			}
		}
		ox := clampInt(bxL*blockSize+g.P-g.inset, 0, g.Wp-g.T)
		xa, xb := g.solid(ox, g.Wp)
		for by := 0; by < nby; by++ {
			if !blockIn(by, ya, yb, g.H) {
				continue
			}
			for bx := 0; bx < nbx; bx++ {
				if blockIn(bx, xa, xb, g.W) {
					c.covered[by*nbx+bx] = true
				}
			}
		}
		if !c.covered[byL*nbx+bxL] {
			return nil, false
		}
		tiles = append(tiles, placed{ox, oy})
		i-- // the block that started this tile may still be uncovered if bxL < bx0
	}
	return tiles, true
}

// blockIn reports whether block b (along one axis, frame of size n) lies wholly
// inside the frame range [a, b).
func blockIn(blk, a, b, n int) bool {
	lo, hi := blk*blockSize, min(blk*blockSize+blockSize, n)
	return lo >= a && hi <= b
}

func clampInt(v, lo, hi int) int { return max(lo, min(v, hi)) }

// commitFull records every block as made from this frame.
func (c *tileCache) commitFull() {
	if !c.on {
		return
	}
	copy(c.ref, c.bm)
	copy(c.refLuma, c.luma)
	copy(c.refPix, c.cur)
	clear(c.age)
	c.valid = true
}

// commitTile records the blocks a freely placed tile fully refreshed: those
// wholly inside its solid region. A block straddling the edge of the solid
// region keeps its older reference: part of its HR pixels are only feathered.
func (c *tileCache) commitTile(g *grid, t placed) {
	xa, xb := g.solid(t.x, g.Wp)
	ya, yb := g.solid(t.y, g.Hp)
	for by := 0; by < g.nby; by++ {
		if !blockIn(by, ya, yb, g.H) {
			continue
		}
		for bx := 0; bx < g.nbx; bx++ {
			if !blockIn(bx, xa, xb, g.W) {
				continue
			}
			c.ref[by*g.nbx+bx] = c.bm[by*g.nbx+bx]
			x0, x1 := bx*blockSize, min(bx*blockSize+blockSize, g.W)
			for y := by * blockSize; y < min(by*blockSize+blockSize, g.H); y++ {
				copy(c.refLuma[y*g.W+x0:y*g.W+x1], c.luma[y*g.W+x0:y*g.W+x1])
			}
		}
	}
	c.featherRef(g, t)
}

// featherRef moves the correction's reference (refPix) under a tile's
// footprint by the tile's blend weight: the kept HR pixels there are now
// w*new + (1-w)*old, and the correction adds the bicubic LR change since
// refPix. With refPix left at the old input in the feathered ring (whose
// blocks are not committed), that change was added on top of the part the
// tile had already blended in: new + w*(new-old), a halo that trailed
// behind moving objects.
func (c *tileCache) featherRef(g *grid, t placed) {
	s := g.scale
	wx := g.wfree[b2i(t.x == 0)][b2i(t.x+g.T >= g.Wp)]
	wy := g.wfree[b2i(t.y == 0)][b2i(t.y+g.T >= g.Hp)]
	fx, fy := t.x-g.P, t.y-g.P // the tile's origin in frame coordinates
	x0, x1 := max(0, fx), min(g.W, fx+g.T)
	y0, y1 := max(0, fy), min(g.H, fy+g.T)
	for y := y0; y < y1; y++ {
		a := wy[(y-fy)*s+s/2] // at the LR pixel's centre
		if a == 0 {
			continue
		}
		ref, cur := c.refPix[(y*g.W+x0)*3:(y*g.W+x1)*3], c.cur[(y*g.W+x0)*3:(y*g.W+x1)*3]
		for x := x0; x < x1; x++ {
			w := a * wx[(x-fx)*s+s/2]
			i := (x - x0) * 3
			switch {
			case w >= 1:
				ref[i], ref[i+1], ref[i+2] = cur[i], cur[i+1], cur[i+2]
			case w > 0:
				for k := i; k < i+3; k++ {
					ref[k] = byte(w*float32(cur[k]) + (1-w)*float32(ref[k]) + 0.5)
				}
			}
		}
	}
}

// markStale makes the blocks under a grid tile that was filled without the
// model (late) count as changed on the next frame, so they run then.
func (c *tileCache) markStale(g *grid, t placed) {
	if !c.on || !c.valid {
		return
	}
	x0, x1 := max(t.x-g.P, 0)/blockSize, min((t.x-g.P+g.T+blockSize-1)/blockSize, g.nbx)
	y0, y1 := max(t.y-g.P, 0)/blockSize, min((t.y-g.P+g.T+blockSize-1)/blockSize, g.nby)
	for by := y0; by < y1; by++ {
		for bx := x0; bx < x1; bx++ {
			c.ref[by*g.nbx+bx] = -1e4 // any luma is far from it
		}
	}
}
