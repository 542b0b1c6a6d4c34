package offline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/sr"
)

// BenchRun is one engine configuration's figures over the frames.
type BenchRun struct {
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

// BenchReport is what `danstream bench --json` prints.
type BenchReport struct {
	Input         string     `json:"input"`
	HasHR         bool       `json:"has_hr"` // false for synthetic: (no PSNR vs HR)
	Model         string     `json:"model"`
	Provider      string     `json:"provider"`
	BatchSize     int        `json:"batch_size"`
	Scale         int        `json:"scale"`
	LRSize        string     `json:"lr_size"`
	CPU           string     `json:"cpu"`
	Runs          []BenchRun `json:"runs"`
	BicubicPSNRY  float64    `json:"bicubic_psnr_y_vs_hr"`
	OnVsOffPSNRY  float64    `json:"cache_on_vs_off_psnr_y"`
	TileReduction float64    `json:"tile_inference_reduction"`
	Speedup       float64    `json:"fps_speedup"`
	PSNRDropDB    float64    `json:"psnr_y_drop_db"`
	// Blocks: per 8x8 HR block and frame, luma RMSE against HR with the
	// cache on minus with it off (grey levels; videos only).
	Blocks *BlockDelta `json:"block_rmse_on_minus_off,omitempty"`
}

// BlockDelta summarises per-block error differences: where the cache costs
// quality locally (trails behind moving objects), which the frame PSNR hides.
type BlockDelta struct {
	Blocks      int     `json:"blocks"`
	Median      float64 `json:"median"`
	P99         float64 `json:"p99"`
	P999        float64 `json:"p99_9"`
	Worst       float64 `json:"worst"`
	ShareOver3  float64 `json:"share_over_3"` // fraction of blocks worse by more than 3 grey levels
	WorstFrame  int     `json:"worst_frame"`
	WorstBlockX int     `json:"worst_block_x"` // HR pixels of its top-left corner (border cropped)
	WorstBlockY int     `json:"worst_block_y"`
}

func summariseBlocks(d []float64, worstFrame, wx, wy int) *BlockDelta {
	if len(d) == 0 {
		return nil
	}
	s := append([]float64(nil), d...)
	sort.Float64s(s)
	q := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	over := 0
	for _, v := range s {
		if v > 3 {
			over++
		}
	}
	return &BlockDelta{Blocks: len(s), Median: q(0.5), P99: q(0.99), P999: q(0.999), Worst: s[len(s)-1],
		ShareOver3: float64(over) / float64(len(s)), WorstFrame: worstFrame, WorstBlockX: wx, WorstBlockY: wy}
}

// BenchOptions says what Bench measures.
type BenchOptions struct {
	Engine Engine // Scale 0 with no Model: the bundled x2 model
	// Input is a video file, whose frames are the HR truth (the LR input is
	// each frame area-downscaled by the scale), or a synthetic: camera URL.
	Input    string
	Frames   int             // frames to process (0: all of a video, 300 of a synthetic camera)
	Cache    sr.CacheOptions // the tile cache's tuning (zero: defaults)
	Progress io.Writer       // progress bar and warnings; nil: none
}

// Bench runs the engine with the tile cache off and on over the same frames,
// interleaved, and measures frames per second (engine only, decoding
// excluded), tiles inferred per frame, cache hit rate and PSNR-Y against HR
// (border = scale).
func Bench(ctx context.Context, o BenchOptions) (BenchReport, error) {
	ef := o.Engine
	if o.Input == "" {
		return BenchReport{}, fmt.Errorf("%w: an input is required", ErrUsage)
	}
	if ef.Scale == 0 && ef.Model == "" {
		ef.Scale = 2
	}
	log := o.Progress
	if log == nil {
		log = io.Discard
	}
	var s int // the model's scale, known once it is loaded
	// A video's frames are the HR truth and are area-downscaled to make the LR
	// input; a synthetic: camera (the default stream's source) is LR already
	// and has no truth, so only speed and cache figures come out.
	var next func() (lr frame.Frame, hr []byte, err error)
	total := o.Frames
	if strings.HasPrefix(o.Input, "synthetic:") {
		src, err := capture.Open(ctx, o.Input, capture.Options{Seed: 1})
		if err != nil {
			return BenchReport{}, err
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
		vr, err := OpenVideo(ctx, o.Input)
		if err != nil {
			return BenchReport{}, err
		}
		defer vr.Close()
		vr.Log = log
		if total <= 0 || (vr.Frames > 0 && vr.Frames < total) {
			total = vr.Frames
		}
		next = func() (frame.Frame, []byte, error) {
			hr, err := vr.Next()
			if err != nil {
				return frame.Frame{}, nil, err
			}
			pix, w, h := sr.ResizeArea(hr.Pix, hr.W, hr.H, s)
			return frame.Frame{Pix: pix, W: w, H: h, Seq: hr.Seq, Reset: hr.Reset}, CropFrame(hr, w*s, h*s), nil
		}
	}
	off, err := ef.Load(false)
	if err != nil {
		return BenchReport{}, err
	}
	defer off.Close()
	on, err := ef.Load(true)
	if err != nil {
		return BenchReport{}, err
	}
	defer on.Close()
	on.SetCache(true, o.Cache)
	s = on.Scale()
	bic := sr.NewBicubic(s)

	bar := newProgress(log, total)
	var durOff, durOn time.Duration
	var psnrOff, psnrOn, psnrBic, psnrOnOff float64
	var (
		deltas             []float64 // per 8x8 HR block and frame: RMSE on - off
		rOn, rOff          []float64
		worst              = math.Inf(-1)
		worstF, worstX, wY int
	)
	n, lrW, lrH := 0, 0, 0
	for n < total {
		if err := ctx.Err(); err != nil {
			return BenchReport{}, err
		}
		lr, hrPix, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if n == 0 {
				return BenchReport{}, err
			}
			fmt.Fprintf(log, "\nstopping at frame %d: %v\n", n, err)
			break
		}
		w, h := lr.W, lr.H
		lrW, lrH = w, h
		t0 := time.Now()
		oOff, err := off.Upscale(ctx, lr)
		durOff += time.Since(t0)
		if err != nil {
			return BenchReport{}, fmt.Errorf("%s frame %d: %w", o.Input, n, err)
		}
		t0 = time.Now()
		oOn, err := on.Upscale(ctx, lr)
		durOn += time.Since(t0)
		if err != nil {
			return BenchReport{}, fmt.Errorf("%s frame %d: %w", o.Input, n, err)
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
			const blk = 8
			rOn, _ = sr.BlockRMSEY(rOn[:0], oOn.Pix, hrPix, w*s, h*s, s, blk)
			rOff, _ = sr.BlockRMSEY(rOff[:0], oOff.Pix, hrPix, w*s, h*s, s, blk)
			if len(rOn) == len(rOff) {
				nbx := (w*s - 2*s) / blk
				for i := range rOn {
					d := rOn[i] - rOff[i]
					deltas = append(deltas, d)
					if d > worst {
						worst, worstF, worstX, wY = d, n, (i%nbx)*blk, (i/nbx)*blk
					}
				}
			}
		}
		if v, err := sr.PSNRY(oOn.Pix, oOff.Pix, w*s, h*s, s); err == nil {
			psnrOnOff += min(v, 100) // identical frames: count as 100 dB, not +Inf
		}
		n++
		bar.update(n)
	}
	bar.done(n)
	if n == 0 {
		return BenchReport{}, fmt.Errorf("%s: no frames", o.Input)
	}
	fn := float64(n)
	rep := BenchReport{
		Input: o.Input, Model: on.Info().Name, Provider: on.Provider(), BatchSize: on.BatchSize(), Scale: s,
		LRSize: fmt.Sprintf("%dx%d", lrW, lrH), CPU: fmt.Sprintf("%s, %d cores", cpuName(), runtime.NumCPU()),
		BicubicPSNRY: psnrBic / fn, OnVsOffPSNRY: psnrOnOff / fn, HasHR: !strings.HasPrefix(o.Input, "synthetic:"),
	}
	for _, r := range []struct {
		label string
		u     *sr.ONNXUpscaler
		d     time.Duration
		psnr  float64
	}{{"cache off", off, durOff, psnrOff}, {"cache on", on, durOn, psnrOn}} {
		m := r.u.Metrics()
		msf := float64(r.d) / float64(time.Millisecond) / fn
		rep.Runs = append(rep.Runs, BenchRun{
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
	rep.Blocks = summariseBlocks(deltas, worstF, worstX, wY)
	return rep, nil
}

// WriteText prints the report as a table.
func (rep BenchReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s: %d frames, LR %s -> x%d, model %s on %s (batch %d), %s\n",
		rep.Input, rep.Runs[0].Frames, rep.LRSize, rep.Scale, rep.Model, rep.Provider, rep.BatchSize, rep.CPU)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
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
	if b := rep.Blocks; b != nil {
		fmt.Fprintf(w, "per 8x8 block luma RMSE vs HR, cache on minus off (%d blocks): median %+.2f, p99 %+.2f, p99.9 %+.2f, worst %+.2f grey levels (frame %d, HR x %d y %d); %.2f%% of blocks worse by > 3\n",
			b.Blocks, b.Median, b.P99, b.P999, b.Worst, b.WorstFrame, b.WorstBlockX, b.WorstBlockY, 100*b.ShareOver3)
	}
	_, err := fmt.Fprintf(w, "cache: %.2fx fewer tile inferences, %.2fx fps, PSNR-Y drop %s (cache-on vs cache-off output: %.1f dB)\n",
		rep.TileReduction, rep.Speedup, drop, rep.OnVsOffPSNRY)
	return err
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
