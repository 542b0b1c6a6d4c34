// Package deploy tests the Helm chart under helm/danstream: rendered as
// `helm template` does (the helm Go SDK, client-only), every object decoded
// strictly into the k8s.io/api types.
//
// It is its own module so that helm's dependency tree stays out of
// danstream's build. It meets danstream's Go code through two files in
// testdata/, written here (DANSTREAM_UPDATE_GOLDEN=1) and checked on both
// sides: owners.txt, the shard the chart routes each of 40 cameras to
// (internal/shard's test checks Owner gives the same), and config.yaml, the
// config every shard pod loads (stream's test parses it with each pod's
// environment and checks each stream is kept by exactly its owner).
package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"
)

// rendered is one chart rendering, decoded.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	ingresses   []*networkingv1.Ingress
	notes       string
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// render runs what `helm template cams helm/danstream -f values` runs, with
// values (YAML) over the chart's defaults, and decodes every object strictly:
// an unknown or duplicated field, or a kind outside core/apps/networking, fails.
func render(t *testing.T, values string) (*rendered, error) {
	t.Helper()
	chrt, err := loader.Load("helm/danstream")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(&action.Configuration{})
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.ReleaseName, install.Namespace = "cams", "video"
	// `helm template --kube-version`: the SDK's default is 1.20 unless helm's
	// build stamps it; the chart needs 1.26 (mixed-protocol LoadBalancer).
	kv, err := chartutil.ParseKubeVersion("v1.31.0")
	if err != nil {
		t.Fatal(err)
	}
	install.KubeVersion = kv
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, err
	}
	dec := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	out := &rendered{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, notes: rel.Info.Notes}
	for name, doc := range releaseutil.SplitManifests(rel.Manifest) {
		obj, gvk, err := dec.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", name, err, doc)
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			out.deployments[o.Name] = o
		case *corev1.Service:
			out.services[o.Name] = o
		case *corev1.ConfigMap:
			out.configMaps[o.Name] = o
		case *networkingv1.Ingress:
			out.ingresses = append(out.ingresses, o)
		default:
			t.Fatalf("%s: unexpected kind %s", name, gvk)
		}
	}
	return out, nil
}

func mustRender(t *testing.T, values string) *rendered {
	t.Helper()
	r, err := render(t, values)
	if err != nil {
		t.Fatalf("rendering: %v", err)
	}
	return r
}

// cameras is a values file with n synthetic cameras.
func cameras(n int) (names []string, values string) {
	var b strings.Builder
	b.WriteString("streams:\n")
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("cam-%02d", i)
		names = append(names, name)
		fmt.Fprintf(&b, "  %s: {source: 'rtsp://${CAM_USER}:${CAM_PASS}@10.0.0.%d/stream2', scale: 2}\n", name, i+1)
	}
	return names, b.String()
}

// ingressOwners maps each stream to the Service its page and its API (WHEP)
// route to, failing if the two differ.
func ingressOwners(t *testing.T, r *rendered) map[string]string {
	t.Helper()
	if len(r.ingresses) != 1 {
		t.Fatalf("%d Ingresses, want 1", len(r.ingresses))
	}
	page, api := map[string]string{}, map[string]string{}
	for _, rule := range r.ingresses[0].Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			svc := p.Backend.Service.Name
			if _, ok := r.services[svc]; !ok {
				t.Errorf("Ingress path %s routes to Service %s, which the chart does not render", p.Path, svc)
			}
			switch {
			case strings.HasPrefix(p.Path, "/streams/"):
				if *p.PathType != networkingv1.PathTypeExact {
					t.Errorf("%s: path type %s, want Exact", p.Path, *p.PathType)
				}
				page[strings.TrimPrefix(p.Path, "/streams/")] = svc
			case strings.HasPrefix(p.Path, "/api/streams/"):
				if *p.PathType != networkingv1.PathTypePrefix { // covers /whep, /whep/{id}, /snapshot.jpg
					t.Errorf("%s: path type %s, want Prefix", p.Path, *p.PathType)
				}
				api[strings.TrimPrefix(p.Path, "/api/streams/")] = svc
			}
		}
	}
	for name, svc := range page {
		if api[name] != svc {
			t.Errorf("stream %s: page routed to %s, WHEP to %s", name, svc, api[name])
		}
	}
	return page
}

// golden compares got with testdata/name, or writes it there when
// DANSTREAM_UPDATE_GOLDEN is set.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if os.Getenv("DANSTREAM_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("%s differs from what the chart renders now; if the change is meant, run DANSTREAM_UPDATE_GOLDEN=1 go test ./... in deploy/ "+
			"and the main module's tests (internal/shard, stream) that read it.\nrendered:\n%s", path, got)
	}
}

// TestChartRoutesEachStreamToTheShardThatServesIt: for 40 cameras on 3 and
// on 4 shards, the Ingress sends every stream's page and WHEP to one shard
// Service, recorded in testdata/owners.txt, which internal/shard's
// TestOwnerMatchesTheHelmChart checks against Owner. Each shard pod loads the
// one ConfigMap (testdata/config.yaml; stream's TestChartConfigKeepsEachStream
// OnItsOwner parses it with each pod's environment) with its own
// DANSTREAM_SHARD_INDEX.
func TestChartRoutesEachStreamToTheShardThatServesIt(t *testing.T) {
	names, values := cameras(40)
	var owners strings.Builder
	owners.WriteString("# stream shards owner: the Ingress routing of deploy/helm/danstream (deploy/chart_test.go)\n")
	for _, n := range []int{3, 4} {
		hosts := []string{"203.0.113.10", "203.0.113.11", "203.0.113.12", "203.0.113.13"}[:n]
		r := mustRender(t, values+fmt.Sprintf("shards: %d\ningress: {host: cams.example.com, className: nginx}\nwebrtc: {publicHosts: [%s]}\n",
			n, strings.Join(hosts, ", ")))
		routes := ingressOwners(t, r)
		if len(routes) != len(names) {
			t.Fatalf("Ingress routes %d streams, want %d", len(routes), len(names))
		}
		for _, name := range names {
			idx, ok := strings.CutPrefix(routes[name], "cams-danstream-shard-")
			if !ok {
				t.Fatalf("%s routed to %s", name, routes[name])
			}
			fmt.Fprintf(&owners, "%s %d %s\n", name, n, idx)
		}
		for i := 0; i < n; i++ {
			d := r.deployments[fmt.Sprintf("cams-danstream-shard-%d", i)]
			if d == nil {
				t.Fatalf("no Deployment for shard %d", i)
			}
			c := d.Spec.Template.Spec.Containers[0]
			var idx string
			for _, e := range c.Env {
				if e.Name == "DANSTREAM_SHARD_INDEX" {
					idx = e.Value
				}
			}
			if idx != fmt.Sprint(i) {
				t.Errorf("shard %d pod has DANSTREAM_SHARD_INDEX=%q", i, idx)
			}
			if len(c.VolumeMounts) != 1 || d.Spec.Template.Spec.Volumes[0].ConfigMap == nil ||
				d.Spec.Template.Spec.Volumes[0].ConfigMap.Name != "cams-danstream" {
				t.Errorf("shard %d does not mount the shared ConfigMap: %+v", i, d.Spec.Template.Spec.Volumes)
			}
		}
		cm := r.configMaps["cams-danstream"]
		if cm == nil {
			t.Fatal("no ConfigMap cams-danstream")
		}
		var cfg struct {
			Shard string `json:"shard"`
			HTTP  struct {
				Listen string `json:"listen"`
			} `json:"http"`
			Streams map[string]any `json:"streams"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Shard != fmt.Sprintf("${DANSTREAM_SHARD_INDEX}/%d", n) || cfg.HTTP.Listen != "0.0.0.0:8080" || len(cfg.Streams) != len(names) {
			t.Errorf("config: shard %q, http.listen %q, %d streams", cfg.Shard, cfg.HTTP.Listen, len(cfg.Streams))
		}
		if n == 3 {
			golden(t, "config.yaml", cm.Data["config.yaml"])
			for _, name := range names[:3] {
				if !strings.Contains(r.notes, name+" -> "+routes[name]) {
					t.Errorf("NOTES lack %s -> %s:\n%s", name, routes[name], r.notes)
				}
			}
		}
	}
	golden(t, "owners.txt", owners.String())
}

// TestChartAddingAShardMovesOnlyItsShare: rendering 4 shards instead of 3
// reroutes only the streams the new shard 3 wins.
func TestChartAddingAShardMovesOnlyItsShare(t *testing.T) {
	names, values := cameras(40)
	three := ingressOwners(t, mustRender(t, values+"shards: 3\n"))
	four := ingressOwners(t, mustRender(t, values+"shards: 4\n"))
	moved := 0
	for _, n := range names {
		if three[n] != four[n] {
			moved++
			if four[n] != "cams-danstream-shard-3" {
				t.Errorf("%s moved from %s to %s, not to the new shard", n, three[n], four[n])
			}
		}
	}
	if moved == 0 || moved > len(names)/2 {
		t.Errorf("%d of %d streams moved to the fourth shard", moved, len(names))
	}
}

func gpuOf(c corev1.Container) (req, lim resource.Quantity, ok bool) {
	req, ok1 := c.Resources.Requests["nvidia.com/gpu"]
	lim, ok2 := c.Resources.Limits["nvidia.com/gpu"]
	return req, lim, ok1 || ok2
}

// TestChartPodSpec checks each shard pod: GPU requests only when the GPU is
// chosen (and the streams' provider then), Prometheus annotations, Secret
// references for ${VAR}, probes through `danstream healthcheck`, the config
// mounted as a folder (the kubelet refreshes it; a subPath never is), and
// one media Service per shard with the WebRTC UDP port.
func TestChartPodSpec(t *testing.T) {
	_, values := cameras(4)
	values += `shards: 2
envFromSecrets: [camera-passwords]
secretEnv:
  - {name: DANSTREAM_VIEW_TOKEN, secret: danstream-tokens, key: view}
  - {name: DANSTREAM_OPS_TOKEN, secret: danstream-tokens, key: ops}
  - {name: CAM_USER, secret: camera-users, key: user}
webrtc: {publicHosts: [203.0.113.10, 203.0.113.11]}
`
	for _, gpu := range []bool{false, true} {
		r := mustRender(t, values+fmt.Sprintf("gpu: {enabled: %v, count: 2}\n", gpu))
		if len(r.deployments) != 2 {
			t.Fatalf("%d Deployments, want 2", len(r.deployments))
		}
		for i := 0; i < 2; i++ {
			d := r.deployments[fmt.Sprintf("cams-danstream-shard-%d", i)]
			pod := d.Spec.Template
			c := pod.Spec.Containers[0]
			req, lim, has := gpuOf(c)
			if has != gpu || (gpu && (req.Value() != 2 || lim.Value() != 2)) {
				t.Errorf("gpu %v: shard %d nvidia.com/gpu requests %v limits %v", gpu, i, req.String(), lim.String())
			}
			if c.Resources.Requests.Cpu().String() != "1" {
				t.Errorf("gpu %v: the chart's CPU request was lost: %v", gpu, c.Resources.Requests)
			}
			a := pod.Annotations
			if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "8080" || a["prometheus.io/path"] != "/metrics" {
				t.Errorf("shard %d scrape annotations: %v", i, a)
			}
			refs := map[string]string{}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					refs[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
				}
			}
			for k, want := range map[string]string{"DANSTREAM_VIEW_TOKEN": "danstream-tokens/view", "DANSTREAM_OPS_TOKEN": "danstream-tokens/ops",
				"CAM_USER": "camera-users/user", "DANSTREAM_HEALTH_TOKEN": "danstream-tokens/ops"} {
				if refs[k] != want {
					t.Errorf("shard %d env %s from %q, want Secret %s", i, k, refs[k], want)
				}
			}
			if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "camera-passwords" {
				t.Errorf("shard %d envFrom %+v, want Secret camera-passwords", i, c.EnvFrom)
			}
			if want := []string{"203.0.113.10", "203.0.113.11"}[i]; env["DANSTREAM_PUBLIC_HOST"] != want {
				t.Errorf("shard %d public host %q, want %s", i, env["DANSTREAM_PUBLIC_HOST"], want)
			}
			for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if p == nil || p.Exec == nil || strings.Join(p.Exec.Command[:2], " ") != "/app/danstream healthcheck" ||
					!strings.Contains(strings.Join(p.Exec.Command, " "), "http://127.0.0.1:8080/healthz") {
					t.Errorf("shard %d %s probe: %+v", i, name, p)
				}
			}
			if strings.Join(c.Args, " ") != "serve --config /etc/danstream/config.yaml" {
				t.Errorf("shard %d args %q", i, c.Args)
			}
			if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/danstream" || c.VolumeMounts[0].SubPath != "" {
				t.Errorf("shard %d config mount %+v", i, c.VolumeMounts)
			}
			media := r.services[fmt.Sprintf("cams-danstream-shard-%d-media", i)]
			if media == nil || media.Spec.Type != corev1.ServiceTypeLoadBalancer || media.Spec.Selector["danstream.io/shard"] != fmt.Sprint(i) {
				t.Fatalf("shard %d media Service: %+v", i, media)
			}
			var udp bool
			for _, p := range media.Spec.Ports {
				udp = udp || (p.Protocol == corev1.ProtocolUDP && p.Port == 8189)
			}
			if !udp {
				t.Errorf("shard %d media Service has no UDP 8189: %+v", i, media.Spec.Ports)
			}
		}
		var cfg struct {
			Streams map[string]struct {
				Provider string `json:"provider"`
			} `json:"streams"`
			WebRTC struct {
				UDPListen string   `json:"udp_listen"`
				Hosts     []string `json:"hosts"`
			} `json:"webrtc"`
		}
		if err := yaml.Unmarshal([]byte(r.configMaps["cams-danstream"].Data["config.yaml"]), &cfg); err != nil {
			t.Fatal(err)
		}
		for n, s := range cfg.Streams {
			if want := map[bool]string{false: "", true: "auto"}[gpu]; s.Provider != want {
				t.Errorf("gpu %v: stream %s provider %q, want %q", gpu, n, s.Provider, want)
			}
		}
		if cfg.WebRTC.UDPListen != "0.0.0.0:8189" || strings.Join(cfg.WebRTC.Hosts, ",") != "${DANSTREAM_PUBLIC_HOST}" {
			t.Errorf("webrtc config %+v", cfg.WebRTC)
		}
	}
}

// TestChartRefusesWhatDanstreamWouldRefuse: no credentials (pods listen on
// all interfaces) and impossible shard counts fail at render time, by name.
func TestChartRefusesWhatDanstreamWouldRefuse(t *testing.T) {
	_, cams := cameras(2)
	for values, want := range map[string]string{
		"auth: null\n":                           "auth: set auth.tokens or auth.users",
		"shards: 0\n":                            "shards: want 1..1024",
		"streams: null\n":                        "streams: list at least one camera",
		"webrtc: {publicHosts: [203.0.113.1]}\n": "webrtc.publicHosts: one address per shard, got 1 for 2 shards",
	} {
		if !strings.HasPrefix(values, "streams") {
			values += cams
		}
		_, err := render(t, values)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("values %q: err %v, want %q", values, err, want)
		}
	}
}

// TestChartDefaultValuesRender: the shipped defaults plus a camera render.
func TestChartDefaultValuesRender(t *testing.T) {
	_, cams := cameras(1)
	r := mustRender(t, cams)
	if len(r.deployments) != 2 || len(r.services) != 4 || len(r.configMaps) != 1 || len(r.ingresses) != 1 {
		t.Fatalf("default values: %d Deployments, %d Services, %d ConfigMaps, %d Ingresses",
			len(r.deployments), len(r.services), len(r.configMaps), len(r.ingresses))
	}
}
