package sr

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/danstream/danstream/frame"
)

const (
	convX2    = "testdata/conv_x2.onnx"
	convX2Dyn = "testdata/conv_x2_dynamic.onnx"
	nearestX4 = "testdata/nearest_x4.onnx"
	convX3    = "testdata/conv_x3.onnx"
	convX3Dyn = "testdata/conv_x3_dynamic.onnx"
	nearestX3 = "testdata/nearest_x3.onnx"
)

func TestMain(m *testing.M) {
	if os.Getenv("SR_TEST_CHILD") == "initfail" {
		// Child of TestInitRuntime_ErrorListsEveryPathTried: no library anywhere.
		err := InitRuntime("/nonexistent/custom/libonnxruntime.so.1")
		if err == nil {
			os.Stdout.WriteString("LOADED " + RuntimeLibrary())
			os.Exit(0)
		}
		os.Stdout.WriteString(err.Error())
		os.Exit(3)
	}
	if err := InitRuntime(""); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func load(t testing.TB, path string, opts ModelOptions) *ONNXUpscaler {
	t.Helper()
	u, err := LoadModel(path, opts)
	if err != nil {
		t.Fatalf("LoadModel(%s): %v", path, err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// texture makes a deterministic frame with edges, gradients and fine detail.
func texture(w, h int, seed int64) frame.Frame {
	r := rand.New(rand.NewSource(seed))
	f := frame.New(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			p := f.Pix[(y*w+x)*3:]
			p[0] = byte((x*7 + y*3) % 256)
			p[1] = byte(128 + 100*math.Sin(float64(x)/5)*math.Cos(float64(y)/7))
			p[2] = byte(r.Intn(256))
			if (x/9+y/11)%2 == 0 {
				p[0] = 255 - p[0]
			}
		}
	}
	return f
}

func upscale(t testing.TB, u Upscaler, f frame.Frame) frame.Frame {
	t.Helper()
	out, err := u.Upscale(context.Background(), f)
	if err != nil {
		t.Fatalf("%s.Upscale(%dx%d): %v", u.Name(), f.W, f.H, err)
	}
	if out.W != f.W*u.Scale() || out.H != f.H*u.Scale() || len(out.Pix) != out.W*out.H*3 {
		t.Fatalf("%s: output %dx%d (%d bytes) for %dx%d input", u.Name(), out.W, out.H, len(out.Pix), f.W, f.H)
	}
	return out
}

func TestInitRuntime_ErrorListsEveryPathTried(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "SR_TEST_CHILD=initfail", EnvORTLib+"=/nonexistent/env/libonnxruntime.so.1")
	out, _ := cmd.Output()
	msg := string(out)
	if strings.HasPrefix(msg, "LOADED") {
		t.Skipf("a system-wide ONNX Runtime is installed (%s); cannot test the not-found message", msg)
	}
	for _, want := range []string{"/nonexistent/custom/libonnxruntime.so.1", "/nonexistent/env/libonnxruntime.so.1",
		filepath.Join(cmd.Dir, ortRelPath), "libonnxruntime.so.1 (", "bash scripts/setup.sh", EnvORTLib} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestReadModelInfo_ParsesContractMetadata(t *testing.T) {
	for _, tc := range []struct {
		path                 string
		name                 string
		scale, tile, overlap int
	}{
		{convX2, "test-conv-x2", 2, 32, 8},
		{nearestX4, "test-nearest-x4", 4, 16, 4},
	} {
		info, err := ReadModelInfo(tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if info.Name != tc.name || info.Scale != tc.scale || info.Tile != tc.tile || info.Overlap != tc.overlap || info.Version != "1" || info.Arch == "" {
			t.Errorf("%s: got %+v", tc.path, info)
		}
	}
}

func TestLoadModel_RejectsBadFilesWithClearErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(convX2)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	junk := make([]byte, 4096)
	rand.New(rand.NewSource(3)).Read(junk)
	for _, tc := range []struct {
		name     string
		path     string
		notExist bool
		want     string // in the message besides the path
	}{
		{"missing file", filepath.Join(dir, "nope.onnx"), true, "no such file"},
		{"directory", dir, false, "directory"},
		{"empty file", write("empty.onnx", nil), false, "empty"},
		{"corrupt bytes", write("corrupt.onnx", junk), false, "cannot be read as ONNX"},
		{"truncated file", write("truncated.onnx", good[:len(good)/2]), false, "cannot be read as ONNX"},
		{"no metadata", "testdata/bad_nometa.onnx", false, "danstream.scale"},
		{"scale disagrees with output", "testdata/bad_scale.onnx", false, "output"},
		{"tile disagrees with input", "testdata/bad_tile.onnx", false, "input"},
		{"overlap too large", "testdata/bad_overlap.onnx", false, "danstream.overlap"},
		{"unsupported input range", "testdata/bad_range.onnx", false, "danstream.input_range"},
		{"wrong tensor names", "testdata/bad_names.onnx", false, `want "lr"`},
		{"NaN output", "testdata/bad_nan_x4.onnx", false, "not finite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := LoadModel(tc.path, ModelOptions{})
			if err == nil {
				u.Close()
				t.Fatalf("LoadModel(%s) succeeded", tc.path)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.path) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q should name %s and say %q", msg, tc.path, tc.want)
			}
			if tc.notExist != errors.Is(err, os.ErrNotExist) {
				t.Errorf("errors.Is(err, os.ErrNotExist) = %v, want %v", !tc.notExist, tc.notExist)
			}
			if !tc.notExist && !errors.Is(err, ErrBadModel) {
				t.Errorf("error %q does not wrap ErrBadModel", msg)
			}
		})
	}
}

func TestLoadModel_ProviderFallsBackToCPUWithOneLogLine(t *testing.T) {
	for _, p := range []string{ProviderCUDA, ProviderTensorRT, ProviderAuto} {
		t.Run(p, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			u := load(t, convX2, ModelOptions{Provider: p, Logger: log})
			lines := strings.Count(strings.TrimSpace(buf.String()), "\n") + 1
			if u.Provider() == ProviderCPU {
				if !strings.Contains(buf.String(), "using=cpu") || !strings.Contains(buf.String(), "why=") || lines != 1 {
					t.Errorf("fallback to cpu should log one line with the reason, got:\n%s", buf.String())
				}
			}
			if u.BatchSize() < 1 || !strings.Contains(u.Name(), u.Provider()) {
				t.Errorf("batch %d name %q", u.BatchSize(), u.Name())
			}
			upscale(t, u, texture(40, 40, 1))
		})
	}
	if _, err := LoadModel(convX2, ModelOptions{Provider: "tpu"}); err == nil || !strings.Contains(err.Error(), `"tpu"`) {
		t.Errorf("unknown provider: err = %v", err)
	}
}

func nearestRef(f frame.Frame, s int) []byte {
	out := make([]byte, f.W*s*f.H*s*3)
	for y := 0; y < f.H*s; y++ {
		for x := 0; x < f.W*s; x++ {
			copy(out[(y*f.W*s+x)*3:(y*f.W*s+x)*3+3], f.Pix[((y/s)*f.W+x/s)*3:])
		}
	}
	return out
}

func TestUpscale_NearestModelEqualsPlainResizeAtAnySize(t *testing.T) {
	for _, m := range []struct {
		path  string
		scale int
	}{{nearestX4, 4}, {nearestX3, 3}} {
		u := load(t, m.path, ModelOptions{BatchSize: 3})
		if u.Scale() != m.scale {
			t.Fatalf("%s: scale %d, want %d", m.path, u.Scale(), m.scale)
		}
		// Sizes below, at and above the 16-pixel tile, odd ones, and a single pixel.
		for _, sz := range [][2]int{{1, 1}, {5, 3}, {16, 16}, {17, 33}, {100, 61}, {64, 9}} {
			f := texture(sz[0], sz[1], int64(sz[0]))
			got := upscale(t, u, f)
			if got.W != f.W*m.scale || got.H != f.H*m.scale || !bytes.Equal(got.Pix, nearestRef(f, m.scale)) {
				t.Errorf("x%d %dx%d: tiled nearest-neighbour output differs from a plain resize", m.scale, sz[0], sz[1])
			}
		}
	}
}

// wholeImage runs the same network with free H,W on the whole frame, padded by
// reflection like the tiler pads the frame edge, and returns BGR bytes.
func wholeImage(t *testing.T, model string, f frame.Frame, pad, s int) []byte {
	t.Helper()
	W, H := f.W+2*pad, f.H+2*pad
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 3, int64(H), int64(W)))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	d := in.GetData()
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			p := f.Pix[(reflect101(y-pad, f.H)*f.W+reflect101(x-pad, f.W))*3:]
			for c := 0; c < 3; c++ {
				d[c*W*H+y*W+x] = float32(p[2-c]) / 255
			}
		}
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 3, int64(H*s), int64(W*s)))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	sess, err := ort.NewDynamicAdvancedSession(model, []string{"lr"}, []string{"hr"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Destroy()
	if err := sess.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
		t.Fatal(err)
	}
	od := out.GetData()
	Wo, Ho := f.W*s, f.H*s
	res := make([]byte, Wo*Ho*3)
	for y := 0; y < Ho; y++ {
		for x := 0; x < Wo; x++ {
			for c := 0; c < 3; c++ {
				res[(y*Wo+x)*3+2-c] = toU8(od[c*W*s*H*s+(y+pad*s)*W*s+x+pad*s])
			}
		}
	}
	return res
}

func TestUpscale_TiledEqualsWholeImageWithoutSeams(t *testing.T) {
	for _, m := range []struct {
		tiled, whole string
		scale        int
	}{{convX2, convX2Dyn, 2}, {convX3, convX3Dyn, 3}} {
		u := load(t, m.tiled, ModelOptions{})
		pad := u.Info().Overlap / 2
		for _, sz := range [][2]int{{150, 97}, {10, 7}, {32, 32}, {33, 70}} {
			f := texture(sz[0], sz[1], 7)
			got := upscale(t, u, f)
			want := wholeImage(t, m.whole, f, pad, m.scale)
			if p := PSNR(got.Pix, want); p < 50 {
				t.Errorf("x%d %dx%d: tiled vs whole-image PSNR %.2f dB, want >= 50", m.scale, sz[0], sz[1], p)
			} else {
				t.Logf("x%d %dx%d: tiled vs whole-image PSNR %.2f dB", m.scale, sz[0], sz[1], p)
			}
		}
	}
}

func maxAbsDiff(a, b []byte) int {
	m := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

func TestUpscale_BatchSizesGiveIdenticalOutput(t *testing.T) {
	f := texture(130, 75, 11)
	var ref []byte
	for _, b := range []int{1, 3, 16} {
		u := load(t, convX2, ModelOptions{BatchSize: b, Cache: false})
		got := upscale(t, u, f)
		if ref == nil {
			ref = got.Pix
			continue
		}
		if d := maxAbsDiff(ref, got.Pix); d > 1 {
			t.Errorf("batch %d: max difference %d levels from batch 1", b, d)
		}
		if m := u.Metrics(); m.Last.Batches != (m.Last.Inferred+b-1)/b {
			t.Errorf("batch %d: %d tiles took %d runs", b, m.Last.Inferred, m.Last.Batches)
		}
	}
}

func TestUpscale_BadFramesGetErrors(t *testing.T) {
	u := load(t, convX2, ModelOptions{})
	for _, f := range []frame.Frame{{}, {W: 4, H: 4, Pix: make([]byte, 10)}} {
		if _, err := u.Upscale(context.Background(), f); err == nil {
			t.Errorf("frame %dx%d with %d bytes accepted", f.W, f.H, len(f.Pix))
		}
	}
	u.Close()
	if _, err := u.Upscale(context.Background(), texture(8, 8, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestBicubic_KeepsFlatAndScales(t *testing.T) {
	b := NewBicubic(3)
	f := frame.New(7, 5)
	for i := range f.Pix {
		f.Pix[i] = 90
	}
	out := upscale(t, b, f)
	for _, v := range out.Pix {
		if v != 90 {
			t.Fatalf("flat image changed: %d", v)
		}
	}
	if b.Name() != "bicubic" || b.Scale() != 3 {
		t.Errorf("name %q scale %d", b.Name(), b.Scale())
	}
	// A smooth image enlarged by bicubic then area-reduced comes back close.
	g := texture(40, 30, 2)
	for i := 0; i < len(g.Pix); i += 3 {
		g.Pix[i+2] = g.Pix[i+1] // drop the noise channel
	}
	up := upscale(t, NewBicubic(2), g)
	back, w, h := ResizeArea(up.Pix, up.W, up.H, 2)
	if w != 40 || h != 30 {
		t.Fatalf("area size %dx%d", w, h)
	}
	if p, _ := PSNRY(back, g.Pix, 40, 30, 2); p < 30 {
		t.Errorf("bicubic up + area down PSNR-Y %.1f dB", p)
	}
}

func TestQuality_IdenticalAndNoisyImages(t *testing.T) {
	a := texture(64, 48, 5)
	if p, err := PSNRY(a.Pix, a.Pix, 64, 48, 4); err != nil || !math.IsInf(p, 1) {
		t.Errorf("identical PSNR-Y = %v, %v", p, err)
	}
	if s, err := SSIMY(a.Pix, a.Pix, 64, 48, 4); err != nil || math.Abs(s-1) > 1e-9 {
		t.Errorf("identical SSIM-Y = %v, %v", s, err)
	}
	b := frame.New(64, 48)
	copy(b.Pix, a.Pix)
	r := rand.New(rand.NewSource(1))
	for i := range b.Pix {
		b.Pix[i] = byte(min(255, max(0, int(b.Pix[i])+r.Intn(21)-10)))
	}
	p, _ := PSNRY(a.Pix, b.Pix, 64, 48, 4)
	s, _ := SSIMY(a.Pix, b.Pix, 64, 48, 4)
	if p < 25 || p > 40 || s <= 0 || s >= 0.99 {
		t.Errorf("noisy: PSNR-Y %.2f SSIM-Y %.3f", p, s)
	}
	if _, err := PSNRY(a.Pix, b.Pix[:10], 64, 48, 4); err == nil {
		t.Error("size mismatch accepted")
	}
}

// A stream being deleted cancels its context: neither upscaler finishes a big
// frame after that (the bicubic baseline of a 4K output takes seconds).
func TestUpscalersStopWhenTheContextEnds(t *testing.T) {
	u, err := LoadModel(nearestX4, ModelOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := frame.New(960, 540)
	for _, up := range []Upscaler{NewBicubic(4), u} {
		if out, err := up.Upscale(ctx, f); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Upscale after cancel gave a %dx%d frame, err %v; want context.Canceled", up.Name(), out.W, out.H, err)
		}
	}
}
