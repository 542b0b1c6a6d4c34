package stream

import (
	"runtime"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

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

// Descriptions of the manager's metrics (Prometheus names kept from the
// hand-written exposition they replace; dashboards depend on them).
var (
	descUp = prometheus.NewDesc("danstream_stream_up", "1 if the stream is running, 0 otherwise (state label says why).", []string{"stream", "state"}, nil)
	gauges = []struct {
		desc *prometheus.Desc
		v    func(metricsRow) float64
	}{
		{streamDesc("danstream_stream_fps_in", "Frames per second taken from the source (2 s window)."), func(r metricsRow) float64 { return r.st.FPSIn }},
		{streamDesc("danstream_stream_fps_out", "Enhanced frames per second handed to the encoders."), func(r metricsRow) float64 { return r.st.FPSOut }},
		{streamDesc("danstream_stream_viewers", "Connected viewers (WebRTC and RTSP, both variants)."), func(r metricsRow) float64 { return float64(r.st.Viewers) }},
		{streamDesc("danstream_stream_latency_ms", "Capture timestamp to encoder hand-off, moving average."), func(r metricsRow) float64 { return r.st.Latency }},
	}
	counters = []struct {
		desc *prometheus.Desc
		v    func(metricsRow) uint64
	}{
		{streamDesc("danstream_stream_frames_total", "Frames enhanced."), func(r metricsRow) uint64 { return r.p.framesOut.Load() }},
		{streamDesc("danstream_stream_source_dropped_frames_total", "Frames the source dropped because SR was busy (newest frame wins)."), func(r metricsRow) uint64 { return r.st.Dropped }},
		{streamDesc("danstream_stream_reconnects_total", "Source reconnect attempts."), func(r metricsRow) uint64 { return r.st.Reconnects }},
		{streamDesc("danstream_stream_tiles_inferred_total", "SR tiles run through the model."), func(r metricsRow) uint64 { return r.srm.TilesInferred }},
		{streamDesc("danstream_stream_tiles_reused_total", "SR tiles served from the temporal tile cache."), func(r metricsRow) uint64 { return r.srm.TilesReused }},
		{streamDesc("danstream_stream_tiles_late_total", "SR tiles not run by the stream's deadline (kept from the cache, or bicubic)."), func(r metricsRow) uint64 { return r.srm.TilesLate }},
		{streamDesc("danstream_stream_sr_batches_total", "Session runs of the shared engine that carried this stream's tiles."), func(r metricsRow) uint64 { return r.srm.Batches }},
		{streamDesc("danstream_stream_sr_batch_tiles_total", "Sizes of those runs summed (all streams' tiles): divided by sr_batches_total, the mean batch."), func(r metricsRow) uint64 { return r.srm.BatchTiles }},
	}
	variantCounters = []struct {
		desc *prometheus.Desc
		v    func(metricsRow, int) uint64
	}{
		{variantDesc("danstream_stream_bytes_sent_total", "Encoded bytes produced (each sent to every viewer of its codec)."), func(r metricsRow, i int) uint64 { return r.del[i].bytes }},
		{variantDesc("danstream_stream_encoded_frames_total", "Frames encoded (once per codec in use, shared by all viewers)."), func(r metricsRow, i int) uint64 { return r.del[i].frames }},
		{variantDesc("danstream_stream_viewer_drops_total", "Samples dropped for slow viewers."), func(r metricsRow, i int) uint64 { return r.del[i].drops }},
	}
	descSR         = streamDesc("danstream_stream_sr_ms", "Time of the SR stage per frame, milliseconds.")
	descQueueWait  = streamDesc("danstream_stream_sr_queue_wait_seconds_total", "Time this stream's tiles waited in the shared engine's queue for a batch, summed over tiles.")
	descGoroutines = prometheus.NewDesc("danstream_process_goroutines", "Goroutines in the process.", nil, nil)
	descMats       = prometheus.NewDesc("danstream_process_gocv_mats", "Live GoCV Mats (C memory; counted in -tags matprofile builds).", nil, nil)
)

func streamDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"stream"}, nil)
}

func variantDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"stream", "variant"}, nil)
}

// metricsRow is one stream's figures, read under the manager's lock.
type metricsRow struct {
	st  Status
	p   *Pipeline
	del [2]struct{ bytes, frames, drops uint64 }
	srm sr.Metrics
}

// Describe implements prometheus.Collector.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUp
	for _, g := range gauges {
		ch <- g.desc
	}
	for _, c := range counters {
		ch <- c.desc
	}
	for _, c := range variantCounters {
		ch <- c.desc
	}
	ch <- descSR
	ch <- descQueueWait
	ch <- descGoroutines
	ch <- descMats
}

// Collect implements prometheus.Collector: every stream's figures at the
// moment of the scrape, and the process's goroutines and GoCV Mats (the
// transport registers Go's runtime and process collectors beside it).
func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	for _, r := range m.metricsRows() {
		name := r.st.Name
		up := 0.0
		if r.st.State == StateRunning {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, name, string(r.st.State))
		for _, g := range gauges {
			ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, g.v(r), name)
		}
		for _, c := range counters {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.v(r)), name)
		}
		for _, c := range variantCounters {
			for i, v := range []string{VariantEnhanced, VariantOriginal} {
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.v(r, i)), name, v)
			}
		}
		buckets := make(map[float64]uint64, len(srBuckets))
		var cum uint64
		for i, le := range srBuckets {
			cum += r.p.srHist.counts[i].Load()
			buckets[le] = cum
		}
		cum += r.p.srHist.counts[len(srBuckets)].Load()
		ch <- prometheus.MustNewConstMetric(descQueueWait, prometheus.CounterValue, r.srm.QueueWaitMs/1000, name)
		ch <- prometheus.MustNewConstHistogram(descSR, cum, float64(r.p.srHist.sumUs.Load())/1000, buckets, name)
	}
	ch <- prometheus.MustNewConstMetric(descGoroutines, prometheus.GaugeValue, float64(runtime.NumGoroutine()))
	if n, ok := capture.MatCount(); ok {
		ch <- prometheus.MustNewConstMetric(descMats, prometheus.GaugeValue, float64(n))
	}
}

func (m *Manager) metricsRows() []metricsRow {
	var rows []metricsRow
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, n := range m.namesLocked() {
		ms := m.streams[n]
		r := metricsRow{st: ms.p.Status(), p: ms.p}
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
	return rows
}
