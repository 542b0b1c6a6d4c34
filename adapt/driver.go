package adapt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/sr/offline"
	"github.com/danstream/danstream/transport"
)

// Report is <out>/adapt_report.json, the model card entry of an adapted model.
type Report struct {
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

// RunOptions says what Run adapts and where the result goes.
type RunOptions struct {
	Stream   string         // stream name (names the model, and the stream to swap)
	PairsDir string         // collected pairs (manifest.json); empty: the stream's, from API
	Engine   offline.Engine // the model to beat (Model empty: the stream's, from API) and runtime settings
	Init     string         // checkpoint to adapt; empty: InitCheckpoint of the pairs' scale
	Out      string         // output folder; empty: <pairs>/../adapted-<stream>-<time>
	// BudgetMin is the training wall-time budget in minutes; Val the fraction
	// of the pairs (the newest) held out for validation, in (0, 1); only a
	// model whose validation PSNR-Y gains more than MinGain dB is swapped.
	BudgetMin, Val, MinGain float64
	Python                  string    // Python with torch; empty: /usr/bin/python3
	API                     string    // danstream server to swap the model into (empty: no swap)
	Token                   string    // admin bearer token for API
	Log                     io.Writer // progress and training output; nil: os.Stderr
}

// Run holds out the newest Val of a snapshot of the pairs, fine-tunes the
// LoRA modules, the last group and the frequency branch of Init
// (python -m sr.dan.train, mode adapt) for BudgetMin minutes, exports ONNX,
// compares validation PSNR-Y (this engine) with the running model, and swaps
// the result into the stream through API only if it improves by more than
// MinGain. It writes <Out>/adapt_report.json and returns the report.
func Run(ctx context.Context, o RunOptions) (Report, error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Python == "" {
		o.Python = "/usr/bin/python3"
	}
	ef := o.Engine
	if o.Stream == "" || (o.PairsDir == "" && o.API == "") {
		return Report{}, fmt.Errorf("%w: a stream and a pairs folder or API are required", offline.ErrUsage)
	}
	if o.Val <= 0 || o.Val >= 1 {
		return Report{}, fmt.Errorf("%w: --val %g must be between 0 and 1", offline.ErrUsage, o.Val)
	}
	pairsDir := o.PairsDir
	if o.API != "" && (pairsDir == "" || ef.Model == "") {
		st, err := StreamFromAPI(ctx, o.API, o.Token, o.Stream)
		if err != nil {
			return Report{}, err
		}
		if pairsDir == "" {
			if st.Pairs == nil {
				return Report{}, fmt.Errorf("stream %q on %s has no main source, so no pairs: configure main: or pass --pairs", o.Stream, o.API)
			}
			pairsDir = st.Pairs.Dir
		}
		if ef.Model == "" {
			ef.Model = st.ModelPath
		}
	}
	dir := o.Out
	if dir == "" {
		dir = filepath.Join(filepath.Dir(filepath.Clean(pairsDir)), fmt.Sprintf("adapted-%s-%s", o.Stream, time.Now().UTC().Format("20060102-150405")))
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Report{}, err
	}
	// Train and validate on a fixed snapshot: a running collector rotates
	// pairs out of the live folder while we work.
	snap := filepath.Join(dir, "pairs")
	man, err := snapshotPairs(pairsDir, snap)
	if err != nil {
		return Report{}, err
	}
	pairsDir = snap
	nVal := max(1, int(math.Round(float64(len(man.Pairs))*o.Val)))
	if len(man.Pairs)-nVal < 1 {
		return Report{}, fmt.Errorf("pairs %s: %d pairs, too few to hold out %d for validation", pairsDir, len(man.Pairs), nVal)
	}
	valPairs := man.Pairs[len(man.Pairs)-nVal:]
	if ef.Scale == 0 {
		ef.Scale = man.Scale
	} else if ef.Scale != man.Scale {
		return Report{}, fmt.Errorf("%w: --scale %d but the pairs in %s are x%d", offline.ErrUsage, ef.Scale, pairsDir, man.Scale)
	}
	base, err := ef.Load(false)
	if err != nil {
		return Report{}, err
	}
	basePath := base.Info().Path
	before, bic, err := valPSNR(ctx, base, pairsDir, valPairs)
	base.Close()
	if err != nil {
		return Report{}, err
	}
	fmt.Fprintf(o.Log, "adapt: %d pairs (%d train, %d val); val PSNR-Y %s %.3f dB, bicubic %.3f dB\n",
		len(man.Pairs), len(man.Pairs)-nVal, nVal, filepath.Base(basePath), before, bic)

	trainPy, _ := sr.FindAsset(filepath.Join("sr", "dan", "train.py"))
	if trainPy == "" {
		return Report{}, errors.New("sr/dan/train.py not found (run from the repository)")
	}
	repo := filepath.Dir(filepath.Dir(filepath.Dir(trainPy)))
	ck := o.Init
	if ck == "" {
		if ck, err = InitCheckpoint(repo, man.Scale); err != nil {
			return Report{}, err
		}
	} else if _, err := os.Stat(ck); err != nil {
		return Report{}, fmt.Errorf("init checkpoint: %w (pass --init, a pre-trained sr/dan checkpoint)", err)
	}
	fmt.Fprintf(o.Log, "adapt: starting from %s\n", ck)
	absPairs, _ := filepath.Abs(pairsDir)
	absCk, _ := filepath.Abs(ck)
	rep := Report{Stream: o.Stream, PairsDir: absPairs, PairsTrain: len(man.Pairs) - nVal, PairsVal: nVal,
		Init: absCk, BaseModel: basePath, BudgetMin: o.BudgetMin, BicubicPSNR: bic, BeforePSNR: before, When: time.Now().UTC()}

	opts := filepath.Join(dir, "adapt.yml")
	if err := os.WriteFile(opts, []byte(adaptOptions(o.Stream, absCk, man.Scale, absPairs, o.Val, o.BudgetMin)), 0o644); err != nil {
		return Report{}, err
	}
	t0 := time.Now()
	trainArgs := []string{opts, "--out", filepath.Join(dir, "run")}
	if ef.Threads > 0 {
		trainArgs = append(trainArgs, "--threads", fmt.Sprint(ef.Threads))
	}
	if err := runPython(ctx, o.Log, o.Python, repo, "sr.dan.train", trainArgs...); err != nil {
		return Report{}, fmt.Errorf("adapt: training failed (the stream keeps its model): %w", err)
	}
	rep.TrainSeconds = time.Since(t0).Seconds()
	onnxPath := filepath.Join(dir, fmt.Sprintf("%s_adapted_x%d.onnx", o.Stream, man.Scale))
	if err := runPython(ctx, o.Log, o.Python, repo, "sr.dan.export", filepath.Join(dir, "run", "final.pth"), onnxPath,
		"--name", fmt.Sprintf("dan-lite-x%d-%s-adapted", man.Scale, o.Stream), "--scale", fmt.Sprint(man.Scale)); err != nil {
		return Report{}, fmt.Errorf("adapt: export failed (the stream keeps its model): %w", err)
	}
	rep.Adapted = onnxPath

	ef.Model = onnxPath
	up, err := ef.Load(false)
	if err != nil {
		return Report{}, fmt.Errorf("adapt: the exported model does not load (the stream keeps its model): %w", err)
	}
	after, _, err := valPSNR(ctx, up, pairsDir, valPairs)
	up.Close()
	if err != nil {
		return Report{}, err
	}
	rep.AfterPSNR, rep.Gain = after, after-before
	switch {
	case math.IsNaN(after) || math.IsInf(after, 0):
		rep.Decision = "rejected: the adapted model's output is not finite (training diverged)"
	case rep.Gain <= o.MinGain:
		rep.Decision = fmt.Sprintf("rejected: validation PSNR-Y %+.3f dB, not above %+.3f dB", rep.Gain, o.MinGain)
	case o.API == "":
		rep.Decision = "improved; not swapped (no --api)"
	default:
		v := transport.ModelValidation{Pairs: nVal, Bicubic: bic, Before: before, After: after, When: time.Now().UTC()}
		if err := swapViaAPI(ctx, o.API, o.Token, o.Stream, onnxPath, v); err != nil {
			rep.Decision = "improved; swap failed: " + err.Error()
		} else {
			rep.Decision, rep.Swapped = "improved; swapped into the running stream", true
		}
	}
	fmt.Fprintf(o.Log, "adapt: val PSNR-Y %.3f -> %.3f dB (%+.3f); %s\n", before, after, rep.Gain, rep.Decision)
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "adapt_report.json"), b, 0o644); err != nil {
		return rep, err
	}
	return rep, nil
}

// InitCheckpoint is the bundled pre-trained checkpoint adaptation starts from
// at a scale: the realistic one (sr/models/dan_lite_x{scale}_real.pth, trained
// on camera-like degradations: what the pairs' sub frames are), else the
// clean pre-training checkpoint (dan_lite_x{scale}_pretrain.pth, bundled at
// x2 only). The error names both and says how to choose one.
func InitCheckpoint(repo string, scale int) (string, error) {
	var tried []string
	for _, name := range []string{fmt.Sprintf("dan_lite_x%d_real.pth", scale), fmt.Sprintf("dan_lite_x%d_pretrain.pth", scale)} {
		p := filepath.Join(repo, "sr", "models", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("init checkpoint: no pre-trained x%d checkpoint bundled (%s): pass --init, a pre-trained sr/dan checkpoint of that scale: %w",
		scale, strings.Join(tried, ", "), os.ErrNotExist)
}

func readManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return m, fmt.Errorf("pairs: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("pairs: %s: %w", filepath.Join(dir, ManifestName), err)
	}
	if len(m.Pairs) < 2 || m.Scale < 1 {
		return m, fmt.Errorf("pairs: %s lists %d pairs at scale %d; collect more first", dir, len(m.Pairs), m.Scale)
	}
	return m, nil
}

// valPSNR is the mean PSNR-Y (border = scale) of u and of bicubic over the pairs.
func valPSNR(ctx context.Context, u sr.Upscaler, dir string, pairs []Pair) (model, bicubic float64, err error) {
	bic := sr.NewBicubic(u.Scale())
	for _, p := range pairs {
		lr, err := offline.ReadImage(filepath.Join(dir, p.LR))
		if err != nil {
			return 0, 0, err
		}
		hr, err := offline.ReadImage(filepath.Join(dir, p.HR))
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

func runPython(ctx context.Context, log io.Writer, python, repo, module string, args ...string) error {
	cmd := exec.CommandContext(ctx, python, append([]string{"-m", module}, args...)...)
	cmd.Dir = repo
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s -m %s: %w", python, module, err)
	}
	return nil
}

func swapViaAPI(ctx context.Context, api, token, stream, model string, v transport.ModelValidation) error {
	body, _ := json.Marshal(map[string]any{"path": model, "validation": v})
	_, err := APICall(ctx, http.MethodPost, strings.TrimRight(api, "/")+"/api/streams/"+url.PathEscape(stream)+"/model", token, body)
	return err
}

// StreamFromAPI returns a stream's entry of the server's /api/streams.
func StreamFromAPI(ctx context.Context, api, token, name string) (transport.StreamStatus, error) {
	u := strings.TrimRight(api, "/") + "/api/streams"
	b, err := APICall(ctx, http.MethodGet, u, token, nil)
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

// APICall sends one request to a danstream server's API and returns the body
// of a 200 answer; any other status is an error carrying the server's message.
func APICall(ctx context.Context, method, u, token string, body []byte) ([]byte, error) {
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
func snapshotPairs(src, dst string) (Manifest, error) {
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
	return man, os.WriteFile(filepath.Join(dst, ManifestName), b, 0o644)
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
