package capture

import (
	"fmt"
	"log/slog"
	"time"
)

// DefaultOpenTimeout bounds opening a device or stream when Options.OpenTimeout is 0.
const DefaultOpenTimeout = 10 * time.Second

// Options tune how a source is opened and paced. The zero value is valid.
type Options struct {
	// Width and Height resize every delivered frame; both 0 keeps the native
	// size (for synthetic:, they set the rendered size). Set both or neither.
	Width, Height int
	// FPS caps the delivered rate (frames arriving sooner are skipped, not
	// queued); 0 means the source's own rate.
	FPS float64
	// Loop restarts a file at its end (demos); the first frame of each pass has Reset=true.
	Loop bool
	// OpenTimeout bounds connecting to a camera or opening a file (also used as
	// the read timeout for network streams). 0 means DefaultOpenTimeout.
	OpenTimeout time.Duration
	// AsFastAsPossible reads files without pacing. By default a file plays in
	// real time at its own fps so it behaves like a camera.
	AsFastAsPossible bool
	// Seed makes the synthetic camera's objects and noise reproducible.
	Seed int64
	// Logger receives reconnect and failure messages; nil means slog.Default().
	Logger *slog.Logger
}

// maxDim bounds frame sides; bigger requests are almost certainly typos.
const maxDim = 8192

func (o Options) validate() error {
	if o.Width < 0 || o.Height < 0 || o.Width > maxDim || o.Height > maxDim {
		return fmt.Errorf("capture: invalid size %dx%d (each side 1..%d, or both 0 for native)", o.Width, o.Height, maxDim)
	}
	if (o.Width == 0) != (o.Height == 0) {
		return fmt.Errorf("capture: invalid size %dx%d: set both width and height, or neither", o.Width, o.Height)
	}
	if o.FPS < 0 || o.FPS > 1000 || o.FPS != o.FPS {
		return fmt.Errorf("capture: invalid fps cap %v (want 0 for none, or up to 1000)", o.FPS)
	}
	if o.OpenTimeout < 0 {
		return fmt.Errorf("capture: invalid open timeout %v (want > 0, or 0 for the default %v)", o.OpenTimeout, DefaultOpenTimeout)
	}
	return nil
}

func (o Options) openTimeout() time.Duration {
	if o.OpenTimeout == 0 {
		return DefaultOpenTimeout
	}
	return o.OpenTimeout
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}
