package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/danstream/danstream/adapt"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/transport"
)

func init() {
	commands["adapt"] = command{"fine-tune a stream's model on its collected sub/main pairs; swap it in if validation improves", runAdapt}
}

// adaptReport is <out>/adapt_report.json, the model card entry of an adapted model.
type adaptReport struct {
	Stream       string    `json:"stream"`
	PairsDir     string    `json:"pairs_dir"`
	PairsTrain   int       `json:"pairs_train"`
	PairsVal     int       `json:"pairs_val"`
	Init         string    `json:"init_checkpoint"`
	BaseModel    string    `json:"base_model"`
	Adapted      string    `json:"adapted_model,omitempty"`
	BudgetMin    float64   `json:"budget_min"`
	TrainSeconds float64   `json:"train_seconds"`
	BicubicPSNR  float64   `json:"val_psnr_y_bicubic"`
	BeforePSNR   float64   `json:"val_psnr_y_before"`
	AfterPSNR    float64   `json:"val_psnr_y_after"`
	Gain         float64   `json:"val_gain_db"`
	Decision     string    `json:"decision"`
	Swapped      bool      `json:"swapped"`
	When         time.Time `json:"when"`
}

func runAdapt(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("adapt", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: danstream adapt --stream NAME (--api URL | --pairs DIR [--model FILE]) [flags]\n\n"+
			"With --api, the stream's pairs folder and running model come from the server's /api/streams\n"+
			"(a stream configured with main: collects pairs while it serves). The pairs used are\n"+
			"snapshotted (hard links) into the output folder, so collection can go on meanwhile.\n"+
			"Holds out the newest --val of the pairs, fine-tunes the LoRA modules, the last group and the\n"+
			"frequency branch of --init (python3 -m sr.dan.train, mode adapt, data kind pairs_dir) for\n"+
			"--budget-min minutes, exports ONNX, and compares validation PSNR-Y (this engine, 64-px tiles)\n"+
			"with --model. Only a model that improves by more than --min-gain dB is swapped into the running\n"+
			"stream (POST --api/api/streams/NAME/model); anything else leaves the stream untouched.")
		fs.PrintDefaults()
	}
	var ef engineFlags
	ef.register(fs)
	stream := fs.String("stream", "", "stream name (names the model, and the stream to swap)")
	pairsDir := fs.String("pairs", "", "folder of collected pairs (manifest.json)")
	initCk := fs.String("init", "", "checkpoint to adapt (default the bundled sr/models/dan_lite_x{scale}_pretrain.pth)")
	out := fs.String("out", "", "output folder (default <pairs>/../adapted-<stream>-<time>)")
	budget := fs.Float64("budget-min", 10, "training wall-time budget, minutes")
	val := fs.Float64("val", 0.2, "fraction of the pairs (the newest) held out for validation")
	minGain := fs.Float64("min-gain", 0, "swap only if validation PSNR-Y improves by more than this (dB)")
	python := fs.String("python", "/usr/bin/python3", "Python with torch")
	api := fs.String("api", "", "danstream server to swap the model into, e.g. http://127.0.0.1:8080 (empty: no swap)")
	token := fs.String("token", os.Getenv("DANSTREAM_TOKEN"), "admin bearer token for --api (default $DANSTREAM_TOKEN)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *stream == "" || (*pairsDir == "" && *api == "") {
		fs.Usage()
		return fmt.Errorf("%w: --stream and one of --pairs or --api are required", errUsage)
	}
	if *val <= 0 || *val >= 1 {
		return fmt.Errorf("%w: --val %g must be between 0 and 1", errUsage, *val)
	}
	if *api != "" && (*pairsDir == "" || ef.model == "") {
		st, err := streamFromAPI(ctx, *api, *token, *stream)
		if err != nil {
			return err
		}
		if *pairsDir == "" {
			if st.Pairs == nil {
				return fmt.Errorf("stream %q on %s has no main source, so no pairs: configure main: or pass --pairs", *stream, *api)
			}
			*pairsDir = st.Pairs.Dir
		}
		if ef.model == "" {
			ef.model = st.ModelPath
		}
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(filepath.Dir(filepath.Clean(*pairsDir)), fmt.Sprintf("adapted-%s-%s", *stream, time.Now().UTC().Format("20060102-150405")))
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	// Train and validate on a fixed snapshot: a running collector rotates
	// pairs out of the live folder while we work.
	snap := filepath.Join(dir, "pairs")
	man, err := snapshotPairs(*pairsDir, snap)
	if err != nil {
		return err
	}
	*pairsDir = snap
	nVal := max(1, int(math.Round(float64(len(man.Pairs))**val)))
	if len(man.Pairs)-nVal < 1 {
		return fmt.Errorf("pairs %s: %d pairs, too few to hold out %d for validation", *pairsDir, len(man.Pairs), nVal)
	}
	valPairs := man.Pairs[len(man.Pairs)-nVal:]
	if ef.scale == 0 {
		ef.scale = man.Scale
	} else if ef.scale != man.Scale {
		return fmt.Errorf("%w: --scale %d but the pairs in %s are x%d", errUsage, ef.scale, *pairsDir, man.Scale)
	}
	base, err := ef.load(false)
	if err != nil {
		return err
	}
	basePath := base.Info().Path
	before, bic, err := valPSNR(ctx, base, *pairsDir, valPairs)
	base.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "adapt: %d pairs (%d train, %d val); val PSNR-Y %s %.3f dB, bicubic %.3f dB\n",
		len(man.Pairs), len(man.Pairs)-nVal, nVal, filepath.Base(basePath), before, bic)

	trainPy, _ := sr.FindAsset(filepath.Join("sr", "dan", "train.py"))
	if trainPy == "" {
		return errors.New("sr/dan/train.py not found (run from the repository)")
	}
	repo := filepath.Dir(filepath.Dir(filepath.Dir(trainPy)))
	ck := *initCk
	if ck == "" {
		ck = filepath.Join(repo, "sr", "models", fmt.Sprintf("dan_lite_x%d_pretrain.pth", man.Scale))
	}
	if _, err := os.Stat(ck); err != nil {
		return fmt.Errorf("init checkpoint: %w (pass --init, a pre-trained sr/dan checkpoint)", err)
	}
	absPairs, _ := filepath.Abs(*pairsDir)
	absCk, _ := filepath.Abs(ck)
	rep := adaptReport{Stream: *stream, PairsDir: absPairs, PairsTrain: len(man.Pairs) - nVal, PairsVal: nVal,
		Init: absCk, BaseModel: basePath, BudgetMin: *budget, BicubicPSNR: bic, BeforePSNR: before, When: time.Now().UTC()}

	opts := filepath.Join(dir, "adapt.yml")
	if err := os.WriteFile(opts, []byte(adaptOptions(*stream, absCk, man.Scale, absPairs, *val, *budget)), 0o644); err != nil {
		return err
	}
	t0 := time.Now()
	trainArgs := []string{opts, "--out", filepath.Join(dir, "run")}
	if ef.threads > 0 {
		trainArgs = append(trainArgs, "--threads", fmt.Sprint(ef.threads))
	}
	if err := runPython(ctx, *python, repo, "sr.dan.train", trainArgs...); err != nil {
		return fmt.Errorf("adapt: training failed (the stream keeps its model): %w", err)
	}
	rep.TrainSeconds = time.Since(t0).Seconds()
	onnxPath := filepath.Join(dir, fmt.Sprintf("%s_adapted_x%d.onnx", *stream, man.Scale))
	if err := runPython(ctx, *python, repo, "sr.dan.export", filepath.Join(dir, "run", "final.pth"), onnxPath,
		"--name", fmt.Sprintf("dan-lite-x%d-%s-adapted", man.Scale, *stream), "--scale", fmt.Sprint(man.Scale)); err != nil {
		return fmt.Errorf("adapt: export failed (the stream keeps its model): %w", err)
	}
	rep.Adapted = onnxPath

	ef.model = onnxPath
	up, err := ef.load(false)
	if err != nil {
		return fmt.Errorf("adapt: the exported model does not load (the stream keeps its model): %w", err)
	}
	after, _, err := valPSNR(ctx, up, *pairsDir, valPairs)
	up.Close()
	if err != nil {
		return err
	}
	rep.AfterPSNR, rep.Gain = after, after-before
	switch {
	case math.IsNaN(after) || math.IsInf(after, 0):
		rep.Decision = "rejected: the adapted model's output is not finite (training diverged)"
	case rep.Gain <= *minGain:
		rep.Decision = fmt.Sprintf("rejected: validation PSNR-Y %+.3f dB, not above %+.3f dB", rep.Gain, *minGain)
	case *api == "":
		rep.Decision = "improved; not swapped (no --api)"
	default:
		v := transport.ModelValidation{Pairs: nVal, Bicubic: bic, Before: before, After: after, When: time.Now().UTC()}
		if err := swapViaAPI(ctx, *api, *token, *stream, onnxPath, v); err != nil {
			rep.Decision = "improved; swap failed: " + err.Error()
		} else {
			rep.Decision, rep.Swapped = "improved; swapped into the running stream", true
		}
	}
	fmt.Fprintf(os.Stderr, "adapt: val PSNR-Y %.3f -> %.3f dB (%+.3f); %s\n", before, after, rep.Gain, rep.Decision)
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "adapt_report.json"), b, 0o644); err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

func readManifest(dir string) (adapt.Manifest, error) {
	var m adapt.Manifest
	b, err := os.ReadFile(filepath.Join(dir, adapt.ManifestName))
	if err != nil {
		return m, fmt.Errorf("pairs: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("pairs: %s: %w", filepath.Join(dir, adapt.ManifestName), err)
	}
	if len(m.Pairs) < 2 || m.Scale < 1 {
		return m, fmt.Errorf("pairs: %s lists %d pairs at scale %d; collect more first", dir, len(m.Pairs), m.Scale)
	}
	return m, nil
}

// valPSNR is the mean PSNR-Y (border = scale) of u and of bicubic over the pairs.
func valPSNR(ctx context.Context, u sr.Upscaler, dir string, pairs []adapt.Pair) (model, bicubic float64, err error) {
	bic := sr.NewBicubic(u.Scale())
	for _, p := range pairs {
		lr, err := readImage(filepath.Join(dir, p.LR))
		if err != nil {
			return 0, 0, err
		}
		hr, err := readImage(filepath.Join(dir, p.HR))
		if err != nil {
			return 0, 0, err
		}
		for i, up := range []sr.Upscaler{u, bic} {
			out, err := up.Upscale(ctx, lr)
			if err != nil {
				return 0, 0, fmt.Errorf("pair %s: %w", p.LR, err)
			}
			if out.W != hr.W || out.H != hr.H {
				return 0, 0, fmt.Errorf("pair %s: HR %s is %dx%d, the model makes %dx%d", p.LR, p.HR, hr.W, hr.H, out.W, out.H)
			}
			v, err := sr.PSNRY(out.Pix, hr.Pix, hr.W, hr.H, u.Scale())
			if err != nil {
				return 0, 0, err
			}
			if i == 0 {
				model += v
			} else {
				bicubic += v
			}
		}
	}
	n := float64(len(pairs))
	return model / n, bicubic / n, nil
}

// adaptOptions is the sr.dan.train options file: the x2_adapt.yml recipe
// (LoRA on the frozen first groups; the last group, the up-sampler and the
// frequency branch trained) on the camera's pairs.
func adaptOptions(stream, init string, scale int, pairs string, val, budget float64) string {
	return fmt.Sprintf(`# written by danstream adapt
name: %s_adapt_x%d
mode: adapt
init: %q
model: {arch: danlite, scale: %d, tile: 64}
data: {kind: pairs_dir, dir: %q, val_fraction: %g}
lora: {rank: 4, layers: ['^body\.[01]\.\d+$']}
freeze: ['^conv_first\.', '^body\.[01]\.']
unfreeze: ['lora_']
train: {batch: 8, lr: 1.0e-3, lr_min: 1.0e-5, warmup: 20, budget_min: %g, freq_weight: 1.0, spatial_weight: 0.0, seed: 3, print_every: 25, ckpt_every: 200}
`, stream, scale, init, scale, pairs, val, budget)
}

func runPython(ctx context.Context, python, repo, module string, args ...string) error {
	cmd := exec.CommandContext(ctx, python, append([]string{"-m", module}, args...)...)
	cmd.Dir = repo
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s -m %s: %w", python, module, err)
	}
	return nil
}

func swapViaAPI(ctx context.Context, api, token, stream, model string, v transport.ModelValidation) error {
	body, _ := json.Marshal(map[string]any{"path": model, "validation": v})
	_, err := apiCall(ctx, http.MethodPost, strings.TrimRight(api, "/")+"/api/streams/"+url.PathEscape(stream)+"/model", token, body)
	return err
}

// streamFromAPI returns a stream's entry of the server's /api/streams.
func streamFromAPI(ctx context.Context, api, token, name string) (transport.StreamStatus, error) {
	u := strings.TrimRight(api, "/") + "/api/streams"
	b, err := apiCall(ctx, http.MethodGet, u, token, nil)
	if err != nil {
		return transport.StreamStatus{}, err
	}
	var list struct{ Streams []transport.StreamStatus }
	if err := json.Unmarshal(b, &list); err != nil {
		return transport.StreamStatus{}, fmt.Errorf("%s: %w", u, err)
	}
	for _, s := range list.Streams {
		if s.Name == name {
			return s, nil
		}
	}
	return transport.StreamStatus{}, fmt.Errorf("%s: no stream %q", u, name)
}

func apiCall(ctx context.Context, method, u, token string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// snapshotPairs hard-links (or copies) the pairs of a live folder into dst
// with their own manifest; pairs rotated out meanwhile are left out.
func snapshotPairs(src, dst string) (adapt.Manifest, error) {
	man, err := readManifest(src)
	if err != nil {
		return man, err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return man, err
	}
	kept := man.Pairs[:0]
	for _, p := range man.Pairs {
		ok := true
		for _, f := range []string{p.LR, p.HR} {
			if err := linkOrCopy(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					return man, fmt.Errorf("pairs: snapshot into %s: %w", dst, err)
				}
				ok = false
			}
		}
		if ok {
			kept = append(kept, p)
		}
	}
	man.Pairs = kept
	if len(man.Pairs) < 2 {
		return man, fmt.Errorf("pairs: %s holds %d usable pairs; collect more first", src, len(man.Pairs))
	}
	b, _ := json.MarshalIndent(man, "", " ")
	return man, os.WriteFile(filepath.Join(dst, adapt.ManifestName), b, 0o644)
}

func linkOrCopy(from, to string) error {
	if _, err := os.Stat(to); err == nil {
		return nil // already there (an earlier snapshot into the same folder)
	}
	if err := os.Link(from, to); err == nil {
		return nil
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
