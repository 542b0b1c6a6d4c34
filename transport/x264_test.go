package transport

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
)

// noisyPicture is a w x h I420 picture of moving noise: hard to compress, so
// rate control, not the content, decides the size.
func noisyPicture(rng *rand.Rand, w, h int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = byte(rng.IntN(256))
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = byte(96+rng.IntN(64)), byte(96+rng.IntN(64))
	}
	return img
}

// TestH264HoldsTheBitrateAtTheStreamsRateAndDeclaresIt: x264 runs at the
// rate its input keeps, so pictures at 15 fps and then at 10 fps both come out
// at the configured bitrate (not bitrate x fps/25), and the SPS declares the
// rate being kept (it declared a fixed 25 fps before).
func TestH264HoldsTheBitrateAtTheStreamsRateAndDeclaresIt(t *testing.T) {
	const w, h, kbps = 320, 240, 600
	enc, err := newX264Encoder(w, h, EncoderOptions{BitrateKbps: kbps, KeyframeInterval: 30}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	clock := time.Unix(1_700_000_000, 0)
	enc.now = func() time.Time { return clock }
	rng := rand.New(rand.NewPCG(1, 2))
	for _, fps := range []int{15, 10} {
		const settle, measure = 4, 6 // seconds
		var bytes int
		var sps []byte
		for i := 0; i < (settle+measure)*fps; i++ {
			data, key, err := enc.Encode(noisyPicture(rng, w, h), false)
			if err != nil {
				t.Fatal(err)
			}
			if i >= settle*fps {
				bytes += len(data)
			}
			if key {
				au, err := h264.AnnexBUnmarshal(data)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range au {
					if h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
						sps = n
					}
				}
			}
			clock = clock.Add(time.Second / time.Duration(fps))
		}
		got := float64(bytes) * 8 / measure / 1000
		var s h264.SPS
		if err := s.Unmarshal(sps); err != nil {
			t.Fatalf("SPS: %v", err)
		}
		t.Logf("%d fps: %.0f kbit/s for %d configured; SPS declares %.1f fps", fps, got, kbps, s.FPS())
		if got < 0.85*kbps || got > 1.15*kbps {
			t.Errorf("%d fps: %.0f kbit/s, want %d +- 15%%", fps, got, kbps)
		}
		if math.Abs(s.FPS()/float64(fps)-1) > 0.1 {
			t.Errorf("%d fps: the SPS declares %.2f fps", fps, s.FPS())
		}
		if s.VUI == nil || !s.VUI.ColourDescriptionPresentFlag || s.VUI.MatrixCoefficients != 6 {
			t.Errorf("SPS does not name BT.601 (matrix 6): %+v", s.VUI)
		}
	}
}
