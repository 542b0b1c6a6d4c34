package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/danstream/danstream/adapt"
	"github.com/danstream/danstream/capture"
)

func init() {
	commands["collect"] = command{"collect registered LR/HR pairs from a camera's sub and main streams", runCollect}
}

func runCollect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: danstream collect --sub URL --main URL --pairs DIR --scale N [--max 500] [--count N] [--duration D]\n\n"+
			"Pairs time-aligned frames of the two streams (checked by content), registers main to sub x scale by\n"+
			"phase correlation, rejects motion and failed registration, and keeps at most --max pairs in DIR\n"+
			"(PNG + manifest.json, oldest rotated out). Stops after --count new pairs, --duration, or Ctrl-C.")
		fs.PrintDefaults()
	}
	sub := fs.String("sub", "", "the camera's sub (low-resolution) stream")
	main := fs.String("main", "", "the camera's main (high-resolution) stream")
	dir := fs.String("pairs", "", "dataset folder")
	scale := fs.Int("scale", 0, "the model's scale: HR = sub size x scale")
	maxPairs := fs.Int("max", 500, "pairs kept on disk")
	count := fs.Int("count", 0, "stop after this many new pairs (0: no limit)")
	dur := fs.Duration("duration", 0, "stop after this long (0: no limit)")
	every := fs.Duration("every", 300*time.Millisecond, "least time between stored pairs")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *sub == "" || *main == "" || *dir == "" || *scale == 0 {
		fs.Usage()
		return fmt.Errorf("%w: --sub, --main, --pairs and --scale are required", errUsage)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := capture.Open(octx, *sub, capture.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	m, err := capture.Open(octx, *main, capture.Options{})
	if err != nil {
		return err
	}
	defer m.Close()
	c, err := adapt.NewCollector(s, m, adapt.CollectorOptions{Dir: *dir, Scale: *scale, MaxPairs: *maxPairs, MinInterval: *every})
	if err != nil {
		return err
	}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	if *dur > 0 {
		rctx, rcancel = context.WithTimeout(rctx, *dur)
		defer rcancel()
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			b, _ := json.Marshal(c.Stats())
			fmt.Println(string(b))
			return err
		case <-tick.C:
			if *count > 0 && c.Stats().Stored >= uint64(*count) {
				rcancel()
			}
		}
	}
}
