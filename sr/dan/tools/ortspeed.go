//go:build ignore

// ortspeed times a danstream ONNX model per LR tile through ONNX Runtime (onnxruntime_go),
// and optionally checks its output against a PyTorch reference (raw float32 files).
// Excluded from ./... by the build tag; run from the repository root:
//
//	go run sr/dan/tools/ortspeed.go -model sr/models/dan_lite_x4.onnx -n 1 -threads 2 -iters 50
//	go run sr/dan/tools/ortspeed.go -model sr/testdata/dan_fixture.onnx -in sr/testdata/dan_fixture.in.bin -out sr/testdata/dan_fixture.out.bin
//
// Tile size and scale come from the model's metadata (danstream.tile, danstream.scale).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

func readF32(p string) ([]float32, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%s: size %d is not a multiple of 4", p, len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

func run() error {
	model := flag.String("model", "sr/models/dan_lite_x4.onnx", "ONNX model")
	lib := flag.String("lib", "third_party/onnxruntime/libonnxruntime.so.1", "ONNX Runtime library")
	in := flag.String("in", "", "input float32 file [N,3,T,T] (default: a synthetic batch of -n tiles)")
	out := flag.String("out", "", "expected output float32 file, compared to 1e-3")
	n := flag.Int("n", 1, "tiles per batch")
	threads := flag.Int("threads", 2, "intra-op threads")
	iters := flag.Int("iters", 30, "timed runs")
	spin := flag.Bool("spin", true, "let ORT's intra-op threads spin while waiting (its default)")
	profile := flag.String("profile", "", "write ORT's per-node profile (JSON) with this file prefix")
	flag.Parse()
	ort.SetSharedLibraryPath(*lib)
	if err := ort.InitializeEnvironment(); err != nil {
		return fmt.Errorf("onnxruntime %s: %w", *lib, err)
	}
	defer ort.DestroyEnvironment()
	meta, err := ort.GetModelMetadata(*model)
	if err != nil {
		return fmt.Errorf("%s: %w", *model, err)
	}
	defer meta.Destroy()
	get := func(k string) (int, error) {
		v, ok, err := meta.LookupCustomMetadataMap(k)
		if err != nil || !ok {
			return 0, fmt.Errorf("%s: metadata %s missing", *model, k)
		}
		return strconv.Atoi(v)
	}
	t, err := get("danstream.tile")
	if err != nil {
		return err
	}
	s, err := get("danstream.scale")
	if err != nil {
		return err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return err
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(*threads); err != nil {
		return err
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return err
	}
	if !*spin {
		// On a CPU shared with other work, spinning threads wait for descheduled peers.
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return err
		}
	}
	if *profile != "" {
		if err := so.EnableProfiling(*profile); err != nil {
			return err
		}
	}
	sess, err := ort.NewDynamicAdvancedSession(*model, []string{"lr"}, []string{"hr"}, so)
	if err != nil {
		return fmt.Errorf("%s: %w", *model, err)
	}
	defer sess.Destroy()
	var x []float32
	if *in != "" {
		if x, err = readF32(*in); err != nil {
			return err
		}
	} else {
		x = make([]float32, *n*3*t*t)
		for i := range x {
			x[i] = float32(i%251) / 250
		}
	}
	batch := len(x) / (3 * t * t)
	xt, err := ort.NewTensor(ort.NewShape(int64(batch), 3, int64(t), int64(t)), x)
	if err != nil {
		return err
	}
	defer xt.Destroy()
	ot, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(batch), 3, int64(t*s), int64(t*s)))
	if err != nil {
		return err
	}
	defer ot.Destroy()
	if err := sess.Run([]ort.Value{xt}, []ort.Value{ot}); err != nil {
		return err
	}
	if *out != "" {
		want, err := readF32(*out)
		if err != nil {
			return err
		}
		got := ot.GetData()
		if len(want) != len(got) {
			return fmt.Errorf("%s has %d values, model gave %d", *out, len(want), len(got))
		}
		var md float64
		for i := range want {
			md = math.Max(md, math.Abs(float64(want[i]-got[i])))
		}
		fmt.Printf("max |ORT - PyTorch| = %.3g over %d values\n", md, len(want))
		if md > 1e-3 {
			return fmt.Errorf("ORT output differs from PyTorch by %.3g > 1e-3", md)
		}
	}
	ds := make([]float64, *iters)
	for i := range ds {
		t0 := time.Now()
		if err := sess.Run([]ort.Value{xt}, []ort.Value{ot}); err != nil {
			return err
		}
		ds[i] = time.Since(t0).Seconds()
	}
	sort.Float64s(ds)
	px := float64(batch * t * t)
	fmt.Printf("%s: batch %d, tile %d, x%d, %d threads (spin %v), %d runs: best %.1f ms (%.2f us/LR px), median %.1f ms (%.2f us/LR px)\n",
		*model, batch, t, s, *threads, *spin, *iters, ds[0]*1e3, ds[0]*1e6/px, ds[len(ds)/2]*1e3, ds[len(ds)/2]*1e6/px)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ortspeed:", err)
		os.Exit(1)
	}
}
