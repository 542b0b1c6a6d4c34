// Package sr is the super-resolution stage: the Upscaler interface, the ONNX
// Runtime implementation that serves the project's DAN models, and a bicubic
// baseline. The DAN model code (PyTorch: architecture, training, export) lives
// beside it in sr/dan.
package sr

import (
	"context"

	"github.com/danstream/danstream/frame"
)

// Upscaler enlarges a frame by a fixed integer scale.
type Upscaler interface {
	// Upscale returns a new frame of size (W*Scale, H*Scale). The input is not modified.
	Upscale(ctx context.Context, in frame.Frame) (frame.Frame, error)
	Scale() int
	Name() string // e.g. "dan-lite-x4 (onnxruntime cpu)" or "bicubic"
	Close() error
}
