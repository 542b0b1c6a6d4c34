package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/sr"
)

func init() {
	commands["enhance"] = command{"enhance an image (png, jpg) or a video (mp4, avi, ...) file", runEnhance}
}

// engineFlags are the model/runtime flags every offline command shares.
type engineFlags struct {
	model, provider, ortLib string
	scale, threads, batch   int
}

func (e *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&e.model, "model", "", "ONNX model (default: the bundled sr/models/dan_lite_x{scale}.onnx)")
	fs.IntVar(&e.scale, "scale", 0, "upscale factor; picks the bundled model (default 4, or the model's own)")
	fs.StringVar(&e.provider, "provider", "cpu", "execution provider: cpu, cuda, tensorrt, auto")
	fs.IntVar(&e.threads, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fs.IntVar(&e.batch, "batch", 0, "tiles per session run (0: 4 on cpu, 16 on gpu)")
	fs.StringVar(&e.ortLib, "ort-lib", "", "path to libonnxruntime.so.1 (default: "+sr.EnvORTLib+", then third_party/onnxruntime)")
}

// load opens the model the flags name, checking it has the asked scale.
func (e *engineFlags) load(cache bool) (*sr.ONNXUpscaler, error) {
	if err := sr.InitRuntime(e.ortLib); err != nil {
		return nil, err
	}
	path := e.model
	if path == "" {
		scale := e.scale
		if scale == 0 {
			scale = 4
		}
		p, err := sr.DefaultModelPath(scale)
		if err != nil {
			return nil, fmt.Errorf("%w (pass --model FILE)", err)
		}
		path = p
	}
	u, err := sr.LoadModel(path, sr.ModelOptions{
		Provider: e.provider, Threads: e.threads, BatchSize: e.batch, LibPath: e.ortLib, Cache: cache,
	})
	if err != nil {
		return nil, err
	}
	if e.scale != 0 && u.Scale() != e.scale {
		u.Close()
		return nil, fmt.Errorf("%w: model %s is x%d, not x%d", errUsage, path, u.Scale(), e.scale)
	}
	return u, nil
}

// parseInterleaved parses flags that may come before or after positional args.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runEnhance(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("enhance", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: danstream enhance [--model M] [--scale N] [--no-cache] IN OUT\n\nIN/OUT: png or jpg images, or videos (anything ffmpeg reads; OUT .mp4/.mkv/.avi)")
		fs.PrintDefaults()
	}
	var ef engineFlags
	ef.register(fs)
	noCache := fs.Bool("no-cache", false, "video: run every tile of every frame (no temporal tile cache)")
	bicubic := fs.Bool("bicubic", false, "use bicubic interpolation instead of the model (for comparison)")
	crf := fs.Int("crf", 18, "video: x264 quality (lower is better)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return fmt.Errorf("%w: want IN and OUT, got %d arguments", errUsage, len(pos))
	}
	in, out := pos[0], pos[1]
	if _, err := os.Stat(in); err != nil {
		return fmt.Errorf("input %s: %w", in, err)
	}
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return fmt.Errorf("output %s: folder %s does not exist", out, filepath.Dir(out))
	}
	still := isImage(in)
	if still != isImage(out) {
		return fmt.Errorf("%w: %s and %s must both be images or both videos", errUsage, in, out)
	}
	var up sr.Upscaler
	if *bicubic {
		s := ef.scale
		if s == 0 {
			s = 4
		}
		up = sr.NewBicubic(s)
	} else {
		u, err := ef.load(!still && !*noCache)
		if err != nil {
			return err
		}
		up = u
	}
	defer up.Close()
	if still {
		f, err := readImage(in)
		if err != nil {
			return err
		}
		t0 := time.Now()
		o, err := up.Upscale(ctx, f)
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		if err := writeImage(out, o); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: %dx%d -> %s %dx%d with %s in %s\n", in, f.W, f.H, out, o.W, o.H, up.Name(), time.Since(t0).Round(time.Millisecond))
		return nil
	}
	return enhanceVideo(ctx, up, in, out, *crf)
}

func enhanceVideo(ctx context.Context, up sr.Upscaler, in, out string, crf int) error {
	vr, err := openVideo(ctx, in)
	if err != nil {
		return err
	}
	defer vr.Close()
	s := up.Scale()
	vw, err := createVideo(ctx, out, vr.W*s, vr.H*s, vr.FPS, crf)
	if err != nil {
		return err
	}
	bar := newProgress(os.Stderr, vr.Frames)
	n := 0
	for {
		f, err := vr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			vw.Abort()
			return err
		}
		o, err := up.Upscale(ctx, f)
		if err != nil {
			vw.Abort()
			return fmt.Errorf("%s frame %d: %w", in, n, err)
		}
		if err := vw.Write(o); err != nil {
			vw.Abort()
			return err
		}
		n++
		bar.update(n)
	}
	if err := vw.Close(); err != nil {
		return err
	}
	bar.done(n)
	msg := fmt.Sprintf("%s: %d frames %dx%d -> %s %dx%d with %s", in, n, vr.W, vr.H, out, vr.W*s, vr.H*s, up.Name())
	if ms, ok := up.(sr.MetricsSource); ok {
		m := ms.Metrics()
		msg += fmt.Sprintf("; %.1f tiles inferred/frame, cache hit rate %.0f%%", m.TilesInferredPerFrame(), 100*m.HitRate())
	}
	fmt.Fprintln(os.Stderr, msg)
	return nil
}

func isImage(p string) bool {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// readImage decodes a png/jpg file into a BGR frame.
func readImage(path string) (frame.Frame, error) {
	fh, err := os.Open(path)
	if err != nil {
		return frame.Frame{}, err
	}
	defer fh.Close()
	img, _, err := image.Decode(bufio.NewReader(fh))
	if err != nil {
		return frame.Frame{}, fmt.Errorf("image %s: %w", path, err)
	}
	b := img.Bounds()
	f := frame.New(b.Dx(), b.Dy())
	for y := 0; y < f.H; y++ {
		for x := 0; x < f.W; x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			p := f.Pix[(y*f.W+x)*3:]
			p[0], p[1], p[2] = byte(bl>>8), byte(g>>8), byte(r>>8)
		}
	}
	return f, nil
}

// writeImage encodes a BGR frame as png or jpg, by the file's extension.
func writeImage(path string, f frame.Frame) error {
	img := image.NewNRGBA(image.Rect(0, 0, f.W, f.H))
	for i := 0; i < f.W*f.H; i++ {
		img.Pix[i*4], img.Pix[i*4+1], img.Pix[i*4+2], img.Pix[i*4+3] = f.Pix[i*3+2], f.Pix[i*3+1], f.Pix[i*3], 255
	}
	var buf bytes.Buffer
	var err error
	if ext := strings.ToLower(filepath.Ext(path)); ext == ".jpg" || ext == ".jpeg" {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	} else {
		err = png.Encode(&buf, img)
	}
	if err == nil {
		err = os.WriteFile(path, buf.Bytes(), 0o644)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// videoReader decodes a video file to BGR frames through an ffmpeg process:
// every frame, in order, none dropped (unlike a live capture.Source).
type videoReader struct {
	path   string
	W, H   int
	FPS    float64
	Frames int // from the container; 0 if unknown
	cmd    *exec.Cmd
	r      io.ReadCloser
	stderr *bytes.Buffer
	seq    uint64
}

func openVideo(ctx context.Context, path string) (*videoReader, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("video %s: %w", path, err)
	}
	probe, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=width,height,avg_frame_rate,r_frame_rate,nb_frames:format=duration", "-of", "json", path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("video %s: unreadable: %s", path, lastLine(ee.Stderr))
		}
		return nil, fmt.Errorf("video %s: running ffprobe: %w", path, err)
	}
	var info struct {
		Streams []struct {
			Width, Height int
			Avg           string `json:"avg_frame_rate"`
			R             string `json:"r_frame_rate"`
			NbFrames      string `json:"nb_frames"`
		}
		Format struct {
			Duration string
		}
	}
	if err := json.Unmarshal(probe, &info); err != nil || len(info.Streams) == 0 || info.Streams[0].Width <= 0 {
		return nil, fmt.Errorf("video %s: no video stream found", path)
	}
	st := info.Streams[0]
	v := &videoReader{path: path, W: st.Width, H: st.Height, FPS: parseRate(st.Avg)}
	if v.FPS <= 0 {
		v.FPS = parseRate(st.R)
	}
	if v.FPS <= 0 || v.FPS > 1000 {
		v.FPS = 25
	}
	v.Frames, _ = strconv.Atoi(st.NbFrames)
	if d, err := strconv.ParseFloat(info.Format.Duration, 64); v.Frames == 0 && err == nil {
		v.Frames = int(d*v.FPS + 0.5)
	}
	v.stderr = &bytes.Buffer{}
	v.cmd = exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0",
		"-f", "rawvideo", "-pix_fmt", "bgr24", "-")
	v.cmd.Stderr = v.stderr
	if v.r, err = v.cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("video %s: starting ffmpeg: %w", path, err)
	}
	return v, nil
}

func parseRate(s string) float64 {
	a, b, ok := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(a, 64)
	if err != nil {
		return 0
	}
	if !ok {
		return n
	}
	d, err := strconv.ParseFloat(b, 64)
	if err != nil || d == 0 {
		return 0
	}
	return n / d
}

// Next returns the next frame, io.EOF after the last one, or an error naming
// the file when the stream is cut short or ffmpeg fails.
func (v *videoReader) Next() (frame.Frame, error) {
	f := frame.New(v.W, v.H)
	n, err := io.ReadFull(v.r, f.Pix)
	if err == nil {
		f.Seq = v.seq
		f.Reset = v.seq == 0
		v.seq++
		return f, nil
	}
	werr := v.cmd.Wait()
	v.cmd = nil
	switch {
	case werr != nil:
		return frame.Frame{}, fmt.Errorf("video %s: decoding failed after %d frames: %s", v.path, v.seq, lastLine(v.stderr.Bytes()))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return frame.Frame{}, fmt.Errorf("video %s: truncated: frame %d has %d of %d bytes", v.path, v.seq, n, len(f.Pix))
	case v.seq == 0:
		return frame.Frame{}, fmt.Errorf("video %s: no frames decoded: %s", v.path, lastLine(v.stderr.Bytes()))
	}
	// ffmpeg conceals damage and goes on: say so, keep the frames we have.
	if s := strings.TrimSpace(v.stderr.String()); s != "" {
		fmt.Fprintf(os.Stderr, "\nwarning: video %s: %s\n", v.path, lastLine([]byte(s)))
	}
	if v.Frames > 0 && int(v.seq) < v.Frames*9/10 {
		fmt.Fprintf(os.Stderr, "\nwarning: video %s: ended after %d of %d frames (truncated?)\n", v.path, v.seq, v.Frames)
	}
	return frame.Frame{}, io.EOF
}

func (v *videoReader) Close() error {
	if v.cmd != nil {
		v.r.Close()
		v.cmd.Process.Kill()
		v.cmd.Wait()
		v.cmd = nil
	}
	return nil
}

// videoWriter encodes BGR frames to a file through an ffmpeg process (x264).
type videoWriter struct {
	path   string
	cmd    *exec.Cmd
	w      io.WriteCloser
	stderr *bytes.Buffer
}

func createVideo(ctx context.Context, path string, w, h int, fps float64, crf int) (*videoWriter, error) {
	vw := &videoWriter{path: path, stderr: &bytes.Buffer{}}
	vw.cmd = exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-y", "-v", "error",
		"-f", "rawvideo", "-pix_fmt", "bgr24", "-s", fmt.Sprintf("%dx%d", w, h), "-r", strconv.FormatFloat(fps, 'f', 3, 64), "-i", "-",
		"-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast", "-crf", strconv.Itoa(crf), "-pix_fmt", "yuv420p", path)
	vw.cmd.Stderr = vw.stderr
	var err error
	if vw.w, err = vw.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := vw.cmd.Start(); err != nil {
		return nil, fmt.Errorf("video %s: starting ffmpeg: %w", path, err)
	}
	return vw, nil
}

func (vw *videoWriter) Write(f frame.Frame) error {
	if _, err := vw.w.Write(f.Pix); err != nil {
		vw.w.Close()
		vw.cmd.Wait()
		return fmt.Errorf("writing %s: %s", vw.path, lastLine(vw.stderr.Bytes()))
	}
	return nil
}

func (vw *videoWriter) Close() error {
	vw.w.Close()
	if err := vw.cmd.Wait(); err != nil {
		return fmt.Errorf("writing %s: %s", vw.path, lastLine(vw.stderr.Bytes()))
	}
	return nil
}

// Abort stops the encoder and removes the partial file.
func (vw *videoWriter) Abort() {
	vw.w.Close()
	vw.cmd.Process.Kill()
	vw.cmd.Wait()
	os.Remove(vw.path)
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		s = "ffmpeg gave no message"
	}
	return s
}

// progress draws a one-line bar with rate and ETA on a terminal-ish writer.
type progress struct {
	w     io.Writer
	total int
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, start: time.Now()}
}

func (p *progress) update(n int) {
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	fps := float64(n) / el
	if p.total > 0 {
		frac := min(1, float64(n)/float64(p.total))
		const width = 30
		bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
		eta := time.Duration(float64(p.total-n)/fps) * time.Second
		fmt.Fprintf(p.w, "\r[%s] %d/%d frames %3.0f%% %.2f fps ETA %s   ", bar, n, p.total, 100*frac, fps, eta.Round(time.Second))
	} else {
		fmt.Fprintf(p.w, "\r%d frames %.2f fps   ", n, fps)
	}
}

func (p *progress) done(n int) {
	p.total = max(p.total, n)
	p.last = time.Time{}
	p.update(n)
	fmt.Fprintln(p.w)
}
