package stream

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/danstream/danstream/sr"
)

// Every stream of one model file runs on one ONNX Runtime session (the
// shared engine), each with its own counters on /metrics; the session closes
// when the last of them is deleted.
func TestStreamsOfOneModelShareOneSession(t *testing.T) {
	m := startManager(t, Config{Streams: map[string]StreamConfig{}})
	base := sr.LiveSessions()
	for _, n := range []string{"a", "b", "c"} {
		if _, err := m.Put(n, testStream("synthetic:48x32@20")); err != nil {
			t.Fatal(err)
		}
	}
	m.mu.RLock()
	pa, pb := m.streams["a"].p, m.streams["b"].p
	m.mu.RUnlock()
	waitFor(t, "frames from a and b", func() bool { return pa.framesOut.Load() >= 3 && pb.framesOut.Load() >= 3 })
	if n := sr.LiveSessions() - base; n != 1 {
		t.Errorf("%d ONNX Runtime sessions for three streams of one model, want 1", n)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "stream" && l.GetValue() == "a" && mt.GetCounter() != nil {
					seen[mf.GetName()] = mt.GetCounter().GetValue()
				}
			}
		}
	}
	for _, name := range []string{"danstream_stream_tiles_inferred_total", "danstream_stream_tiles_late_total",
		"danstream_stream_sr_batches_total", "danstream_stream_sr_batch_tiles_total", "danstream_stream_sr_queue_wait_seconds_total"} {
		if _, ok := seen[name]; !ok {
			t.Errorf("/metrics lacks %s{stream=\"a\"}", name)
		}
	}
	if seen["danstream_stream_sr_batches_total"] == 0 || seen["danstream_stream_sr_batch_tiles_total"] < seen["danstream_stream_sr_batches_total"] {
		t.Errorf("batch counters: %v", seen)
	}

	for i, n := range []string{"a", "b", "c"} {
		if err := m.Delete(n); err != nil {
			t.Fatal(err)
		}
		want := int64(1)
		if i == 2 {
			want = 0
		}
		if got := sr.LiveSessions() - base; got != want {
			t.Errorf("after deleting %s: %d sessions, want %d", n, got, want)
		}
	}
}
