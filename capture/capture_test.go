package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/frame"
	"github.com/danstream/danstream/internal/rtsptest"
	"github.com/danstream/danstream/internal/testdep"
)

const vtest = testdep.Vtest

// checkMats fails the test if GoCV Mats allocated during it are not all closed
// by the time it ends (needs -tags matprofile to count).
func checkMats(t *testing.T) {
	t.Helper()
	if !matProfiling {
		t.Log("built without -tags matprofile: Mat leaks are not counted")
	}
	start := matCount()
	t.Cleanup(func() {
		if n := matCount(); n != start {
			t.Errorf("GoCV Mats leaked: %d open after the test, %d before", n, start)
		}
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestOpenRejectsInvalidInput(t *testing.T) {
	tests := []struct {
		name, url string
		opts      Options
		want      string
	}{
		{"empty url", "", Options{}, "empty source URL"},
		{"negative width", "synthetic:", Options{Width: -1, Height: 10}, "invalid size"},
		{"only width", "synthetic:", Options{Width: 64}, "set both"},
		{"huge size", "synthetic:", Options{Width: 100000, Height: 10}, "invalid size"},
		{"negative fps", "synthetic:", Options{FPS: -1}, "invalid fps"},
		{"negative timeout", "synthetic:", Options{OpenTimeout: -time.Second}, "invalid open timeout"},
		{"synthetic garbage", "synthetic:big", Options{}, "invalid synthetic source"},
		{"synthetic zero fps", "synthetic:64x64@0", Options{}, "invalid synthetic source"},
		{"synthetic too small", "synthetic:8x8", Options{}, "out of range"},
		{"webcam not a number", "webcam:front", Options{}, "invalid webcam source"},
		{"webcam negative", "webcam:-1", Options{}, "invalid webcam source"},
		{"unsupported scheme", "http://user:pw@cam/x", Options{}, "unsupported source http://user:xxxxx@cam/x"},
		{"remote file url", "file://otherhost/x.mp4", Options{}, "only local files"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Open(ctxT(t, 10*time.Second), tc.url, tc.opts)
			if err == nil {
				src.Close()
				t.Fatalf("Open(%q) succeeded, want error containing %q", tc.url, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%q) error %q, want it to contain %q", tc.url, err, tc.want)
			}
		})
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rtsp://admin:secret@10.0.0.5:554/live", "rtsp://admin:xxxxx@10.0.0.5:554/live"},
		{"rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"},
		{"rtsp://ad%min:se cret@cam/x%zz", "rtsp://xxxxx@cam/x%zz"}, // unparsable: blank all userinfo
		{"/videos/a.mp4", "/videos/a.mp4"},
	}
	for _, tc := range tests {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSyntheticDeliversSizedSequencedFrames(t *testing.T) {
	tests := []struct {
		name         string
		url          string
		opts         Options
		wantW, wantH int
		wantFPS      float64
	}{
		{"default", "synthetic:", Options{}, 320, 180, 25},
		{"size and rate in url", "synthetic:160x90@50", Options{}, 160, 90, 50},
		{"options override size, fps cap", "synthetic:640x360@30", Options{Width: 96, Height: 64, FPS: 10}, 96, 64, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Open(ctxT(t, 5*time.Second), tc.url, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			info := src.Info()
			if info.Width != tc.wantW || info.Height != tc.wantH || info.FPS != tc.wantFPS || info.Kind != "synthetic" {
				t.Fatalf("Info = %+v, want %dx%d@%v synthetic", info, tc.wantW, tc.wantH, tc.wantFPS)
			}
			ctx := ctxT(t, 10*time.Second)
			var prev frame.Frame
			for i := 0; i < 4; i++ {
				f, err := src.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Validate(); err != nil || f.W != tc.wantW || f.H != tc.wantH {
					t.Fatalf("frame %d: %dx%d (%v), want %dx%d", i, f.W, f.H, err, tc.wantW, tc.wantH)
				}
				if f.Captured.IsZero() {
					t.Fatalf("frame %d has no capture time", i)
				}
				if f.Reset != (i == 0) {
					t.Fatalf("frame %d: Reset=%v, want only the first frame to reset", i, f.Reset)
				}
				if i > 0 && (f.Seq <= prev.Seq || f.Captured.Before(prev.Captured)) {
					t.Fatalf("frame %d: seq %d at %v after seq %d at %v: not increasing", i, f.Seq, f.Captured, prev.Seq, prev.Captured)
				}
				prev = f
			}
		})
	}
}

func TestSyntheticIsDeterministicPerSeed(t *testing.T) {
	a := newScene(128, 72, 7).render(5, 0.2)
	b := newScene(128, 72, 7).render(5, 0.2)
	c := newScene(128, 72, 8).render(5, 0.2)
	if string(a) != string(b) {
		t.Fatal("same seed and Seq rendered different pixels")
	}
	if string(a) == string(c) {
		t.Fatal("different seeds rendered identical pixels")
	}
}

func TestSyntheticObjectsMoveOverStaticNoisyBackground(t *testing.T) {
	const w, h = 320, 180
	sc := newScene(w, h, 1)
	f0 := sc.render(1, 0)
	f1 := sc.render(26, 1.0) // one second later at 25 fps
	staticRows := int(staticBottom * h)
	var maxStatic, noisy, moved int
	for y := 0; y < h; y++ {
		for x := 0; x < w*3; x++ {
			i := y*w*3 + x
			d := int(f0[i]) - int(f1[i])
			if d < 0 {
				d = -d
			}
			if y < staticRows {
				maxStatic = max(maxStatic, d)
				if d > 0 {
					noisy++
				}
			} else if d > 40 {
				moved++
			}
		}
	}
	// Two independent noise draws in [-7,7] differ by at most 14.
	if maxStatic > 14 {
		t.Errorf("static background changed by %d levels, want <= 14 (noise only)", maxStatic)
	}
	if noisy < staticRows*w*3/2 {
		t.Errorf("only %d of %d static samples differ between frames: sensor noise missing", noisy, staticRows*w*3)
	}
	if moved < 500 {
		t.Errorf("only %d samples changed by > 40 in the street: objects do not move", moved)
	}
}

func TestMailboxNewestWinsAndKeepsReset(t *testing.T) {
	m := newMailbox()
	for seq := uint64(1); seq <= 5; seq++ {
		m.put(frame.Frame{Seq: seq, Reset: seq == 2})
	}
	f, err := m.next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.Seq != 5 || !f.Reset {
		t.Fatalf("got seq %d reset %v, want newest seq 5 carrying the dropped frame's reset", f.Seq, f.Reset)
	}
	if s := m.snapshot(); s.Captured != 5 || s.Dropped != 4 || s.Delivered != 1 {
		t.Fatalf("stats %+v, want 5 captured, 4 dropped, 1 delivered", s)
	}
	m.finish(io.EOF)
	if _, err := m.next(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("after finish: %v, want io.EOF", err)
	}
}

func TestSlowConsumerGetsNewestFrameAndDropsAreCounted(t *testing.T) {
	src, err := Open(ctxT(t, 5*time.Second), "synthetic:64x36@400", Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := ctxT(t, 20*time.Second)
	first, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Be a slow consumer: let the camera run ahead by 20 frames before taking one.
	for src.Stats().Captured < first.Seq+20 {
		if ctx.Err() != nil {
			t.Fatal("synthetic camera stalled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.Seq < first.Seq+20 {
		t.Fatalf("got seq %d, want the newest (>= %d)", f.Seq, first.Seq+20)
	}
	s := src.Stats()
	if s.Dropped < 18 {
		t.Fatalf("dropped %d, want >= 18 stale frames counted", s.Dropped)
	}
	// One slot, never a queue: everything captured was delivered, dropped, or is the one waiting.
	if pending := s.Captured - s.Delivered - s.Dropped; pending > 1 {
		t.Fatalf("stats %+v: %d frames pending, want at most 1", s, pending)
	}
	src.Close()
	if _, err := src.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
}

func TestFileSource(t *testing.T) {
	testdep.VtestAVI(t)
	t.Run("plays to EOF with resize", func(t *testing.T) {
		checkMats(t)
		src, err := Open(ctxT(t, 10*time.Second), vtest, Options{Width: 160, Height: 120, AsFastAsPossible: true})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if info := src.Info(); info.Kind != "file" || info.FPS <= 0 || info.Width != 160 {
			t.Fatalf("Info = %+v, want a 160-wide file with its fps", info)
		}
		ctx := ctxT(t, 60*time.Second)
		n := 0
		for ; ; n++ {
			f, err := src.Next(ctx)
			if errors.Is(err, io.EOF) {
				if !strings.Contains(err.Error(), vtest) {
					t.Errorf("EOF error %q does not name the file", err)
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.W != 160 || f.H != 120 || f.Validate() != nil || f.Reset != (n == 0) {
				t.Fatalf("frame %d: %dx%d reset=%v", n, f.W, f.H, f.Reset)
			}
		}
		if s := src.Stats(); n == 0 || s.Captured < 700 {
			t.Fatalf("read %d frames, stats %+v; vtest.avi has ~795", n, s)
		}
	})
	t.Run("loops with a reset at the start of each pass", func(t *testing.T) {
		checkMats(t)
		src, err := Open(ctxT(t, 10*time.Second), "file://"+vtest, Options{Width: 96, Height: 72, Loop: true, AsFastAsPossible: true})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		ctx := ctxT(t, 60*time.Second)
		resets := 0
		for resets < 2 {
			f, err := src.Next(ctx)
			if err != nil {
				t.Fatalf("after %d resets: %v", resets, err)
			}
			if f.Reset {
				resets++
			}
		}
	})
	t.Run("real time by default", func(t *testing.T) {
		checkMats(t)
		src, err := Open(ctxT(t, 10*time.Second), vtest, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		f, err := src.Next(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if f.W != 768 || f.H != 576 {
			t.Fatalf("native frame %dx%d, want 768x576", f.W, f.H)
		}
	})
}

func TestRTSPCameraIsReadBack(t *testing.T) {
	checkMats(t)
	srv := rtsptest.Start(t)
	url := srv.URL("cam")
	rtsptest.PublishTestPattern(t, url, 320, 240, 25)
	if err := srv.WaitPublishing(ctxT(t, 20*time.Second), "cam"); err != nil {
		t.Fatal(err)
	}
	src, err := Open(ctxT(t, 20*time.Second), url, Options{OpenTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if info := src.Info(); info.Kind != "rtsp" || info.Width != 320 || info.Height != 240 {
		t.Fatalf("Info = %+v, want rtsp 320x240", info)
	}
	ctx := ctxT(t, 30*time.Second)
	var prev uint64
	for i := 0; i < 10; i++ {
		f, err := src.Next(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.W != 320 || f.H != 240 || f.Validate() != nil {
			t.Fatalf("frame %d is %dx%d, want 320x240", i, f.W, f.H)
		}
		if f.Seq <= prev || f.Reset != (i == 0) {
			t.Fatalf("frame %d: seq %d after %d, reset %v", i, f.Seq, prev, f.Reset)
		}
		prev = f.Seq
		if i == 0 && meanLevel(f) < 20 {
			t.Fatalf("first frame mean level %.1f: testsrc2 is colourful, not black", meanLevel(f))
		}
	}
}

func TestRTSPCameraReconnectsAfterPublisherRestarts(t *testing.T) {
	checkMats(t)
	srv := rtsptest.Start(t)
	url := srv.URL("cam")
	stop := rtsptest.PublishTestPattern(t, url, 160, 120, 25)
	if err := srv.WaitPublishing(ctxT(t, 20*time.Second), "cam"); err != nil {
		t.Fatal(err)
	}
	src, err := Open(ctxT(t, 20*time.Second), url, Options{OpenTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := ctxT(t, 60*time.Second)
	first, err := src.Next(ctx)
	if err != nil || !first.Reset {
		t.Fatalf("first frame reset=%v err=%v, want a reset frame", first.Reset, err)
	}
	stop() // the camera goes away; the relay drops its readers
	rtsptest.PublishTestPattern(t, url, 160, 120, 25)
	for {
		f, err := src.Next(ctx)
		if err != nil {
			t.Fatalf("no frame after the publisher came back: %v (stats %+v)", err, src.Stats())
		}
		if f.Reset {
			if f.Seq <= first.Seq || src.Stats().Reconnects < 1 {
				t.Fatalf("reset frame seq %d (first %d), stats %+v", f.Seq, first.Seq, src.Stats())
			}
			return
		}
	}
}

func meanLevel(f frame.Frame) float64 {
	var s int
	for _, p := range f.Pix {
		s += int(p)
	}
	return float64(s) / float64(len(f.Pix))
}

func TestUnreachableSourcesFailWithClearErrors(t *testing.T) {
	closedPort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	// A "camera" that accepts TCP but never answers: only a timeout ends the open.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	corrupt := filepath.Join(t.TempDir(), "corrupt.mp4")
	if err := os.WriteFile(corrupt, []byte("this is not a video at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.mp4")
	refused := closedPort()

	tests := []struct {
		name, url string
		want      []string
		notWant   string
		is        error
	}{
		{"closed port", "rtsp://" + refused + "/x", []string{"rtsp://" + refused + "/x", "unreachable"}, "", nil},
		{"credentials redacted", "rtsp://admin:hunter2@" + refused + "/x", []string{"rtsp://admin:xxxxx@" + refused + "/x"}, "hunter2", nil},
		{"silent server", "rtsp://" + silent.Addr().String() + "/x", []string{silent.Addr().String()}, "", nil},
		{"missing file", missing, []string{missing}, "", fs.ErrNotExist},
		{"no such webcam", "webcam:63", []string{"webcam:63", "no such camera"}, "", nil},
		{"corrupt file", corrupt, []string{corrupt, "cannot decode"}, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkMats(t)
			start := time.Now()
			src, err := Open(ctxT(t, 30*time.Second), tc.url, Options{OpenTimeout: 2 * time.Second})
			if err == nil {
				src.Close()
				t.Fatalf("Open(%q) succeeded", tc.url)
			}
			t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.notWant != "" && strings.Contains(err.Error(), tc.notWant) {
				t.Errorf("error %q leaks %q", err, tc.notWant)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
		})
	}
}

func TestResizeScalesFramesWithoutLeakingMats(t *testing.T) {
	checkMats(t)
	src := frame.Frame{Pix: newScene(64, 36, 1).render(1, 0), W: 64, H: 36, Seq: 9, Reset: true}
	tests := []struct {
		interp Interp
		w, h   int
	}{
		{InterpCubic, 256, 144},
		{InterpArea, 32, 18},
		{InterpNearest, 64, 36},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d_%dx%d", tc.interp, tc.w, tc.h), func(t *testing.T) {
			out, err := Resize(src, tc.w, tc.h, tc.interp)
			if err != nil {
				t.Fatal(err)
			}
			if out.W != tc.w || out.H != tc.h || out.Validate() != nil || out.Seq != 9 || !out.Reset {
				t.Fatalf("got %dx%d seq %d reset %v", out.W, out.H, out.Seq, out.Reset)
			}
		})
	}
	if _, err := Resize(src, 0, 10, InterpCubic); err == nil {
		t.Fatal("Resize to 0x10 succeeded")
	}
	if _, err := Resize(frame.Frame{W: 2, H: 2}, 4, 4, InterpCubic); err == nil {
		t.Fatal("Resize of an empty frame succeeded")
	}
}
