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

// ErrCrop is returned when registration shows that the sub stream sees only
// part of the main stream's picture (a crop, not the same field of view): no
// HR frame of the whole sub picture exists. Sub streams of another aspect
// ratio that show the whole picture (anamorphic pixels, e.g. 640x480 of a
// 1920x1080 main) are paired; only a crop is refused.
var ErrCrop = errors.New("adapt: the sub stream shows a crop of the main stream's picture, not the same field of view")

// cropVerdicts is how many sub frames must match a crop of the main picture
// (and not the whole of it) before the collector gives up on a stream pair.
const cropVerdicts = 3

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
	// fovOK is the sub/main geometry (sub W, H, main W, H) whose differing aspect
	// ratios registration has shown to be one field of view; crops counts sub
	// frames that matched a crop instead (Run's goroutine only).
	fovOK [4]int
	crops int
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

// NewCollector checks that the two sources report frame sizes and opens or
// creates the dataset folder, continuing an existing manifest. Whether
// streams of different aspect ratios show the same field of view is decided
// by registration while collecting (Run).
func NewCollector(sub, main capture.Source, opts CollectorOptions) (*Collector, error) {
	o := opts.withDefaults()
	if o.Dir == "" {
		return nil, errors.New("adapt: no dataset folder given")
	}
	if o.Scale < 1 || o.Scale > 8 {
		return nil, fmt.Errorf("adapt: scale %d out of range 1..8", o.Scale)
	}
	si, mi := sub.Info(), main.Info()
	if si.Width <= 0 || si.Height <= 0 || mi.Width <= 0 || mi.Height <= 0 {
		return nil, fmt.Errorf("adapt: unknown frame size (sub %s %dx%d, main %s %dx%d)", si.URL, si.Width, si.Height, mi.URL, mi.Width, mi.Height)
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

// sameAspect reports sizes whose aspect ratios agree within 1% (encoders
// round odd sizes).
func sameAspect(sw, sh, mw, mh int) bool {
	a, b := float64(sw)/float64(sh), float64(mw)/float64(mh)
	return math.Abs(a-b)/b <= 0.01
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

// Run collects until ctx ends (nil) or a source ends for good or
// registration shows the sub stream is a crop of the main picture (ErrCrop). A main stream that
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
	defer func() {
		cancel() // first: the readers wait in Next until ctx ends
		wg.Wait()
	}()

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
// a condition no later frame can fix (a cropped sub stream).
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
	// The capture clocks only bound the pairing; content picks the instant.
	// The main picture is resized to the sub's geometry whatever the aspect
	// ratios: a 4:3 sub stream of a 16:9 main has anamorphic pixels.
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
	geom := [4]int{s.W, s.H, cands[0].W, cands[0].H}
	unproven := !sameAspect(s.W, s.H, cands[0].W, cands[0].H) && c.fovOK != geom
	if bestDiff > c.o.MaxContentDiff {
		if unproven {
			if err := c.checkCrop(s, sBlocks, cands, bestDiff); err != nil {
				return false, err
			}
		}
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
	if unproven {
		c.fovOK, c.crops = geom, 0
		c.log.Info("sub and main streams have different aspect ratios but show the same field of view: pairing the main picture resized to sub x scale",
			"sub", fmt.Sprintf("%dx%d", s.W, s.H), "main", fmt.Sprintf("%dx%d", best.W, best.H), "scale", c.o.Scale)
	}
	hr := best
	if W, H := s.W*c.o.Scale, s.H*c.o.Scale; best.W != W || best.H != H {
		interp := capture.InterpArea
		if W > best.W || H > best.H { // enlarging in either direction (an anamorphic sub)
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

// checkCrop tests, for a sub frame of another aspect ratio than the main
// stream's that did not match the whole main picture resized to its geometry
// (anamDiff), the other reading: square pixels and a crop, i.e. the sub frame
// is a window of the main picture scaled uniformly so their short sides
// agree, slid along the long side. When that window matches the sub frame
// (the content check's measure, with its threshold) and clearly better than
// the whole picture did, cropVerdicts times, it returns ErrCrop saying where
// the sub picture lies in the main one.
func (c *Collector) checkCrop(s frame.Frame, sBlocks []float64, cands []frame.Frame, anamDiff float64) error {
	best := math.Inf(1)
	var bestRect image.Rectangle
	var bestMain frame.Frame
	for _, m := range cands {
		// Coarse: main scaled uniformly so that the sub frame fits across its
		// short side, the sub frame slid along the long one in scaled pixels.
		wide := float64(s.W)/float64(s.H) < float64(m.W)/float64(m.H)
		k := float64(m.W) / float64(s.W) // main pixels per sub pixel
		W, H := s.W, int(math.Round(float64(m.H)/k))
		if wide {
			k = float64(m.H) / float64(s.H)
			W, H = int(math.Round(float64(m.W)/k)), s.H
		}
		if W < s.W || H < s.H {
			continue // rounding left no room to slide
		}
		scaled, err := capture.Resize(m, W, H, capture.InterpArea)
		if err != nil {
			return fmt.Errorf("adapt: %w", err)
		}
		coarse, cd := 0, math.Inf(1)
		integ := lumaIntegral(scaled)
		for off := 0; off <= W-s.W+H-s.H; off++ { // one of the two ranges is empty
			x, y := off, 0
			if !wide {
				x, y = 0, off
			}
			if d := p99AbsDiff(sBlocks, integ.blocks(x, y, s.W, s.H)); d < cd {
				coarse, cd = off, d
			}
		}
		// Fine: windows of the main picture itself around the coarse offset,
		// one main pixel apart, each resized to the sub's size.
		ww, wh := int(math.Round(float64(s.W)*k)), int(math.Round(float64(s.H)*k))
		ww, wh = min(ww, m.W), min(wh, m.H)
		for o := int(float64(coarse-1) * k); o <= int(math.Ceil(float64(coarse+1)*k)); o++ {
			r := image.Rect(o, 0, o+ww, wh)
			if !wide {
				r = image.Rect(0, o, ww, o+wh)
			}
			if !r.In(image.Rect(0, 0, m.W, m.H)) {
				continue
			}
			win, err := capture.Resize(cropFrame(m, r), s.W, s.H, capture.InterpArea)
			if err != nil {
				return fmt.Errorf("adapt: %w", err)
			}
			if d := p99AbsDiff(sBlocks, blockLuma(win)); d < best {
				best, bestRect, bestMain = d, r, m
			}
		}
	}
	c.log.Debug("crop test", "window", bestRect, "diff", best, "whole_picture_diff", anamDiff)
	if best > c.o.MaxContentDiff || best > anamDiff/2 {
		return nil
	}
	if c.crops++; c.crops < cropVerdicts {
		return nil
	}
	return fmt.Errorf("%w: sub %s (%dx%d) matches only x %d..%d, y %d..%d of main %s (%dx%d) (block difference %.1f, whole picture %.1f); "+
		"pairs need both streams to show the whole picture: set the camera's sub stream to the full field of view",
		ErrCrop, c.sub.Info().URL, s.W, s.H, bestRect.Min.X, bestRect.Max.X, bestRect.Min.Y, bestRect.Max.Y,
		c.main.Info().URL, bestMain.W, bestMain.H, best, anamDiff)
}

// cropFrame copies the r window of f.
func cropFrame(f frame.Frame, r image.Rectangle) frame.Frame {
	out := frame.Frame{Pix: make([]byte, r.Dx()*r.Dy()*3), W: r.Dx(), H: r.Dy(), Seq: f.Seq, Captured: f.Captured}
	for y := 0; y < r.Dy(); y++ {
		copy(out.Pix[y*r.Dx()*3:(y+1)*r.Dx()*3], f.Pix[((r.Min.Y+y)*f.W+r.Min.X)*3:])
	}
	return out
}

// integral is a summed-area table of luma ((W+1) x (H+1)), so that the
// block means of any window cost four look-ups a block (the crop search
// slides a window over a whole frame).
type integral struct {
	w   int
	sum []float64
}

func lumaIntegral(f frame.Frame) integral {
	w := f.W + 1
	t := integral{w: w, sum: make([]float64, w*(f.H+1))}
	for y := 0; y < f.H; y++ {
		var row float64
		for x := 0; x < f.W; x++ {
			p := f.Pix[(y*f.W+x)*3:]
			row += 0.114*float64(p[0]) + 0.587*float64(p[1]) + 0.299*float64(p[2])
			t.sum[(y+1)*w+x+1] = t.sum[y*w+x+1] + row
		}
	}
	return t
}

// blocks is blockLuma of the w x h window at (x0, y0).
func (t integral) blocks(x0, y0, w, h int) []float64 {
	const B = 8
	bw, bh := w/B, h/B
	out := make([]float64, bw*bh)
	for by := 0; by < bh; by++ {
		for bx := 0; bx < bw; bx++ {
			xa, ya := x0+bx*B, y0+by*B
			xb, yb := xa+B, ya+B
			out[by*bw+bx] = (t.sum[yb*t.w+xb] - t.sum[ya*t.w+xb] - t.sum[yb*t.w+xa] + t.sum[ya*t.w+xa]) / (B * B)
		}
	}
	return out
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
