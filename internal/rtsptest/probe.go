package rtsptest

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// Probe is what ffprobe decoded from the first video stream of an RTSP URL.
type Probe struct {
	Codec         string
	Width, Height int
	Frames        int // frames decoded in the read interval
}

// ProbeRTSP reads url over TCP with ffprobe for about `seconds` and counts the
// decoded frames: a real client's view of a relay. Callers skip when ffprobe is
// missing (exec.LookPath).
func ProbeRTSP(ctx context.Context, url string, seconds int) (Probe, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
		"-select_streams", "v:0", "-count_frames", "-read_intervals", fmt.Sprintf("%%+%d", seconds),
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", url).CombinedOutput()
	if err != nil {
		return Probe{}, fmt.Errorf("ffprobe %s: %w\n%s", url, err, out)
	}
	var res struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			W      int    `json:"width"`
			H      int    `json:"height"`
			Frames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) != 1 {
		return Probe{}, fmt.Errorf("ffprobe %s: unexpected output %s (%v)", url, out, err)
	}
	s := res.Streams[0]
	n, _ := strconv.Atoi(s.Frames)
	return Probe{Codec: s.Codec, Width: s.W, Height: s.H, Frames: n}, nil
}
