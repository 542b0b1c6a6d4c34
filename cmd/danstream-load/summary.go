package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Result is everything one run measured. Times are milliseconds unless named otherwise.
type Result struct {
	Options map[string]any `json:"options"`
	Started time.Time      `json:"started"`
	Machine string         `json:"machine,omitempty"`
	Model   string         `json:"model,omitempty"`
	InSize  string         `json:"input_size,omitempty"`
	OutSize string         `json:"output_size,omitempty"`
	Codec   string         `json:"codec,omitempty"`

	Requested  int `json:"viewers_requested"`
	Joined     int `json:"viewers_joined"`
	JoinFailed int `json:"viewers_failed"`
	GotFrames  int `json:"viewers_with_frames"` // of the joined, how many received at least one frame
	Slow       int `json:"slow_viewers"`
	Stalled    int `json:"slow_viewers_stalled"` // slow viewers that did stop reading

	RampSeconds   float64 `json:"ramp_s"`
	WindowSeconds float64 `json:"window_s"`

	// Frame rate of each normal (reading) viewer over the window.
	FPS             Dist    `json:"fps_per_viewer"`
	SlowFPS         Dist    `json:"fps_per_slow_viewer"`
	EncFPS          float64 `json:"encoder_fps"` // frames the shared encoder produced per second of the window
	KbpsMean        float64 `json:"kbps_per_viewer_mean"`
	LostTotal       int64   `json:"seq_gap_packets_total"` // missing when a later packet came (before NACK repair)
	LateTotal       int64   `json:"late_packets_total"`    // arrived after a newer one (mostly NACK retransmissions)
	UDPRcvbufErrors int64   `json:"udp_rcvbuf_errors"`     // kernel drops (all sockets) during the window
	UDPSndbufErrors int64   `json:"udp_sndbuf_errors"`

	JoinToAnswer     Dist `json:"join_to_answer_ms"`
	JoinToConnected  Dist `json:"join_to_connected_ms"`
	JoinToFirstFrame Dist `json:"join_to_first_frame_ms"`
	JoinToKeyframe   Dist `json:"join_to_keyframe_ms"`
	ConnToKeyframe   Dist `json:"connected_to_keyframe_ms"` // the server's part: from ICE/DTLS up to the keyframe
	KeyWithin1s      int  `json:"keyframe_within_1s"`
	FirstFrameIsKey  int  `json:"first_frame_is_keyframe"`

	// Arrival of each frame's last packet minus its RTP time, relative to the
	// fastest frame of the same viewer: the delay the path added on top of its floor.
	ExtraDelay   Dist    `json:"extra_delay_ms"`
	FirstExcess  Dist    `json:"first_frame_excess_ms"` // first frame's delay over the floor (offset error of a first-packet reference)
	JitterMedian float64 `json:"jitter_ms_median"`      // per-viewer std dev of that delay, median over viewers

	// In-process runs only: on the server's clock.
	Probe *ProbeStats `json:"probe,omitempty"`

	Encoder EncoderCheck `json:"encoder"`
	API     APIStats     `json:"api"`

	Idle      *usage `json:"server_idle,omitempty"`
	OneViewer *usage `json:"server_one_viewer,omitempty"`
	Loaded    *usage `json:"server_loaded,omitempty"`
	LoadTool  *usage `json:"load_tool,omitempty"`
	// (loaded - idle)/N and (loaded - one viewer)/(N-1): all delivery work, and the fan-out alone.
	PerViewerCores       float64 `json:"per_viewer_cores,omitempty"`
	PerViewerMiB         float64 `json:"per_viewer_mib,omitempty"`
	FanoutPerViewerCores float64 `json:"fanout_per_viewer_cores,omitempty"`
	FanoutPerViewerMiB   float64 `json:"fanout_per_viewer_mib,omitempty"`
	FanoutCores          float64 `json:"fanout_cores,omitempty"` // loaded - one viewer
	// Per output frame, which holds when the machine has no spare core and the
	// stream's frame rate, not its CPU, gives: (loaded - one viewer) CPU per
	// frame / (N-1), and that projected to N viewers at the stream's nominal rate.
	FanoutMsPerViewerFrame float64 `json:"fanout_cpu_ms_per_viewer_frame,omitempty"`
	FanoutCoresAtFPS       float64 `json:"fanout_cores_projected,omitempty"`
	ProjectFPS             float64 `json:"projected_fps,omitempty"`
	// The same per kB sent (the cost is per packet, and CBR frames grow as the
	// frame rate drops), projected to N viewers at the configured bitrate.
	FanoutUsPerKB     float64 `json:"fanout_cpu_us_per_kb,omitempty"`
	FanoutCoresAtKbps float64 `json:"fanout_cores_projected_kbps,omitempty"`
	ProjectKbps       float64 `json:"projected_kbps,omitempty"`

	Deleted         int `json:"deleted"`
	DeleteFailed    int `json:"delete_failed"`
	SessionsAfter   int `json:"sessions_after"`    // the server's count, all clients
	OwnSessionsLeft int `json:"own_sessions_left"` // of ours, still there (a second DELETE did not get 404)
}

// Dist is a distribution summary.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

func dist(x []float64) Dist {
	if len(x) == 0 {
		return Dist{}
	}
	y := sortedFloats(x)
	// Nearest rank.
	q := func(p float64) float64 { return y[max(0, min(len(y)-1, int(math.Ceil(p*float64(len(y))))-1))] }
	sum := 0.0
	for _, v := range y {
		sum += v
	}
	return Dist{N: len(y), Mean: sum / float64(len(y)), Min: y[0], P50: q(0.5), P95: q(0.95), P99: q(0.99), Max: y[len(y)-1]}
}

// ProbeStats places frames on the server's clock (in-process runs).
type ProbeStats struct {
	Frames           int  `json:"frames_matched"`
	Viewers          int  `json:"viewers_matched"`
	CaptureToEncoded Dist `json:"capture_to_encoded_ms"` // capture, SR, conversion, encode
	EncodedToArrival Dist `json:"encoded_to_arrival_ms"` // the relay: queue, packetize, SRTP, UDP, client read
	CaptureToArrival Dist `json:"capture_to_arrival_ms"` // both
}

// EncoderCheck compares the shared encoder's output with what it was given.
type EncoderCheck struct {
	FramesIn      uint64 `json:"frames_in_delta"`
	Encoded       uint64 `json:"encoded_delta"`       // by the viewers' codec's encoder
	OtherEncoded  uint64 `json:"other_encoded_delta"` // by any other codec's encoder of the variant
	Restarts      uint64 `json:"restarts_delta"`
	Keyframes     uint64 `json:"keyframes_delta"`
	Forced        uint64 `json:"forced_keyframes_delta"`
	Drops         uint64 `json:"drops_delta"`
	ViewersServer int    `json:"viewers_reported"`
	Once          bool   `json:"ran_once"`
	Note          string `json:"note,omitempty"`
}

// APIStats averages /api/streams over the window.
type APIStats struct {
	Polls     int     `json:"polls"`
	FPSOut    float64 `json:"fps_out"`
	SRMillis  float64 `json:"sr_ms"`
	LatencyMs float64 `json:"latency_ms"` // capture -> handed to the encoders
	ConvMs    float64 `json:"conv_ms"`
	EncMs     float64 `json:"enc_ms"`
}

func summaryOptions(o Options) map[string]any {
	return map[string]any{"url": o.BaseURL, "stream": o.Stream, "variant": o.Variant, "codec": o.Codec,
		"viewers": o.Viewers, "slow": o.Slow, "slow_after_s": o.SlowAfter.Seconds(), "ramp_per_s": o.RampRate,
		"duration_s": o.Duration.Seconds(), "settle_s": o.Settle.Seconds(), "baseline_s": o.Baseline.Seconds(),
		"server_pid": o.ServerPID, "project_fps": o.NominalFPS, "project_kbps": o.NominalKbps, "rcvbuf": o.RcvBuf, "in_process": o.Probe != nil}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func (r *runner) summarise(before, after *apiStreams, startFrames []int64, window time.Duration) {
	res, o := r.res, r.o
	res.Requested, res.Slow, res.Codec = o.Viewers, o.Slow, o.Codec
	s := r.streamOf(after)
	res.Model, res.InSize, res.OutSize = s.Model, fmt.Sprintf("%dx%d", s.InW, s.InH), fmt.Sprintf("%dx%d", s.OutW, s.OutH)
	secs := window.Seconds()

	var fps, slowFPS, answer, connected, first, key, connKey, extra, firstExcess, jitters []float64
	var kbps float64
	nk := 0
	for i, v := range r.viewers {
		if v.pc == nil && v.joinErr == nil {
			continue // never started (run cut short)
		}
		if v.joinErr != nil {
			res.JoinFailed++
			continue
		}
		res.Joined++
		answer = append(answer, ms(v.answerAt.Sub(v.joinAt)))
		n := v.frames.Load()
		if n > 0 {
			res.GotFrames++
		}
		rate := float64(n-startFrames[i]) / secs
		res.LostTotal += v.lost.Load()
		res.LateTotal += v.late.Load()
		v.mu.Lock()
		if !v.connectedAt.IsZero() {
			connected = append(connected, ms(v.connectedAt.Sub(v.joinAt)))
		}
		if !v.firstFrame.IsZero() {
			first = append(first, ms(v.firstFrame.Sub(v.joinAt)))
			if v.firstIsKey {
				res.FirstFrameIsKey++
			}
		}
		if !v.firstKey.IsZero() {
			d := v.firstKey.Sub(v.joinAt)
			key = append(key, ms(d))
			if d <= time.Second {
				res.KeyWithin1s++
			}
			if !v.connectedAt.IsZero() {
				connKey = append(connKey, ms(v.firstKey.Sub(v.connectedAt)))
			}
		}
		if v.slow {
			slowFPS = append(slowFPS, rate)
			if v.stalled.Load() {
				res.Stalled++
			}
		} else {
			fps = append(fps, rate)
			kbps += float64(v.bytes.Load()) * 8 / 1000 / time.Since(v.firstPacket).Seconds()
			nk++
			if len(v.rel) > 1 {
				lo := float64(v.rel[0])
				for _, x := range v.rel {
					lo = math.Min(lo, float64(x))
				}
				var sum, sq float64
				for _, x := range v.rel {
					e := float64(x) - lo
					extra = append(extra, e)
					sum += e
					sq += e * e
				}
				k := float64(len(v.rel))
				jitters = append(jitters, math.Sqrt(math.Max(0, sq/k-(sum/k)*(sum/k))))
				firstExcess = append(firstExcess, float64(v.rel[0])-lo)
			}
		}
		v.mu.Unlock()
	}
	res.FPS, res.SlowFPS = dist(fps), dist(slowFPS)
	res.JoinToAnswer, res.JoinToConnected, res.JoinToFirstFrame, res.JoinToKeyframe = dist(answer), dist(connected), dist(first), dist(key)
	res.ConnToKeyframe = dist(connKey)
	res.ExtraDelay, res.FirstExcess = dist(extra), dist(firstExcess)
	if j := dist(jitters); j.N > 0 {
		res.JitterMedian = j.P50
	}
	if nk > 0 {
		res.KbpsMean = kbps / float64(nk)
	}

	// Did one encoder serve everybody?
	db, da := r.deliveryOf(before), r.deliveryOf(after)
	ec := &res.Encoder
	if db != nil && da != nil {
		ec.FramesIn = da.FramesIn - db.FramesIn
		ec.Drops = da.Drops - db.Drops
		ec.ViewersServer = da.Viewers
		for _, ea := range da.Encoders {
			var eb apiEncoder
			for _, x := range db.Encoders {
				if x.Codec == ea.Codec {
					eb = x
				}
			}
			if strings.EqualFold(ea.Codec, o.Codec) {
				ec.Encoded = ea.Frames - eb.Frames
				ec.Restarts = ea.Restarts - eb.Restarts
				ec.Keyframes = ea.Keyframes - eb.Keyframes
				ec.Forced = ea.Forced - eb.Forced
			} else {
				ec.OtherEncoded += ea.Frames - eb.Frames
			}
		}
		// Once: no more encodes than input frames although N viewers watched,
		// and the encoder was not recreated during the window. The two counters
		// are not read atomically (frames_in counts before the encode, frames
		// after), so one frame in flight at either snapshot is allowed.
		ec.Once = ec.Encoded > 0 && ec.Encoded <= ec.FramesIn+1 && ec.Restarts == 0
		if ec.OtherEncoded > 0 {
			ec.Note = "another codec's encoder also ran (another client watched in another codec)"
		}
		res.EncFPS = float64(ec.Encoded) / secs
	} else {
		ec.Note = "the server's /api/streams has no delivery counters for this variant"
	}

	// CPU and memory per viewer.
	if res.Loaded != nil {
		n := float64(res.Joined)
		if res.Idle != nil && n > 0 {
			res.PerViewerCores = (res.Loaded.Cores - res.Idle.Cores) / n
			res.PerViewerMiB = (res.Loaded.RSSMiB - res.Idle.RSSMiB) / n
		}
		if res.OneViewer != nil && n > 1 {
			res.FanoutCores = res.Loaded.Cores - res.OneViewer.Cores
			res.FanoutPerViewerCores = res.FanoutCores / (n - 1)
			res.FanoutPerViewerMiB = (res.Loaded.RSSMiB - res.OneViewer.RSSMiB) / (n - 1)
			if res.Loaded.CPUMsPerFrame > 0 && res.OneViewer.CPUMsPerFrame > 0 {
				res.FanoutMsPerViewerFrame = (res.Loaded.CPUMsPerFrame - res.OneViewer.CPUMsPerFrame) / (n - 1)
				res.ProjectFPS = r.o.NominalFPS
				if res.ProjectFPS <= 0 {
					res.ProjectFPS = res.OneViewer.FPS
				}
				res.FanoutCoresAtFPS = res.FanoutMsPerViewerFrame / 1000 * n * res.ProjectFPS
				if kb := res.Loaded.EncKBPerFrame; kb > 0 {
					res.FanoutUsPerKB = res.FanoutMsPerViewerFrame * 1000 / kb
					res.ProjectKbps = r.o.NominalKbps
					res.FanoutCoresAtKbps = res.FanoutUsPerKB / 1e6 * res.ProjectKbps / 8 * n
				}
			}
		}
	}
	if o.Probe != nil {
		res.Probe = r.matchProbe()
	}
}

// matchProbe places every viewer's frames on the server's clock. The RTP
// timestamp of a viewer's frame is base + (captured - captured_first)*90 kHz
// with a random base; the frame a viewer got first is the latest probe
// sample encoded before it arrived whose capture-time pattern matches the
// viewer's following timestamps.
func (r *runner) matchProbe() *ProbeStats {
	r.probeMu.Lock()
	probe := append([]ProbeSample(nil), r.probe...)
	r.probeMu.Unlock()
	sort.Slice(probe, func(i, j int) bool { return probe[i].Captured.Before(probe[j].Captured) })
	find := func(t time.Time) int {
		i := sort.Search(len(probe), func(i int) bool { return !probe[i].Captured.Before(t.Add(-200 * time.Microsecond)) })
		if i < len(probe) && probe[i].Captured.Sub(t).Abs() <= 200*time.Microsecond {
			return i
		}
		return -1
	}
	ps := &ProbeStats{}
	var c2e, e2a, c2a []float64
	for _, v := range r.viewers {
		if v.slow || v.joinErr != nil {
			continue
		}
		v.mu.Lock()
		recs := append([]frameRec(nil), v.recs...)
		v.mu.Unlock()
		if len(recs) < 3 {
			continue
		}
		check := min(len(recs), 30)
		best, bestN := -1, 0
		for j := len(probe) - 1; j >= 0; j-- {
			if probe[j].Encoded.After(recs[0].arrival) {
				continue
			}
			if recs[0].arrival.Sub(probe[j].Encoded) > 3*time.Second {
				break
			}
			n := 0
			for _, fr := range recs[:check] {
				if find(probe[j].Captured.Add(time.Duration(fr.ts*1e9/90000))) >= 0 {
					n++
				}
			}
			if n > bestN {
				best, bestN = j, n
			}
			if n == check {
				break
			}
		}
		if best < 0 || bestN*10 < check*9 {
			continue
		}
		ps.Viewers++
		c0 := probe[best].Captured
		for _, fr := range recs {
			i := find(c0.Add(time.Duration(fr.ts * 1e9 / 90000)))
			if i < 0 {
				continue
			}
			p := probe[i]
			c2e = append(c2e, ms(p.Encoded.Sub(p.Captured)))
			e2a = append(e2a, ms(fr.arrival.Sub(p.Encoded)))
			c2a = append(c2a, ms(fr.arrival.Sub(p.Captured)))
			ps.Frames++
		}
	}
	ps.CaptureToEncoded, ps.EncodedToArrival, ps.CaptureToArrival = dist(c2e), dist(e2a), dist(c2a)
	return ps
}

// Print writes the human summary.
func (res *Result) Print(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	dd := func(d Dist) string {
		if d.N == 0 {
			return "n/a"
		}
		return fmt.Sprintf("p50 %.1f  p95 %.1f  max %.1f  mean %.1f  (n=%d)", d.P50, d.P95, d.Max, d.Mean, d.N)
	}
	p("== danstream-load summary ==")
	if res.Machine != "" {
		p("machine            %s", res.Machine)
	}
	p("stream             %v  model %s  %s -> %s  codec %s", res.Options["stream"], res.Model, res.InSize, res.OutSize, res.Codec)
	p("viewers            requested %d, connected %d, failed %d, with frames %d; slow %d (stalled %d)",
		res.Requested, res.Joined, res.JoinFailed, res.GotFrames, res.Slow, res.Stalled)
	p("window             %.1f s after a %.1f s ramp", res.WindowSeconds, res.RampSeconds)
	p("frames/s/viewer    min %.2f  median %.2f  max %.2f   (encoder %.2f fps; server fps_out %.2f)",
		res.FPS.Min, res.FPS.P50, res.FPS.Max, res.EncFPS, res.API.FPSOut)
	if res.Slow > 0 {
		p("slow viewers fps   min %.2f  median %.2f  max %.2f   (they stopped reading)", res.SlowFPS.Min, res.SlowFPS.P50, res.SlowFPS.Max)
	}
	p("bitrate/viewer     %.0f kbit/s mean; packets missing at arrival %d, late (NACK repairs) %d; kernel UDP buffer drops in window: rcv %d snd %d",
		res.KbpsMean, res.LostTotal, res.LateTotal, res.UDPRcvbufErrors, res.UDPSndbufErrors)
	p("join->answer ms    %s", dd(res.JoinToAnswer))
	p("join->connected ms %s", dd(res.JoinToConnected))
	p("join->1st frame ms %s", dd(res.JoinToFirstFrame))
	p("join->keyframe ms  %s;  keyframe within 1 s: %d/%d; first frame a keyframe: %d",
		dd(res.JoinToKeyframe), res.KeyWithin1s, res.Joined, res.FirstFrameIsKey)
	p("connected->key ms  %s", dd(res.ConnToKeyframe))
	p("extra delay ms     %s  (arrival - RTP time, above each viewer's fastest frame); jitter (std dev) median %.2f ms",
		dd(res.ExtraDelay), res.JitterMedian)
	p("first-frame excess %s  (error of taking the first packet as the reference)", dd(res.FirstExcess))
	if pr := res.Probe; pr != nil {
		p("server clock (in-process probe, %d frames of %d viewers):", pr.Frames, pr.Viewers)
		p("  capture->encoded %s", dd(pr.CaptureToEncoded))
		p("  encoded->arrival %s  (the relay)", dd(pr.EncodedToArrival))
		p("  capture->arrival %s", dd(pr.CaptureToArrival))
	}
	p("stages (API avg)   sr %.1f ms, capture->encoders %.1f ms, BGR->I420 %.2f ms, encode %.2f ms",
		res.API.SRMillis, res.API.LatencyMs, res.API.ConvMs, res.API.EncMs)
	e := res.Encoder
	p("encoder once       %v: frames_in +%d, %s encoder frames +%d (restarts +%d, keyframes +%d, forced +%d), other codecs +%d, drops +%d, server viewers %d %s",
		e.Once, e.FramesIn, res.Codec, e.Encoded, e.Restarts, e.Keyframes, e.Forced, e.OtherEncoded, e.Drops, e.ViewersServer, e.Note)
	u := func(name string, x *usage) {
		if x != nil {
			p("%-18s %.3f cores, RSS %.1f MiB (max %.1f) over %.0f s; stream %.2f fps -> %.1f CPU ms/frame, %.1f kB/frame encoded",
				name, x.Cores, x.RSSMiB, x.RSSMaxMiB, x.Seconds, x.FPS, x.CPUMsPerFrame, x.EncKBPerFrame)
		}
	}
	u("server idle", res.Idle)
	u("server 1 viewer", res.OneViewer)
	u("server loaded", res.Loaded)
	u("load tool", res.LoadTool)
	if res.Loaded != nil && res.Idle != nil {
		p("per viewer         %.4f cores, %.2f MiB  ((loaded - idle)/N)", res.PerViewerCores, res.PerViewerMiB)
	}
	if res.Loaded != nil && res.OneViewer != nil {
		p("fan-out            %.3f cores for %d extra viewers; %.4f cores, %.2f MiB per viewer ((loaded - one viewer)/(N-1))",
			res.FanoutCores, res.Joined-1, res.FanoutPerViewerCores, res.FanoutPerViewerMiB)
		if res.FanoutMsPerViewerFrame != 0 {
			p("fan-out per frame  %.3f CPU ms per viewer-frame -> %.2f cores for %d viewers at %.1f fps",
				res.FanoutMsPerViewerFrame, res.FanoutCoresAtFPS, res.Joined, res.ProjectFPS)
			p("fan-out per kB     %.2f CPU us per kB sent -> %.2f cores for %d viewers at %.0f kbit/s each",
				res.FanoutUsPerKB, res.FanoutCoresAtKbps, res.Joined, res.ProjectKbps)
		}
	}
	p("leave              DELETE ok %d, failed %d; our sessions left %d; server sessions after: %d", res.Deleted, res.DeleteFailed, res.OwnSessionsLeft, res.SessionsAfter)
}
