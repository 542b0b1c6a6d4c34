package rtsptest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/testdep"
)

// VTest is OpenCV's sample surveillance clip (768x576, 10 fps, people walking
// through a hall), shipped by Debian's opencv-doc.
const VTest = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

// CameraOptions shapes the test camera's sub stream, the degradation a real
// IP camera applies between its sensor and its cheap stream. Zero values pick
// the defaults shown.
type CameraOptions struct {
	Video string // footage for both streams (VTest)
	// MainCrop crops the footage before anything else, as ffmpeg's crop
	// filter takes it ("768:432": a 16:9 main picture from 4:3 footage); "": none.
	MainCrop string
	Divisor  int // sub = main / Divisor in each dimension (2), unless SubWidth/SubHeight
	// SubWidth x SubHeight sets the sub stream's size. Of another aspect ratio
	// than the main picture, it is an anamorphic sub stream of the same field of
	// view (a 4:3 sub of a 16:9 main, as many cameras send).
	SubWidth, SubHeight int

	BlurSigma  float64 // gaussian blur before downscaling, optics + ISP (1.0)
	Noise      int     // temporal luma/chroma noise strength, sensor (6)
	SubKbps    int     // H.264 bitrate of the sub stream (250)
	MainPath   string  // RTSP path of the main stream ("main")
	SubPath    string  // RTSP path of the sub stream ("sub")
	FFmpegArgs []string

	// CropPath, when set, also publishes there a sub stream of CropWidth x
	// CropHeight (default SubWidth x SubHeight), degraded like sub, showing only
	// the centre of the main picture at that aspect ratio (square pixels): a
	// different field of view.
	CropPath              string
	CropWidth, CropHeight int
}

func (o CameraOptions) withDefaults() CameraOptions {
	if o.Video == "" {
		o.Video = VTest
	}
	if o.Divisor <= 0 {
		o.Divisor = 2
	}
	if o.BlurSigma <= 0 {
		o.BlurSigma = 1.0
	}
	if o.Noise <= 0 {
		o.Noise = 6
	}
	if o.SubKbps <= 0 {
		o.SubKbps = 250
	}
	if o.MainPath == "" {
		o.MainPath = "main"
	}
	if o.SubPath == "" {
		o.SubPath = "sub"
	}
	return o
}

// Camera is a running test camera: two RTSP paths fed by one ffmpeg process
// from the same decoded frames, so the sub stream is a known degradation of
// the main stream at the same instant.
type Camera struct {
	MainURL, SubURL string
	CropURL         string // with CameraOptions.CropPath
	Options         CameraOptions
	// Stop ends the camera early (both streams vanish); safe to call twice.
	Stop func()
}

// PublishTestCamera publishes the looped footage in real time (-re) as
// `main` (full size, H.264, keyframe every 25 frames) and `sub` (blurred,
// scaled to 1/Divisor or SubWidth x SubHeight, noisy, H.264 at a low
// bitrate), and the cropped sub stream when asked, on s, and waits until
// all are being recorded. It skips the test when ffmpeg or the footage is
// missing (fails under CI=true).
func PublishTestCamera(tb testing.TB, s *Server, opts CameraOptions) *Camera {
	tb.Helper()
	o := opts.withDefaults()
	bin := Need(tb, "ffmpeg", "apt-get install ffmpeg")
	testdep.File(tb, o.Video, "rtsptest: the test camera's footage; apt-get install opencv-doc")
	cam := &Camera{MainURL: s.URL(o.MainPath), SubURL: s.URL(o.SubPath), Options: o}
	// split feeds every encoder the same decoded frame, so frame n of main
	// and frame n of sub are one sensor instant.
	size := fmt.Sprintf("iw/%d:ih/%d", o.Divisor, o.Divisor)
	if o.SubWidth > 0 && o.SubHeight > 0 {
		size = fmt.Sprintf("%d:%d", o.SubWidth, o.SubHeight)
	}
	degradeTo := func(size string) string {
		return fmt.Sprintf("gblur=sigma=%g,scale=%s:flags=area,noise=alls=%d:allf=t", o.BlurSigma, size, o.Noise)
	}
	src, split := "[0:v]", "split=2[m][s0]"
	if o.MainCrop != "" {
		src = "[0:v]crop=" + o.MainCrop + ","
	}
	if o.CropPath != "" {
		split = "split=3[m][s0][c0]"
	}
	graph := src + split + ";[s0]" + degradeTo(size) + "[s]"
	if o.CropPath != "" {
		w, h := o.CropWidth, o.CropHeight
		if w <= 0 || h <= 0 {
			w, h = o.SubWidth, o.SubHeight
		}
		if w <= 0 || h <= 0 {
			tb.Fatal("rtsptest: CropPath needs CropWidth/CropHeight or SubWidth/SubHeight")
		}
		// The largest centred window of that aspect ratio (quoted: the commas are min()'s).
		graph += fmt.Sprintf(";[c0]crop='min(iw,ih*%d/%d)':'min(ih,iw*%d/%d)',%s[c]", w, h, h, w, degradeTo(fmt.Sprintf("%d:%d", w, h)))
	}
	x264 := []string{"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p"}
	rtsp := []string{"-f", "rtsp", "-rtsp_transport", "tcp"}
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-stream_loop", "-1", "-i", o.Video, "-filter_complex", graph}
	args = append(args, "-map", "[m]")
	args = append(args, x264...)
	args = append(args, rtsp...)
	args = append(args, cam.MainURL, "-map", "[s]")
	args = append(args, x264...)
	kb := fmt.Sprintf("%dk", o.SubKbps)
	args = append(args, "-b:v", kb, "-maxrate", kb, "-bufsize", fmt.Sprintf("%dk", o.SubKbps/2))
	args = append(args, o.FFmpegArgs...)
	args = append(args, rtsp...)
	args = append(args, cam.SubURL)
	paths := []string{o.MainPath, o.SubPath}
	if o.CropPath != "" {
		cam.CropURL = s.URL(o.CropPath)
		args = append(args, "-map", "[c]")
		args = append(args, x264...)
		args = append(args, "-b:v", kb, "-maxrate", kb, "-bufsize", fmt.Sprintf("%dk", o.SubKbps/2))
		args = append(args, rtsp...)
		args = append(args, cam.CropURL)
		paths = append(paths, o.CropPath)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 3 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("rtsptest: start ffmpeg for the test camera: %v", err)
	}
	var once sync.Once
	cam.Stop = func() {
		once.Do(func() {
			cancel()
			_ = cmd.Wait() // killed on purpose: the exit status says nothing
		})
	}
	tb.Cleanup(func() {
		cam.Stop()
		if tb.Failed() && stderr.Len() > 0 {
			tb.Logf("test camera ffmpeg stderr:\n%s", stderr.String())
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	for _, p := range paths {
		if err := s.WaitPublishing(wctx, p); err != nil {
			cam.Stop() // ffmpeg has exited: its stderr can be read
			tb.Fatalf("rtsptest: test camera: %v (ffmpeg: %s)", err, strings.TrimSpace(stderr.String()))
		}
	}
	return cam
}
