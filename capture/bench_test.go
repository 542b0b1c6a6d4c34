package capture

import (
	"fmt"
	"testing"
)

// BenchmarkSyntheticRender measures one synthetic frame (copy background,
// draw movers, add noise): the synthetic camera's share of glass-to-glass time.
func BenchmarkSyntheticRender(b *testing.B) {
	for _, sz := range [][2]int{{320, 180}, {1280, 720}} {
		b.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(b *testing.B) {
			sc := newScene(sz[0], sz[1], 1)
			b.SetBytes(int64(sz[0] * sz[1] * 3))
			for i := 0; b.Loop(); i++ {
				sc.render(uint64(i), float64(i)/25)
			}
		})
	}
}
