package sr

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func loadShared(t testing.TB, path string, opts ModelOptions) *ONNXUpscaler {
	t.Helper()
	u, err := LoadShared(path, opts)
	if err != nil {
		t.Fatalf("LoadShared(%s): %v", path, err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// waitUntil polls a condition (an event, not a time budget: the test's own
// timeout bounds it).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if t.Context().Err() != nil {
			t.Fatalf("gave up waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func (e *engine) queued() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pending
}

// Streams of one model file share one ONNX Runtime session, each keeping its
// own tile cache and output (the same pixels a private session gives), and
// the session closes with the last of them.
func TestSharedEngineOneSessionForEveryStreamOfAModel(t *testing.T) {
	base := LiveSessions()
	a, err := LoadShared(convX2, ModelOptions{Cache: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadShared(convX2, ModelOptions{Cache: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadShared(nearestX4, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := LiveSessions() - base; n != 2 {
		t.Fatalf("%d sessions for two streams of conv_x2 and one of nearest_x4, want 2", n)
	}
	if a.eng != b.eng || a.eng == c.eng || !a.Shared() {
		t.Fatal("streams of one model file must share its engine, other files not")
	}
	private := load(t, convX2, ModelOptions{Cache: true})
	// Both streams at once, different pictures: each gets its own result.
	fa, fb := texture(70, 50, 1), texture(70, 50, 2)
	var wg sync.WaitGroup
	outs := make([][]byte, 2)
	for i, job := range []struct {
		u *ONNXUpscaler
		f []byte
	}{{a, fa.Pix}, {b, fb.Pix}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := fa
			if i == 1 {
				f = fb
			}
			for k := 0; k < 3; k++ {
				o, err := job.u.Upscale(context.Background(), f)
				if err != nil {
					t.Error(err)
					return
				}
				outs[i] = o.Pix
			}
		}()
	}
	wg.Wait()
	for i, f := range [][]byte{fa.Pix, fb.Pix} {
		want := upscale(t, private, texture(70, 50, int64(i+1)))
		if !bytes.Equal(outs[i], want.Pix) {
			t.Errorf("stream %d: shared engine output differs from a private session's", i)
		}
		_ = f
	}
	if s := a.EngineStats(); s.Batches == 0 || s.Tiles < s.Batches {
		t.Errorf("engine stats %+v", s)
	}
	a.Close()
	if n := LiveSessions() - base; n != 3 { // b's, c's, and the private one
		t.Errorf("%d sessions after the first user left, want 3", n)
	}
	b.Close()
	c.Close()
	private.Close()
	if n := LiveSessions() - base; n != 0 {
		t.Errorf("%d sessions left after every user closed", n)
	}
	if e := SharedEngines(); len(e) != 0 {
		t.Errorf("shared engines left: %v", e)
	}
	// A later user starts it again.
	d := loadShared(t, convX2, ModelOptions{})
	upscale(t, d, texture(40, 40, 3))
	if n := LiveSessions() - base; n != 1 {
		t.Errorf("%d sessions after reopening, want 1", n)
	}
}

// The batcher takes the clients' tiles in turn: a client with a long queue
// gets one tile per round like the others, and the turn moves on between
// batches.
func TestEngineBatchesTakeClientsInTurn(t *testing.T) {
	e := &engine{batch: 4, wake: make(chan struct{}, 1)}
	busy, quiet, other := e.newClient(), e.newClient(), e.newClient()
	jobs := func(n int) []*tileJob {
		js := make([]*tileJob, n)
		for i := range js {
			js[i] = &tileJob{idx: i}
		}
		return js
	}
	busy.submit(jobs(20))
	quiet.submit(jobs(1))
	other.submit(jobs(3))
	count := func(js []*tileJob) map[*engineClient]int {
		m := map[*engineClient]int{}
		for _, j := range js {
			m[j.c]++
		}
		return m
	}
	e.mu.Lock()
	first := count(append([]*tileJob(nil), e.takeLocked()...))
	second := count(append([]*tileJob(nil), e.takeLocked()...))
	third := count(append([]*tileJob(nil), e.takeLocked()...))
	e.mu.Unlock()
	if first[busy] != 2 || first[quiet] != 1 || first[other] != 1 {
		t.Errorf("first batch %v: want 2 busy, 1 quiet, 1 other", first)
	}
	if second[busy] != 2 || second[other] != 2 {
		t.Errorf("second batch %v: want 2 busy, 2 other", second)
	}
	if third[busy] != 4 {
		t.Errorf("third batch %v: want busy alone", third)
	}
}

// A stream with one small frame after another is served while a busy stream
// has a large frame in the engine: it is not held behind the large frame's
// tiles (count-based: it finishes frames while the busy one is still going).
func TestSharedEngineBusyStreamDoesNotStarveAnother(t *testing.T) {
	busy := loadShared(t, convX2, ModelOptions{})
	quiet := loadShared(t, convX2, ModelOptions{})
	e := busy.eng
	big, small := texture(600, 400, 1), texture(20, 20, 2) // hundreds of tiles vs one

	// Hold the engine at its first batch until both streams have queued work.
	cpuRun.Lock()
	var busyDone atomic.Bool
	busyErr := make(chan error, 1)
	go func() {
		_, err := busy.Upscale(context.Background(), big)
		busyDone.Store(true)
		busyErr <- err
	}()
	waitUntil(t, "the busy stream's window queued", func() bool { return e.queued() == e.clientWindow()-e.batch })
	quietDone := 0
	quietErr := make(chan error, 1)
	go func() {
		defer close(quietErr)
		for !busyDone.Load() {
			if _, err := quiet.Upscale(context.Background(), small); err != nil {
				quietErr <- err
				return
			}
			quietDone++
			if quietDone == 3 {
				return
			}
		}
	}()
	waitUntil(t, "the quiet stream's tile queued", func() bool { return e.queued() == e.clientWindow()-e.batch+1 })
	cpuRun.Unlock()
	if err := <-quietErr; err != nil {
		t.Fatal(err)
	}
	if busyDone.Load() {
		t.Errorf("the busy stream's %d-tile frame finished before the quiet stream's 3 one-tile frames (%d done)", len(busy.gridTiles), quietDone)
	}
	if err := <-busyErr; err != nil {
		t.Fatal(err)
	}
	bm, qm := busy.Metrics(), quiet.Metrics()
	t.Logf("busy: %d tiles in %d batches (mean %.1f, queue wait %.0f ms); quiet: %d frames, %d batches (mean %.1f)",
		bm.TilesInferred, bm.Batches, float64(bm.BatchTiles)/float64(bm.Batches), bm.QueueWaitMs,
		qm.Frames, qm.Batches, float64(qm.BatchTiles)/float64(max(1, qm.Batches)))
	if qm.Frames != 3 || bm.TilesInferred < 100 {
		t.Errorf("quiet frames %d, busy tiles %d", qm.Frames, bm.TilesInferred)
	}
}

// Tiles not taken by a batch before the stream's deadline are not waited
// for: the frame goes out with them bicubic (a whole-frame pass) or kept from
// the cache, and they are counted as late; the next frame runs them.
func TestSharedEngineLateTilesAreFilledAndCounted(t *testing.T) {
	u := loadShared(t, convX2, ModelOptions{Cache: true, Deadline: time.Nanosecond})
	e := u.eng
	f := texture(150, 100, 1)

	cpuRun.Lock() // at most one batch is taken (and held); the deadline passes meanwhile
	type res struct {
		pix []byte
		err error
	}
	done := make(chan res, 1)
	go func() {
		o, err := u.Upscale(context.Background(), f)
		done <- res{o.Pix, err}
	}()
	// The queue empties only when the stream takes its late tiles back.
	waitUntil(t, "the late tiles taken back", func() bool { return e.takenBack.Load() > 0 })
	cpuRun.Unlock()
	r := <-done
	if r.err != nil || len(r.pix) != 300*200*3 {
		t.Fatalf("late frame: %d bytes, %v", len(r.pix), r.err)
	}
	m := u.Metrics()
	grid := m.Last.Tiles
	if in := m.Last.Inferred; in != 0 && in != e.batch || m.Last.Late != grid-in || m.TilesLate != uint64(grid-in) {
		t.Fatalf("first frame: %+v, want 0 or %d inferred and the rest of %d late", m.Last, e.batch, grid)
	}
	// The late part is the bicubic picture, not black.
	bic := upscale(t, NewBicubic(2), f)
	if d, black := meanAbsDiff(r.pix, bic.Pix), meanAbsDiff(make([]byte, len(bic.Pix)), bic.Pix); d > black/10 {
		t.Errorf("late frame is %.1f levels from bicubic (black is %.1f)", d, black)
	}
	u.SetDeadline(0)
	// Next frame, same picture: the late tiles' blocks run now, nothing is late.
	out := upscale(t, u, f)
	m = u.Metrics()
	if m.Last.Late != 0 || m.Last.Inferred == 0 {
		t.Errorf("second frame: %+v, want the late tiles' blocks run, none late", m.Last)
	}
	private := load(t, convX2, ModelOptions{})
	want := upscale(t, private, f)
	if d := meanAbsDiff(out.Pix, want.Pix); d > 1 {
		t.Errorf("after the catch-up frame the output is %.2f levels from a full run", d)
	}
}

func meanAbsDiff(a, b []byte) float64 {
	var s float64
	for i := range a {
		d := int(a[i]) - int(b[i])
		s += float64(max(d, -d))
	}
	return s / float64(len(a))
}
