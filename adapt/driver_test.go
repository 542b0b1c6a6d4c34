package adapt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/adapt"
	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/internal/rtsptest"
	"github.com/danstream/danstream/internal/testdep"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/sr/offline"
	"github.com/danstream/danstream/stream"
	"github.com/danstream/danstream/transport"
)

// End to end on the test camera, as a user runs it: a served stream with the
// camera's main stream collects pairs; `danstream adapt --api` takes the
// stream's pairs folder and model from /api/streams, adapts the committed x2
// pre-trained checkpoint for a few seconds, and swaps the result in exactly
// when its validation PSNR-Y beats the running model's, with the figures shown
// in /api/streams; a rollback restores the model, and a result that does not
// clear the bar changes nothing.
func TestAdaptLearnsFromTheStreamsOwnPairsAndSwapsOnlyIfValidationImproves(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model for a few seconds")
	}
	if _, err := os.Stat(filepath.Join("..", "sr", "models", "dan_lite_x2_pretrain.pth")); err != nil {
		t.Fatalf("the committed pre-trained x2 checkpoint is missing: %v", err)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testdep.Missing(t, "/usr/bin/python3 (with torch) not installed: run scripts/setup.sh --test")
	}
	if err := sr.InitRuntime(""); err != nil {
		testdep.Missing(t, "ONNX Runtime not available: %v", err)
	}
	srv := rtsptest.Start(t)
	cam := rtsptest.PublishTestCamera(t, srv, rtsptest.CameraOptions{})

	// DANSTREAM_ADAPT_PAIRS / _BUDGET_MIN / _INTERVAL_MS turn this test into the
	// issue's benchmark (e.g. 200 pairs, 350 ms apart, 6 min); defaults keep it short.
	nPairs, budgetMin, interval := envInt("DANSTREAM_ADAPT_PAIRS", 10), envFloat("DANSTREAM_ADAPT_BUDGET_MIN", 0.15),
		time.Duration(envInt("DANSTREAM_ADAPT_INTERVAL_MS", 300))*time.Millisecond
	work := t.TempDir()
	if keep := os.Getenv("DANSTREAM_ADAPT_KEEP"); keep != "" {
		work = keep
	}
	base := filepath.Join("..", "sr", "models", "dan_lite_x2.onnx")
	sc, err := stream.ValidateStream("cam", stream.StreamConfig{Source: cam.SubURL, Main: cam.MainURL, Model: base, Threads: 1,
		PairsDir: filepath.Join(work, "pairs"), PairsMax: nPairs, PairsEvery: interval})
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.NewManager(stream.Config{Streams: map[string]stream.StreamConfig{"cam": sc}}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	mdone := make(chan error, 1)
	go func() { mdone <- m.Run(mctx) }()
	defer func() { mcancel(); <-mdone; m.Close() }()
	api := httptest.NewServer(transport.NewServer(m, transport.ServerOptions{LoopbackOnly: true}).Handler())
	defer api.Close()
	status := func() transport.StreamStatus {
		t.Helper()
		st, err := adapt.StreamFromAPI(context.Background(), api.URL, "", "cam")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for deadline := time.Now().Add(4*time.Minute + time.Duration(nPairs)*interval*2); ; time.Sleep(time.Second) {
		st := status()
		if st.Pairs != nil && st.Pairs.OnDisk >= nPairs {
			t.Logf("collected while serving: %+v", *st.Pairs)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("collection stalled: %+v", st.Pairs)
		}
	}

	adaptOnce := func(out string, budgetMin, minGain float64) adapt.Report {
		t.Helper()
		_, err := adapt.Run(context.Background(), adapt.RunOptions{Stream: "cam", API: api.URL, BudgetMin: budgetMin, Out: out,
			Val: 0.2, MinGain: minGain, Engine: offline.Engine{Threads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, "adapt_report.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rep adapt.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		t.Logf("report: %s", b)
		return rep
	}
	rep := adaptOnce(filepath.Join(work, "adapted"), budgetMin, 0)
	if rep.PairsTrain+rep.PairsVal < nPairs || rep.PairsVal < 1 || rep.BaseModel != base {
		t.Fatalf("pairs %d train + %d val (want %d with a held-out slice), base %q (want the stream's %q)",
			rep.PairsTrain, rep.PairsVal, nPairs, rep.BaseModel, base)
	}
	var st transport.StreamStatus
	// The pipeline installs a swapped model before its next frame.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st = status()
		if !rep.Swapped || strings.Contains(st.Model, "adapted") || time.Now().After(deadline) {
			break
		}
	}
	adapted := strings.Contains(st.Model, "adapted")
	if rep.Swapped != (rep.Gain > 0) || adapted != rep.Swapped {
		t.Fatalf("gain %+.3f dB, swapped %v, stream runs %q: the swap must follow the validation result", rep.Gain, rep.Swapped, st.Model)
	}
	if rep.Swapped {
		v := st.ModelValidation
		if v == nil || st.ModelPath != rep.Adapted || v.Pairs != rep.PairsVal || v.After != rep.AfterPSNR || v.Before != rep.BeforePSNR {
			t.Fatalf("/api/streams shows model %q validation %+v, want %q with the report's figures", st.ModelPath, v, rep.Adapted)
		}
		if _, err := adapt.APICall(context.Background(), "POST", api.URL+"/api/streams/cam/model", "", []byte(`{"rollback":true}`)); err != nil {
			t.Fatal(err)
		}
		if st = status(); st.ModelPath != base || st.ModelValidation != nil {
			t.Fatalf("after rollback: model %q validation %+v, want %q without figures", st.ModelPath, st.ModelValidation, base)
		}
		for deadline := time.Now().Add(20 * time.Second); strings.Contains(st.Model, "adapted"); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after rollback the stream still runs %q", st.Model)
			}
			st = status()
		}
	}

	// A model that does not clear the bar leaves the stream as it is.
	before := status()
	rep2 := adaptOnce(filepath.Join(work, "adapted2"), 0.05, 50)
	if rep2.Swapped || !strings.HasPrefix(rep2.Decision, "rejected") {
		t.Fatalf("decision %q swapped %v with --min-gain 50", rep2.Decision, rep2.Swapped)
	}
	if now := status(); now.ModelPath != before.ModelPath || now.Model != before.Model {
		t.Fatalf("a rejected model changed the stream: %q -> %q", before.ModelPath, now.ModelPath)
	}
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func envFloat(k string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil && v > 0 {
		return v
	}
	return def
}

// Adaptation starts from the realistic pre-trained checkpoint of the pairs'
// scale, at every scale; the clean pre-training checkpoint only where no
// realistic one is bundled; neither is an error naming both and --init.
func TestInitCheckpointIsTheRealisticOneOfThePairsScale(t *testing.T) {
	repo := t.TempDir()
	models := filepath.Join(repo, "sr", "models")
	if err := os.MkdirAll(models, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"dan_lite_x2_pretrain.pth", "dan_lite_x2_real.pth", "dan_lite_x3_real.pth", "dan_lite_x4_pretrain.pth"} {
		if err := os.WriteFile(filepath.Join(models, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for scale, want := range map[int]string{2: "dan_lite_x2_real.pth", 3: "dan_lite_x3_real.pth", 4: "dan_lite_x4_pretrain.pth"} {
		got, err := adapt.InitCheckpoint(repo, scale)
		if err != nil || got != filepath.Join(models, want) {
			t.Errorf("x%d: %s (%v), want %s", scale, got, err, want)
		}
	}
	_, err := adapt.InitCheckpoint(repo, 5)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "dan_lite_x5_real.pth") || !strings.Contains(err.Error(), "--init") {
		t.Errorf("x5: %v", err)
	}
}

// Adaptation at x3, from the bundled realistic x3 checkpoint: a few pairs of
// the synthetic scene (HR 384x288, LR its area /3), a few seconds of training,
// an x3 ONNX file that loads and is scored beside the running x3 model.
func TestAdaptAtScale3StartsFromTheRealisticX3Checkpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model for a few seconds")
	}
	ck, _ := sr.FindAsset(filepath.Join("sr", "models", "dan_lite_x3_real.pth"))
	if ck == "" {
		t.Fatal("the bundled realistic x3 checkpoint sr/models/dan_lite_x3_real.pth is missing")
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testdep.Missing(t, "/usr/bin/python3 (with torch) not installed: run scripts/setup.sh --test")
	}
	if err := sr.InitRuntime(""); err != nil {
		testdep.Missing(t, "ONNX Runtime not available: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "pairs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := capture.Open(context.Background(), "synthetic:384x288@50", capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	man := adapt.Manifest{Version: 1, Scale: 3, LRWidth: 128, LRHeight: 96, HRWidth: 384, HRHeight: 288}
	for i := 0; i < 6; i++ {
		hr, err := src.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		lr, w, h := sr.ResizeArea(hr.Pix, hr.W, hr.H, 3)
		p := adapt.Pair{ID: uint64(i), LR: fmt.Sprintf("%08d_lr.png", i), HR: fmt.Sprintf("%08d_hr.png", i)}
		writeBGR(t, filepath.Join(dir, p.LR), lr, w, h)
		writeBGR(t, filepath.Join(dir, p.HR), hr.Pix, hr.W, hr.H)
		man.Pairs, man.NextID = append(man.Pairs, p), uint64(i+1)
	}
	b, _ := json.Marshal(man)
	if err := os.WriteFile(filepath.Join(dir, adapt.ManifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := adapt.Run(context.Background(), adapt.RunOptions{Stream: "x3", PairsDir: dir, BudgetMin: 0.05, Val: 0.34,
		MinGain: -100, Out: filepath.Join(t.TempDir(), "out"), Engine: offline.Engine{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep)
	if filepath.Base(rep.Init) != "dan_lite_x3_real.pth" || filepath.Base(rep.BaseModel) != "dan_lite_x3_real.onnx" {
		t.Fatalf("started from %s against %s, want the realistic x3 checkpoint and file", rep.Init, rep.BaseModel)
	}
	u, err := sr.LoadModel(rep.Adapted, sr.ModelOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if u.Scale() != 3 || math.IsNaN(rep.AfterPSNR) || rep.AfterPSNR < 10 {
		t.Fatalf("adapted model x%d, validation PSNR-Y %.2f dB", u.Scale(), rep.AfterPSNR)
	}
}

func writeBGR(t *testing.T, path string, pix []byte, w, h int) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i, j := 0, 0; i < len(pix); i, j = i+3, j+4 {
		img.Pix[j], img.Pix[j+1], img.Pix[j+2], img.Pix[j+3] = pix[i+2], pix[i+1], pix[i], 255
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
