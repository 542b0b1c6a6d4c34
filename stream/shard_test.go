package stream

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/danstream/danstream/internal/shard"
)

func sharedConfig(shardKey string, names ...string) string {
	var b strings.Builder
	if shardKey != "" {
		fmt.Fprintf(&b, "shard: %q\n", shardKey)
	}
	b.WriteString("streams:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %s: {source: 'synthetic:32x32@20', model: ../sr/testdata/nearest_x4.onnx, threads: 1}\n", n)
	}
	return b.String()
}

func TestShardKeyIsValidatedWithItsLine(t *testing.T) {
	_, err := ParseConfig([]byte(sharedConfig("3/3", "a")))
	if err == nil || !strings.Contains(err.Error(), "line 1: shard:") {
		t.Fatalf("shard 3/3 accepted or not named with its line: %v", err)
	}
	t.Setenv("TEST_SHARD_INDEX", "1") // as the chart's ConfigMap: shard: "${DANSTREAM_SHARD_INDEX}/N"
	c, err := ParseConfig([]byte(sharedConfig("${TEST_SHARD_INDEX}/2", "a")))
	if err != nil || c.Shard != "1/2" {
		t.Fatalf("shard from the environment: %q, %v", c.Shard, err)
	}
}

// TestForShardServesEveryStreamExactlyOnce: N shards of one file partition
// its streams as internal/shard assigns them; the serve flag wins over the key.
func TestForShardServesEveryStreamExactlyOnce(t *testing.T) {
	var names []string
	for i := 0; i < 40; i++ {
		names = append(names, fmt.Sprintf("cam%02d", i))
	}
	cfg, err := ParseConfig([]byte(sharedConfig("0/2", names...)))
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		c, err := cfg.ForShard(fmt.Sprintf("%d/%d", i, n))
		if err != nil {
			t.Fatal(err)
		}
		if c.Shard != fmt.Sprintf("%d/%d", i, n) {
			t.Fatalf("ForShard kept shard %q", c.Shard)
		}
		for name := range c.Streams {
			seen[name]++
			if o := shard.Owner(name, n); o != i {
				t.Errorf("%s served by shard %d, owner is %d", name, i, o)
			}
		}
	}
	for _, name := range names {
		if seen[name] != 1 {
			t.Errorf("%s served %d times by %d shards", name, seen[name], n)
		}
	}
	whole, _ := cfg.ForShard("")
	if whole.Shard != "0/2" || len(whole.Streams) >= len(names) {
		t.Errorf("without an override the file's shard key applies: %q, %d streams", whole.Shard, len(whole.Streams))
	}
	if _, err := cfg.ForShard("2/2"); err == nil {
		t.Error("ForShard accepted 2/2")
	}
}

// TestReloadWithMoreShardsStopsOnlyTheMovedStreams: a shared file (a
// ConfigMap) going from 1 to 2 shards stops, on shard 0, exactly the streams
// shard 1 now owns; the kept streams are not rebuilt (their viewers stay).
func TestReloadWithMoreShardsStopsOnlyTheMovedStreams(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f"}
	path := t.TempDir() + "/c.yaml"
	if err := os.WriteFile(path, []byte(sharedConfig("0/1", names...)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err == nil {
		cfg, err = cfg.ForShard("")
	}
	if err != nil {
		t.Fatal(err)
	}
	m := startManager(t, cfg)
	var kept, moved []string
	for _, n := range names {
		if shard.Owner(n, 2) == 0 {
			kept = append(kept, n)
		} else {
			moved = append(moved, n)
		}
	}
	if len(kept) == 0 || len(moved) == 0 {
		t.Fatalf("test premise: names split %v / %v", kept, moved)
	}
	before := map[string]any{}
	for _, n := range kept {
		waitFor(t, n+" running", func() bool { return stateOf(m, n) == StateRunning })
		before[n], _ = m.Broadcaster(n, VariantEnhanced)
	}
	handled := watchConfig(t, m, path)
	if err := os.WriteFile(path, []byte(sharedConfig("0/2", names...)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := nextReload(t, handled); err != nil {
		t.Fatalf("reload to 2 shards: %v", err)
	}
	got := m.names()
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(kept, ",") {
		t.Fatalf("shard 0 of 2 serves %v, want %v", got, kept)
	}
	for _, n := range kept {
		if b, _ := m.Broadcaster(n, VariantEnhanced); any(b) != before[n] {
			t.Errorf("kept stream %s was rebuilt by the reshard", n)
		}
	}
}

// TestChartConfigKeepsEachStreamOnItsOwner loads the config the Helm chart
// renders for every shard pod (deploy/testdata/config.yaml, 40 cameras on 3
// shards, recorded by deploy's test) as each pod does: expanded with that
// pod's environment (its DANSTREAM_SHARD_INDEX, Secret values), validated,
// kept to its shard. Every stream is served once, by its Owner, and the pod
// would pass CheckExposure on its non-loopback listener.
func TestChartConfigKeepsEachStreamOnItsOwner(t *testing.T) {
	data, err := os.ReadFile("../deploy/testdata/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"CAM_USER", "CAM_PASS", "DANSTREAM_VIEW_TOKEN", "DANSTREAM_OPS_TOKEN"} {
		t.Setenv(v, v+"-value-from-a-kubernetes-secret")
	}
	t.Setenv("DANSTREAM_PUBLIC_HOST", "203.0.113.10") // the pod's webrtc.hosts, from webrtc.publicHosts
	served := map[string]int{}
	for i := 0; i < 3; i++ {
		t.Setenv("DANSTREAM_SHARD_INDEX", fmt.Sprint(i))
		cfg, err := ParseConfig(data)
		if err == nil {
			cfg, err = cfg.ForShard("")
		}
		if err != nil {
			t.Fatalf("shard %d rejects the chart's config: %v", i, err)
		}
		if cfg.Shard != fmt.Sprintf("%d/3", i) {
			t.Fatalf("shard %d pod keeps shard %q", i, cfg.Shard)
		}
		// One UDP and one ICE-TCP port for every viewer: what the media Service exposes.
		if cfg.WebRTC.UDP() != "0.0.0.0:8189" || cfg.WebRTC.TCP() != "0.0.0.0:8189" || len(cfg.WebRTC.Hosts) != 1 {
			t.Errorf("shard %d webrtc: udp %q tcp %q hosts %v", i, cfg.WebRTC.UDP(), cfg.WebRTC.TCP(), cfg.WebRTC.Hosts)
		}
		if err := cfg.CheckExposure(); err != nil {
			t.Errorf("shard %d would refuse to start: %v", i, err)
		}
		for name := range cfg.Streams {
			served[name]++
			if o := shard.Owner(name, 3); o != i {
				t.Errorf("%s kept by shard %d, owner %d", name, i, o)
			}
		}
	}
	if len(served) != 40 {
		t.Errorf("%d of 40 streams served", len(served))
	}
	for name, k := range served {
		if k != 1 {
			t.Errorf("%s served %d times", name, k)
		}
	}
}
