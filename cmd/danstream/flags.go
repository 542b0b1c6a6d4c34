package main

import (
	"flag"
	"fmt"

	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/sr/offline"
)

// registerEngine adds the model/runtime flags every offline command shares.
func registerEngine(fs *flag.FlagSet, e *offline.Engine) {
	fs.StringVar(&e.Model, "model", "", "ONNX model file, or a bundled kind: clean (sr/models/dan_lite_x{scale}.onnx, the default) or real (dan_lite_x{scale}_real.onnx, trained on camera-like degradations); the default falls back to real where no clean file of the scale is bundled")
	fs.IntVar(&e.Scale, "scale", 0, "upscale factor; picks the bundled model (default 4, or the model's own)")
	fs.StringVar(&e.Provider, "provider", "cpu", "execution provider: cpu, cuda, tensorrt, auto")
	fs.IntVar(&e.Threads, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fs.IntVar(&e.Batch, "batch", 0, "tiles per session run (0: 4 on cpu, 16 on gpu)")
	fs.StringVar(&e.ORTLib, "ort-lib", "", "path to libonnxruntime.so.1 (default: "+sr.EnvORTLib+", then third_party/onnxruntime)")
}

// parseInterleaved parses flags that may come before or after positional args.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
