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
	Logger      *slog.Logger // default slog.Default()
}

// ONNXUpscaler runs a danstream ONNX model over frames: tiles with overlap,
// batches of tiles through one ONNX Runtime session, feathered blending, and a
// temporal cache that skips tiles whose input did not change. One instance
// serves one stream (the cache is per stream); calls to Upscale are serialised.
type ONNXUpscaler struct {
	info     ModelInfo
	provider string // the provider that actually runs
	batch    int
	log      *slog.Logger

	mu        sync.Mutex
	sess      *ort.DynamicAdvancedSession
	tensors   map[int]ioPair // batch size -> tensors
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
	if err := InitRuntime(opts.LibPath); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil { // as named when it is there (status, adapt's base)
		if p, _ := FindAsset(path); p != "" {
			path = p
		}
	}
	info, err := ReadModelInfo(path)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	chain, err := providerChain(opts.Provider)
	if err != nil {
		return nil, fmt.Errorf("sr: model %s: %w", path, err)
	}
	u := &ONNXUpscaler{info: info, log: log, tensors: map[int]ioPair{}}
	u.cache = tileCache{on: opts.Cache, opts: opts.CacheTuning.withDefaults()}
	var (
		why     []string
		lastErr error
	)
	for _, p := range chain {
		batch := opts.BatchSize
		if batch <= 0 {
			batch = 4
			if p != ProviderCPU {
				batch = 16
			}
		}
		sess, err := newSession(path, info, p, batch, opts)
		if err == nil {
			liveSessions.Add(1)
			u.sess, u.provider, u.batch = sess, p, batch
			err = u.warmUp()
			if err == nil {
				break
			}
			u.releaseSession()
		}
		why = append(why, fmt.Sprintf("%s: %s", p, providerHint(err)))
		lastErr = err
	}
	if u.sess == nil {
		if errors.Is(lastErr, ErrNonFinite) { // the model, not the provider
			return nil, fmt.Errorf("sr: model %s: %w", path, lastErr)
		}
		return nil, fmt.Errorf("sr: model %s: no execution provider could run it: %s", path, strings.Join(why, "; "))
	}
	if len(why) > 0 {
		log.Warn("sr: execution provider fallback", "model", path, "asked", opts.Provider, "using", u.provider, "why", strings.Join(why, "; "))
	} else if opts.Provider == ProviderAuto {
		log.Info("sr: execution provider", "model", path, "asked", "auto", "using", u.provider)
	}
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
func (u *ONNXUpscaler) warmUp() error {
	p, err := u.tensorsFor(1)
	if err != nil {
		return err
	}
	in, n := p.in.GetData(), len(p.in.GetData())
	for i := range in {
		in[i] = float32(i) / float32(n)
	}
	if err := u.sess.Run([]ort.Value{p.in}, []ort.Value{p.out}); err != nil {
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

func (u *ONNXUpscaler) tensorsFor(n int) (ioPair, error) {
	if p, ok := u.tensors[n]; ok {
		return p, nil
	}
	T, Ts := int64(u.info.Tile), int64(u.info.Tile*u.info.Scale)
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
	u.tensors[n] = p
	return p, nil
}

func (u *ONNXUpscaler) releaseSession() {
	for n, p := range u.tensors {
		p.in.Destroy()
		p.out.Destroy()
		delete(u.tensors, n)
	}
	if u.sess != nil {
		u.sess.Destroy()
		u.sess = nil
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
func (u *ONNXUpscaler) Provider() string { return u.provider }

// BatchSize returns how many tiles go to one session run.
func (u *ONNXUpscaler) BatchSize() int { return u.batch }

// Scale implements Upscaler.
func (u *ONNXUpscaler) Scale() int { return u.info.Scale }

// Name implements Upscaler, e.g. "dan-lite-x4 (onnxruntime cpu)".
func (u *ONNXUpscaler) Name() string {
	return fmt.Sprintf("%s (onnxruntime %s)", u.info.Name, u.provider)
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

// Close frees the session; the upscaler cannot be used afterwards.
func (u *ONNXUpscaler) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	u.closed = true
	u.releaseSession()
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
	var inferDur time.Duration
	var batches int
	var err error
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
		inferDur, batches, err = u.run(ctx, in.Pix, tiles, func(k int, out []float32) {
			j, i := k/nx, k%nx
			copy(u.hr[(j%g.ring)*nx+i], out)
			if i == nx-1 {
				g.blend(u.out, u.hr, j, u.acc)
			}
		})
		if err == nil {
			u.cache.commitFull()
		}
	} else {
		// Only the tiles covering changed blocks (and the refresh share),
		// feathered into the output kept from earlier frames.
		inferDur, batches, err = u.run(ctx, in.Pix, tiles, func(i int, out []float32) {
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
		Seq: in.Seq, Tiles: g.numTiles(), Inferred: n, Reused: max(0, g.numTiles()-n), Batches: batches,
		InferMs: ms(inferDur), OverheadMs: ms(total - inferDur), TotalMs: ms(total), FullReason: reason,
	})
	return outF, nil
}

// run sends tiles through the session in batches of at most u.batch and hands
// each tile's planar RGB HR output (valid only during the call) to sink.
func (u *ONNXUpscaler) run(ctx context.Context, pix []byte, tiles []placed, sink func(i int, out []float32)) (time.Duration, int, error) {
	var inferDur time.Duration
	T := u.info.Tile
	tileIn := 3 * T * T
	tileOut := tileIn * u.info.Scale * u.info.Scale
	batches := 0
	for start := 0; start < len(tiles); start += u.batch {
		if err := ctx.Err(); err != nil {
			return inferDur, batches, err
		}
		k := min(len(tiles)-start, u.batch)
		p, err := u.tensorsFor(k)
		if err != nil {
			return inferDur, batches, fmt.Errorf("sr: %s: tensors for batch %d: %w", u.info.Name, k, err)
		}
		data := p.in.GetData()
		for b, t := range tiles[start : start+k] {
			u.g.fillTile(data[b*tileIn:(b+1)*tileIn], pix, t.x, t.y)
		}
		t0 := time.Now()
		err = u.sess.Run([]ort.Value{p.in}, []ort.Value{p.out})
		inferDur += time.Since(t0)
		batches++
		if err != nil {
			return inferDur, batches, fmt.Errorf("sr: %s (%s): inference: %w", u.info.Name, u.provider, err)
		}
		od := p.out.GetData()
		for b := 0; b < k; b++ {
			sink(start+b, od[b*tileOut:(b+1)*tileOut])
		}
	}
	return inferDur, batches, nil
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
