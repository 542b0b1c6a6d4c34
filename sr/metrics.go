package sr

// FrameMetrics describes the work done for one frame.
type FrameMetrics struct {
	Seq         uint64
	Tiles       int     // tiles in the frame
	Inferred    int     // tiles run through the model
	Reused      int     // tiles taken from the cache
	Late        int     // tiles not run by the deadline (kept from the cache, or bicubic)
	Batches     int     // session runs its tiles rode in
	BatchTiles  int     // the sizes of those runs summed (other streams' tiles included)
	QueueWaitMs float64 // time its tiles waited for a batch, summed
	InferMs     float64 // time inside session runs
	OverheadMs  float64 // everything else: change detection, tiling, blending, copies
	TotalMs     float64
	FullReason  string // why every tile ran ("first frame", "reset", "scene change", "cache off", "size change"); "" if the cache chose
}

// Metrics are running totals for one upscaler (one stream) plus the last frame.
type Metrics struct {
	Frames        uint64
	TilesInferred uint64
	TilesReused   uint64
	TilesLate     uint64
	Batches       uint64  // session runs its tiles rode in
	BatchTiles    uint64  // their sizes summed: BatchTiles/Batches is the mean batch it met
	QueueWaitMs   float64 // time its tiles waited for a batch, summed
	InferMs       float64 // summed over frames
	OverheadMs    float64
	Last          FrameMetrics
}

// HitRate is the fraction of tiles served from the cache so far.
func (m Metrics) HitRate() float64 {
	if t := m.TilesInferred + m.TilesReused; t > 0 {
		return float64(m.TilesReused) / float64(t)
	}
	return 0
}

// TilesInferredPerFrame is the mean number of tiles run per frame.
func (m Metrics) TilesInferredPerFrame() float64 {
	if m.Frames == 0 {
		return 0
	}
	return float64(m.TilesInferred) / float64(m.Frames)
}

// MetricsSource is implemented by upscalers that count their work; the stream
// layer type-asserts for it.
type MetricsSource interface {
	Metrics() Metrics
}

// Metrics returns a snapshot of the running totals.
func (u *ONNXUpscaler) Metrics() Metrics {
	u.mmu.Lock()
	defer u.mmu.Unlock()
	return u.metrics
}

// ResetMetrics zeroes the running totals (e.g. after a warm-up period).
func (u *ONNXUpscaler) ResetMetrics() {
	u.mmu.Lock()
	defer u.mmu.Unlock()
	u.metrics = Metrics{}
}

func (u *ONNXUpscaler) record(f FrameMetrics) {
	u.mmu.Lock()
	defer u.mmu.Unlock()
	m := &u.metrics
	m.Frames++
	m.TilesInferred += uint64(f.Inferred)
	m.TilesReused += uint64(f.Reused)
	m.TilesLate += uint64(f.Late)
	m.Batches += uint64(f.Batches)
	m.BatchTiles += uint64(f.BatchTiles)
	m.QueueWaitMs += f.QueueWaitMs
	m.InferMs += f.InferMs
	m.OverheadMs += f.OverheadMs
	m.Last = f
}
