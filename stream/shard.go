package stream

import (
	"fmt"

	"github.com/danstream/danstream/internal/shard"
)

// ForShard keeps only the streams of one shard (internal/shard: rendezvous
// hashing of the stream names), so N processes given the same file serve
// every stream exactly once. override ("i/N", from serve --shard) wins over
// the file's shard key; both empty keeps every stream. The returned config's
// Shard is the spec applied.
func (c Config) ForShard(override string) (Config, error) {
	s := c.Shard
	if override != "" {
		s = override
	}
	spec, err := shard.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("shard: %w", err)
	}
	c.Shard = spec.String()
	if spec.Count == 1 {
		return c, nil
	}
	kept := make(map[string]StreamConfig, len(c.Streams)/spec.Count+1)
	for name, sc := range c.Streams {
		if spec.Owns(name) {
			kept[name] = sc
		}
	}
	c.Streams = kept
	return c, nil
}
