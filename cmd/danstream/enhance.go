package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/danstream/danstream/sr/offline"
)

func init() {
	commands["enhance"] = command{"enhance an image (png, jpg) or a video (mp4, avi, ...) file", runEnhance}
}

func runEnhance(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("enhance", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: danstream enhance [--model M] [--scale N] [--no-cache] IN OUT\n\nIN/OUT: png or jpg images, or videos (anything ffmpeg reads; OUT .mp4/.mkv/.avi)")
		fs.PrintDefaults()
	}
	o := offline.EnhanceOptions{Log: os.Stderr}
	registerEngine(fs, &o.Engine)
	fs.BoolVar(&o.NoCache, "no-cache", false, "video: run every tile of every frame (no temporal tile cache)")
	fs.BoolVar(&o.Bicubic, "bicubic", false, "use bicubic interpolation instead of the model (for comparison)")
	fs.IntVar(&o.CRF, "crf", 18, "video: x264 quality (lower is better)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return fmt.Errorf("%w: want IN and OUT, got %d arguments", errUsage, len(pos))
	}
	return offline.Enhance(ctx, pos[0], pos[1], o)
}
