package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	shardSpec := fs.String("shard", "", "serve only shard INDEX/COUNT of the config's streams (rendezvous hashing of the names; overrides the config's shard key)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	cfg, err := stream.LoadConfig(*cfgPath)
	if err == nil {
		cfg, err = cfg.ForShard(*shardSpec)
	}
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.HTTP.Listen = *listen
	}
	if *rtspListen != "" {
		cfg.RTSP.Listen = *rtspListen
	}
	if err := cfg.CheckExposure(); err != nil {
		return fmt.Errorf("config %s: %w", *cfgPath, err)
	}
	authz := transport.NewAuth(cfg.Auth.Rules())
	var tlsCfg *tls.Config
	if cfg.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return fmt.Errorf("config %s: tls: cert %s / key %s: %w", *cfgPath, cfg.TLS.Cert, cfg.TLS.Key, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := sr.InitRuntime(cfg.ONNXRuntime.Library); err != nil {
		return err
	}
	mgr, err := stream.NewManager(cfg, slog.Default())
	if err != nil {
		return err
	}
	defer mgr.Close()

	proxies, err := transport.ParseTrustedProxies(cfg.HTTP.TrustedProxies) // validated with the config
	if err != nil {
		return err
	}
	var relay *rtsp.Relay
	var metrics []prometheus.Collector
	if !cfg.RTSP.Disabled {
		relay = rtsp.New(mgr, cfg.RTSP.Options(), slog.Default())
		relay.Auth = authz
		metrics = append(metrics, relay)
	}
	h := cfg.HTTP
	srv := transport.NewServer(mgr, transport.ServerOptions{Collectors: metrics, LoopbackOnly: stream.IsLoopback(h.Listen), Auth: authz,
		TLSConfig: tlsCfg, TrustedProxies: proxies,
		ReadHeaderTimeout: h.ReadHeaderTimeout, ReadTimeout: h.ReadTimeout, WriteTimeout: h.WriteTimeout, IdleTimeout: h.IdleTimeout,
		MaxWHEPSessions: h.MaxWHEPSessions, MaxWHEPSessionsPerStream: h.MaxWHEPSessionsPerStream,
		ICEUDPListen: cfg.WebRTC.UDP(), ICETCPListen: cfg.WebRTC.TCP(), ICEHosts: cfg.WebRTC.Hosts, ICEServers: cfg.WebRTC.Servers(),
		ICEUDPOptional: cfg.WebRTC.UDPListen == nil, ICETCPOptional: cfg.WebRTC.TCPListen == nil})
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mgr.Run(ctx) })
	if *reload > 0 {
		// Credentials reload with the streams (token rotation without a restart);
		// a reload that would leave a non-loopback listener open is refused.
		reloadAuth := func(c stream.Config) error {
			c.HTTP, c.RTSP = cfg.HTTP, cfg.RTSP
			if err := c.CheckExposure(); err != nil {
				return err
			}
			authz.Set(c.Auth.Rules())
			return nil
		}
		g.Go(func() error {
			stream.WatchShardConfig(ctx, *cfgPath, *reload, *shardSpec, mgr, slog.Default(), reloadAuth)
			return nil
		})
	}
	g.Go(func() error { return srv.Run(ctx, cfg.HTTP.Listen) })
	if relay != nil {
		g.Go(func() error { return relay.Run(ctx) })
	}
	scheme := "http://"
	if tlsCfg != nil {
		scheme = "https://"
	}
	slog.Info("serving", "url", scheme+cfg.HTTP.Listen, "streams", len(cfg.Streams), "shard", cfg.Shard, "auth", authz.Enabled())
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	slog.Info("stopped")
	return nil
}
