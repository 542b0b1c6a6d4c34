package offline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/sr"
)

// EvalScore is one image's (or the mean's) PSNR-Y and SSIM-Y for the model and bicubic.
type EvalScore struct {
	Name        string  `json:"name"`
	Size        string  `json:"lr_size"`
	ModelPSNR   float64 `json:"model_psnr_y"`
	ModelSSIM   float64 `json:"model_ssim_y"`
	BicubicPSNR float64 `json:"bicubic_psnr_y"`
	BicubicSSIM float64 `json:"bicubic_ssim_y"`
}

// EvalReport is what `danstream eval --json` prints.
type EvalReport struct {
	Model    string      `json:"model"`
	Scale    int         `json:"scale"`
	LRDir    string      `json:"lr_dir"`
	HRDir    string      `json:"hr_dir"`
	LRResize string      `json:"lr_resize,omitempty"`
	Border   int         `json:"border"`
	Images   []EvalScore `json:"images"`
	Mean     EvalScore   `json:"mean"`
	Problems []string    `json:"problems,omitempty"`
}

// EvalOptions says what Eval scores.
type EvalOptions struct {
	Engine   Engine
	LRDir    string // LR images (or LR-camera images at HR size, with LRResize "area")
	HRDir    string
	LRResize string // "area": the LR input is the LR image area-downscaled by the scale (City100)
	Limit    int    // at most this many pairs (0: all)
	// Log gets a line per pair that cannot be scored and, with Verbose, a
	// line per scored image; nil: none.
	Log     io.Writer
	Verbose bool
}

// Eval pairs the files of the two folders by name (001L.PNG ~ 001H.PNG,
// x_LR.png ~ x_HR.png), crops scale pixels at each border, and scores the
// model and bicubic on the BT.601 Y channel.
func Eval(ctx context.Context, o EvalOptions) (EvalReport, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.LRDir == "" || o.HRDir == "" {
		return EvalReport{}, fmt.Errorf("%w: the LR and HR folders are required", ErrUsage)
	}
	if o.LRResize != "" && o.LRResize != "area" {
		return EvalReport{}, fmt.Errorf("%w: --lr-resize %q: only \"area\" is supported", ErrUsage, o.LRResize)
	}
	pairs, problems, err := PairFiles(o.LRDir, o.HRDir)
	if err != nil {
		return EvalReport{}, err
	}
	if o.Limit > 0 && len(pairs) > o.Limit {
		pairs = pairs[:o.Limit]
	}
	up, err := o.Engine.Load(false) // unrelated images: no temporal cache
	if err != nil {
		return EvalReport{}, err
	}
	defer up.Close()
	s := up.Scale()
	bic := sr.NewBicubic(s)
	rep := EvalReport{Model: up.Name(), Scale: s, LRDir: o.LRDir, HRDir: o.HRDir, LRResize: o.LRResize, Border: s}
	for _, p := range pairs {
		if err := ctx.Err(); err != nil {
			return EvalReport{}, err
		}
		sc, err := evalPair(ctx, up, bic, p, s, o.LRResize == "area")
		if err != nil {
			problems = append(problems, err.Error())
			fmt.Fprintln(o.Log, "skipping:", err)
			continue
		}
		rep.Images = append(rep.Images, sc)
		if o.Verbose {
			fmt.Fprintf(o.Log, "%s: model %.2f dB / %.4f, bicubic %.2f dB / %.4f\n", sc.Name, sc.ModelPSNR, sc.ModelSSIM, sc.BicubicPSNR, sc.BicubicSSIM)
		}
	}
	rep.Problems = problems
	if len(rep.Images) == 0 {
		return EvalReport{}, fmt.Errorf("no image pair could be evaluated in %s / %s: %s", o.LRDir, o.HRDir, strings.Join(problems, "; "))
	}
	n := float64(len(rep.Images))
	rep.Mean.Name = "mean"
	for _, sc := range rep.Images {
		rep.Mean.ModelPSNR += sc.ModelPSNR / n
		rep.Mean.ModelSSIM += sc.ModelSSIM / n
		rep.Mean.BicubicPSNR += sc.BicubicPSNR / n
		rep.Mean.BicubicSSIM += sc.BicubicSSIM / n
	}
	return rep, nil
}

// WriteText prints the report as a table.
func (rep EvalReport) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "model %s, x%d, Y channel (BT.601), border %d cropped\n", rep.Model, rep.Scale, rep.Border)
	fmt.Fprintln(tw, "image\tLR size\tmodel PSNR-Y\tmodel SSIM-Y\tbicubic PSNR-Y\tbicubic SSIM-Y\t")
	for _, sc := range append(rep.Images, rep.Mean) {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.4f\t%.2f\t%.4f\t\n", sc.Name, sc.Size, sc.ModelPSNR, sc.ModelSSIM, sc.BicubicPSNR, sc.BicubicSSIM)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		_, err := fmt.Fprintf(w, "%d problem(s):\n  %s\n", len(rep.Problems), strings.Join(rep.Problems, "\n  "))
		return err
	}
	return nil
}

// FilePair is an LR image and its HR partner.
type FilePair struct{ Name, LR, HR string }

// pairKey reduces a file name to what LR and HR partners share: lower case,
// no extension, no trailing LR/HR marker ("001L", "x_SRF_4_LR", "y-hr").
func pairKey(name string) string {
	k := strings.ToLower(strings.TrimSuffix(name, filepath.Ext(name)))
	for _, suf := range []string{"_lr", "_hr", "-lr", "-hr", "lr", "hr", "l", "h"} {
		if strings.HasSuffix(k, suf) && len(k) > len(suf) {
			return strings.TrimSuffix(k, suf)
		}
	}
	return k
}

// PairFiles matches images in the two folders by name; unmatched files are
// reported as problems, not fatal.
func PairFiles(lrDir, hrDir string) ([]FilePair, []string, error) {
	list := func(dir string) (map[string]string, error) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		m := map[string]string{}
		for _, e := range ents {
			if !e.IsDir() && IsImage(e.Name()) {
				m[pairKey(e.Name())] = filepath.Join(dir, e.Name())
			}
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("eval: no png/jpg images in %s", dir)
		}
		return m, nil
	}
	lr, err := list(lrDir)
	if err != nil {
		return nil, nil, err
	}
	hr, err := list(hrDir)
	if err != nil {
		return nil, nil, err
	}
	var pairs []FilePair
	var problems []string
	for k, l := range lr {
		if h, ok := hr[k]; ok {
			pairs = append(pairs, FilePair{filepath.Base(l), l, h})
		} else {
			problems = append(problems, fmt.Sprintf("%s: no HR image with a matching name in %s", l, hrDir))
		}
	}
	for k, h := range hr {
		if _, ok := lr[k]; !ok {
			problems = append(problems, fmt.Sprintf("%s: no LR image with a matching name in %s", h, lrDir))
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].Name < pairs[j].Name })
	sort.Strings(problems)
	return pairs, problems, nil
}

func evalPair(ctx context.Context, up, bic sr.Upscaler, p FilePair, s int, area bool) (EvalScore, error) {
	lr, err := ReadImage(p.LR)
	if err != nil {
		return EvalScore{}, err
	}
	hr, err := ReadImage(p.HR)
	if err != nil {
		return EvalScore{}, err
	}
	if area {
		pix, w, h := sr.ResizeArea(lr.Pix, lr.W, lr.H, s)
		lr = frame.Frame{Pix: pix, W: w, H: h}
	}
	// HR may exceed LR*scale by less than one LR pixel (sizes not divisible by
	// the scale): crop it, as the literature's "modcrop" does. More is a mismatch.
	W, H := lr.W*s, lr.H*s
	if hr.W < W || hr.H < H || hr.W-W >= s || hr.H-H >= s {
		return EvalScore{}, fmt.Errorf("%s (%dx%d) and %s (%dx%d): sizes do not match scale %d", p.LR, lr.W, lr.H, p.HR, hr.W, hr.H, s)
	}
	hrPix := CropFrame(hr, W, H)
	sc := EvalScore{Name: p.Name, Size: fmt.Sprintf("%dx%d", lr.W, lr.H)}
	for _, e := range []struct {
		u          sr.Upscaler
		psnr, ssim *float64
	}{{up, &sc.ModelPSNR, &sc.ModelSSIM}, {bic, &sc.BicubicPSNR, &sc.BicubicSSIM}} {
		o, err := e.u.Upscale(ctx, lr)
		if err != nil {
			return EvalScore{}, fmt.Errorf("%s: %w", p.LR, err)
		}
		if *e.psnr, err = sr.PSNRY(o.Pix, hrPix, W, H, s); err != nil {
			return EvalScore{}, fmt.Errorf("%s: %w", p.LR, err)
		}
		if *e.ssim, err = sr.SSIMY(o.Pix, hrPix, W, H, s); err != nil {
			return EvalScore{}, fmt.Errorf("%s: %w", p.LR, err)
		}
	}
	return sc, nil
}
