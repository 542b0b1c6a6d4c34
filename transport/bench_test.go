package transport

import (
	"fmt"
	"testing"
)

// BenchmarkEncode measures one codec's encode of a moving 16:9 picture, and
// the BGR->I420 conversion shared by all codecs.
func BenchmarkEncode(b *testing.B) {
	for _, size := range [][2]int{{640, 360}, {1280, 720}} {
		w, h := size[0], size[1]
		frames := make([][]byte, 8)
		for i := range frames {
			frames[i] = testFrame(w, h, i*5).Pix
		}
		b.Run(fmt.Sprintf("convert/%dx%d", w, h), func(b *testing.B) {
			img := bgrToI420(nil, frames[0], w, h)
			for i := 0; i < b.N; i++ {
				img = bgrToI420(img, frames[i%len(frames)], w, h)
			}
		})
		for _, c := range SupportedCodecs() {
			b.Run(fmt.Sprintf("%s/%dx%d", c, w, h), func(b *testing.B) {
				enc, err := newEncoder(c, w, h, EncoderOptions{}.withDefaults())
				if err != nil {
					b.Fatal(err)
				}
				defer enc.Close()
				img := bgrToI420(nil, frames[0], w, h)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					img = bgrToI420(img, frames[i%len(frames)], w, h)
					if _, _, err := enc.Encode(img, false); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
