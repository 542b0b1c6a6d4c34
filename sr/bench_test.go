package sr

import (
	"context"
	"testing"
)

// Frame size of the vtest.avi x2 task (768x576 HR, 384x288 LR); tile 64,
// overlap 8 as the DAN models declare.
const benchW, benchH = 384, 288

// BenchmarkTileBlend measures the engine's own work on a frame where every tile
// runs: LR tile extraction (BGR bytes -> planar float) and feathered blending
// of all HR tiles back into BGR bytes. No inference.
func BenchmarkTileBlend(b *testing.B) {
	for _, s := range []int{2, 4} {
		b.Run(map[int]string{2: "x2", 4: "x4"}[s], func(b *testing.B) {
			g := newGrid(benchW, benchH, 64, 8, s)
			f := texture(benchW, benchH, 1)
			nt := g.numTiles()
			in := make([]float32, 3*64*64)
			hr := make([][]float32, g.ring*len(g.xs))
			for i := range hr {
				hr[i] = make([]float32, 3*64*s*64*s)
				for k := range hr[i] {
					hr[i][k] = float32(k%255) / 255
				}
			}
			out := make([]byte, benchW*s*benchH*s*3)
			acc := make([]float32, 3*benchW*s)
			b.SetBytes(int64(len(out)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for t := 0; t < nt; t++ {
					g.fillTile(in, f.Pix, g.xs[t%len(g.xs)], g.ys[t/len(g.xs)])
				}
				g.blend(out, hr, -1, acc)
			}
		})
	}
}

// BenchmarkChangeDetection measures deciding what to re-infer: block means of
// the LR frame, comparison with the cached references, tile placement.
func BenchmarkChangeDetection(b *testing.B) {
	g := newGrid(benchW, benchH, 64, 8, 2)
	c := tileCache{on: true, opts: CacheOptions{}.withDefaults()}
	f := noisy(texture(benchW, benchH, 1), 2, 1)
	c.plan(g, f.Pix, false)
	c.commitFull()
	f2 := noisy(paint(f, 100, 100, 30, 60, 200), 2, 2)
	b.SetBytes(int64(len(f.Pix)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.plan(g, f2.Pix, false)
	}
}

// BenchmarkFullFrame runs the whole Upscale on the small conv test model with
// the cache off (every tile) and on (a static noisy scene with a moving box).
// The bundled DAN models are measured by `danstream bench`.
func BenchmarkFullFrame(b *testing.B) {
	base := texture(benchW, benchH, 1)
	frames := make([][]byte, 8)
	for i := range frames {
		frames[i] = noisy(paint(base, 20+i*30, 100, 30, 60, 200), 2, int64(i)).Pix
	}
	for _, tc := range []struct {
		name  string
		cache bool
	}{{"cache-off", false}, {"cache-on", true}} {
		b.Run(tc.name, func(b *testing.B) {
			u := load(b, convX2, ModelOptions{Cache: tc.cache})
			f := clone(base)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f.Pix = frames[i%len(frames)]
				if _, err := u.Upscale(ctx, f); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			m := u.Metrics()
			b.ReportMetric(m.TilesInferredPerFrame(), "tiles/frame")
			b.ReportMetric(m.OverheadMs/float64(m.Frames), "overhead-ms/frame")
			b.ReportMetric(m.InferMs/float64(m.Frames), "infer-ms/frame")
		})
	}
}
