package rtsptest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/testdep"
)

// Need returns the path of a program a test needs; when it is missing the
// test skips, or fails under CI=true (internal/testdep).
func Need(tb testing.TB, bin, install string) string {
	tb.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		testdep.Missing(tb, "%s not installed (%s)", bin, install)
	}
	return p
}

// Reader is a real RTSP client process decoding a stream (ffmpeg or
// GStreamer's rtspsrc) and the count of frames it has decoded so far.
type Reader struct {
	Name string // "ffmpeg/udp", "gstreamer/tcp", ...

	cmd    *exec.Cmd
	cancel context.CancelFunc
	exited chan struct{}
	once   sync.Once

	mu      sync.Mutex
	frames  int
	changed chan struct{} // closed and replaced whenever frames changes or the process exits
	out     strings.Builder
	err     error
}

// FFmpegReader starts `ffmpeg -rtsp_transport TRANSPORT -i URL -f null -`,
// counting frames from its -progress output. transport is "tcp" or "udp".
func FFmpegReader(tb testing.TB, url, transport string) *Reader {
	tb.Helper()
	bin := Need(tb, "ffmpeg", "apt-get install ffmpeg")
	return startReader(tb, "ffmpeg/"+transport, bin, []string{"-hide_banner", "-nostdin", "-loglevel", "warning",
		"-rtsp_transport", transport, "-i", url, "-an", "-f", "null", "-", "-progress", "pipe:1", "-stats_period", "0.2"},
		func(line string) (int, bool) {
			v, ok := strings.CutPrefix(line, "frame=")
			if !ok {
				return 0, false
			}
			n, err := strconv.Atoi(strings.TrimSpace(v))
			return n, err == nil
		})
}

// GStreamerReader starts Debian's gst-launch-1.0 with rtspsrc (protocols=
// TRANSPORT, "tcp" or "udp"), rtph264depay and avdec_h264 into a fakesink,
// counting the decoded frames the sink reports.
func GStreamerReader(tb testing.TB, url, transport string) *Reader {
	tb.Helper()
	const install = "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-libav"
	bin := Need(tb, "gst-launch-1.0", install)
	inspect := Need(tb, "gst-inspect-1.0", install)
	for _, el := range []string{"rtspsrc", "rtph264depay", "avdec_h264", "fakesink"} {
		if exec.Command(inspect, "--exists", el).Run() != nil {
			testdep.Missing(tb, "GStreamer element %s not installed (%s)", el, install)
		}
	}
	n := 0
	return startReader(tb, "gstreamer/"+transport, bin, []string{"-v", "rtspsrc", "location=" + url, "protocols=" + transport,
		"latency=200", "!", "rtph264depay", "!", "avdec_h264", "!", "fakesink", "name=out", "silent=false", "sync=false"},
		func(line string) (int, bool) {
			// -v prints the sink's last-message for every buffer it renders.
			if strings.Contains(line, "GstFakeSink:out: last-message = chain") {
				n++
				return n, true
			}
			return 0, false
		})
}

func startReader(tb testing.TB, name, bin string, args []string, parse func(string) (int, bool)) *Reader {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reader{Name: name, cancel: cancel, exited: make(chan struct{}), changed: make(chan struct{})}
	r.cmd = exec.CommandContext(ctx, bin, args...)
	// Stop interrupts, as a user would: both clients then send TEARDOWN
	// (a killed UDP reader's session would linger until it times out).
	r.cmd.Cancel = func() error { return r.cmd.Process.Signal(os.Interrupt) }
	r.cmd.WaitDelay = 5 * time.Second
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	r.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.out.Len() < 64<<10 {
			r.out.Write(p)
		}
		return len(p), nil
	})
	if err := r.cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("rtsptest: start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if n, ok := parse(sc.Text()); ok {
				r.mu.Lock()
				if n != r.frames {
					r.frames = n
					close(r.changed)
					r.changed = make(chan struct{})
				}
				r.mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		err := r.cmd.Wait()
		r.mu.Lock()
		r.err = err
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		close(r.exited)
	}()
	tb.Cleanup(func() {
		r.Stop()
		if tb.Failed() {
			tb.Logf("%s: %d frames; stderr:\n%s", name, r.Frames(), r.Output())
		}
	})
	return r
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Frames is the number of frames decoded so far.
func (r *Reader) Frames() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frames
}

// Output is what the reader wrote to stderr (its first 64 KiB).
func (r *Reader) Output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// Exited is closed when the process has ended.
func (r *Reader) Exited() <-chan struct{} { return r.exited }

// WaitFrames waits until the reader has decoded at least n frames in all. It
// fails when the process ends first or ctx ends.
func (r *Reader) WaitFrames(ctx context.Context, n int) error {
	for {
		r.mu.Lock()
		got, ch, exited := r.frames, r.changed, r.err != nil || isClosed(r.exited)
		r.mu.Unlock()
		if got >= n {
			return nil
		}
		if exited {
			return fmt.Errorf("%s exited after %d frames (want %d)", r.Name, got, n)
		}
		select {
		case <-ch:
		case <-r.exited:
		case <-ctx.Done():
			return fmt.Errorf("%s: %d frames decoded, want %d: %w", r.Name, got, n, ctx.Err())
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Stop interrupts the process and waits for it to end (safe to call more than once).
func (r *Reader) Stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.exited
	})
}
