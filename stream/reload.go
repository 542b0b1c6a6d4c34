package stream

import (
	"context"
	"log/slog"
	"os"
	"time"
)

// WatchConfig reloads the config file when it changes (polled: works on every
// filesystem, including bind mounts where inotify does not) and applies the
// streams to m. A file that does not parse or validate is logged and ignored:
// the running streams stay as they are. Listen addresses and TLS files need a
// restart. Each hook (e.g. swapping the credentials) runs before the streams
// are applied; one that fails rejects the whole reload.
func WatchConfig(ctx context.Context, path string, every time.Duration, m *Manager, log *slog.Logger, hooks ...func(Config) error) {
	WatchShardConfig(ctx, path, every, "", m, log, hooks...)
}

// WatchShardConfig is WatchConfig for one shard: each reloaded file keeps
// only the streams of shardOverride ("i/N", serve --shard) or, when that is
// empty, of the file's own shard key, so a changed shard count in a shared
// file (a Kubernetes ConfigMap) moves streams without restarting the process.
func WatchShardConfig(ctx context.Context, path string, every time.Duration, shardOverride string, m *Manager, log *slog.Logger, hooks ...func(Config) error) {
	stamp := func() (time.Time, int64) {
		fi, err := os.Stat(path)
		if err != nil {
			return time.Time{}, -1
		}
		return fi.ModTime(), fi.Size()
	}
	lastMod, lastSize := stamp()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		mod, size := stamp()
		if size < 0 || (mod.Equal(lastMod) && size == lastSize) {
			continue
		}
		lastMod, lastSize = mod, size
		cfg, err := LoadConfig(path)
		if err == nil {
			cfg, err = cfg.ForShard(shardOverride)
		}
		if err != nil {
			log.Error("config reload rejected; keeping the running streams", "err", err)
			continue
		}
		rejected := false
		for _, h := range hooks {
			if err := h(cfg); err != nil {
				log.Error("config reload rejected; keeping the running config", "err", err)
				rejected = true
				break
			}
		}
		if rejected {
			continue
		}
		if err := m.Apply(cfg); err != nil {
			log.Error("config reload applied with errors", "err", err)
			continue
		}
		log.Info("config reloaded", "path", path, "streams", len(cfg.Streams), "shard", cfg.Shard)
	}
}
