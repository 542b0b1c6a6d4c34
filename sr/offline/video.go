package offline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/danstream/danstream/frame"
)

// VideoReader decodes a video file to BGR frames through an ffmpeg process:
// every frame, in order, none dropped (unlike a live capture.Source).
type VideoReader struct {
	path   string
	W, H   int
	FPS    float64
	Frames int       // from the container; 0 if unknown
	Log    io.Writer // warnings about a damaged or short file; default os.Stderr
	cmd    *exec.Cmd
	r      io.ReadCloser
	stderr *bytes.Buffer
	seq    uint64
}

// OpenVideo probes a video file with ffprobe and starts decoding it.
func OpenVideo(ctx context.Context, path string) (*VideoReader, error) {
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
	v := &VideoReader{path: path, W: st.Width, H: st.Height, FPS: parseRate(st.Avg), Log: os.Stderr}
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
func (v *VideoReader) Next() (frame.Frame, error) {
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
		fmt.Fprintf(v.Log, "\nwarning: video %s: %s\n", v.path, lastLine([]byte(s)))
	}
	if v.Frames > 0 && int(v.seq) < v.Frames*9/10 {
		fmt.Fprintf(v.Log, "\nwarning: video %s: ended after %d of %d frames (truncated?)\n", v.path, v.seq, v.Frames)
	}
	return frame.Frame{}, io.EOF
}

// Close stops the decoder.
func (v *VideoReader) Close() error {
	if v.cmd != nil {
		v.r.Close()
		v.cmd.Process.Kill()
		v.cmd.Wait()
		v.cmd = nil
	}
	return nil
}

// VideoWriter encodes BGR frames to a file through an ffmpeg process (x264).
type VideoWriter struct {
	path   string
	cmd    *exec.Cmd
	w      io.WriteCloser
	stderr *bytes.Buffer
}

// CreateVideo starts an x264 encoder writing w x h frames at fps to path.
func CreateVideo(ctx context.Context, path string, w, h int, fps float64, crf int) (*VideoWriter, error) {
	vw := &VideoWriter{path: path, stderr: &bytes.Buffer{}}
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

// Write encodes one frame.
func (vw *VideoWriter) Write(f frame.Frame) error {
	if _, err := vw.w.Write(f.Pix); err != nil {
		vw.w.Close()
		vw.cmd.Wait()
		return fmt.Errorf("writing %s: %s", vw.path, lastLine(vw.stderr.Bytes()))
	}
	return nil
}

// Close finishes the file.
func (vw *VideoWriter) Close() error {
	vw.w.Close()
	if err := vw.cmd.Wait(); err != nil {
		return fmt.Errorf("writing %s: %s", vw.path, lastLine(vw.stderr.Bytes()))
	}
	return nil
}

// Abort stops the encoder and removes the partial file.
func (vw *VideoWriter) Abort() {
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
