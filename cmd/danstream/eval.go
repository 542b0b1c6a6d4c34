package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/sr"
)

func init() {
	commands["eval"] = command{"PSNR-Y / SSIM-Y of a model beside bicubic on LR/HR folders", runEval}
}

type evalScore struct {
	Name        string  `json:"name"`
	Size        string  `json:"lr_size"`
	ModelPSNR   float64 `json:"model_psnr_y"`
	ModelSSIM   float64 `json:"model_ssim_y"`
	BicubicPSNR float64 `json:"bicubic_psnr_y"`
	BicubicSSIM float64 `json:"bicubic_ssim_y"`
}

type evalReport struct {
	Model    string      `json:"model"`
	Scale    int         `json:"scale"`
	LRDir    string      `json:"lr_dir"`
	HRDir    string      `json:"hr_dir"`
	LRResize string      `json:"lr_resize,omitempty"`
	Border   int         `json:"border"`
	Images   []evalScore `json:"images"`
	Mean     evalScore   `json:"mean"`
	Problems []string    `json:"problems,omitempty"`
}

func runEval(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: danstream eval [--model M] --scale N --lr DIR --hr DIR [--lr-resize area] [--json]\n\n"+
			"Pairs files by name (001L.PNG ~ 001H.PNG, x_LR.png ~ x_HR.png), crops scale pixels at each border,\n"+
			"and reports PSNR/SSIM on the BT.601 Y channel for the model and for bicubic.")
		fs.PrintDefaults()
	}
	var ef engineFlags
	ef.register(fs)
	lrDir := fs.String("lr", "", "folder of LR images (or of LR-camera images at HR size, with --lr-resize)")
	hrDir := fs.String("hr", "", "folder of HR images")
	lrResize := fs.String("lr-resize", "", `"area": make the LR input by area-downscaling the LR image by scale (City100)`)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	limit := fs.Int("limit", 0, "evaluate at most this many pairs (0: all)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *lrDir == "" || *hrDir == "" {
		fs.Usage()
		return fmt.Errorf("%w: --lr and --hr are required", errUsage)
	}
	if *lrResize != "" && *lrResize != "area" {
		return fmt.Errorf("%w: --lr-resize %q: only \"area\" is supported", errUsage, *lrResize)
	}
	pairs, problems, err := pairFiles(*lrDir, *hrDir)
	if err != nil {
		return err
	}
	if *limit > 0 && len(pairs) > *limit {
		pairs = pairs[:*limit]
	}
	up, err := ef.load(false) // unrelated images: no temporal cache
	if err != nil {
		return err
	}
	defer up.Close()
	s := up.Scale()
	bic := sr.NewBicubic(s)
	rep := evalReport{Model: up.Name(), Scale: s, LRDir: *lrDir, HRDir: *hrDir, LRResize: *lrResize, Border: s}
	for _, p := range pairs {
		if err := ctx.Err(); err != nil {
			return err
		}
		sc, err := evalPair(ctx, up, bic, p, s, *lrResize == "area")
		if err != nil {
			problems = append(problems, err.Error())
			fmt.Fprintln(os.Stderr, "skipping:", err)
			continue
		}
		rep.Images = append(rep.Images, sc)
		if !*asJSON {
			fmt.Fprintf(os.Stderr, "%s: model %.2f dB / %.4f, bicubic %.2f dB / %.4f\n", sc.Name, sc.ModelPSNR, sc.ModelSSIM, sc.BicubicPSNR, sc.BicubicSSIM)
		}
	}
	rep.Problems = problems
	if len(rep.Images) == 0 {
		return fmt.Errorf("no image pair could be evaluated in %s / %s: %s", *lrDir, *hrDir, strings.Join(problems, "; "))
	}
	n := float64(len(rep.Images))
	rep.Mean.Name = "mean"
	for _, sc := range rep.Images {
		rep.Mean.ModelPSNR += sc.ModelPSNR / n
		rep.Mean.ModelSSIM += sc.ModelSSIM / n
		rep.Mean.BicubicPSNR += sc.BicubicPSNR / n
		rep.Mean.BicubicSSIM += sc.BicubicSSIM / n
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(os.Stdout, "model %s, x%d, Y channel (BT.601), border %d cropped\n", rep.Model, s, s)
	fmt.Fprintln(tw, "image\tLR size\tmodel PSNR-Y\tmodel SSIM-Y\tbicubic PSNR-Y\tbicubic SSIM-Y\t")
	for _, sc := range append(rep.Images, rep.Mean) {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.4f\t%.2f\t%.4f\t\n", sc.Name, sc.Size, sc.ModelPSNR, sc.ModelSSIM, sc.BicubicPSNR, sc.BicubicSSIM)
	}
	tw.Flush()
	if len(problems) > 0 {
		fmt.Fprintf(os.Stdout, "%d problem(s):\n  %s\n", len(problems), strings.Join(problems, "\n  "))
	}
	return nil
}

type filePair struct{ name, lr, hr string }

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

// pairFiles matches images in the two folders by pairKey; unmatched files are
// reported as problems, not fatal.
func pairFiles(lrDir, hrDir string) ([]filePair, []string, error) {
	list := func(dir string) (map[string]string, error) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		m := map[string]string{}
		for _, e := range ents {
			if !e.IsDir() && isImage(e.Name()) {
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
	var pairs []filePair
	var problems []string
	for k, l := range lr {
		if h, ok := hr[k]; ok {
			pairs = append(pairs, filePair{filepath.Base(l), l, h})
		} else {
			problems = append(problems, fmt.Sprintf("%s: no HR image with a matching name in %s", l, hrDir))
		}
	}
	for k, h := range hr {
		if _, ok := lr[k]; !ok {
			problems = append(problems, fmt.Sprintf("%s: no LR image with a matching name in %s", h, lrDir))
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].name < pairs[j].name })
	sort.Strings(problems)
	return pairs, problems, nil
}

func evalPair(ctx context.Context, up, bic sr.Upscaler, p filePair, s int, area bool) (evalScore, error) {
	lr, err := readImage(p.lr)
	if err != nil {
		return evalScore{}, err
	}
	hr, err := readImage(p.hr)
	if err != nil {
		return evalScore{}, err
	}
	if area {
		pix, w, h := sr.ResizeArea(lr.Pix, lr.W, lr.H, s)
		lr = frame.Frame{Pix: pix, W: w, H: h}
	}
	// HR may exceed LR*scale by less than one LR pixel (sizes not divisible by
	// the scale): crop it, as the literature's "modcrop" does. More is a mismatch.
	W, H := lr.W*s, lr.H*s
	if hr.W < W || hr.H < H || hr.W-W >= s || hr.H-H >= s {
		return evalScore{}, fmt.Errorf("%s (%dx%d) and %s (%dx%d): sizes do not match scale %d", p.lr, lr.W, lr.H, p.hr, hr.W, hr.H, s)
	}
	hrPix := cropFrame(hr, W, H)
	sc := evalScore{Name: p.name, Size: fmt.Sprintf("%dx%d", lr.W, lr.H)}
	for _, e := range []struct {
		u          sr.Upscaler
		psnr, ssim *float64
	}{{up, &sc.ModelPSNR, &sc.ModelSSIM}, {bic, &sc.BicubicPSNR, &sc.BicubicSSIM}} {
		o, err := e.u.Upscale(ctx, lr)
		if err != nil {
			return evalScore{}, fmt.Errorf("%s: %w", p.lr, err)
		}
		if *e.psnr, err = sr.PSNRY(o.Pix, hrPix, W, H, s); err != nil {
			return evalScore{}, fmt.Errorf("%s: %w", p.lr, err)
		}
		if *e.ssim, err = sr.SSIMY(o.Pix, hrPix, W, H, s); err != nil {
			return evalScore{}, fmt.Errorf("%s: %w", p.lr, err)
		}
	}
	return sc, nil
}

// cropFrame returns the top-left w x h of a frame's pixels.
func cropFrame(f frame.Frame, w, h int) []byte {
	if f.W == w && f.H == h {
		return f.Pix
	}
	out := make([]byte, w*h*3)
	for y := 0; y < h; y++ {
		copy(out[y*w*3:(y+1)*w*3], f.Pix[y*f.W*3:])
	}
	return out
}
