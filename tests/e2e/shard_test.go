package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/danstream/danstream/internal/shard"
	"github.com/danstream/danstream/internal/whepclient"
)

// TestShardsServeEachStreamOnceAndSurviveEachOther runs three
// `danstream serve --shard i/3` processes on one config file (listen
// addresses from flags): every stream is served by exactly the shard
// internal/shard assigns it to, and killing one shard (SIGKILL, as a lost pod)
// leaves the viewers of the other shards receiving. `danstream healthcheck`
// (the chart's probe) passes on a live shard and fails on the dead one.
func TestShardsServeEachStreamOnceAndSurviveEachOther(t *testing.T) {
	const n = 3
	// Two streams per shard, names picked by the assignment itself.
	want := make([][]string, n)
	var all []string
	for i := 0; len(all) < 2*n; i++ {
		name := fmt.Sprintf("cam-%d", i)
		if o := shard.Owner(name, n); len(want[o]) < 2 {
			want[o] = append(want[o], name)
			all = append(all, name)
		}
	}
	var cfg strings.Builder
	// One config for all three: the WebRTC ports are any free ones (default 8189, one per machine).
	cfg.WriteString("webrtc: {udp_listen: \"127.0.0.1:0\", tcp_listen: \"127.0.0.1:0\"}\nstreams:\n")
	for _, name := range all {
		fmt.Fprintf(&cfg, "  %s:\n    source: synthetic:64x48@10\n    %s\n", name, testModel)
	}
	path := filepath.Join(t.TempDir(), "shared.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	shards := make([]*server, n)
	for i := range shards {
		s := &server{http: freePort(t), rtsp: freePort(t), done: make(chan error, 1)}
		s.launch(t, []string{"serve", "--config", path, "--shard", fmt.Sprintf("%d/%d", i, n), "--listen", s.http, "--rtsp-listen", s.rtsp})
		shards[i] = s
	}
	served := map[string]int{}
	for i, s := range shards {
		var got []string
		for name := range s.streams(t) {
			got = append(got, name)
			served[name]++
		}
		sort.Strings(got)
		sort.Strings(want[i])
		if strings.Join(got, ",") != strings.Join(want[i], ",") {
			t.Fatalf("shard %d/%d serves %v, want %v", i, n, got, want[i])
		}
		other := want[(i+1)%n][0]
		if r, err := http.Get("http://" + s.http + "/api/streams/" + other + "/snapshot.jpg"); err != nil || r.StatusCode != http.StatusNotFound {
			t.Errorf("shard %d answers for %s, which shard %d serves: %v %v", i, other, (i+1)%n, r.Status, err)
		} else {
			r.Body.Close()
		}
	}
	for _, name := range all {
		if served[name] != 1 {
			t.Errorf("%s served by %d shards", name, served[name])
		}
	}

	viewers := make([]*whepclient.Viewer, n)
	for i, s := range shards {
		s.waitRunning(t, want[i][0])
		v := connectWHEP(t, http.DefaultClient, "http://"+s.http, want[i][0], "")
		viewers[i] = v
		waitUntil(t, fmt.Sprintf("RTP to the viewer on shard %d", i), 60*time.Second, func() bool { return v.Packets.Load() > 10 })
	}
	probe := func(s *server) error {
		return exec.Command(binPath, "healthcheck", "--url", "http://"+s.http+"/healthz").Run()
	}
	if err := probe(shards[0]); err != nil {
		t.Fatalf("healthcheck of a live shard: %v", err)
	}

	if err := shards[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-shards[0].done
	shards[0].done <- err // for the cleanup
	waitUntil(t, "the killed shard's viewer to notice", 30*time.Second, viewers[0].Lost.Load)
	if err := probe(shards[0]); err == nil {
		t.Error("healthcheck passes on a killed shard")
	}
	for i := 1; i < n; i++ {
		before := viewers[i].Packets.Load()
		waitUntil(t, fmt.Sprintf("shard %d's viewer to keep receiving after shard 0 died", i), 30*time.Second,
			func() bool { return viewers[i].Packets.Load() > before+30 })
		if viewers[i].Lost.Load() {
			t.Errorf("the viewer on shard %d lost its connection when shard 0 died", i)
		}
		if err := probe(shards[i]); err != nil {
			t.Errorf("healthcheck of shard %d after shard 0 died: %v", i, err)
		}
	}
}

// TestHealthcheckProbeTakesItsTokenFromTheEnvironment is the chart's probe on
// a server with auth: /healthz answers 401 without credentials, so the probe
// fails with a message naming DANSTREAM_HEALTH_TOKEN, and passes with a token
// of the config's auth block in that variable (from a Secret in the chart).
func TestHealthcheckProbeTakesItsTokenFromTheEnvironment(t *testing.T) {
	const token = "probe-token-0123456789abcdef"
	s := startServeEnv(t, "http: {listen: HTTP_ADDR}\nrtsp: {listen: RTSP_ADDR}\nauth:\n  tokens:\n    - {token: \"${PROBE_TOKEN}\", read: [\"*\"]}\n"+
		"streams:\n  cam:\n    source: synthetic:64x48@10\n    "+testModel+"\n", "PROBE_TOKEN="+token)
	probe := func(env ...string) (string, error) {
		cmd := exec.Command(binPath, "healthcheck", "--url", "http://"+s.http+"/healthz")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := probe("DANSTREAM_HEALTH_TOKEN=")
	if err == nil || !strings.Contains(out, "401") || !strings.Contains(out, "DANSTREAM_HEALTH_TOKEN") {
		t.Fatalf("probe without a token: err %v, output %q; want a 401 failure naming DANSTREAM_HEALTH_TOKEN", err, out)
	}
	if strings.Contains(out, token) {
		t.Fatal("the probe's output holds the token")
	}
	if out, err := probe("DANSTREAM_HEALTH_TOKEN=" + token); err != nil || !strings.Contains(out, `"cam"`) {
		t.Fatalf("probe with the token: err %v, output %q", err, out)
	}
}
