package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/danstream/danstream/adapt"
	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/transport"
)

// collection runs a stream's adaptation-pair collector (issue 7) beside its
// pipeline, for as long as the stream is configured, viewers or not. It opens
// its own connections to the sub stream (Source) and the main stream: the
// pipeline takes the newest frame whenever SR is free, which thins the sub
// frames below what the collector's motion check (consecutive frames) needs,
// and the sub stream is the cheap one. A source that fails is reopened with
// backoff; a sub stream that registration shows to be a crop of the main
// picture is reported and retried slowly, since a camera can be reconfigured. Nothing here touches the
// running model or the viewers.
type collection struct {
	sc     StreamConfig
	scale  int
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	st   transport.PairsStatus
	coll *adapt.Collector // the running one, nil between attempts
}

// collectRetry bounds the backoff between attempts; a cropped sub stream
// waits collectAspectRetry (a configuration problem, not a glitch).
var (
	collectRetry       = 30 * time.Second
	collectAspectRetry = time.Minute
)

func startCollection(ctx context.Context, name string, sc StreamConfig, scale int, log *slog.Logger) *collection {
	ctx, cancel := context.WithCancel(ctx)
	c := &collection{
		sc: sc, scale: scale, cancel: cancel, done: make(chan struct{}),
		log: log.With("stream", name),
		st:  transport.PairsStatus{Main: capture.Redact(sc.Main), Dir: sc.PairsDir, State: "starting"},
	}
	go func() {
		defer close(c.done)
		c.run(ctx)
	}()
	return c
}

func (c *collection) stop() {
	c.cancel()
	<-c.done
}

func (c *collection) run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := c.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second // it worked for a while: a new glitch, not the same one
		}
		wait, state := backoff, "retrying"
		if errors.Is(err, adapt.ErrCrop) {
			wait, state = collectAspectRetry, "failed"
		}
		c.mu.Lock()
		c.st.State, c.st.Restarts = state, c.st.Restarts+1
		if err != nil {
			c.st.Error = err.Error()
		}
		c.mu.Unlock()
		c.log.Warn("pair collection stopped; the stream and its model are unaffected",
			"main", capture.Redact(c.sc.Main), "pairs", c.sc.PairsDir, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, collectRetry)
	}
}

// once opens both streams and collects until ctx ends (nil) or a stream fails.
func (c *collection) once(ctx context.Context) error {
	open := func(url string, o capture.Options) (capture.Source, error) {
		octx, cancel := context.WithTimeout(ctx, 2*capture.DefaultOpenTimeout)
		defer cancel()
		o.Loop, o.Logger = c.sc.Loop, c.log
		return capture.Open(octx, url, o)
	}
	sub, err := open(c.sc.Source, capture.Options{Width: c.sc.Width, Height: c.sc.Height})
	if err != nil {
		return err
	}
	defer sub.Close()
	main, err := open(c.sc.Main, capture.Options{})
	if err != nil {
		return err
	}
	defer main.Close()
	coll, err := adapt.NewCollector(sub, main, adapt.CollectorOptions{
		Dir: c.sc.PairsDir, Scale: c.scale, MaxPairs: c.sc.PairsMax, MinInterval: c.sc.PairsEvery, Logger: c.log,
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.coll, c.st.State, c.st.Error = coll, "collecting", ""
	c.mu.Unlock()
	c.log.Info("collecting adaptation pairs", "sub", sub.Info().URL, "scale", c.scale)
	err = coll.Run(ctx)
	c.mu.Lock()
	c.st, c.coll = withCounts(c.st, coll.Stats()), nil
	c.mu.Unlock()
	return err
}

// withCounts adds a collector's counters to the totals st (pairs on disk are
// the collector's own count, not a sum).
func withCounts(st transport.PairsStatus, s adapt.CollectorStats) transport.PairsStatus {
	st.Considered += s.Considered
	st.Stored += s.Stored
	st.OnDisk = s.OnDisk
	st.Motion += s.Motion
	st.NoMain += s.NoMain
	st.Content += s.Content
	st.Registration += s.Registration
	st.WriteErrors += s.WriteErrors
	return st
}

// status is the totals plus the running collector's counters.
func (c *collection) status() transport.PairsStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.coll == nil {
		return c.st
	}
	return withCounts(c.st, c.coll.Stats())
}
