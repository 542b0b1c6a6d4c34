package rtsptest_test

import (
	"context"
	"testing"
	"time"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/internal/rtsptest"
)

func TestTestCameraPublishesMainAndADegradedHalfSizeSub(t *testing.T) {
	s := rtsptest.Start(t)
	cam := rtsptest.PublishTestCamera(t, s, rtsptest.CameraOptions{})
	for _, c := range []struct {
		url  string
		w, h int
	}{{cam.MainURL, 768, 576}, {cam.SubURL, 384, 288}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		src, err := capture.Open(ctx, c.url, capture.Options{})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			f, err := src.Next(ctx)
			if err != nil {
				t.Fatalf("%s: frame %d: %v", c.url, i, err)
			}
			if f.W != c.w || f.H != c.h {
				t.Fatalf("%s: %dx%d, want %dx%d", c.url, f.W, f.H, c.w, c.h)
			}
		}
		src.Close()
		cancel()
	}
}
