package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/stream"
	"github.com/danstream/danstream/transport"
	"github.com/danstream/danstream/transport/rtsp"
)

func init() {
	commands["serve"] = command{"run the live service (page, WHEP, API)", runServe}
}

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "configs/default.yaml", "config file")
	listen := fs.String("listen", "", "override http.listen (host:port)")
	reload := fs.Duration("reload-every", 2*time.Second, "check the config file for changes this often and apply them (0: off)")
	rtspListen := fs.String("rtsp-listen", "", "override rtsp.listen (host:port)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	cfg, err := stream.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.HTTP.Listen = *listen
	}
	if *rtspListen != "" {
		cfg.RTSP.Listen = *rtspListen
	}
	if err := sr.InitRuntime(cfg.ONNXRuntime.Library); err != nil {
		return err
	}
	mgr, err := stream.NewManager(cfg, slog.Default())
	if err != nil {
		return err
	}
	defer mgr.Close()

	srv := transport.NewServer(mgr, transport.ServerOptions{LoopbackOnly: isLoopback(cfg.HTTP.Listen)})
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mgr.Run(ctx) })
	if *reload > 0 {
		g.Go(func() error { stream.WatchConfig(ctx, *cfgPath, *reload, mgr, slog.Default()); return nil })
	}
	g.Go(func() error { return srv.Run(ctx, cfg.HTTP.Listen) })
	if !cfg.RTSP.Disabled {
		relay := rtsp.New(mgr, cfg.RTSP.Listen, slog.Default())
		g.Go(func() error { return relay.Run(ctx) })
	}
	slog.Info("serving", "url", "http://"+cfg.HTTP.Listen, "streams", len(cfg.Streams))
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	slog.Info("stopped")
	return nil
}

// isLoopback reports a listen address that only this machine can reach; then
// WebRTC offers only loopback ICE candidates too.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
