package transport

import (
	"encoding/json"
	"net/http"
	"testing"
)

// fixedCatalog reports one stream with the SR cache counters set, as the
// stream manager fills them from the upscaler's sr.Metrics.
type fixedCatalog struct{ st StreamStatus }

func (c fixedCatalog) List() []StreamStatus                            { return []StreamStatus{c.st} }
func (c fixedCatalog) Broadcaster(string, string) (*Broadcaster, bool) { return nil, false }

func TestAPIStreamsReportsCacheHitRateAndTilesPerFrame(t *testing.T) {
	_, base := newTestServer(t, fixedCatalog{StreamStatus{Name: "cam", State: StateRunning,
		CacheHitRate: 0.75, TilesInferredPerFrame: 10.5}}, ServerOptions{})
	r, err := http.Get(base + "/api/streams")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	// Decode into a generic map: the player reads these exact JSON names.
	var body struct {
		Streams []map[string]any `json:"streams"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Streams) != 1 {
		t.Fatalf("/api/streams: %v %+v", err, body)
	}
	st := body.Streams[0]
	if st["cache_hit_rate"] != 0.75 || st["tiles_inferred_per_frame"] != 10.5 {
		t.Fatalf("/api/streams stream %v: want cache_hit_rate 0.75 and tiles_inferred_per_frame 10.5", st)
	}
}
