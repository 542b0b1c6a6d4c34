package sr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/danstream/danstream/frame"
)

// Execution providers accepted in ModelOptions.Provider.
const (
	ProviderCPU      = "cpu"
	ProviderCUDA     = "cuda"
	ProviderTensorRT = "tensorrt"
	ProviderAuto     = "auto" // tensorrt, then cuda, then cpu
)

// ModelOptions configures LoadModel. Zero values pick defaults.
type ModelOptions struct {
	Provider string // cpu (default), cuda, tensorrt, auto
	DeviceID int    // GPU index for cuda / tensorrt
	Threads  int    // intra-op threads; 0: ONNX Runtime's default (one per core)
	// BatchSize is how many tiles go to one session run; 0 picks 4 on CPU
	// (larger batches buy nothing there) and 16 on a GPU.
	BatchSize int
	// TensorRT: FP16 kernels (on unless TRTNoFP16) and a folder that keeps built
	// engines across runs (default: $XDG_CACHE_HOME/danstream/tensorrt).
	TRTNoFP16   bool
	TRTCacheDir string
	LibPath     string // ONNX Runtime library, passed to InitRuntime
	// Cache switches the temporal tile cache on (live streams). Off, every tile
	// of every frame runs: right for unrelated images (eval, stills).
	Cache       bool
	CacheTuning CacheOptions
	// Deadline bounds one frame's SR: tiles no batch has taken by then are
	// not run (reused from the cache, or bicubic on a whole-frame pass) and
	// counted as late, so a busy engine slows the picture's detail, not the
	// stream. 0: no deadline.
	Deadline time.Duration
	// BatchWait is how long a shared engine holds a part-filled batch for
	// other streams' tiles (default DefaultBatchWait; LoadModel's private
	// engine never waits).
	BatchWait time.Duration
	Logger    *slog.Logger // default slog.Default()
}

// ONNXUpscaler runs a danstream ONNX model over frames: tiles with overlap,
// batches of tiles through one ONNX Runtime session, feathered blending, and a
// temporal cache that skips tiles whose input did not change. One instance
// serves one stream (the cache is per stream); calls to Upscale are serialised.
type ONNXUpscaler struct {
	info   ModelInfo
	eng    *engine
	shared bool // eng is a registry engine (released, not closed)
	log    *slog.Logger

	mu        sync.Mutex
	client    *engineClient
	free      []*tileJob // tile buffers not queued (window of them)
	deadline  time.Duration
	bic       Upscaler // bicubic for late tiles of a whole-frame pass
	g         *grid
	hr        [][]float32 // per tile, planar RGB HR output
	out       []byte      // blended HR frame, updated in place
	gridTiles []placed
	acc       []float32
	cache     tileCache
	corr      correction
	closed    bool

	mmu     sync.Mutex
	metrics Metrics
}

type ioPair struct {
	in, out *ort.Tensor[float32]
}

// LoadModel opens a danstream model file, validates it against the contract and
// starts an ONNX Runtime session on the requested provider. A GPU provider that
// cannot start falls back to CPU with one log line saying why. A relative path
// missing from the working directory is looked up as FindAsset does, so a
// repository-relative model (sr/models/...) in a config, the swap API or --model
// is found from anywhere, as the bundled defaults are.
func LoadModel(path string, opts ModelOptions) (*ONNXUpscaler, error) {
	return loadUpscaler(path, opts, false)
}

// LoadShared is LoadModel on the process's shared engine for the model file,
// provider and device: every stream running that model queues its tiles to
// one session (batched across streams, served in turn, under the process
// thread budget, SetThreadBudget) and keeps its own tile cache and output.
// The engine closes its session when the last upscaler using it is closed.
func LoadShared(path string, opts ModelOptions) (*ONNXUpscaler, error) {
	return loadUpscaler(path, opts, true)
}

func loadUpscaler(path string, opts ModelOptions, shared bool) (*ONNXUpscaler, error) {
	if err := InitRuntime(opts.LibPath); err != nil {
		return nil, err
	}
	path = resolveModelPath(path)
	info, err := ReadModelInfo(path)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var e *engine
	if shared {
		e, err = acquireEngine(path, info, opts, log)
	} else {
		o := opts
		o.BatchWait = 0 // one client: nothing to wait for
		e, err = newEngine(path, info, o, log)
	}
	if err != nil {
		return nil, err
	}
	u := &ONNXUpscaler{info: info, eng: e, shared: shared, log: log, deadline: opts.Deadline,
		bic: NewBicubic(info.Scale)}
	u.cache = tileCache{on: opts.Cache, opts: opts.CacheTuning.withDefaults()}
	u.client = e.newClient()
	return u, nil
}

func providerChain(p string) ([]string, error) {
	switch strings.ToLower(p) {
	case "", ProviderCPU:
		return []string{ProviderCPU}, nil
	case ProviderCUDA:
		return []string{ProviderCUDA, ProviderCPU}, nil
	case ProviderTensorRT:
		return []string{ProviderTensorRT, ProviderCPU}, nil
	case ProviderAuto:
		return []string{ProviderTensorRT, ProviderCUDA, ProviderCPU}, nil
	}
	return nil, fmt.Errorf("unknown execution provider %q (want cpu, cuda, tensorrt or auto)", p)
}

func newSession(path string, info ModelInfo, provider string, batch int, opts ModelOptions) (*ort.DynamicAdvancedSession, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	if opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
			return nil, err
		}
	}
	if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		return nil, err
	}
	// ORT's pool threads spin after each run by default; between our batches
	// they would burn the cores the tiling and blending need.
	if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return nil, err
	}
	dev := strconv.Itoa(opts.DeviceID)
	switch provider {
	case ProviderTensorRT:
		dir := opts.TRTCacheDir
		if dir == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				base = os.TempDir()
			}
			dir = filepath.Join(base, "danstream", "tensorrt")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("tensorrt engine cache %s: %w", dir, err)
		}
		trt, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return nil, err
		}
		defer trt.Destroy()
		shape := func(n int) string { return fmt.Sprintf("%s:%dx3x%dx%d", inputName, n, info.Tile, info.Tile) }
		fp16 := "1"
		if opts.TRTNoFP16 {
			fp16 = "0"
		}
		// One optimisation profile covering batch 1..batch, so TensorRT builds
		// its engine once (then caches it on disk) instead of per batch size.
		if err := trt.Update(map[string]string{
			"device_id":               dev,
			"trt_fp16_enable":         fp16,
			"trt_engine_cache_enable": "1",
			"trt_engine_cache_path":   dir,
			"trt_timing_cache_enable": "1",
			"trt_timing_cache_path":   dir,
			"trt_profile_min_shapes":  shape(1),
			"trt_profile_opt_shapes":  shape(batch),
			"trt_profile_max_shapes":  shape(batch),
		}); err != nil {
			return nil, err
		}
		if err := so.AppendExecutionProviderTensorRT(trt); err != nil {
			return nil, err
		}
		// Nodes TensorRT cannot take (e.g. DAN's FFT) run on CUDA, not the CPU.
		if err := appendCUDA(so, dev); err != nil {
			return nil, err
		}
	case ProviderCUDA:
		if err := appendCUDA(so, dev); err != nil {
			return nil, err
		}
	}
	return ort.NewDynamicAdvancedSession(path, []string{inputName}, []string{outputName}, so)
}

func appendCUDA(so *ort.SessionOptions, dev string) error {
	cu, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer cu.Destroy()
	if err := cu.Update(map[string]string{"device_id": dev}); err != nil {
		return err
	}
	return so.AppendExecutionProviderCUDA(cu)
}

// warmUp runs one tile so a provider that loads but cannot run fails here (and
// falls back) rather than on the first live frame; TensorRT builds its engine now.
// The tile is a smooth gradient (a picture-like input, not all zeros) and its
// output must be finite: a diverged model's NaN would show as a black picture.
func (e *engine) warmUp() error {
	p, err := e.tensorsFor(1)
	if err != nil {
		return err
	}
	in, n := p.in.GetData(), len(p.in.GetData())
	for i := range in {
		in[i] = float32(i) / float32(n)
	}
	if err := e.sess.Run([]ort.Value{p.in}, []ort.Value{p.out}); err != nil {
		return err
	}
	for _, v := range p.out.GetData() {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%w: %v on a warm-up tile (a diverged or broken model)", ErrNonFinite, v)
		}
	}
	return nil
}

// ErrNonFinite is returned by LoadModel for a model whose output has NaN or Inf.
var ErrNonFinite = fmt.Errorf("%w: its output is not finite", ErrBadModel)

func (e *engine) tensorsFor(n int) (ioPair, error) {
	if p, ok := e.tensors[n]; ok {
		return p, nil
	}
	T, Ts := int64(e.info.Tile), int64(e.info.Tile*e.info.Scale)
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 3, T, T))
	if err != nil {
		return ioPair{}, err
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 3, Ts, Ts))
	if err != nil {
		in.Destroy()
		return ioPair{}, err
	}
	p := ioPair{in, out}
	e.tensors[n] = p
	return p, nil
}

func (e *engine) releaseSession() {
	for n, p := range e.tensors {
		p.in.Destroy()
		p.out.Destroy()
		delete(e.tensors, n)
	}
	if e.sess != nil {
		e.sess.Destroy()
		e.sess = nil
		liveSessions.Add(-1)
	}
}

// liveSessions counts ONNX Runtime sessions created and not yet destroyed, so
// tests (and metrics) can tell that a stream's model was released.
var liveSessions atomic.Int64

// LiveSessions returns how many ONNX Runtime sessions this process holds open.
func LiveSessions() int64 { return liveSessions.Load() }

// Info returns the model's validated metadata.
func (u *ONNXUpscaler) Info() ModelInfo { return u.info }

// Provider returns the execution provider that runs the model (after any fallback).
func (u *ONNXUpscaler) Provider() string { return u.eng.provider }

// BatchSize returns how many tiles go to one session run.
func (u *ONNXUpscaler) BatchSize() int { return u.eng.batch }

// Shared reports whether the upscaler runs on a shared engine (LoadShared).
func (u *ONNXUpscaler) Shared() bool { return u.shared }

// EngineStats returns the totals of the engine the upscaler runs on (all of
// its streams together when shared).
func (u *ONNXUpscaler) EngineStats() EngineStats { return u.eng.stats() }

// SetDeadline changes the per-frame deadline (ModelOptions.Deadline).
func (u *ONNXUpscaler) SetDeadline(d time.Duration) {
	u.mu.Lock()
	u.deadline = d
	u.mu.Unlock()
}

// Scale implements Upscaler.
func (u *ONNXUpscaler) Scale() int { return u.info.Scale }

// Name implements Upscaler, e.g. "dan-lite-x4 (onnxruntime cpu)".
func (u *ONNXUpscaler) Name() string {
	return fmt.Sprintf("%s (onnxruntime %s)", u.info.Name, u.eng.provider)
}

// SetCache switches the tile cache on or off and retunes it; the next frame
// runs every tile.
func (u *ONNXUpscaler) SetCache(on bool, tuning CacheOptions) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.cache = tileCache{on: on, opts: tuning.withDefaults()}
}

// CacheEnabled reports whether the tile cache is on.
func (u *ONNXUpscaler) CacheEnabled() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cache.on
}

// Close frees the session (a shared engine's once its last user is closed);
// the upscaler cannot be used afterwards.
func (u *ONNXUpscaler) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	u.closed = true
	u.eng.removeClient(u.client)
	if u.shared {
		releaseEngine(u.eng)
	} else {
		u.eng.close()
	}
	return nil
}

// ErrClosed is returned by Upscale after Close.
var ErrClosed = errors.New("sr: upscaler closed")

// Upscale implements Upscaler: it returns a new frame of (W*s, H*s) carrying
// the input's Seq and Captured. Frames of any size work, including ones smaller
// than a tile (they are reflection-padded); a size change starts a new tiling.
func (u *ONNXUpscaler) Upscale(ctx context.Context, in frame.Frame) (frame.Frame, error) {
	if err := in.Validate(); err != nil {
		return frame.Frame{}, fmt.Errorf("sr: %s: %w", u.info.Name, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return frame.Frame{}, ErrClosed
	}
	start := time.Now()
	var deadline time.Time
	if u.deadline > 0 {
		deadline = start.Add(u.deadline)
	}
	s := u.info.Scale
	reset := in.Reset
	resized := u.g == nil || u.g.W != in.W || u.g.H != in.H
	if resized {
		u.g = newGrid(in.W, in.H, u.info.Tile, u.info.Overlap, s)
		nt := u.g.ring * len(u.g.xs)
		u.hr = make([][]float32, nt)
		for i := range u.hr {
			u.hr[i] = make([]float32, 3*u.info.Tile*s*u.info.Tile*s)
		}
		u.out = make([]byte, in.W*s*in.H*s*3)
		u.acc = make([]float32, 3*in.W*s)
		u.cache.valid = false
	}
	g := u.g
	tiles, full, reason := u.cache.plan(g, in.Pix, reset)
	if full && reason == "first frame" && resized && u.metrics.Frames > 0 {
		reason = "size change"
	}
	var (
		st  runStats
		ran int
		err error
	)
	if full {
		// Every tile of the fixed grid, blended with normalised feathering.
		tiles = u.gridTiles[:0]
		for _, y := range g.ys {
			for _, x := range g.xs {
				tiles = append(tiles, placed{x, y})
			}
		}
		u.gridTiles = tiles
		// Bands are blended as soon as their tile rows have run, so only a
		// ring of a few tile rows is kept, whatever the frame size.
		nx := len(g.xs)
		sink := func(k int, out []float32) {
			j, i := k/nx, k%nx
			copy(u.hr[(j%g.ring)*nx+i], out)
			if i == nx-1 {
				g.blend(u.out, u.hr, j, u.acc)
			}
		}
		ran, st, err = u.run(ctx, in.Pix, tiles, deadline, sink)
		if err == nil && ran < len(tiles) {
			// Late: the rest of the grid from the bicubic enlargement, in
			// order (the ring blends bands as their last tile row arrives).
			var bic frame.Frame
			if bic, err = u.bic.Upscale(ctx, in); err == nil {
				tmp := u.lateTile()
				for k := ran; k < len(tiles); k++ {
					g.tileFromHR(tmp, bic.Pix, tiles[k].x, tiles[k].y)
					sink(k, tmp)
				}
			}
		}
		if err == nil {
			u.cache.commitFull()
			for _, t := range tiles[ran:] {
				u.cache.markStale(g, t) // bicubic there: run it next frame
			}
		}
	} else {
		// Only the tiles covering changed blocks (and the refresh share),
		// feathered into the output kept from earlier frames. Late ones are
		// not committed: their blocks stay changed and run next frame, and
		// meanwhile the correction below moves the kept pixels.
		ran, st, err = u.run(ctx, in.Pix, tiles, deadline, func(i int, out []float32) {
			g.blendFree(u.out, out, tiles[i].x, tiles[i].y)
			u.cache.commitTile(g, tiles[i])
		})
	}
	if err != nil {
		u.cache.valid = false // part of the kept output may now be from this frame
		return frame.Frame{}, err
	}
	n := len(tiles)
	outF := frame.Frame{
		Pix: make([]byte, len(u.out)), W: in.W * s, H: in.H * s,
		Seq: in.Seq, Captured: in.Captured, Reset: in.Reset,
	}
	if !full && !u.cache.opts.NoCorrection {
		u.corr.apply(outF.Pix, u.out, in.Pix, u.cache.refPix, in.W, in.H, s)
	} else {
		copy(outF.Pix, u.out)
	}

	total := time.Since(start)
	u.record(FrameMetrics{
		Seq: in.Seq, Tiles: g.numTiles(), Inferred: ran, Reused: max(0, g.numTiles()-n), Late: n - ran,
		Batches: st.batches, BatchTiles: st.batchTiles, QueueWaitMs: ms(st.wait),
		InferMs: ms(st.infer), OverheadMs: ms(total - st.infer), TotalMs: ms(total), FullReason: reason,
	})
	return outF, nil
}

// lateTile returns a scratch HR tile for bicubic-filled late tiles.
func (u *ONNXUpscaler) lateTile() []float32 {
	if len(u.free) > 0 {
		return u.free[0].out
	}
	return make([]float32, 3*u.info.Tile*u.info.Scale*u.info.Tile*u.info.Scale)
}

// runStats is what one frame's tiles met in the engine.
type runStats struct {
	batches, batchTiles int           // distinct batches its tiles rode in, and their sizes summed
	wait                time.Duration // queue waits summed over its tiles
	infer               time.Duration // those batches' session runs
}

// run sends tiles through the engine, a window of two batches at a time, and
// hands each tile's planar RGB HR output (valid only during the call) to
// sink, in order. It returns how many tiles ran: all of them, or, when the
// deadline passed first, the ones a batch had taken by then (always the
// first ones); the rest are the caller's to fill.
func (u *ONNXUpscaler) run(ctx context.Context, pix []byte, tiles []placed, deadline time.Time, sink func(i int, out []float32)) (int, runStats, error) {
	var st runStats
	e := u.eng
	n, B, window := len(tiles), e.batch, e.clientWindow()
	T, S := u.info.Tile, u.info.Scale
	for len(u.free) < window {
		u.free = append(u.free, &tileJob{in: make([]float32, 3*T*T), out: make([]float32, 3*T*T*S*S)})
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	var (
		submitted, done int
		stop            bool // deadline, cancelled or failed: queue nothing more
		err             error
		lastBatch       uint64
		cancelled       = ctx.Done()
	)
	takeBack := func() {
		back := u.client.cancelQueued()
		submitted -= len(back)
		u.free = append(u.free, back...)
	}
	for {
		// Keep the window full, a batch at a time.
		for !stop && submitted < n {
			k := min(B, n-submitted)
			if len(u.free) < k {
				break
			}
			batch := make([]*tileJob, k)
			copy(batch, u.free[len(u.free)-k:])
			u.free = u.free[:len(u.free)-k]
			for b, j := range batch {
				j.idx = submitted + b
				u.g.fillTile(j.in, pix, tiles[j.idx].x, tiles[j.idx].y)
			}
			u.client.submit(batch)
			submitted += k
		}
		if done == submitted {
			return done, st, err
		}
		select {
		case j := <-u.client.results:
			if j.err != nil && err == nil {
				err, stop = j.err, true
				takeBack()
			}
			if err == nil {
				if j.idx != done {
					panic(fmt.Sprintf("sr: engine returned tile %d, want %d", j.idx, done)) // the queue is FIFO per client
				}
				sink(j.idx, j.out)
			}
			st.wait += j.wait
			if j.batchID != lastBatch {
				lastBatch = j.batchID
				st.batches++
				st.batchTiles += j.size
				st.infer += j.infer
			}
			done++
			u.free = append(u.free, j)
		case <-timeout:
			timeout, stop = nil, true
			takeBack()
		case <-cancelled:
			cancelled = nil
			if err == nil {
				err = ctx.Err()
			}
			stop = true
			takeBack()
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// providerHint turns ONNX Runtime's provider-loading failures into one short
// line that says what is missing.
func providerHint(err error) string {
	s := oneLine(err)
	switch {
	case strings.Contains(s, "providers_shared.so"):
		return "this ONNX Runtime build has no GPU providers (no libonnxruntime_providers_*.so beside " + RuntimeLibrary() + "; the Dockerfile's image has the GPU build)"
	case strings.Contains(s, "not enabled in this build"):
		return "this ONNX Runtime build (" + RuntimeLibrary() + ") has no GPU support: " + s
	case strings.Contains(s, "libcudart") || strings.Contains(s, "libcublas") || strings.Contains(s, "libcudnn"):
		return "CUDA libraries missing: " + s
	case strings.Contains(s, "libnvinfer"):
		return "TensorRT libraries missing: " + s
	}
	return s
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
