package sr

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// engine is one ONNX Runtime session and the dynamic batcher in front of it.
// Its clients (one per stream: each keeps its own tiling, cache and output)
// queue tiles; one scheduler goroutine gathers them into batches of at most
// batch tiles, waiting at most maxWait for a batch to fill (as Triton's
// dynamic batcher does), taking tiles from the clients in turn, one each per
// round, so a client with many changed tiles cannot starve one with few.
// Results go back to each client in the order it queued its tiles.
//
// A shared engine (LoadShared) serves every stream that runs the same model
// file on the same provider and device, and is closed when its last client
// goes. A private one (LoadModel) has one client: the offline tools and the
// one-session-per-stream design the benchmark compares against.
type engine struct {
	key      engineKey
	info     ModelInfo
	provider string
	batch    int
	maxWait  time.Duration
	budget   bool // runs under the process thread budget (shared CPU engines)
	log      *slog.Logger

	sess    *ort.DynamicAdvancedSession
	tensors map[int]ioPair // batch size -> tensors; the scheduler's after start

	mu      sync.Mutex
	clients []*engineClient
	next    int // round-robin position in clients
	pending int // queued tiles over all clients
	refs    int // registry users (shared engines)
	closing bool
	wake    chan struct{}
	done    chan struct{}
	taken   []*tileJob

	batches, batchTiles atomic.Uint64
	takenBack           atomic.Uint64 // tiles clients took back from the queue (late or cancelled)
}

type engineKey struct {
	path, provider string
	device         int
}

// tileJob is one tile on its way through the engine: the client fills in,
// the scheduler writes out and the timing fields.
type tileJob struct {
	c       *engineClient
	in, out []float32
	idx     int
	enq     time.Time
	wait    time.Duration // queued -> its batch started
	infer   time.Duration // its batch's session run
	size    int           // tiles in its batch
	batchID uint64
	err     error
}

// engineClient is one user of an engine. results has room for every tile the
// client may have outstanding, so the scheduler never blocks on a slow client.
type engineClient struct {
	e       *engine
	queue   []*tileJob // under e.mu
	results chan *tileJob
}

// clientWindow is how many tiles a client keeps queued or running: two
// batches, so the engine runs one while the client blends the last and fills
// the next.
func (e *engine) clientWindow() int { return 2 * e.batch }

// DefaultBatchWait is how long a shared engine holds a part-filled batch for
// other streams' tiles. Short next to a tile's run (tens of ms on a CPU).
const DefaultBatchWait = 2 * time.Millisecond

// Process thread budget: every shared CPU engine's session gets this many
// intra-op threads and runs one batch at a time under cpuRun, so N cameras (or
// several models) never put more threads on the cores than the budget.
var (
	budgetMu     sync.Mutex
	threadBudget int // 0: one per core
	cpuRun       sync.Mutex
)

// SetThreadBudget sets the process's ONNX Runtime thread budget (the
// top-level config key threads; 0: one per core) for shared engines created
// from now on.
func SetThreadBudget(n int) {
	budgetMu.Lock()
	threadBudget = max(0, n)
	budgetMu.Unlock()
}

// ThreadBudget returns the intra-op threads of a shared engine's session.
func ThreadBudget() int {
	budgetMu.Lock()
	defer budgetMu.Unlock()
	if threadBudget > 0 {
		return threadBudget
	}
	return runtime.NumCPU()
}

// newEngine starts a session on the first provider of the chain that loads
// and runs a warm-up tile, then the scheduler.
func newEngine(path string, info ModelInfo, opts ModelOptions, log *slog.Logger) (*engine, error) {
	chain, err := providerChain(opts.Provider)
	if err != nil {
		return nil, fmt.Errorf("sr: model %s: %w", path, err)
	}
	e := &engine{info: info, log: log, tensors: map[int]ioPair{}, maxWait: opts.BatchWait,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	var (
		why     []string
		lastErr error
	)
	for _, p := range chain {
		batch := opts.BatchSize
		if batch <= 0 {
			batch = 4
			if p != ProviderCPU {
				batch = 16
			}
		}
		sess, err := newSession(path, info, p, batch, opts)
		if err == nil {
			liveSessions.Add(1)
			e.sess, e.provider, e.batch = sess, p, batch
			err = e.warmUp()
			if err == nil {
				break
			}
			e.releaseSession()
		}
		why = append(why, fmt.Sprintf("%s: %s", p, providerHint(err)))
		lastErr = err
	}
	if e.sess == nil {
		if errors.Is(lastErr, ErrNonFinite) { // the model, not the provider
			return nil, fmt.Errorf("sr: model %s: %w", path, lastErr)
		}
		return nil, fmt.Errorf("sr: model %s: no execution provider could run it: %s", path, strings.Join(why, "; "))
	}
	if len(why) > 0 {
		log.Warn("sr: execution provider fallback", "model", path, "asked", opts.Provider, "using", e.provider, "why", strings.Join(why, "; "))
	} else if opts.Provider == ProviderAuto {
		log.Info("sr: execution provider", "model", path, "asked", "auto", "using", e.provider)
	}
	go e.loop()
	return e, nil
}

// newClient adds a user; it is served from its first queued tile.
func (e *engine) newClient() *engineClient {
	c := &engineClient{e: e, results: make(chan *tileJob, e.clientWindow())}
	e.mu.Lock()
	e.clients = append(e.clients, c)
	e.mu.Unlock()
	return c
}

// removeClient drops a user and any tiles it still had queued.
func (e *engine) removeClient(c *engineClient) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, x := range e.clients {
		if x == c {
			e.clients = append(e.clients[:i], e.clients[i+1:]...)
			if e.next > i {
				e.next--
			}
			break
		}
	}
	if len(e.clients) > 0 {
		e.next %= len(e.clients)
	} else {
		e.next = 0
	}
	e.pending -= len(c.queue)
	c.queue = nil
}

// submit queues tiles behind the client's earlier ones.
func (c *engineClient) submit(jobs []*tileJob) {
	e := c.e
	now := time.Now()
	e.mu.Lock()
	for _, j := range jobs {
		j.c, j.enq, j.err = c, now, nil
	}
	c.queue = append(c.queue, jobs...)
	e.pending += len(jobs)
	e.mu.Unlock()
	e.poke()
}

// cancelQueued takes back the client's tiles that no batch has taken yet:
// always the last ones it queued.
func (c *engineClient) cancelQueued() []*tileJob {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	back := append([]*tileJob(nil), c.queue...)
	clear(c.queue)
	c.queue = c.queue[:0]
	e.pending -= len(back)
	e.takenBack.Add(uint64(len(back)))
	return back
}

func (e *engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// loop is the scheduler: the only goroutine that runs the session after start.
func (e *engine) loop() {
	defer close(e.done)
	for {
		e.mu.Lock()
		if e.closing {
			e.mu.Unlock()
			return
		}
		if e.pending == 0 {
			e.mu.Unlock()
			<-e.wake
			continue
		}
		if e.pending < e.batch && e.maxWait > 0 {
			// Hold a part-filled batch until its oldest tile has waited maxWait.
			if d := time.Until(e.oldestLocked().Add(e.maxWait)); d > 0 {
				e.mu.Unlock()
				t := time.NewTimer(d)
				select {
				case <-e.wake:
				case <-t.C:
				}
				t.Stop()
				continue
			}
		}
		jobs := e.takeLocked()
		e.mu.Unlock()
		e.runBatch(jobs)
	}
}

func (e *engine) oldestLocked() time.Time {
	var t time.Time
	for _, c := range e.clients {
		if len(c.queue) > 0 && (t.IsZero() || c.queue[0].enq.Before(t)) {
			t = c.queue[0].enq
		}
	}
	return t
}

// takeLocked fills a batch round-robin: one tile from each client with work
// per round, starting after the client served first last time.
func (e *engine) takeLocked() []*tileJob {
	n := min(e.batch, e.pending)
	jobs := e.taken[:0]
	for len(jobs) < n {
		c := e.clients[e.next]
		e.next = (e.next + 1) % len(e.clients)
		if len(c.queue) > 0 {
			jobs = append(jobs, c.queue[0])
			c.queue[0] = nil
			c.queue = c.queue[1:]
			e.pending--
		}
	}
	e.taken = jobs
	return jobs
}

func (e *engine) runBatch(jobs []*tileJob) {
	start := time.Now()
	id := e.batches.Add(1)
	e.batchTiles.Add(uint64(len(jobs)))
	T := e.info.Tile
	tileIn := 3 * T * T
	tileOut := tileIn * e.info.Scale * e.info.Scale
	p, err := e.tensorsFor(len(jobs))
	if err == nil {
		data := p.in.GetData()
		for b, j := range jobs {
			copy(data[b*tileIn:(b+1)*tileIn], j.in)
		}
		if e.budget {
			cpuRun.Lock()
		}
		err = e.sess.Run([]ort.Value{p.in}, []ort.Value{p.out})
		if e.budget {
			cpuRun.Unlock()
		}
		if err == nil {
			od := p.out.GetData()
			for b, j := range jobs {
				copy(j.out, od[b*tileOut:(b+1)*tileOut])
			}
		} else {
			err = fmt.Errorf("sr: %s (%s): inference: %w", e.info.Name, e.provider, err)
		}
	}
	infer := time.Since(start)
	for _, j := range jobs {
		j.wait, j.infer, j.size, j.batchID, j.err = start.Sub(j.enq), infer, len(jobs), id, err
		j.c.results <- j
	}
}

// close stops the scheduler and frees the session. Every client is gone.
func (e *engine) close() {
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	e.poke()
	<-e.done
	e.releaseSession()
}

// Shared engines, by (model file, provider, device).
var (
	regMu   sync.Mutex
	engines = map[engineKey]*engineEntry{}
)

type engineEntry struct {
	ready chan struct{} // closed once e or err is set
	e     *engine
	err   error
}

// acquireEngine returns the shared engine of a model file, provider and
// device, starting it for the first user. Options other than those (batch
// size, TensorRT settings) are the first user's.
func acquireEngine(path string, info ModelInfo, opts ModelOptions, log *slog.Logger) (*engine, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	key := engineKey{abs, strings.ToLower(opts.Provider), opts.DeviceID}
	if key.provider == "" {
		key.provider = ProviderCPU
	}
	for {
		regMu.Lock()
		ent, ok := engines[key]
		if ok {
			regMu.Unlock()
			<-ent.ready
			regMu.Lock()
			if ent.err != nil || engines[key] != ent {
				// Failed or closed meanwhile: the failure is this caller's too,
				// a closed one is started again.
				regMu.Unlock()
				if ent.err != nil {
					return nil, ent.err
				}
				continue
			}
			ent.e.refs++
			regMu.Unlock()
			return ent.e, nil
		}
		ent = &engineEntry{ready: make(chan struct{})}
		engines[key] = ent
		regMu.Unlock()

		o := opts
		o.Threads = ThreadBudget()
		if o.BatchWait <= 0 {
			o.BatchWait = DefaultBatchWait
		}
		e, err := newEngine(path, info, o, log)
		regMu.Lock()
		if err != nil {
			ent.err = err
			delete(engines, key)
		} else {
			e.key, e.refs, e.budget = key, 1, e.provider == ProviderCPU
			ent.e = e
		}
		close(ent.ready)
		regMu.Unlock()
		return e, err
	}
}

// releaseEngine drops one user of a shared engine and closes it with the last.
func releaseEngine(e *engine) {
	regMu.Lock()
	e.refs--
	last := e.refs == 0
	if last {
		if ent := engines[e.key]; ent != nil && ent.e == e {
			delete(engines, e.key)
		}
	}
	regMu.Unlock()
	if last {
		e.close()
	}
}

// SharedEngines returns how many shared engines are open and how many
// streams use each, by model file and provider (for tests and metrics).
func SharedEngines() map[string]int {
	regMu.Lock()
	defer regMu.Unlock()
	out := map[string]int{}
	for k, ent := range engines {
		if ent.e != nil {
			out[fmt.Sprintf("%s (%s)", k.path, k.provider)] = ent.e.refs
		}
	}
	return out
}

// EngineStats are an engine's running totals.
type EngineStats struct {
	Batches, Tiles uint64 // session runs and the tiles they held
}

func (e *engine) stats() EngineStats {
	return EngineStats{Batches: e.batches.Load(), Tiles: e.batchTiles.Load()}
}

// resolveModelPath: as named when it is there, else looked up as FindAsset does.
func resolveModelPath(path string) string {
	if _, err := os.Stat(path); err != nil {
		if p, _ := FindAsset(path); p != "" {
			return p
		}
	}
	return path
}
