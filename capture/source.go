// Package capture turns cameras, files and the built-in synthetic camera into
// a stream of frame.Frame values. GoCV (cgo) stays inside this package.
package capture

import (
	"context"

	"github.com/danstream/danstream/frame"
)

// Source delivers the newest captured frame. Capture runs on its own goroutine;
// when the consumer is slower than the camera the newest frame wins and the
// stale ones are dropped and counted, never queued without bound.
type Source interface {
	// Next blocks until a frame newer than the last one returned is available,
	// the context ends, or the source fails for good.
	Next(ctx context.Context) (frame.Frame, error)
	Info() Info
	Stats() Stats
	Close() error
}

// Info describes a source once it is open.
type Info struct {
	URL    string  // what the user configured (credentials are redacted)
	Width  int     // frame size delivered
	Height int
	FPS    float64 // nominal rate reported by the device or file, 0 if unknown
}

// Stats counts what happened to captured frames.
type Stats struct {
	Captured uint64 // frames read from the device
	Dropped  uint64 // frames overwritten before the consumer took them
}
