package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/danstream/danstream/sr/offline"
)

func init() {
	commands["eval"] = command{"PSNR-Y / SSIM-Y of a model beside bicubic on LR/HR folders", runEval}
}

func runEval(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: danstream eval [--model M] --scale N --lr DIR --hr DIR [--lr-resize area] [--json]\n\n"+
			"Pairs files by name (001L.PNG ~ 001H.PNG, x_LR.png ~ x_HR.png), crops scale pixels at each border,\n"+
			"and reports PSNR/SSIM on the BT.601 Y channel for the model and for bicubic.")
		fs.PrintDefaults()
	}
	o := offline.EvalOptions{Log: os.Stderr}
	registerEngine(fs, &o.Engine)
	fs.StringVar(&o.LRDir, "lr", "", "folder of LR images (or of LR-camera images at HR size, with --lr-resize)")
	fs.StringVar(&o.HRDir, "hr", "", "folder of HR images")
	fs.StringVar(&o.LRResize, "lr-resize", "", `"area": make the LR input by area-downscaling the LR image by scale (City100)`)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.IntVar(&o.Limit, "limit", 0, "evaluate at most this many pairs (0: all)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if o.LRDir == "" || o.HRDir == "" {
		fs.Usage()
		return fmt.Errorf("%w: --lr and --hr are required", errUsage)
	}
	o.Verbose = !*asJSON
	rep, err := offline.Eval(ctx, o)
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
