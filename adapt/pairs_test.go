package adapt

import (
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/internal/rtsptest"
)

func open(t *testing.T, url string) capture.Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := capture.Open(ctx, url, capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The collector pairs the test camera's sub and main streams: every stored
// pair is registered within a fraction of a pixel, the dataset is bounded and
// rotates, a disk that refuses writes is survived, and no Mat leaks.
func TestCollectorBuildsARegisteredRotatingDatasetFromTheTestCamera(t *testing.T) {
	matsBefore, counting := capture.MatCount()
	s := rtsptest.Start(t)
	cam := rtsptest.PublishTestCamera(t, s, rtsptest.CameraOptions{})
	sub, main := open(t, cam.SubURL), open(t, cam.MainURL)
	dir := filepath.Join(t.TempDir(), "pairs")
	const maxPairs = 20
	c, err := NewCollector(sub, main, CollectorOptions{Dir: dir, Scale: 2, MaxPairs: maxPairs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			sub.Close()
			main.Close()
		}
	}
	defer stop()

	limit := 3 * time.Minute
	waitFor(t, "5 pairs", limit, func() bool { return c.Stats().Stored >= 5 })

	// The disk goes away: the folder is replaced by a file, writes fail.
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a write error", limit, func() bool { return c.Stats().WriteErrors > 0 })
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(moved, dir); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "more pairs than the dataset keeps", limit, func() bool { return c.Stats().Stored >= maxPairs+5 })
	stop()
	st := c.Stats()
	t.Logf("stats %+v", st)
	if st.OnDisk != maxPairs {
		t.Fatalf("%d pairs on disk, want %d", st.OnDisk, maxPairs)
	}

	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.Scale != 2 || m.LRWidth != 384 || m.LRHeight != 288 || m.HRWidth != 768 || m.HRHeight != 576 || len(m.Pairs) != maxPairs {
		t.Fatalf("manifest header %+v with %d pairs", m, len(m.Pairs))
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	if len(names) != 2*maxPairs {
		t.Fatalf("%d PNG files, want %d (old pairs rotated out)", len(names), 2*maxPairs)
	}
	var worst, worstDt float64
	for i, p := range m.Pairs {
		if i > 0 && p.ID <= m.Pairs[i-1].ID {
			t.Fatalf("pair ids not increasing: %d after %d", p.ID, m.Pairs[i-1].ID)
		}
		if p.ID >= m.NextID {
			t.Fatalf("pair id %d >= next id %d", p.ID, m.NextID)
		}
		worst = max(worst, math.Abs(p.DX), math.Abs(p.DY))
		worstDt = max(worstDt, math.Abs(p.DtMillis))
		if p.Response < 0.15 {
			t.Fatalf("pair %d stored with response %.2f", p.ID, p.Response)
		}
	}
	// The test camera's sub is main's own frame blurred and halved: the true
	// shift is zero (area downscaling keeps the pixel grid aligned).
	if worst > 0.5 {
		t.Fatalf("largest registered shift %.2f sub pixels, want < 0.5", worst)
	}
	var worstContent float64
	for _, p := range m.Pairs {
		worstContent = max(worstContent, p.ContentDiff)
	}
	t.Logf("%d pairs, largest shift %.3f px, largest capture-time difference %.0f ms, largest content difference (p99 block luma) %.1f", len(m.Pairs), worst, worstDt, worstContent)
	for _, f := range []struct {
		name string
		w, h int
	}{{m.Pairs[0].LR, 384, 288}, {m.Pairs[0].HR, 768, 576}} {
		fh, err := os.Open(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(fh)
		fh.Close()
		if err != nil || cfg.Width != f.w || cfg.Height != f.h {
			t.Fatalf("%s: %dx%d (%v), want %dx%d", f.name, cfg.Width, cfg.Height, err, f.w, f.h)
		}
	}
	if counting {
		if n, _ := capture.MatCount(); n != matsBefore {
			t.Fatalf("GoCV Mats: %d open after, %d before", n, matsBefore)
		}
	} else {
		t.Log("built without -tags matprofile: Mat leaks are not counted")
	}
}

// Many cameras send a 4:3 sub stream (640x480, 704x576) of a 16:9 main
// picture: the same field of view with anamorphic pixels. The test camera
// publishes a 16:9 main (768x432) with a 256x192 sub at x3 and, from the same
// frames, a sub of the same size showing only the centre of the main picture.
// The first pairs (main resized to 768x576, registered within half a pixel);
// the second is refused with a message that says it is a crop.
func TestCollectorPairsAnAnamorphicSubAndRefusesACrop(t *testing.T) {
	s := rtsptest.Start(t)
	cam := rtsptest.PublishTestCamera(t, s, rtsptest.CameraOptions{
		MainCrop: "768:432", SubWidth: 256, SubHeight: 192, CropPath: "crop",
	})
	main, sub, crop := open(t, cam.MainURL), open(t, cam.SubURL), open(t, cam.CropURL)
	main2 := open(t, cam.MainURL) // each collector reads its own main connection
	for _, src := range []capture.Source{main, sub, crop, main2} {
		defer src.Close()
	}
	dir := filepath.Join(t.TempDir(), "pairs")
	good, err := NewCollector(sub, main, CollectorOptions{Dir: dir, Scale: 3})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := NewCollector(crop, main2, CollectorOptions{Dir: t.TempDir(), Scale: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	goodDone, badDone := make(chan error, 1), make(chan error, 1)
	go func() { goodDone <- good.Run(ctx) }()
	go func() { badDone <- bad.Run(ctx) }()

	// Both run side by side; the crop verdict needs a few still frames, the
	// pairs a few more.
	var badErr error
	waitFor(t, "the cropped sub stream refused and 3 pairs of the anamorphic one", 4*time.Minute, func() bool {
		select {
		case badErr = <-badDone:
			badDone = nil
		default:
		}
		return badDone == nil && good.Stats().Stored >= 3
	})
	if !errors.Is(badErr, ErrCrop) || !strings.Contains(badErr.Error(), "crop") || !strings.Contains(badErr.Error(), "768x432") {
		t.Fatalf("cropped sub stream: Run = %v, want ErrCrop naming the main picture", badErr)
	}
	t.Log(badErr)
	if st := bad.Stats(); st.Stored != 0 {
		t.Errorf("stored %d pairs of a cropped sub stream", st.Stored)
	}
	cancel()
	if err := <-goodDone; err != nil {
		t.Fatalf("anamorphic sub stream: Run = %v", err)
	}
	m := good.Manifest()
	if m.Scale != 3 || m.LRWidth != 256 || m.LRHeight != 192 || m.HRWidth != 768 || m.HRHeight != 576 {
		t.Fatalf("manifest header %+v", m)
	}
	for _, p := range m.Pairs {
		if math.Abs(p.DX) > 0.5 || math.Abs(p.DY) > 0.5 {
			t.Errorf("pair %d registered at (%.2f, %.2f) sub pixels, want within 0.5", p.ID, p.DX, p.DY)
		}
	}
	t.Logf("anamorphic: %+v", good.Stats())
}

// Streams of the same size that show different scenes (a sub stream paired
// with the wrong camera) never produce a pair: the content check or the
// registration refuses every candidate.
func TestCollectorRejectsPairsOfDifferentScenes(t *testing.T) {
	s := rtsptest.Start(t)
	cam := rtsptest.PublishTestCamera(t, s, rtsptest.CameraOptions{})
	rtsptest.PublishTestPattern(t, s.URL("other"), 768, 576, 10)
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := s.WaitPublishing(wctx, "other"); err != nil {
		t.Fatal(err)
	}
	sub, other := open(t, cam.SubURL), open(t, s.URL("other"))
	defer sub.Close()
	defer other.Close()
	c, err := NewCollector(sub, other, CollectorOptions{Dir: t.TempDir(), Scale: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "20 sub frames considered", 2*time.Minute, func() bool { return c.Stats().Considered >= 20 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	t.Logf("stats %+v", st)
	if st.Stored != 0 || st.Content+st.Registration == 0 {
		t.Fatalf("stored %d pairs of different scenes", st.Stored)
	}
}

// A pair PNG appears under its name only once complete: it is written to a
// temporary file and renamed, so a file already linked under that name (adapt
// snapshots the pairs with hard links) keeps its content and nothing
// temporary is left behind.
func TestWritePNGRenamesACompleteFileIntoPlace(t *testing.T) {
	dir := t.TempDir()
	path, snap := filepath.Join(dir, "00000001_lr.png"), filepath.Join(dir, "snapshot_lr.png")
	if err := os.WriteFile(path, []byte("the snapshot's pair"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, snap); err != nil {
		t.Fatal(err)
	}
	f := frame.Frame{W: 8, H: 6, Pix: make([]byte, 8*6*3)}
	if err := writePNG(path, f); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(snap); err != nil || string(b) != "the snapshot's pair" {
		t.Fatalf("the hard-linked snapshot now holds %q (%v): the PNG was written in place", b, err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if img, err := png.Decode(fh); err != nil || img.Bounds().Dx() != 8 || img.Bounds().Dy() != 6 {
		t.Fatalf("written PNG: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v (%v), want 0644", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
