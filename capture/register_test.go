package capture

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/internal/testdep"
)

// crop cuts a w x h window at (x, y) out of f.
func crop(f frame.Frame, x, y, w, h int) frame.Frame {
	out := frame.Frame{Pix: make([]byte, w*h*3), W: w, H: h}
	for r := 0; r < h; r++ {
		copy(out.Pix[r*w*3:(r+1)*w*3], f.Pix[((y+r)*f.W+x)*3:((y+r)*f.W+x+w)*3])
	}
	return out
}

func TestPhaseShiftMeasuresAKnownTranslation(t *testing.T) {
	checkMats(t)
	testdep.VtestAVI(t)
	src, err := Open(ctxT(t, 30*time.Second), vtest, Options{AsFastAsPossible: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := src.Next(ctxT(t, 30*time.Second))
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	a := crop(f, 40, 40, 256, 192)
	for _, c := range []struct {
		name   string
		dx, dy int
	}{
		{"none", 0, 0}, {"right and up", 3, -2}, {"left and down", -5, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			// b's content sits (dx, dy) from a's: b(x, y) = a(x-dx, y-dy).
			b := crop(f, 40-c.dx, 40-c.dy, 256, 192)
			dx, dy, resp, err := PhaseShift(a, b)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(dx-float64(c.dx)) > 0.25 || math.Abs(dy-float64(c.dy)) > 0.25 || resp < 0.3 {
				t.Fatalf("shift (%.2f, %.2f) response %.2f, want (%d, %d) with a clear peak", dx, dy, resp, c.dx, c.dy)
			}
		})
	}
	t.Run("unrelated pictures have a low response", func(t *testing.T) {
		_, _, resp, err := PhaseShift(a, crop(f, 500, 380, 256, 192))
		if err != nil {
			t.Fatal(err)
		}
		if resp > 0.2 {
			t.Fatalf("response %.2f for two different parts of the scene", resp)
		}
	})
	t.Run("sizes differ", func(t *testing.T) {
		if _, _, _, err := PhaseShift(a, crop(f, 0, 0, 128, 96)); err == nil || !strings.Contains(err.Error(), "sizes differ") {
			t.Fatalf("err = %v", err)
		}
	})
}
