package offline

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/sr"
)

// CamerasOptions says what Cameras measures.
type CamerasOptions struct {
	Model   string // default sr/models/dan_lite_x4_fast.onnx
	Source  string // synthetic camera URL, default synthetic:320x180@25
	Cameras int    // default 4
	Cache   bool
	// Threads is the shared engine's thread budget (0: one per core); the
	// one-session-per-stream design keeps ONNX Runtime's default per session,
	// as streams had before the shared engine.
	Threads  int
	Duration time.Duration // per mode and round, default 20s
	Rounds   int           // old/shared alternations, default 2
	Frames   int           // frames pre-rendered per camera, default 150
	Deadline time.Duration // the shared engine's per-frame deadline (0: none)
	Progress io.Writer
}

// CameraFigures is one camera's totals in one mode.
type CameraFigures struct {
	Frames        int     `json:"frames"`
	FPS           float64 `json:"fps"`
	TilesPerFrame float64 `json:"tiles_inferred_per_frame"`
	LatePerFrame  float64 `json:"tiles_late_per_frame"`
	MeanBatch     float64 `json:"mean_batch"`
	QueueWaitMs   float64 `json:"queue_wait_ms_per_frame"`
}

// CamerasMode is one design's figures.
type CamerasMode struct {
	Label        string          `json:"label"`
	Sessions     int64           `json:"onnx_sessions"`
	Cameras      []CameraFigures `json:"cameras"`
	TotalFPS     float64         `json:"total_fps"`
	MinFPS       float64         `json:"min_fps"`
	MaxFPS       float64         `json:"max_fps"`
	SlowestRatio float64         `json:"slowest_over_fastest"`
	// CPUSeconds is the process's CPU time over this design's rounds, and
	// FramesPerCPUSecond all cameras' frames per CPU second: on a machine
	// shared with other work, more threads take a larger share of the
	// cores, so fps alone favours the design with more threads.
	CPUSeconds         float64 `json:"cpu_seconds"`
	FramesPerCPUSecond float64 `json:"frames_per_cpu_second"`
}

// CamerasReport is what `danstream bench --cameras N` prints.
type CamerasReport struct {
	Model      string        `json:"model"`
	Source     string        `json:"source"`
	Cache      bool          `json:"cache"`
	CPU        string        `json:"cpu"`
	Cores      int           `json:"cores"`
	LoadBefore string        `json:"loadavg_before"`
	LoadAfter  string        `json:"loadavg_after"`
	Old        CamerasMode   `json:"one_session_per_stream"`
	Shared     CamerasMode   `json:"shared_engine"`
	TotalRatio float64       `json:"shared_over_old_total_fps"`
	CPURatio   float64       `json:"shared_over_old_frames_per_cpu_second"`
	Duration   time.Duration `json:"duration_per_mode"`
}

// Cameras runs N synthetic cameras through the SR stage at once, first each
// on its own ONNX Runtime session (the design before the shared engine), then
// all on one shared engine, alternating for Rounds rounds in one process, and
// reports each camera's frame rate in each. Each camera plays pre-rendered
// frames as a live source would: the frame it takes is the one its clock is
// at (newest wins), so a slow camera sees more motion per frame.
func Cameras(ctx context.Context, o CamerasOptions) (CamerasReport, error) {
	if o.Model == "" {
		o.Model = "sr/models/dan_lite_x4_fast.onnx"
	}
	if o.Source == "" {
		o.Source = "synthetic:320x180@25"
	}
	if o.Cameras <= 0 {
		o.Cameras = 4
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 2
	}
	if o.Frames <= 0 {
		o.Frames = 150
	}
	if !strings.HasPrefix(o.Source, "synthetic:") {
		return CamerasReport{}, fmt.Errorf("%w: --cameras needs a synthetic: source, got %q", ErrUsage, o.Source)
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	// Every camera's clip, rendered first so that no camera's rendering
	// competes with the SR stage being measured.
	clips := make([][]frame.Frame, o.Cameras)
	rates := make([]float64, o.Cameras)
	g, gctx := errgroup.WithContext(ctx)
	for i := range clips {
		g.Go(func() error {
			src, err := capture.Open(gctx, o.Source, capture.Options{Seed: int64(i + 1)})
			if err != nil {
				return err
			}
			defer src.Close()
			rates[i] = src.Info().FPS
			for len(clips[i]) < o.Frames {
				f, err := src.Next(gctx)
				if err != nil {
					return err
				}
				f.Reset = false // a live camera's first frame; the clip loops
				clips[i] = append(clips[i], f)
			}
			return nil
		})
	}
	fmt.Fprintf(progress, "rendering %d frames for each of %d cameras\n", o.Frames, o.Cameras)
	if err := g.Wait(); err != nil {
		return CamerasReport{}, err
	}
	fps := rates[0] // the same for every camera
	if fps <= 0 {
		fps = 25
	}
	rep := CamerasReport{Model: o.Model, Source: o.Source, Cache: o.Cache, CPU: cpuName(), Cores: runtime.NumCPU(),
		LoadBefore: loadavg(), Duration: o.Duration}
	sr.SetThreadBudget(o.Threads)
	acc := map[bool][]camAcc{false: make([]camAcc, o.Cameras), true: make([]camAcc, o.Cameras)}
	for r := 0; r < o.Rounds; r++ {
		for _, shared := range []bool{false, true} {
			label := map[bool]string{false: "one session per stream", true: "shared engine"}[shared]
			fmt.Fprintf(progress, "round %d/%d: %s, %s\n", r+1, o.Rounds, label, o.Duration)
			cpu0 := cpuSeconds()
			sess, err := camerasRound(ctx, o, clips, fps, shared, acc[shared])
			if err != nil {
				return rep, err
			}
			m := &rep.Old
			if shared {
				m = &rep.Shared
			}
			m.Label, m.Sessions = label, sess
			m.CPUSeconds += cpuSeconds() - cpu0
		}
	}
	rep.LoadAfter = loadavg()
	for _, shared := range []bool{false, true} {
		m := &rep.Old
		if shared {
			m = &rep.Shared
		}
		m.Cameras = nil
		for _, a := range acc[shared] {
			m.Cameras = append(m.Cameras, a.figures())
		}
		m.summarise()
	}
	if rep.Old.TotalFPS > 0 {
		rep.TotalRatio = rep.Shared.TotalFPS / rep.Old.TotalFPS
	}
	if rep.Old.FramesPerCPUSecond > 0 {
		rep.CPURatio = rep.Shared.FramesPerCPUSecond / rep.Old.FramesPerCPUSecond
	}
	return rep, nil
}

type camAcc struct {
	frames            int
	secs              float64
	tiles, late       uint64
	batches, batchSum uint64
	waitMs            float64
}

func (a camAcc) figures() CameraFigures {
	f := CameraFigures{Frames: a.frames}
	if a.secs > 0 {
		f.FPS = float64(a.frames) / a.secs
	}
	if a.frames > 0 {
		f.TilesPerFrame = float64(a.tiles) / float64(a.frames)
		f.LatePerFrame = float64(a.late) / float64(a.frames)
		f.QueueWaitMs = a.waitMs / float64(a.frames)
	}
	if a.batches > 0 {
		f.MeanBatch = float64(a.batchSum) / float64(a.batches)
	}
	return f
}

func (m *CamerasMode) summarise() {
	m.TotalFPS, m.MinFPS, m.MaxFPS = 0, 0, 0
	frames := 0
	for i, c := range m.Cameras {
		m.TotalFPS += c.FPS
		frames += c.Frames
		if i == 0 || c.FPS < m.MinFPS {
			m.MinFPS = c.FPS
		}
		m.MaxFPS = max(m.MaxFPS, c.FPS)
	}
	if m.MaxFPS > 0 {
		m.SlowestRatio = m.MinFPS / m.MaxFPS
	}
	if m.CPUSeconds > 0 {
		m.FramesPerCPUSecond = float64(frames) / m.CPUSeconds
	}
}

// camerasRound loads one upscaler per camera (each its own session, or all
// on the shared engine), warms each up on a whole frame, then lets every
// camera enhance the frame its clock is at for the duration.
func camerasRound(ctx context.Context, o CamerasOptions, clips [][]frame.Frame, fps float64, shared bool, acc []camAcc) (int64, error) {
	base := sr.LiveSessions()
	ups := make([]*sr.ONNXUpscaler, len(clips))
	defer func() {
		for _, u := range ups {
			if u != nil {
				u.Close()
			}
		}
	}()
	for i := range ups {
		opts := sr.ModelOptions{Cache: o.Cache}
		var err error
		if shared {
			opts.Deadline = o.Deadline
			ups[i], err = sr.LoadShared(o.Model, opts)
		} else {
			ups[i], err = sr.LoadModel(o.Model, opts)
		}
		if err != nil {
			return 0, err
		}
		f := clips[i][0]
		f.Reset = true
		if _, err := ups[i].Upscale(ctx, f); err != nil { // the whole-frame first pass is not measured
			return 0, err
		}
		ups[i].ResetMetrics()
	}
	sessions := sr.LiveSessions() - base
	var wg sync.WaitGroup
	errs := make([]error, len(ups))
	start := time.Now()
	end := start.Add(o.Duration)
	for i, u := range ups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clip := clips[i]
			n := 0
			var last time.Time
			for {
				now := time.Now()
				if now.After(end) || ctx.Err() != nil {
					break
				}
				k := int(now.Sub(start).Seconds()*fps) % len(clip)
				if _, err := u.Upscale(ctx, clip[k]); err != nil {
					errs[i] = err
					return
				}
				n++
				last = time.Now()
			}
			m := u.Metrics()
			a := &acc[i]
			a.frames += n
			if n > 0 {
				a.secs += last.Sub(start).Seconds()
			}
			a.tiles += m.TilesInferred
			a.late += m.TilesLate
			a.batches += m.Batches
			a.batchSum += m.BatchTiles
			a.waitMs += m.QueueWaitMs
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return sessions, err
		}
	}
	return sessions, nil
}

// WriteText prints the report as a table per design and the ratios.
func (rep CamerasReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%d cameras %s, model %s, cache %v, %s per design x rounds; CPU %s (%d cores); load average before %s, after %s\n",
		len(rep.Old.Cameras), rep.Source, rep.Model, rep.Cache, rep.Duration, rep.CPU, rep.Cores, rep.LoadBefore, rep.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "design\tsessions\tcamera\tframes\tfps\ttiles/frame\tlate/frame\tmean batch\tqueue ms/frame\t")
	for _, m := range []CamerasMode{rep.Old, rep.Shared} {
		for i, c := range m.Cameras {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.1f\t%.2f\t%.2f\t%.1f\t\n", m.Label, m.Sessions, i+1, c.Frames, c.FPS,
				c.TilesPerFrame, c.LatePerFrame, c.MeanBatch, c.QueueWaitMs)
		}
	}
	tw.Flush()
	for _, m := range []CamerasMode{rep.Old, rep.Shared} {
		fmt.Fprintf(w, "%s: total %.2f fps, slowest %.2f, fastest %.2f, slowest/fastest %.2f; %.1f CPU s, %.2f frames per CPU s\n",
			m.Label, m.TotalFPS, m.MinFPS, m.MaxFPS, m.SlowestRatio, m.CPUSeconds, m.FramesPerCPUSecond)
	}
	_, err := fmt.Fprintf(w, "shared engine / one session per stream: total fps %.2fx, frames per CPU second %.2fx\n", rep.TotalRatio, rep.CPURatio)
	return err
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// cpuSeconds is the process's user + system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
