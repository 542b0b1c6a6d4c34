package sr

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/danstream/danstream/frame"
)

func clone(f frame.Frame) frame.Frame {
	g := f
	g.Pix = append([]byte(nil), f.Pix...)
	return g
}

// noisy adds Gaussian noise of the given sigma (levels), like a camera sensor.
func noisy(f frame.Frame, sigma float64, seed int64) frame.Frame {
	g := clone(f)
	r := rand.New(rand.NewSource(seed))
	for i, v := range g.Pix {
		g.Pix[i] = byte(min(255, max(0, int(float64(v)+r.NormFloat64()*sigma+0.5))))
	}
	return g
}

// paint fills a rectangle with a colour (an object appearing).
func paint(f frame.Frame, x0, y0, w, h int, c byte) frame.Frame {
	g := clone(f)
	for y := y0; y < y0+h; y++ {
		for x := x0; x < x0+w; x++ {
			copy(g.Pix[(y*f.W+x)*3:], []byte{c, 255 - c, c / 2})
		}
	}
	return g
}

// tilesReading counts the tiles whose input includes LR pixel (x, y).
func tilesReading(u *ONNXUpscaler, x, y int) int {
	g := u.g
	n := 0
	for _, ty := range g.ys {
		for _, tx := range g.xs {
			if x >= tx-g.P && x < tx-g.P+g.T && y >= ty-g.P && y < ty-g.P+g.T {
				n++
			}
		}
	}
	return n
}

func TestCache_UnchangedFrameReusesTilesAndMatchesUncached(t *testing.T) {
	on := load(t, convX2, ModelOptions{Cache: true, CacheTuning: CacheOptions{RefreshFrames: 1000}})
	off := load(t, convX2, ModelOptions{Cache: false})
	f := texture(200, 120, 1)
	first := upscale(t, on, f)
	if m := on.Metrics().Last; m.Inferred != m.Tiles || m.FullReason != "first frame" {
		t.Fatalf("first frame: %+v", m)
	}
	second := upscale(t, on, f)
	m := on.Metrics().Last
	if m.Inferred != 1 || m.Reused != m.Tiles-1 { // 1 = the round-robin refresh
		t.Errorf("unchanged frame: inferred %d reused %d of %d", m.Inferred, m.Reused, m.Tiles)
	}
	ref := upscale(t, off, f)
	if !bytes.Equal(second.Pix, ref.Pix) || !bytes.Equal(first.Pix, ref.Pix) {
		t.Errorf("cached output differs from uncached: max diff %d", maxAbsDiff(second.Pix, ref.Pix))
	}
}

func TestCache_ChangedRegionIsReinferred(t *testing.T) {
	on := load(t, convX2, ModelOptions{Cache: true, CacheTuning: CacheOptions{RefreshFrames: 1000}})
	off := load(t, convX2, ModelOptions{Cache: false})
	f := texture(200, 120, 1)
	upscale(t, on, f)
	for _, tc := range []struct {
		name       string
		x, y, w, h int
	}{
		{"inside one tile", 12, 12, 6, 6},
		{"in an overlap band", 22, 60, 4, 4}, // canvas x 26..30 lies in tiles 0 and 1
		{"at the frame corner", 196, 116, 4, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upscale(t, on, f) // back to the reference picture
			g := paint(f, tc.x, tc.y, tc.w, tc.h, 250)
			got := upscale(t, on, g)
			m := on.Metrics().Last
			want := 0
			for _, c := range [][2]int{{tc.x, tc.y}, {tc.x + tc.w - 1, tc.y + tc.h - 1}} {
				want = max(want, tilesReading(on, c[0], c[1]))
			}
			// Every tile reading the change, plus at most one round-robin refresh.
			if m.Inferred < want || m.Inferred > want+1+1 {
				t.Errorf("inferred %d tiles, want the %d that read the change (+1 refresh)", m.Inferred, want)
			}
			ref := upscale(t, off, g)
			if !bytes.Equal(got.Pix, ref.Pix) {
				t.Errorf("cached output differs from uncached after a change: max diff %d", maxAbsDiff(got.Pix, ref.Pix))
			}
		})
	}
}

func TestCache_SensorNoiseAloneDoesNotTriggerInference(t *testing.T) {
	on := load(t, convX2, ModelOptions{Cache: true, CacheTuning: CacheOptions{RefreshFrames: 1000}})
	base := texture(200, 120, 1)
	upscale(t, on, noisy(base, 3, 0))
	for i := int64(1); i <= 5; i++ {
		upscale(t, on, noisy(base, 3, i))
		if m := on.Metrics().Last; m.Inferred > 1 {
			t.Errorf("noise frame %d (sigma 3): %d tiles re-inferred", i, m.Inferred)
		}
	}
}

func TestCache_FullRefreshOnResetSceneChangeAndResize(t *testing.T) {
	on := load(t, convX2, ModelOptions{Cache: true})
	f := texture(120, 80, 1)
	upscale(t, on, f)
	r := clone(f)
	r.Reset = true
	upscale(t, on, r)
	if m := on.Metrics().Last; m.Inferred != m.Tiles || m.FullReason != "reset" {
		t.Errorf("reset: %+v", m)
	}
	upscale(t, on, texture(120, 80, 99)) // a different picture everywhere
	if m := on.Metrics().Last; m.Inferred != m.Tiles || m.FullReason != "scene change" {
		t.Errorf("scene change: %+v", m)
	}
	upscale(t, on, texture(90, 50, 1))
	if m := on.Metrics().Last; m.Inferred != m.Tiles || m.FullReason != "size change" {
		t.Errorf("size change: %+v", m)
	}
}

func TestCache_EveryTileRefreshedWithinRefreshFrames(t *testing.T) {
	const N = 5
	on := load(t, convX2, ModelOptions{Cache: true, CacheTuning: CacheOptions{RefreshFrames: N}})
	f := texture(200, 120, 1)
	upscale(t, on, f)
	nt := on.g.numTiles()
	seen := make([]bool, nt)
	for i := 0; i < N; i++ {
		upscale(t, on, f)
		for t, m := range on.mark {
			seen[t] = seen[t] || m
		}
	}
	for i, s := range seen {
		if !s {
			t.Errorf("tile %d of %d not refreshed within %d frames", i, nt, N)
		}
	}
	m := on.Metrics()
	if m.Frames != N+1 || m.TilesInferred+m.TilesReused != uint64((N+1)*nt) || m.HitRate() <= 0 {
		t.Errorf("metrics %+v", m)
	}
}
