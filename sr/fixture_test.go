package sr

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/danstream/danstream/internal/testdep"
)

// TestDANFixture_ORTMatchesPyTorch runs the exported DAN fixture (made by
// sr/dan/export.py together with PyTorch's own input and output) through
// ONNX Runtime and the Go loader, and compares with PyTorch's output.
func TestDANFixture_ORTMatchesPyTorch(t *testing.T) {
	meta, err := os.ReadFile("testdata/dan_fixture.json")
	if err != nil {
		testdep.Missing(t, "no DAN fixture yet (%v); sr/dan/export.py --fixture makes it", err)
	}
	var fx struct {
		ONNX, Input, Output string
		InputShape          []int64 `json:"input_shape"`
		OutputShape         []int64 `json:"output_shape"`
		Tolerance           float64
	}
	if err := json.Unmarshal(meta, &fx); err != nil {
		t.Fatalf("dan_fixture.json: %v", err)
	}
	path := filepath.Join("testdata", fx.ONNX)
	info, err := ReadModelInfo(path)
	if err != nil {
		t.Fatalf("fixture breaks the model contract: %v", err)
	}
	if int64(info.Tile) != fx.InputShape[2] || int64(info.Tile*info.Scale) != fx.OutputShape[2] {
		t.Fatalf("fixture metadata %+v disagrees with shapes %v -> %v", info, fx.InputShape, fx.OutputShape)
	}
	read := func(name string, n int64) []float32 {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != 4*n {
			t.Fatalf("%s: %d bytes, want %d", name, len(b), 4*n)
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v
	}
	inShape, outShape := ort.NewShape(fx.InputShape...), ort.NewShape(fx.OutputShape...)
	in := read(fx.Input, inShape.FlattenedSize())
	want := read(fx.Output, outShape.FlattenedSize())

	// Through the engine's own session (batch of N tiles, as Upscale runs them).
	u := load(t, path, ModelOptions{BatchSize: int(fx.InputShape[0])})
	p, err := u.eng.tensorsFor(int(fx.InputShape[0]))
	if err != nil {
		t.Fatal(err)
	}
	copy(p.in.GetData(), in)
	if err := u.eng.sess.Run([]ort.Value{p.in}, []ort.Value{p.out}); err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i, v := range p.out.GetData() {
		worst = math.Max(worst, math.Abs(float64(v)-float64(want[i])))
	}
	tol := fx.Tolerance
	if tol == 0 {
		tol = 1e-3
	}
	if worst > tol {
		t.Errorf("ONNX Runtime vs PyTorch: max abs difference %.2g > %.0g", worst, tol)
	} else {
		t.Logf("ONNX Runtime vs PyTorch: max abs difference %.2g (tolerance %.0g)", worst, tol)
	}
	// And the whole engine runs it on a frame smaller than one tile and a larger one.
	for _, sz := range [][2]int{{5, 7}, {40, 23}} {
		upscale(t, u, texture(sz[0], sz[1], 1))
	}
}
