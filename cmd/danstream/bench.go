package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/sr"
)

func init() {
	commands["bench"] = command{"throughput and tile-cache figures on a video (cache on vs off)", runBench}
}

type benchRun struct {
	Label           string  `json:"label"`
	Frames          int     `json:"frames"`
	FPS             float64 `json:"fps"`
	MsPerFrame      float64 `json:"ms_per_frame"`
	TilesPerFrame   float64 `json:"tiles_inferred_per_frame"`
	TilesInFrame    int     `json:"tiles_in_frame"`
	HitRate         float64 `json:"cache_hit_rate"`
	InferMsFrame    float64 `json:"infer_ms_per_frame"`
	OverheadMsFrame float64 `json:"overhead_ms_per_frame"`
	OverheadPct     float64 `json:"overhead_pct"`
	PSNRY           float64 `json:"psnr_y_vs_hr"`
}

type benchReport struct {
	Input         string     `json:"input"`
	HasHR         bool       `json:"has_hr"` // false for synthetic: (no PSNR vs HR)
	Model         string     `json:"model"`
	Provider      string     `json:"provider"`
	BatchSize     int        `json:"batch_size"`
	Scale         int        `json:"scale"`
	LRSize        string     `json:"lr_size"`
	CPU           string     `json:"cpu"`
	Runs          []benchRun `json:"runs"`
	BicubicPSNRY  float64    `json:"bicubic_psnr_y_vs_hr"`
	OnVsOffPSNRY  float64    `json:"cache_on_vs_off_psnr_y"`
	TileReduction float64    `json:"tile_inference_reduction"`
	Speedup       float64    `json:"fps_speedup"`
	PSNRDropDB    float64    `json:"psnr_y_drop_db"`
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: danstream bench --input VIDEO [--scale N] [--frames K] [--model M]\n\n"+
			"Frames of VIDEO are the HR truth; the LR input is each frame area-downscaled by the scale.\n"+
			"Runs the engine with the tile cache off and on over the same frames, interleaved, and prints\n"+
			"frames per second (engine only, decoding excluded), tiles inferred per frame, cache hit rate and\n"+
			"PSNR-Y against HR (border = scale).")
		fs.PrintDefaults()
	}
	var ef engineFlags
	ef.register(fs)
	input := fs.String("input", "", "video file (its frames are the HR reference)")
	frames := fs.Int("frames", 300, "frames to process (0: all)")
	threshold := fs.Float64("threshold", 0, "cache: change of a 4x4 block's mean luma counted as motion (0: default 8)")
	texture := fs.Float64("texture-threshold", 0, "cache: mean absolute pixel luma change in a block counted as motion (0: default 12)")
	refresh := fs.Int("refresh", 0, "cache: re-infer every part of the frame at least every N frames (0: default 120)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *input == "" {
		fs.Usage()
		return fmt.Errorf("%w: --input is required", errUsage)
	}
	if ef.scale == 0 && ef.model == "" {
		ef.scale = 2
	}
	var s int // the model's scale, known once it is loaded
	// A video's frames are the HR truth and are area-downscaled to make the LR
	// input; a synthetic: camera (the default stream's source) is LR already
	// and has no truth, so only speed and cache figures come out.
	var next func() (lr frame.Frame, hr []byte, err error)
	total := *frames
	if strings.HasPrefix(*input, "synthetic:") {
		src, err := capture.Open(ctx, *input, capture.Options{Seed: 1})
		if err != nil {
			return err
		}
		defer src.Close()
		next = func() (frame.Frame, []byte, error) {
			f, err := src.Next(ctx)
			return f, nil, err
		}
		if total <= 0 {
			total = 300
		}
	} else {
		vr, err := openVideo(ctx, *input)
		if err != nil {
			return err
		}
		defer vr.Close()
		if total <= 0 || (vr.Frames > 0 && vr.Frames < total) {
			total = vr.Frames
		}
		next = func() (frame.Frame, []byte, error) {
			hr, err := vr.Next()
			if err != nil {
				return frame.Frame{}, nil, err
			}
			pix, w, h := sr.ResizeArea(hr.Pix, hr.W, hr.H, s)
			return frame.Frame{Pix: pix, W: w, H: h, Seq: hr.Seq, Reset: hr.Reset}, cropFrame(hr, w*s, h*s), nil
		}
	}
	off, err := ef.load(false)
	if err != nil {
		return err
	}
	defer off.Close()
	on, err := ef.load(true)
	if err != nil {
		return err
	}
	defer on.Close()
	on.SetCache(true, sr.CacheOptions{Threshold: *threshold, TextureThreshold: *texture, RefreshFrames: *refresh})
	s = on.Scale()
	bic := sr.NewBicubic(s)

	bar := newProgress(os.Stderr, total)
	var durOff, durOn time.Duration
	var psnrOff, psnrOn, psnrBic, psnrOnOff float64
	n, lrW, lrH := 0, 0, 0
	for n < total {
		if err := ctx.Err(); err != nil {
			return err
		}
		lr, hrPix, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if n == 0 {
				return err
			}
			fmt.Fprintf(os.Stderr, "\nstopping at frame %d: %v\n", n, err)
			break
		}
		w, h := lr.W, lr.H
		lrW, lrH = w, h
		t0 := time.Now()
		oOff, err := off.Upscale(ctx, lr)
		durOff += time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s frame %d: %w", *input, n, err)
		}
		t0 = time.Now()
		oOn, err := on.Upscale(ctx, lr)
		durOn += time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s frame %d: %w", *input, n, err)
		}
		if hrPix != nil {
			oBic, _ := bic.Upscale(ctx, lr)
			p := func(a []byte) float64 {
				v, err := sr.PSNRY(a, hrPix, w*s, h*s, s)
				if err != nil {
					return 0
				}
				return v
			}
			psnrOff += p(oOff.Pix)
			psnrOn += p(oOn.Pix)
			psnrBic += p(oBic.Pix)
		}
		if v, err := sr.PSNRY(oOn.Pix, oOff.Pix, w*s, h*s, s); err == nil {
			psnrOnOff += min(v, 100) // identical frames: count as 100 dB, not +Inf
		}
		n++
		bar.update(n)
	}
	bar.done(n)
	if n == 0 {
		return fmt.Errorf("%s: no frames", *input)
	}
	fn := float64(n)
	rep := benchReport{
		Input: *input, Model: on.Info().Name, Provider: on.Provider(), BatchSize: on.BatchSize(), Scale: s,
		LRSize: fmt.Sprintf("%dx%d", lrW, lrH), CPU: fmt.Sprintf("%s, %d cores", cpuName(), runtime.NumCPU()),
		BicubicPSNRY: psnrBic / fn, OnVsOffPSNRY: psnrOnOff / fn, HasHR: !strings.HasPrefix(*input, "synthetic:"),
	}
	for _, r := range []struct {
		label string
		u     *sr.ONNXUpscaler
		d     time.Duration
		psnr  float64
	}{{"cache off", off, durOff, psnrOff}, {"cache on", on, durOn, psnrOn}} {
		m := r.u.Metrics()
		msf := float64(r.d) / float64(time.Millisecond) / fn
		rep.Runs = append(rep.Runs, benchRun{
			Label: r.label, Frames: n, FPS: fn / r.d.Seconds(), MsPerFrame: msf,
			TilesPerFrame: m.TilesInferredPerFrame(), TilesInFrame: m.Last.Tiles, HitRate: m.HitRate(),
			InferMsFrame: m.InferMs / fn, OverheadMsFrame: m.OverheadMs / fn, OverheadPct: 100 * m.OverheadMs / (m.InferMs + m.OverheadMs),
			PSNRY: r.psnr / fn,
		})
	}
	a, b := rep.Runs[0], rep.Runs[1]
	if b.TilesPerFrame > 0 {
		rep.TileReduction = a.TilesPerFrame / b.TilesPerFrame
	}
	rep.Speedup = b.FPS / a.FPS
	rep.PSNRDropDB = a.PSNRY - b.PSNRY
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Printf("%s: %d frames, LR %s -> x%d, model %s on %s (batch %d), %s\n",
		rep.Input, n, rep.LRSize, s, rep.Model, rep.Provider, rep.BatchSize, rep.CPU)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tfps\tms/frame\ttiles inferred/frame\thit rate\tinfer ms/frame\toverhead ms/frame\tPSNR-Y vs HR\t")
	for _, r := range rep.Runs {
		q := "-"
		if rep.HasHR {
			q = fmt.Sprintf("%.3f dB", r.PSNRY)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.1f\t%.2f of %d\t%.1f%%\t%.1f\t%.1f (%.1f%%)\t%s\t\n", r.Label, r.FPS, r.MsPerFrame,
			r.TilesPerFrame, r.TilesInFrame, 100*r.HitRate, r.InferMsFrame, r.OverheadMsFrame, r.OverheadPct, q)
	}
	if rep.HasHR {
		fmt.Fprintf(tw, "bicubic\t\t\t\t\t\t\t%.3f dB\t\n", rep.BicubicPSNRY)
	}
	tw.Flush()
	drop := "n/a (no HR)"
	if rep.HasHR {
		drop = fmt.Sprintf("%.3f dB", rep.PSNRDropDB)
	}
	fmt.Printf("cache: %.2fx fewer tile inferences, %.2fx fps, PSNR-Y drop %s (cache-on vs cache-off output: %.1f dB)\n",
		rep.TileReduction, rep.Speedup, drop, rep.OnVsOffPSNRY)
	return nil
}

func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
