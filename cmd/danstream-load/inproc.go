package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/stream"
	"github.com/danstream/danstream/transport"
)

// inProcess is a danstream server (manager + HTTP/WHEP, no RTSP relay) in this process.
type inProcess struct {
	URL  string
	mgr  *stream.Manager
	stop func() error
}

// startInProcess serves cfg on a free loopback port until Close.
func startInProcess(ctx context.Context, cfg stream.Config, listen string, log *slog.Logger) (*inProcess, error) {
	if err := sr.InitRuntime(cfg.ONNXRuntime.Library); err != nil {
		return nil, err
	}
	mgr, err := stream.NewManager(cfg, log)
	if err != nil {
		return nil, err
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		mgr.Close()
		return nil, fmt.Errorf("in-process server: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	srv := transport.NewServer(mgr, transport.ServerOptions{LoopbackOnly: true, Logger: log})
	mgrDone, srvDone := make(chan error, 1), make(chan error, 1)
	go func() { mgrDone <- mgr.Run(ctx) }()
	go func() { srvDone <- srv.Serve(ctx, ln) }()
	p := &inProcess{URL: "http://" + ln.Addr().String(), mgr: mgr}
	p.stop = func() error {
		cancel()
		err := errors.Join(<-srvDone, <-mgrDone)
		mgr.Close()
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}
	return p, nil
}

func (p *inProcess) Close() error { return p.stop() }

// Probe subscribes to a stream variant's Broadcaster like one more viewer.
func (p *inProcess) Probe(name, variant string) (ProbeSubscriber, error) {
	if variant == "" {
		variant = transport.VariantEnhanced
	}
	b, ok := p.mgr.Broadcaster(name, variant)
	if !ok || b == nil {
		return nil, fmt.Errorf("in-process server has no stream %q (variant %s)", name, variant)
	}
	return broadcasterProbe{b}, nil
}

type broadcasterProbe struct{ b *transport.Broadcaster }

func (bp broadcasterProbe) SubscribeSamples(codec string) (<-chan ProbeSample, func(), error) {
	sub, err := bp.b.Subscribe(codec)
	if err != nil {
		return nil, nil, err
	}
	out := make(chan ProbeSample, 64)
	go func() {
		defer close(out)
		for s := range sub.Samples() {
			select {
			case out <- ProbeSample{Captured: s.Captured, Encoded: s.Encoded}:
			default: // the collector is slow; a missing sample only loses a match
			}
		}
	}()
	return out, sub.Close, nil
}
