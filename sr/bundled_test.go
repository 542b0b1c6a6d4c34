package sr

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/internal/testdep"
)

// TestBundledModels_FollowContractAndTileConsistently loads each bundled DAN
// model that is present (the defaults and the smaller _fast files), and reports
// how much its output depends on where the tile grid falls: the frame is
// upscaled as is and shifted by half a tile stride, and the common part
// compared. DAN's FFT is global per tile, so this (not a whole-image run, which
// a fixed-tile model cannot do) is its seam figure.
func TestBundledModels_FollowContractAndTileConsistently(t *testing.T) {
	type bundled struct {
		file string
		s    int
	}
	files := []bundled{{"dan_lite_x2.onnx", 2}, {"dan_lite_x2_fast.onnx", 2}, {"dan_lite_x4.onnx", 4}, {"dan_lite_x4_fast.onnx", 4}}
	// The realistic files (x2, x3, x4), each as it is bundled.
	if dir, _ := FindAsset(filepath.Join("sr", "models", "dan_lite_x2.onnx")); dir != "" {
		reals, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "dan_lite_x*_real.onnx"))
		for _, p := range reals {
			var s int
			if _, err := fmt.Sscanf(filepath.Base(p), "dan_lite_x%d_real.onnx", &s); err == nil {
				files = append(files, bundled{filepath.Base(p), s})
			}
		}
	}
	for _, tc := range files {
		s := tc.s
		t.Run(tc.file, func(t *testing.T) {
			path, _ := FindAsset(filepath.Join("sr", "models", tc.file))
			if path == "" {
				testdep.Missing(t, "bundled model %s not present", tc.file)
			}
			u := load(t, path, ModelOptions{})
			if u.Scale() != s {
				t.Fatalf("%s is x%d", path, u.Scale())
			}
			info := u.Info()
			f := texture(200, 150, 3)
			d := (info.Tile - info.Overlap) / 2
			shifted := frame.New(f.W-d, f.H-d)
			for y := 0; y < shifted.H; y++ {
				copy(shifted.Pix[y*shifted.W*3:(y+1)*shifted.W*3], f.Pix[((y+d)*f.W+d)*3:])
			}
			a, b := upscale(t, u, f), upscale(t, u, shifted)
			// Compare away from the frame borders, where padding differs.
			m := 2 * info.Overlap * s
			var se float64
			n := 0
			for y := m; y < b.H-m; y++ {
				for x := m; x < b.W-m; x++ {
					for c := 0; c < 3; c++ {
						v := float64(a.Pix[((y+d*s)*a.W+x+d*s)*3+c]) - float64(b.Pix[(y*b.W+x)*3+c])
						se += v * v
						n++
					}
				}
			}
			p := 10 * math.Log10(255*255/(se/float64(n)+1e-12))
			t.Logf("%s (tile %d, overlap %d): output with the tile grid shifted by %d px agrees to %.1f dB PSNR", info.Name, info.Tile, info.Overlap, d, p)
			if n == 0 || p < 30 {
				t.Errorf("tiling changes the output too much: %.1f dB", p)
			}
		})
	}
}
