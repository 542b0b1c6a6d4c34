package e2e

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/testdep"
)

// TestFrigateFFmpegCommandRecordsAndDetects runs the ffmpeg command a Frigate
// camera on the relay turns into (docs/integrations.md: preset-rtsp-generic
// input arguments, preset-record-generic segments, detect frames as raw
// yuv420p on a pipe), over TCP and over UDP (preset-rtsp-udp): the record
// segment holds decodable H.264 at the stream's size and the detect pipe
// whole frames at the detect size.
func TestFrigateFFmpegCommandRecordsAndDetects(t *testing.T) {
	ffmpeg := testdep.Command(t, "ffmpeg")
	ffprobe := testdep.Command(t, "ffprobe")
	s := startServe(t, "http: {listen: HTTP_ADDR}\nrtsp: {listen: RTSP_ADDR}\nstreams:\n  frontdoor:\n    source: synthetic:64x48@10\n    "+testModel+"\n")
	st := s.waitRunning(t, "frontdoor")
	const w, h = 128, 96 // detect size
	for _, transport := range []string{"tcp", "udp"} {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-threads", "2",
			"-avoid_negative_ts", "make_zero", "-fflags", "+genpts+discardcorrupt", "-rtsp_transport", transport,
			"-timeout", "5000000", "-use_wallclock_as_timestamps", "1",
			"-i", "rtsp://"+s.rtsp+"/frontdoor", "-t", "4",
			"-f", "segment", "-segment_time", "10", "-segment_format", "mp4", "-reset_timestamps", "1", "-strftime", "1",
			"-c", "copy", "-an", filepath.Join(dir, "%Y%m%d%H%M%S.mp4"),
			"-t", "4", "-r", "5", "-vf", "fps=5,scale="+strconv.Itoa(w)+":"+strconv.Itoa(h), "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, stdout)
		err = cmd.Wait()
		cancel()
		if err != nil {
			t.Fatalf("%s: Frigate's ffmpeg failed: %v\n%s", transport, err, stderr.String())
		}
		frame := int64(w * h * 3 / 2)
		if n == 0 || n%frame != 0 {
			t.Errorf("%s: detect pipe gave %d bytes, want whole %dx%d yuv420p frames", transport, n, w, h)
		}
		segs, _ := filepath.Glob(filepath.Join(dir, "*.mp4"))
		if len(segs) == 0 {
			t.Fatalf("%s: no record segment written", transport)
		}
		out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
			"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", segs[0]).Output()
		f := strings.Split(strings.TrimSpace(string(out)), ",")
		if err != nil || len(f) != 4 || f[0] != "h264" || f[1] != strconv.Itoa(st.OutputWidth) || f[2] != strconv.Itoa(st.OutputHeight) || f[3] == "0" {
			t.Errorf("%s: record segment %s: %q %v, want h264 %dx%d with frames", transport, segs[0], out, err, st.OutputWidth, st.OutputHeight)
		}
		t.Logf("%s: detect %d frames, record segment %s", transport, n/frame, out)
	}
}
