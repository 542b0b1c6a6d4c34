package e2e

import (
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danstream/danstream/internal/testdep"
)

// writePNG writes a w x h picture with edges and texture (something SR has work to do on).
func writePNG(t *testing.T, path string, w, h, div int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			X, Y := x*div, y*div // the same scene at 1/div the size
			v := uint8((X/8+Y/8)%2*160 + 40)
			img.Set(x, y, color.RGBA{v, uint8(X * 255 / (w * div)), uint8(Y * 255 / (h * div)), 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestEnhanceImageAtEachBundledScale(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.png")
	writePNG(t, in, 90, 70, 1) // not a multiple of the tile: edges are padded
	for _, scale := range []string{"2", "4"} {
		out := filepath.Join(dir, "out"+scale+".png")
		if msg, err := run(t, "enhance", "--scale", scale, in, out); err != nil {
			t.Fatalf("enhance x%s: %v\n%s", scale, err, msg)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		n := map[string]int{"2": 2, "4": 4}[scale]
		if err != nil || cfg.Width != 90*n || cfg.Height != 70*n {
			t.Fatalf("x%s output %dx%d (%v), want %dx%d", scale, cfg.Width, cfg.Height, err, 90*n, 70*n)
		}
	}
}

func TestEnhanceVideoAndRejectTruncatedFile(t *testing.T) {
	testdep.Command(t, "ffmpeg")
	testdep.Command(t, "ffprobe")
	dir := t.TempDir()
	in := filepath.Join(dir, "in.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10",
		"-t", "1", "-pix_fmt", "yuv420p", in).CombinedOutput(); err != nil {
		t.Fatalf("making the input: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out.mp4")
	if msg, err := run(t, "enhance", "--scale", "2", in, out); err != nil {
		t.Fatalf("enhance video: %v\n%s", err, msg)
	}
	probe, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0", out).Output()
	if err != nil || strings.TrimSpace(string(probe)) != "192,128,10" {
		t.Fatalf("output video %q (%v), want 192,128,10 (width, height, frames)", probe, err)
	}

	b, _ := os.ReadFile(in)
	bad := filepath.Join(dir, "truncated.mp4")
	os.WriteFile(bad, b[:len(b)/3], 0o600)
	msg, err := run(t, "enhance", "--scale", "2", bad, filepath.Join(dir, "x.mp4"))
	if err == nil || !strings.Contains(msg, "truncated.mp4") || strings.Contains(msg, "panic") {
		t.Fatalf("truncated video: err=%v, want a clear error naming the file:\n%s", err, msg)
	}
}

func TestEvalReportsModelBesideBicubicAndNamesMismatches(t *testing.T) {
	dir := t.TempDir()
	lr, hr := filepath.Join(dir, "LR"), filepath.Join(dir, "HR")
	os.Mkdir(lr, 0o755)
	os.Mkdir(hr, 0o755)
	for _, n := range []string{"a", "b"} {
		writePNG(t, filepath.Join(hr, n+".png"), 128, 96, 1)
		writePNG(t, filepath.Join(lr, n+".png"), 64, 48, 2)
	}
	writePNG(t, filepath.Join(lr, "orphan.png"), 64, 48, 2) // no HR partner
	msg, _ := run(t, "eval", "--scale", "2", "--lr", lr, "--hr", hr, "--json")
	var rep struct {
		Images []struct {
			Name      string  `json:"name"`
			ModelPSNR float64 `json:"model_psnr_y"`
		} `json:"images"`
		Mean struct {
			Model   float64 `json:"model_psnr_y"`
			Bicubic float64 `json:"bicubic_psnr_y"`
		} `json:"mean"`
	}
	start := strings.Index(msg, "{")
	if start < 0 || json.Unmarshal([]byte(msg[start:strings.LastIndex(msg, "}")+1]), &rep) != nil {
		t.Fatalf("eval output is not the JSON report:\n%s", msg)
	}
	if len(rep.Images) != 2 || rep.Mean.Model <= 10 || rep.Mean.Bicubic <= 10 {
		t.Fatalf("report %+v: want 2 images with model and bicubic PSNR", rep)
	}
	if !strings.Contains(msg, "orphan.png") {
		t.Fatalf("the unmatched LR file is not named:\n%s", msg)
	}
}

func TestBenchComparesCacheOnAndOffInOneRun(t *testing.T) {
	msg, err := run(t, "bench", "--input", "synthetic:160x90@15", "--scale", "2", "--frames", "12", "--json")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, msg)
	}
	var rep struct {
		Runs []struct {
			Label  string  `json:"label"`
			Frames int     `json:"frames"`
			Tiles  float64 `json:"tiles_inferred_per_frame"`
		} `json:"runs"`
		Reduction float64 `json:"tile_inference_reduction"`
	}
	if err := json.Unmarshal([]byte(msg[strings.Index(msg, "{"):strings.LastIndex(msg, "}")+1]), &rep); err != nil {
		t.Fatalf("bench output: %v\n%s", err, msg)
	}
	if len(rep.Runs) != 2 || rep.Runs[0].Frames != 12 || rep.Runs[1].Tiles >= rep.Runs[0].Tiles || rep.Reduction <= 1 {
		t.Fatalf("bench report %+v: want cache off and on, the cache inferring fewer tiles", rep)
	}
	if msg, err := run(t, "bench", "--input", "/nonexistent.avi", "--scale", "2"); err == nil || !strings.Contains(msg, "/nonexistent.avi") {
		t.Fatalf("bench on a missing file: err=%v\n%s", err, msg)
	}
}
