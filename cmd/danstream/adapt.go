package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/danstream/danstream/adapt"
)

func init() {
	commands["adapt"] = command{"fine-tune a stream's model on its collected sub/main pairs; swap it in if validation improves", runAdapt}
}

func runAdapt(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("adapt", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: danstream adapt --stream NAME (--api URL | --pairs DIR [--model FILE]) [flags]\n\n"+
			"With --api, the stream's pairs folder and running model come from the server's /api/streams\n"+
			"(a stream configured with main: collects pairs while it serves). The pairs used are\n"+
			"snapshotted (hard links) into the output folder, so collection can go on meanwhile.\n"+
			"Holds out the newest --val of the pairs, fine-tunes the LoRA modules, the last group and the\n"+
			"frequency branch of --init (python3 -m sr.dan.train, mode adapt, data kind pairs_dir) for\n"+
			"--budget-min minutes, exports ONNX, and compares validation PSNR-Y (this engine, 64-px tiles)\n"+
			"with --model. Only a model that improves by more than --min-gain dB is swapped into the running\n"+
			"stream (POST --api/api/streams/NAME/model); anything else leaves the stream untouched.")
		fs.PrintDefaults()
	}
	o := adapt.RunOptions{Log: os.Stderr}
	registerEngine(fs, &o.Engine)
	fs.StringVar(&o.Stream, "stream", "", "stream name (names the model, and the stream to swap)")
	fs.StringVar(&o.PairsDir, "pairs", "", "folder of collected pairs (manifest.json)")
	fs.StringVar(&o.Init, "init", "", "checkpoint to adapt (default the bundled sr/models/dan_lite_x{scale}_real.pth, else dan_lite_x{scale}_pretrain.pth)")
	fs.StringVar(&o.Out, "out", "", "output folder (default <pairs>/../adapted-<stream>-<time>)")
	fs.Float64Var(&o.BudgetMin, "budget-min", 10, "training wall-time budget, minutes")
	fs.Float64Var(&o.Val, "val", 0.2, "fraction of the pairs (the newest) held out for validation")
	fs.Float64Var(&o.MinGain, "min-gain", 0, "swap only if validation PSNR-Y improves by more than this (dB)")
	fs.StringVar(&o.Python, "python", "/usr/bin/python3", "Python with torch")
	fs.StringVar(&o.API, "api", "", "danstream server to swap the model into, e.g. http://127.0.0.1:8080 (empty: no swap)")
	fs.StringVar(&o.Token, "token", os.Getenv("DANSTREAM_TOKEN"), "admin bearer token for --api (default $DANSTREAM_TOKEN)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if o.Stream == "" || (o.PairsDir == "" && o.API == "") {
		fs.Usage()
		return fmt.Errorf("%w: --stream and one of --pairs or --api are required", errUsage)
	}
	rep, err := adapt.Run(ctx, o)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Println(string(b))
	return nil
}
