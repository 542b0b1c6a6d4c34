// Package offline runs the engine over files rather than live streams: enhancing
// an image or a video, scoring a model against bicubic on LR/HR folders, and
// measuring throughput and the tile cache on a video. cmd/danstream's enhance,
// eval and bench commands are thin flag parsers over it.
package offline

import (
	"errors"
	"fmt"

	"github.com/danstream/danstream/sr"
)

// ErrUsage marks a mistake in what the caller asked for (a command line exits 2 on it).
var ErrUsage = errors.New("usage")

// Engine names the model and runtime settings every offline run shares.
type Engine struct {
	Model    string // ONNX file, or sr.ModelClean / sr.ModelReal; empty: sr.SelectModel for a file (clean, else real)
	Scale    int    // wanted scale; 0: 4 for the bundled model, or the model's own
	Provider string // cpu (default), cuda, tensorrt, auto
	ORTLib   string // libonnxruntime.so.1; empty: sr.EnvORTLib, then third_party/onnxruntime
	Threads  int    // intra-op threads; 0: one per core
	Batch    int    // tiles per session run; 0: the provider's default
}

// Load opens the model the engine names, checking it has the asked scale.
func (e Engine) Load(cache bool) (*sr.ONNXUpscaler, error) {
	if err := sr.InitRuntime(e.ORTLib); err != nil {
		return nil, err
	}
	scale := e.Scale
	if scale == 0 {
		scale = 4
	}
	// Images and files: the clean file unless --model real (or a path) says otherwise.
	path, err := sr.SelectModel(e.Model, scale, false)
	if err != nil {
		return nil, fmt.Errorf("%w (pass --model FILE, real or clean)", err)
	}
	u, err := sr.LoadModel(path, sr.ModelOptions{
		Provider: e.Provider, Threads: e.Threads, BatchSize: e.Batch, LibPath: e.ORTLib, Cache: cache,
	})
	if err != nil {
		return nil, err
	}
	if e.Scale != 0 && u.Scale() != e.Scale {
		u.Close()
		return nil, fmt.Errorf("%w: model %s is x%d, not x%d", ErrUsage, path, u.Scale(), e.Scale)
	}
	return u, nil
}
