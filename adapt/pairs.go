// Package adapt learns a camera's own LR->HR mapping: it collects
// time-aligned frame pairs from a camera's cheap sub stream and its full
// main stream (the same sensor instant at two resolutions), registers them,
// and keeps a bounded dataset on disk for fine-tuning the stream's model.
package adapt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/frame"
)

// ErrAspect is returned when the sub and main streams do not show the same
// field of view (their aspect ratios differ): no crop-free pairing exists.
var ErrAspect = errors.New("adapt: sub and main streams have different aspect ratios")

// CollectorOptions tunes pair collection. Zero values pick the defaults shown.
type CollectorOptions struct {
	Dir      string // dataset folder (created); required
	Scale    int    // HR = sub size x Scale, the model's scale; required
	MaxPairs int    // pairs kept on disk, oldest deleted first (500)
	// Tolerance bounds |main.Captured - sub.Captured - offset| for candidate
	// pairs, where offset is the learnt delay of the main stream (decoding a
	// larger picture takes longer); the best candidate is then picked by
	// content (300 ms).
	Tolerance time.Duration
	// MaxMotion rejects a sub frame whose 8x8-block mean luma differs from
	// the previous sub frame's by more than this on average (0..255, 3):
	// with motion, a small timing error between the streams misaligns the pair.
	MaxMotion float64
	// MaxContentDiff rejects a pair whose downscaled main differs from the
	// sub frame by more than this in the 99th percentile of 8x8-block mean
	// luma differences (0..255, 8): not the same instant. The percentile, not
	// the mean, because a walking person one frame off changes 1% of the
	// blocks a lot and the mean hardly (vtest: exact instant ~2, one frame
	// off 7-47).
	MaxContentDiff float64
	MinResponse    float64 // phase-correlation peak below which registration failed (0.15)
	MaxShift       float64 // largest accepted registration shift, sub pixels (1.0)
	// MinInterval spaces stored pairs (0: as fast as frames are processed);
	// consecutive frames of a still scene add little.
	MinInterval time.Duration
	Logger      *slog.Logger
}

func (o CollectorOptions) withDefaults() CollectorOptions {
	if o.MaxPairs <= 0 {
		o.MaxPairs = 500
	}
	if o.Tolerance <= 0 {
		o.Tolerance = 300 * time.Millisecond
	}
	if o.MaxMotion <= 0 {
		o.MaxMotion = 3
	}
	if o.MaxContentDiff <= 0 {
		o.MaxContentDiff = 8
	}
	if o.MinResponse <= 0 {
		o.MinResponse = 0.15
	}
	if o.MaxShift <= 0 {
		o.MaxShift = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Pair is one manifest entry: files are relative to the dataset folder.
type Pair struct {
	ID           uint64    `json:"id"`
	LR           string    `json:"lr"`
	HR           string    `json:"hr"`
	SubCaptured  time.Time `json:"sub_captured"`
	MainCaptured time.Time `json:"main_captured"`
	DtMillis     float64   `json:"dt_ms"` // main - sub capture time
	DX           float64   `json:"dx"`    // registration shift of main vs sub, sub pixels
	DY           float64   `json:"dy"`    //
	Response     float64   `json:"response"`
	Motion       float64   `json:"motion"`       // block luma change since the previous sub frame
	ContentDiff  float64   `json:"content_diff"` // 99th percentile block luma difference sub vs downscaled main
}

// Manifest is manifest.json, rewritten atomically after every change.
type Manifest struct {
	Version  int    `json:"version"`
	Scale    int    `json:"scale"`
	LRWidth  int    `json:"lr_width"`
	LRHeight int    `json:"lr_height"`
	HRWidth  int    `json:"hr_width"`
	HRHeight int    `json:"hr_height"`
	NextID   uint64 `json:"next_id"`
	Pairs    []Pair `json:"pairs"` // oldest first
}

// ManifestName is the manifest's file name inside the dataset folder.
const ManifestName = "manifest.json"

// CollectorStats counts what happened to the sub frames looked at.
type CollectorStats struct {
	Considered     uint64 `json:"considered"`
	Stored         uint64 `json:"stored"`
	OnDisk         int    `json:"on_disk"`
	Motion         uint64 `json:"rejected_motion"`
	NoMain         uint64 `json:"rejected_no_main"` // no main frame within the tolerance (main stream late or gone)
	Content        uint64 `json:"rejected_content"`
	Registration   uint64 `json:"rejected_registration"`
	WriteErrors    uint64 `json:"write_errors"`
	LastWriteError string `json:"last_write_error,omitempty"`
}

// Collector pairs a sub and a main source. Run drives it.
type Collector struct {
	sub, main capture.Source
	o         CollectorOptions
	log       *slog.Logger

	mu       sync.Mutex
	stats    CollectorStats
	man      Manifest
	subRing  []frame.Frame
	mainRing []frame.Frame
	// offset is the typical main - sub capture time of accepted pairs
	// (moving average), so the candidate window follows the main stream's lag.
	offset time.Duration
	// lastSilentLog rate-limits the "main stream silent" warning (Run's goroutine only).
	lastSilentLog time.Time
}

// Frames kept for pairing: enough for the main stream's lag plus the
// tolerance, few enough that 4K main frames do not pile up.
const (
	subRingSize  = 32
	mainRingSize = 16
	// staleAfter: a sub frame not processed by then is skipped (processing
	// fell behind and its main candidates are gone).
	staleAfter = 1500 * time.Millisecond
)

// NewCollector checks that the two sources can be paired (same aspect ratio)
// and opens or creates the dataset folder, continuing an existing manifest.
func NewCollector(sub, main capture.Source, opts CollectorOptions) (*Collector, error) {
	o := opts.withDefaults()
	if o.Dir == "" {
		return nil, errors.New("adapt: no dataset folder given")
	}
	if o.Scale < 1 || o.Scale > 8 {
		return nil, fmt.Errorf("adapt: scale %d out of range 1..8", o.Scale)
	}
	si, mi := sub.Info(), main.Info()
	if err := sameAspect(si.Width, si.Height, mi.Width, mi.Height); err != nil {
		return nil, fmt.Errorf("%w (sub %s, main %s)", err, si.URL, mi.URL)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("adapt: dataset folder %s: %w", o.Dir, err)
	}
	c := &Collector{sub: sub, main: main, o: o, log: o.Logger.With("pairs", o.Dir)}
	c.man = Manifest{Version: 1, Scale: o.Scale}
	if b, err := os.ReadFile(filepath.Join(o.Dir, ManifestName)); err == nil {
		var m Manifest
		if err := json.Unmarshal(b, &m); err != nil || m.Scale != o.Scale {
			c.log.Warn("existing manifest unusable, starting a new one", "err", err, "scale", m.Scale)
		} else {
			c.man = m
		}
	}
	c.stats.OnDisk = len(c.man.Pairs)
	return c, nil
}

// sameAspect accepts sizes whose aspect ratios agree within 1% (encoders
// round odd sizes).
func sameAspect(sw, sh, mw, mh int) error {
	if sw <= 0 || sh <= 0 || mw <= 0 || mh <= 0 {
		return fmt.Errorf("adapt: unknown frame size (sub %dx%d, main %dx%d)", sw, sh, mw, mh)
	}
	a, b := float64(sw)/float64(sh), float64(mw)/float64(mh)
	if math.Abs(a-b)/b > 0.01 {
		return fmt.Errorf("%w: sub %dx%d (%.3f), main %dx%d (%.3f)", ErrAspect, sw, sh, a, mw, mh, b)
	}
	return nil
}

// Stats returns the counters.
func (c *Collector) Stats() CollectorStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Manifest returns a copy of the current manifest.
func (c *Collector) Manifest() Manifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.man
	m.Pairs = append([]Pair(nil), m.Pairs...)
	return m
}

// Run collects until ctx ends (nil) or a source ends for good or shows an
// aspect ratio that cannot pair (the error says which). A main stream that
// goes silent only makes pairs fail ("no main frame"); disk errors are
// logged and counted, never fatal.
func (c *Collector) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	read := func(name string, src capture.Source, ring *[]frame.Frame, ringSize int) {
		defer wg.Done()
		for {
			f, err := src.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					errs <- fmt.Errorf("adapt: %s stream %s: %w", name, src.Info().URL, err)
				}
				return
			}
			c.mu.Lock()
			*ring = append(*ring, f)
			if len(*ring) > ringSize {
				*ring = (*ring)[len(*ring)-ringSize:]
			}
			c.mu.Unlock()
		}
	}
	wg.Add(2)
	go read("sub", c.sub, &c.subRing, subRingSize)
	go read("main", c.main, &c.mainRing, mainRingSize)
	defer wg.Wait()

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var (
		lastSeq    uint64
		prevBlocks []float64
		prevSeq    uint64
		lastStored time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case now := <-tick.C:
			// The sub frames whose main candidates have all arrived, oldest first.
			c.mu.Lock()
			var todo []frame.Frame
			wait := max(0, c.offset) + c.o.Tolerance
			for _, f := range c.subRing {
				if f.Seq <= lastSeq || now.Sub(f.Captured) < wait {
					continue
				}
				if now.Sub(f.Captured) > wait+staleAfter {
					lastSeq, prevBlocks = f.Seq, nil // behind: skip, and no motion reference
					continue
				}
				todo = append(todo, f)
			}
			c.mu.Unlock()
			for _, s := range todo {
				lastSeq = s.Seq
				blocks := blockLuma(s)
				motion := math.Inf(1) // the first frame, or one after a gap, is not trusted
				if prevBlocks != nil && s.Seq == prevSeq+1 && !s.Reset {
					motion = meanAbsDiff(blocks, prevBlocks)
				}
				prevBlocks, prevSeq = blocks, s.Seq
				if c.o.MinInterval > 0 && s.Captured.Sub(lastStored) < c.o.MinInterval {
					continue
				}
				stored, err := c.consider(s, blocks, motion)
				if err != nil {
					return err
				}
				if stored {
					lastStored = s.Captured
				}
			}
		}
	}
}

// consider tries to make a pair of sub frame s; it returns an error only for
// a condition no later frame can fix (aspect ratio).
func (c *Collector) consider(s frame.Frame, sBlocks []float64, motion float64) (bool, error) {
	c.count(func(st *CollectorStats) { st.Considered++ })
	if motion > c.o.MaxMotion {
		c.count(func(st *CollectorStats) { st.Motion++ })
		return false, nil
	}
	c.mu.Lock()
	var cands []frame.Frame
	for _, m := range c.mainRing {
		if d := m.Captured.Sub(s.Captured) - c.offset; d >= -c.o.Tolerance && d <= c.o.Tolerance {
			cands = append(cands, m)
		}
	}
	c.mu.Unlock()
	if len(cands) == 0 {
		c.count(func(st *CollectorStats) { st.NoMain++ })
		if time.Since(c.lastSilentLog) > 10*time.Second {
			c.lastSilentLog = time.Now()
			c.log.Warn("no main frame near the sub frame: main stream late, stalled or gone",
				"main", c.main.Info().URL, "main_stats", c.main.Stats())
		}
		return false, nil
	}
	if err := sameAspect(s.W, s.H, cands[0].W, cands[0].H); err != nil {
		return false, err
	}
	// The capture clocks only bound the pairing; content picks the instant.
	var (
		best     frame.Frame
		bestDown frame.Frame
		bestDiff = math.Inf(1)
	)
	for _, m := range cands {
		down, err := capture.Resize(m, s.W, s.H, capture.InterpArea)
		if err != nil {
			return false, fmt.Errorf("adapt: %w", err)
		}
		if d := p99AbsDiff(sBlocks, blockLuma(down)); d < bestDiff {
			best, bestDown, bestDiff = m, down, d
		}
	}
	if bestDiff > c.o.MaxContentDiff {
		c.count(func(st *CollectorStats) { st.Content++ })
		return false, nil
	}
	dx, dy, resp, err := capture.PhaseShift(s, bestDown)
	if err != nil {
		return false, fmt.Errorf("adapt: register: %w", err)
	}
	if resp < c.o.MinResponse || math.Hypot(dx, dy) > c.o.MaxShift {
		c.count(func(st *CollectorStats) { st.Registration++ })
		c.log.Debug("registration rejected", "dx", dx, "dy", dy, "response", resp)
		return false, nil
	}
	hr := best
	if W, H := s.W*c.o.Scale, s.H*c.o.Scale; best.W != W || best.H != H {
		interp := capture.InterpArea
		if W > best.W {
			interp = capture.InterpCubic
		}
		if hr, err = capture.Resize(best, W, H, interp); err != nil {
			return false, fmt.Errorf("adapt: %w", err)
		}
	}
	p := Pair{SubCaptured: s.Captured, MainCaptured: best.Captured,
		DtMillis: float64(best.Captured.Sub(s.Captured).Microseconds()) / 1000,
		DX:       dx, DY: dy, Response: resp, Motion: motion, ContentDiff: bestDiff}
	// Follow the main stream's lag (bounded: a stall must not drag it off).
	dt := best.Captured.Sub(s.Captured)
	c.mu.Lock()
	c.offset = max(-2*time.Second, min(2*time.Second, c.offset+(dt-c.offset)/8))
	c.mu.Unlock()
	if err := c.store(s, hr, p); err != nil {
		c.log.Warn("pair not stored", "err", err)
		c.count(func(st *CollectorStats) { st.WriteErrors++; st.LastWriteError = err.Error() })
		return false, nil
	}
	return true, nil
}

func (c *Collector) count(fn func(*CollectorStats)) {
	c.mu.Lock()
	fn(&c.stats)
	c.mu.Unlock()
}

// store writes the pair's PNGs, rotates out the oldest pairs beyond
// MaxPairs and rewrites the manifest. A failure removes what it wrote.
func (c *Collector) store(lr, hr frame.Frame, p Pair) error {
	c.mu.Lock()
	p.ID = c.man.NextID
	c.mu.Unlock()
	p.LR, p.HR = fmt.Sprintf("%08d_lr.png", p.ID), fmt.Sprintf("%08d_hr.png", p.ID)
	lrPath, hrPath := filepath.Join(c.o.Dir, p.LR), filepath.Join(c.o.Dir, p.HR)
	if err := writePNG(lrPath, lr); err != nil {
		return err
	}
	if err := writePNG(hrPath, hr); err != nil {
		os.Remove(lrPath)
		return err
	}
	c.mu.Lock()
	m := c.man
	m.Pairs = append(append([]Pair(nil), m.Pairs...), p)
	m.NextID = p.ID + 1
	m.LRWidth, m.LRHeight, m.HRWidth, m.HRHeight = lr.W, lr.H, hr.W, hr.H
	var drop []Pair
	if n := len(m.Pairs) - c.o.MaxPairs; n > 0 {
		drop, m.Pairs = m.Pairs[:n], m.Pairs[n:]
	}
	c.mu.Unlock()
	if err := writeManifest(c.o.Dir, m); err != nil {
		os.Remove(lrPath)
		os.Remove(hrPath)
		return err
	}
	for _, d := range drop {
		// A leftover file is harmless (the manifest no longer lists it).
		os.Remove(filepath.Join(c.o.Dir, d.LR))
		os.Remove(filepath.Join(c.o.Dir, d.HR))
	}
	c.mu.Lock()
	c.man = m
	c.stats.Stored++
	c.stats.OnDisk = len(m.Pairs)
	c.mu.Unlock()
	return nil
}

func writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ManifestName+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("adapt: write manifest in %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestName)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("adapt: write manifest in %s: %w", dir, err)
	}
	return nil
}

// writePNG stores a BGR frame as an RGB PNG (fast compression: the dataset
// is rewritten continuously). It writes a temporary file and renames it, as
// the manifest is: a reader (a snapshot for adapt, hard-linked) never sees a
// half-written PNG, and a crash leaves only a *.tmp behind.
func writePNG(path string, f frame.Frame) (err error) {
	img := image.NewNRGBA(image.Rect(0, 0, f.W, f.H))
	for i, j := 0, 0; i < len(f.Pix); i, j = i+3, j+4 {
		img.Pix[j], img.Pix[j+1], img.Pix[j+2], img.Pix[j+3] = f.Pix[i+2], f.Pix[i+1], f.Pix[i], 255
	}
	fh, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("adapt: write pair: %w", err)
	}
	tmp := fh.Name()
	defer func() {
		if err != nil {
			fh.Close()
			os.Remove(tmp)
		}
	}()
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(fh, img); err != nil {
		return fmt.Errorf("adapt: write pair %s: %w", path, err)
	}
	if err := fh.Chmod(0o644); err != nil { // CreateTemp makes 0600; the dataset is shared with training
		return fmt.Errorf("adapt: write pair %s: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("adapt: write pair %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("adapt: write pair %s: %w", path, err)
	}
	return nil
}

// blockLuma returns the mean luma of each 8x8 block: averaging removes the
// sensor noise and most coding noise, so differences measure content.
func blockLuma(f frame.Frame) []float64 {
	const B = 8
	bw, bh := f.W/B, f.H/B
	out := make([]float64, bw*bh)
	for by := 0; by < bh; by++ {
		for bx := 0; bx < bw; bx++ {
			var sum float64
			for y := by * B; y < by*B+B; y++ {
				row := f.Pix[(y*f.W+bx*B)*3:]
				for x := 0; x < B; x++ {
					b, g, r := row[x*3], row[x*3+1], row[x*3+2]
					sum += 0.114*float64(b) + 0.587*float64(g) + 0.299*float64(r)
				}
			}
			out[by*bw+bx] = sum / (B * B)
		}
	}
	return out
}

func p99AbsDiff(a, b []float64) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return math.Inf(1)
	}
	d := make([]float64, len(a))
	for i := range a {
		d[i] = math.Abs(a[i] - b[i])
	}
	sort.Float64s(d)
	return d[min(len(d)-1, len(d)*99/100)]
}

func meanAbsDiff(a, b []float64) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return math.Inf(1)
	}
	var s float64
	for i := range a {
		s += math.Abs(a[i] - b[i])
	}
	return s / float64(len(a))
}
