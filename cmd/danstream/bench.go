package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/danstream/danstream/sr/offline"
)

func init() {
	commands["bench"] = command{"throughput and tile-cache figures on a video (cache on vs off)", runBench}
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: danstream bench --input VIDEO [--scale N] [--frames K] [--model M]\n"+
			"       danstream bench --cameras N [--source synthetic:WxH@FPS] [--model M] [--threads T] [--duration D]\n\n"+
			"Frames of VIDEO are the HR truth; the LR input is each frame area-downscaled by the scale.\n"+
			"Runs the engine with the tile cache off and on over the same frames, interleaved, and prints\n"+
			"frames per second (engine only, decoding excluded), tiles inferred per frame, cache hit rate and\n"+
			"PSNR-Y against HR (border = scale).")
		fs.PrintDefaults()
	}
	o := offline.BenchOptions{Progress: os.Stderr}
	registerEngine(fs, &o.Engine)
	fs.StringVar(&o.Input, "input", "", "video file (its frames are the HR reference)")
	fs.IntVar(&o.Frames, "frames", 300, "frames to process (0: all)")
	fs.Float64Var(&o.Cache.Threshold, "threshold", 0, "cache: change of a 4x4 block's mean luma counted as motion (0: default 8)")
	fs.Float64Var(&o.Cache.TextureThreshold, "texture-threshold", 0, "cache: mean absolute pixel luma change in a block counted as motion (0: default 12)")
	fs.Float64Var(&o.Cache.Near, "near", 0, "cache: share of the thresholds above which a block next to a changed one counts as changed (0: default 0.5; 1: off)")
	fs.IntVar(&o.Cache.RefreshFrames, "refresh", 0, "cache: re-infer every part of the frame at least every N frames (0: default 120)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var co offline.CamerasOptions
	fs.IntVar(&co.Cameras, "cameras", 0, "N cameras at once: one ONNX Runtime session per stream vs the shared engine, side by side (needs --source synthetic:...)")
	fs.StringVar(&co.Source, "source", "synthetic:320x180@25", "--cameras: the synthetic camera every camera is (each its own seed)")
	fs.DurationVar(&co.Duration, "duration", 20*time.Second, "--cameras: time per design and round")
	fs.IntVar(&co.Rounds, "rounds", 2, "--cameras: alternations of the two designs")
	fs.BoolVar(&co.Cache, "cache", true, "--cameras: tile cache on")
	fs.DurationVar(&co.Deadline, "deadline", 0, "--cameras: the shared engine's per-frame deadline (0: none)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if co.Cameras > 0 {
		co.Model, co.Threads, co.Progress = o.Engine.Model, o.Engine.Threads, os.Stderr
		if co.Model == "" {
			co.Model = "sr/models/dan_lite_x4_fast.onnx"
		}
		rep, err := offline.Cameras(ctx, co)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		return rep.WriteText(os.Stdout)
	}
	if o.Input == "" {
		fs.Usage()
		return fmt.Errorf("%w: --input is required", errUsage)
	}
	rep, err := offline.Bench(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(os.Stdout)
}
