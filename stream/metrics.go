package stream

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/transport"
)

// srBuckets are the upper bounds (ms) of the SR-time histogram: from a cache
// hit on a quiet frame to a full x4 frame on a small CPU.
var srBuckets = [...]float64{2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000}

// histogram is a lock-free Prometheus-style histogram.
type histogram struct {
	counts [len(srBuckets) + 1]atomic.Uint64
	sumUs  atomic.Uint64
}

func (h *histogram) observe(ms float64) {
	i := 0
	for i < len(srBuckets) && ms > srBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumUs.Add(uint64(ms * 1000))
}

// WriteMetrics writes every stream's and the process's metrics in the
// Prometheus text exposition format (version 0.0.4).
func (m *Manager) WriteMetrics(w io.Writer) {
	type row struct {
		st  Status
		p   *Pipeline
		del [2]struct{ bytes, frames, drops uint64 }
		srm sr.Metrics
	}
	var rows []row
	m.mu.RLock()
	for _, n := range m.namesLocked() {
		ms := m.streams[n]
		r := row{st: ms.p.Status(), p: ms.p}
		if ms.cfg.OnDemand && ms.cancel == nil {
			r.st.State = StateIdle
		}
		for i, b := range [2]*transport.Broadcaster{ms.enhanced, ms.original} {
			bs := b.Stats()
			r.del[i].drops = bs.Drops
			for _, e := range bs.Encoders {
				r.del[i].bytes += e.Bytes
				r.del[i].frames += e.Frames
			}
		}
		if src, ok := ms.p.upscaler().(sr.MetricsSource); ok {
			r.srm = src.Metrics()
		}
		rows = append(rows, r)
	}
	m.mu.RUnlock()

	metric := func(name, typ, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	lbl := func(s string) string { return strconv.Quote(s) }
	metric("danstream_stream_up", "gauge", "1 if the stream is running, 0 otherwise (state label says why).")
	for _, r := range rows {
		up := 0
		if r.st.State == StateRunning {
			up = 1
		}
		fmt.Fprintf(w, "danstream_stream_up{stream=%s,state=%s} %d\n", lbl(r.st.Name), lbl(string(r.st.State)), up)
	}
	gauges := []struct {
		name, help string
		v          func(row) float64
	}{
		{"danstream_stream_fps_in", "Frames per second taken from the source (2 s window).", func(r row) float64 { return r.st.FPSIn }},
		{"danstream_stream_fps_out", "Enhanced frames per second handed to the encoders.", func(r row) float64 { return r.st.FPSOut }},
		{"danstream_stream_viewers", "Connected viewers (WebRTC and RTSP, both variants).", func(r row) float64 { return float64(r.st.Viewers) }},
		{"danstream_stream_latency_ms", "Capture timestamp to encoder hand-off, moving average.", func(r row) float64 { return r.st.Latency }},
	}
	for _, g := range gauges {
		metric(g.name, "gauge", g.help)
		for _, r := range rows {
			fmt.Fprintf(w, "%s{stream=%s} %g\n", g.name, lbl(r.st.Name), g.v(r))
		}
	}
	counters := []struct {
		name, help string
		v          func(row) uint64
	}{
		{"danstream_stream_frames_total", "Frames enhanced.", func(r row) uint64 { return r.p.framesOut.Load() }},
		{"danstream_stream_source_dropped_frames_total", "Frames the source dropped because SR was busy (newest frame wins).", func(r row) uint64 { return r.st.Dropped }},
		{"danstream_stream_reconnects_total", "Source reconnect attempts.", func(r row) uint64 { return r.st.Reconnects }},
		{"danstream_stream_tiles_inferred_total", "SR tiles run through the model.", func(r row) uint64 { return r.srm.TilesInferred }},
		{"danstream_stream_tiles_reused_total", "SR tiles served from the temporal tile cache.", func(r row) uint64 { return r.srm.TilesReused }},
	}
	for _, c := range counters {
		metric(c.name, "counter", c.help)
		for _, r := range rows {
			fmt.Fprintf(w, "%s{stream=%s} %d\n", c.name, lbl(r.st.Name), c.v(r))
		}
	}
	for _, c := range []struct {
		name, help string
		v          func(row, int) uint64
	}{
		{"danstream_stream_bytes_sent_total", "Encoded bytes produced (each sent to every viewer of its codec).", func(r row, i int) uint64 { return r.del[i].bytes }},
		{"danstream_stream_encoded_frames_total", "Frames encoded (once per codec in use, shared by all viewers).", func(r row, i int) uint64 { return r.del[i].frames }},
		{"danstream_stream_viewer_drops_total", "Samples dropped for slow viewers.", func(r row, i int) uint64 { return r.del[i].drops }},
	} {
		metric(c.name, "counter", c.help)
		for _, r := range rows {
			for i, v := range []string{VariantEnhanced, VariantOriginal} {
				fmt.Fprintf(w, "%s{stream=%s,variant=%s} %d\n", c.name, lbl(r.st.Name), lbl(v), c.v(r, i))
			}
		}
	}
	metric("danstream_stream_sr_ms", "histogram", "Time of the SR stage per frame, milliseconds.")
	for _, r := range rows {
		var cum uint64
		for i, le := range srBuckets {
			cum += r.p.srHist.counts[i].Load()
			fmt.Fprintf(w, "danstream_stream_sr_ms_bucket{stream=%s,le=\"%g\"} %d\n", lbl(r.st.Name), le, cum)
		}
		cum += r.p.srHist.counts[len(srBuckets)].Load()
		fmt.Fprintf(w, "danstream_stream_sr_ms_bucket{stream=%s,le=\"+Inf\"} %d\n", lbl(r.st.Name), cum)
		fmt.Fprintf(w, "danstream_stream_sr_ms_sum{stream=%s} %g\n", lbl(r.st.Name), float64(r.p.srHist.sumUs.Load())/1000)
		fmt.Fprintf(w, "danstream_stream_sr_ms_count{stream=%s} %d\n", lbl(r.st.Name), cum)
	}

	metric("danstream_process_goroutines", "gauge", "Goroutines in the process.")
	fmt.Fprintf(w, "danstream_process_goroutines %d\n", runtime.NumGoroutine())
	metric("danstream_process_resident_memory_bytes", "gauge", "Resident set size (Go heap, C memory of OpenCV, ONNX Runtime and the codecs).")
	fmt.Fprintf(w, "danstream_process_resident_memory_bytes %d\n", rssBytes())
	if n, ok := capture.MatCount(); ok {
		metric("danstream_process_gocv_mats", "gauge", "Live GoCV Mats (C memory; counted in -tags matprofile builds).")
		fmt.Fprintf(w, "danstream_process_gocv_mats %d\n", n)
	}
}

// rssBytes reads the resident set size from /proc (0 where there is none).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
