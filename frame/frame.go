// Package frame defines the picture that flows one way through danstream:
// capture -> sr -> encode. It is plain Go memory (no cgo), so every stage may
// hold or share it without a Close; stages that need C memory (GoCV Mats, ONNX
// tensors) convert at their own boundary and free what they made.
package frame

import (
	"fmt"
	"time"
)

// Frame is one packed BGR24 picture (OpenCV's byte order), stride W*3.
// A Frame is immutable once published: a stage that changes pixels makes a new one.
type Frame struct {
	Pix      []byte    // B,G,R bytes, len == W*H*3
	W, H     int       // size in pixels
	Seq      uint64    // capture sequence number, increasing per source
	Captured time.Time // when the source delivered it (glass-to-glass latency starts here)
	// Reset marks the first frame after a source (re)connect or a scene cut:
	// caches keyed on earlier frames must not be reused.
	Reset bool
}

// New allocates a black frame of the given size.
func New(w, h int) Frame {
	return Frame{Pix: make([]byte, w*h*3), W: w, H: h}
}

// Validate reports a frame whose buffer does not match its size.
func (f Frame) Validate() error {
	if f.W <= 0 || f.H <= 0 {
		return fmt.Errorf("frame: invalid size %dx%d", f.W, f.H)
	}
	if len(f.Pix) != f.W*f.H*3 {
		return fmt.Errorf("frame: %dx%d needs %d bytes, has %d", f.W, f.H, f.W*f.H*3, len(f.Pix))
	}
	return nil
}

// Empty reports whether the frame carries no picture.
func (f Frame) Empty() bool { return len(f.Pix) == 0 }
