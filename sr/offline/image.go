package offline

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"

	"github.com/danstream/danstream/frame"
)

// IsImage says whether a path names a still image (png, jpg) rather than a video.
func IsImage(p string) bool {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// ReadImage decodes a png/jpg file into a BGR frame.
func ReadImage(path string) (frame.Frame, error) {
	fh, err := os.Open(path)
	if err != nil {
		return frame.Frame{}, err
	}
	defer fh.Close()
	img, _, err := image.Decode(bufio.NewReader(fh))
	if err != nil {
		return frame.Frame{}, fmt.Errorf("image %s: %w", path, err)
	}
	b := img.Bounds()
	f := frame.New(b.Dx(), b.Dy())
	for y := 0; y < f.H; y++ {
		for x := 0; x < f.W; x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			p := f.Pix[(y*f.W+x)*3:]
			p[0], p[1], p[2] = byte(bl>>8), byte(g>>8), byte(r>>8)
		}
	}
	return f, nil
}

// WriteImage encodes a BGR frame as png or jpg, by the file's extension.
func WriteImage(path string, f frame.Frame) error {
	img := image.NewNRGBA(image.Rect(0, 0, f.W, f.H))
	for i := 0; i < f.W*f.H; i++ {
		img.Pix[i*4], img.Pix[i*4+1], img.Pix[i*4+2], img.Pix[i*4+3] = f.Pix[i*3+2], f.Pix[i*3+1], f.Pix[i*3], 255
	}
	var buf bytes.Buffer
	var err error
	if ext := strings.ToLower(filepath.Ext(path)); ext == ".jpg" || ext == ".jpeg" {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	} else {
		err = png.Encode(&buf, img)
	}
	if err == nil {
		err = os.WriteFile(path, buf.Bytes(), 0o644)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// CropFrame returns the top-left w x h of a frame's pixels.
func CropFrame(f frame.Frame, w, h int) []byte {
	if f.W == w && f.H == h {
		return f.Pix
	}
	out := make([]byte, w*h*3)
	for y := 0; y < h; y++ {
		copy(out[y*w*3:(y+1)*w*3], f.Pix[y*f.W*3:])
	}
	return out
}
