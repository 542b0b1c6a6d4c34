// Package capture turns cameras, files and the built-in synthetic camera into
// a stream of frame.Frame values. GoCV (cgo) stays inside this package.
package capture

import (
	"context"
	"errors"

	"github.com/danstream/danstream/frame"
)

// Source delivers the newest captured frame. Capture runs on its own goroutine;
// when the consumer is slower than the camera the newest frame wins and the
// stale ones are dropped and counted, never queued without bound.
type Source interface {
	// Next blocks until a frame newer than the last one returned is available,
	// the context ends, or the source fails for good (io.EOF at the end of a
	// file that does not loop, ErrClosed after Close).
	Next(ctx context.Context) (frame.Frame, error)
	Info() Info
	Stats() Stats
	Close() error
}

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("capture: source closed")

// Info describes a source once it is open.
type Info struct {
	URL    string // what the user configured (credentials are redacted)
	Kind   string // "rtsp", "file", "webcam" or "synthetic"
	Width  int    // frame size delivered
	Height int
	FPS    float64 // nominal rate reported by the device or file, 0 if unknown
}

// Stats counts what happened to captured frames.
type Stats struct {
	Captured   uint64 // frames published (read from the device, after the FPS cap)
	Dropped    uint64 // frames overwritten before the consumer took them
	Delivered  uint64 // frames returned by Next
	Reconnects uint64 // successful re-opens after a live source failed (or a file looped)
	LastError  string // most recent capture failure, "" if none (URL redacted)
}
