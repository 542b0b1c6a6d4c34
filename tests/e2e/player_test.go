package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// compareResult is what tests/browser/compare.mjs reports.
type compareResult struct {
	OK     bool `json:"ok"`
	Before struct {
		Mode   string  `json:"mode"`
		Split  float64 `json:"split"`
		Slider int     `json:"slider"`
		Align  struct {
			Locked bool `json:"locked"`
			Paired bool `json:"paired"`
		} `json:"align"`
		Videos []struct {
			ID     string `json:"id"`
			Width  int    `json:"width"`
			Height int    `json:"height"`
			Frames int    `json:"frames"`
		} `json:"videos"`
	} `json:"before"`
	SliderAfterKeys int `json:"sliderAfterKeys"`
	SliderAfterDrag int `json:"sliderAfterDrag"`
	Grab            struct {
		Width, Height, Cut int
		InStep             bool `json:"inStep"`
		Visible            bool `json:"visible"`
		RTP                struct {
			Enhanced uint32 `json:"enhanced"`
			Original uint32 `json:"original"`
		} `json:"rtp"`
		Delta           int32                         `json:"delta"`
		Composite       struct{ Left, Right float64 } `json:"composite"`
		Original        struct{ Left, Right float64 } `json:"original"`
		Enhanced        struct{ Left, Right float64 } `json:"enhanced"`
		LeftVsOriginal  float64                       `json:"leftVsOriginal"`
		LeftVsEnhanced  float64                       `json:"leftVsEnhanced"`
		RightVsEnhanced float64                       `json:"rightVsEnhanced"`
		RightVsOriginal float64                       `json:"rightVsOriginal"`
		ThumbDiff       float64                       `json:"thumbDiff"`
	} `json:"grab"`
	Zoom struct {
		Zoom    float64 `json:"zoom"`
		Minimap bool    `json:"minimap"`
	} `json:"zoom"`
	Wheel struct {
		Reset, Wheel, Dblclick float64
	} `json:"wheel"`
	Logs  []string `json:"logs"`
	Error string   `json:"error"`
}

// runCompare opens url in headless Chromium with tests/browser/compare.mjs.
func runCompare(t *testing.T, url string, extra ...string) compareResult {
	t.Helper()
	var res compareResult
	runProbe(t, "compare.mjs", url, 90000, &res, extra...)
	return res
}

// screenshotDir is $DANSTREAM_SCREENSHOTS (kept, to look at) or a temp dir.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("DANSTREAM_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// The compare view shows one capture instant split at the divider: the
// original (bicubic) frame left of it, the enhanced frame of the same instant
// right of it, and the enhanced side carries more fine detail.
func TestPlayerCompareShowsTwoHalvesOfOneFrame(t *testing.T) {
	s := startServe(t, defaultConfig(t))
	st := s.waitRunning(t, "demo")
	dir := screenshotDir(t)
	shot, zoomShot := filepath.Join(dir, "player-compare.png"), filepath.Join(dir, "player-compare-zoom.png")
	res := runCompare(t, "http://"+s.http+"/streams/demo?mode=compare", "--screenshot", shot, "--zoom-screenshot", zoomShot)
	if !res.OK || res.Error != "" {
		t.Fatalf("compare page did not play: %+v", res)
	}
	b := res.Before
	if b.Mode != "compare" || len(b.Videos) != 2 {
		t.Fatalf("page state %+v: want compare mode with two videos", b)
	}
	for _, v := range b.Videos {
		if v.Width != st.OutputWidth || v.Height != st.OutputHeight || v.Frames <= 5 {
			t.Errorf("%s decoded %d frames of %dx%d, want > 5 frames of %dx%d", v.ID, v.Frames, v.Width, v.Height, st.OutputWidth, st.OutputHeight)
		}
	}
	if !b.Align.Locked {
		t.Fatalf("the page never matched the two sessions' RTP timelines: %+v\nlogs: %v", b.Align, res.Logs)
	}
	if b.Slider != 50 || res.SliderAfterKeys != 45 || res.SliderAfterDrag < 49 || res.SliderAfterDrag > 51 {
		t.Errorf("divider at %d%%, after 5 ArrowLeft %d%%, after dragging to the middle %d%%; want 50, 45, 50",
			b.Slider, res.SliderAfterKeys, res.SliderAfterDrag)
	}

	g := res.Grab
	if !g.InStep || !g.Visible {
		t.Fatalf("compare canvas never showed a paired frame (in step %v, visible %v)", g.InStep, g.Visible)
	}
	if want := uint32(int32(g.RTP.Enhanced) - g.Delta); want != g.RTP.Original && want+1 != g.RTP.Original && want-1 != g.RTP.Original {
		t.Errorf("pair rtp enhanced %d original %d differ by %d, not by the timelines' delta %d",
			g.RTP.Enhanced, g.RTP.Original, int32(g.RTP.Enhanced-g.RTP.Original), g.Delta)
	}
	if g.Width != st.OutputWidth || g.Cut != g.Width/2 {
		t.Errorf("compare canvas %dx%d cut at %d; want width %d cut in the middle", g.Width, g.Height, g.Cut, st.OutputWidth)
	}
	// Each side is its variant, pixel for pixel (mean |difference| per channel).
	if g.LeftVsOriginal > 1 || g.LeftVsEnhanced < g.LeftVsOriginal+2 {
		t.Errorf("left of the divider differs from the original frame by %.2f and from the enhanced by %.2f: want it to be the original", g.LeftVsOriginal, g.LeftVsEnhanced)
	}
	if g.RightVsEnhanced > 1 || g.RightVsOriginal < g.RightVsEnhanced+2 {
		t.Errorf("right of the divider differs from the enhanced frame by %.2f and from the original by %.2f: want it to be the enhanced", g.RightVsEnhanced, g.RightVsOriginal)
	}
	// One instant: at thumbnail size the two variants of a frame are nearly the same picture.
	if g.ThumbDiff > 4 {
		t.Errorf("the pair's frames differ by %.2f per channel at 64x36: not one instant", g.ThumbDiff)
	}
	// What makes the comparison worth having: the original side is smoother.
	if g.Composite.Left >= g.Composite.Right {
		t.Errorf("high-frequency energy left of the divider %.2f >= right %.2f: want the original (left) smoother", g.Composite.Left, g.Composite.Right)
	}
	if g.Original.Left >= g.Enhanced.Left || g.Original.Right >= g.Enhanced.Right {
		t.Errorf("high-frequency energy original %.2f/%.2f vs enhanced %.2f/%.2f (left/right bands): want the enhanced sharper in both",
			g.Original.Left, g.Original.Right, g.Enhanced.Left, g.Enhanced.Right)
	}
	if res.Zoom.Zoom != 4 || !res.Zoom.Minimap {
		t.Errorf("zoom %+v: want 4x with the minimap shown", res.Zoom)
	}
	if w := res.Wheel; w.Reset != 1 || w.Wheel <= 1 || w.Dblclick != 1 {
		t.Errorf("zoom after a double-click %v, after the wheel %v, after another double-click %v; want 1, > 1, 1", w.Reset, w.Wheel, w.Dblclick)
	}
	for _, f := range []string{shot, zoomShot} {
		if fi, err := os.Stat(f); err != nil || fi.Size() < 50_000 {
			t.Errorf("screenshot %s missing or blank: %v", f, err)
		}
	}
	t.Logf("screenshots: %s %s; HF left %.2f right %.2f; same-band original %.2f/%.2f enhanced %.2f/%.2f; thumb diff %.2f",
		shot, zoomShot, g.Composite.Left, g.Composite.Right, g.Original.Left, g.Original.Right, g.Enhanced.Left, g.Enhanced.Right, g.ThumbDiff)
}

// The stats overlay's cache numbers come from /api/streams, filled from the
// upscaler's own counters (the default stream has the tile cache on).
func TestAPIStreamsReportsTileCacheOfRunningStream(t *testing.T) {
	s := startServe(t, defaultConfig(t))
	s.waitRunning(t, "demo")
	var st struct {
		CacheHitRate          *float64 `json:"cache_hit_rate"`
		TilesInferredPerFrame *float64 `json:"tiles_inferred_per_frame"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r, err := http.Get("http://" + s.http + "/api/streams")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Streams []json.RawMessage `json:"streams"`
		}
		err = json.NewDecoder(r.Body).Decode(&body)
		r.Body.Close()
		if err != nil || len(body.Streams) == 0 {
			t.Fatalf("/api/streams: %v", err)
		}
		if err := json.Unmarshal(body.Streams[0], &st); err != nil {
			t.Fatal(err)
		}
		if st.CacheHitRate != nil && *st.CacheHitRate > 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st.CacheHitRate == nil || st.TilesInferredPerFrame == nil {
		t.Fatal("/api/streams lacks cache_hit_rate or tiles_inferred_per_frame")
	}
	if h, n := *st.CacheHitRate, *st.TilesInferredPerFrame; h <= 0 || h > 1 || n <= 0 {
		t.Fatalf("cache_hit_rate %v, tiles_inferred_per_frame %v: want a hit rate in (0,1] (static scene, cache on) and tiles run", h, n)
	}
}
