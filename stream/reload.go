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
	w := NewConfigWatcher(path, every, m, log, hooks...)
	w.Shard = shardOverride
	w.Run(ctx)
}

// ConfigWatcher is WatchShardConfig in two steps: NewConfigWatcher notes the
// file's current state at once, so that an edit made after it returns is seen
// even if Run has not started polling yet.
type ConfigWatcher struct {
	path     string
	every    time.Duration
	m        *Manager
	log      *slog.Logger
	hooks    []func(Config) error
	lastMod  time.Time
	lastSize int64
	// Shard, if set before Run, overrides the file's shard key ("i/N").
	Shard string
	// Handled, if set before Run, is called from Run's goroutine after each
	// change of the file has been dealt with: err is nil when the config was
	// applied, otherwise why it was rejected or applied with errors.
	Handled func(err error)
}

// NewConfigWatcher notes path's modification time and size; Run applies later changes.
func NewConfigWatcher(path string, every time.Duration, m *Manager, log *slog.Logger, hooks ...func(Config) error) *ConfigWatcher {
	w := &ConfigWatcher{path: path, every: every, m: m, log: log, hooks: hooks}
	w.lastMod, w.lastSize = w.stamp()
	return w
}

func (w *ConfigWatcher) stamp() (time.Time, int64) {
	fi, err := os.Stat(w.path)
	if err != nil {
		return time.Time{}, -1
	}
	return fi.ModTime(), fi.Size()
}

// Run polls the file every interval until ctx ends.
func (w *ConfigWatcher) Run(ctx context.Context) {
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		mod, size := w.stamp()
		if size < 0 || (mod.Equal(w.lastMod) && size == w.lastSize) {
			continue
		}
		w.lastMod, w.lastSize = mod, size
		err := w.reload()
		if w.Handled != nil {
			w.Handled(err)
		}
	}
}

func (w *ConfigWatcher) reload() error {
	cfg, err := LoadConfig(w.path)
	if err == nil {
		cfg, err = cfg.ForShard(w.Shard)
	}
	if err != nil {
		w.log.Error("config reload rejected; keeping the running streams", "err", err)
		return err
	}
	for _, h := range w.hooks {
		if err := h(cfg); err != nil {
			w.log.Error("config reload rejected; keeping the running config", "err", err)
			return err
		}
	}
	if err := w.m.Apply(cfg); err != nil {
		w.log.Error("config reload applied with errors", "err", err)
		return err
	}
	w.log.Info("config reloaded", "path", w.path, "streams", len(cfg.Streams), "shard", cfg.Shard)
	return nil
}
