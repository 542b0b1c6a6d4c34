package stream

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/danstream/danstream/internal/shard"
	"github.com/danstream/danstream/sr"
	"github.com/danstream/danstream/transport"
	"github.com/danstream/danstream/transport/rtsp"
)

// Config is the whole service configuration (configs/*.yaml).
type Config struct {
	HTTP        HTTPConfig              `yaml:"http"`
	RTSP        RTSPConfig              `yaml:"rtsp"`
	WebRTC      WebRTCConfig            `yaml:"webrtc"`
	ONNXRuntime ORTConfig               `yaml:"onnxruntime"`
	Auth        AuthConfig              `yaml:"auth"`
	TLS         TLSConfig               `yaml:"tls"`
	Streams     map[string]StreamConfig `yaml:"streams"`
	// Shard "i/N" serves only this shard's streams of a config shared by N
	// processes (ForShard; serve --shard overrides it). Empty: every stream.
	Shard string `yaml:"shard"`
	// Threads is the process's ONNX Runtime thread budget: every stream of a
	// model file, provider and device shares one engine (one session,
	// batched across streams), whose session gets this many intra-op threads
	// and runs one batch at a time with the other CPU engines. 0: one per core.
	Threads int `yaml:"threads"`
}

// AuthConfig lists who may do what. Empty: no authentication, which serve
// only allows when both listen addresses are loopback.
type AuthConfig struct {
	Tokens []TokenConfig `yaml:"tokens"`
	Users  []UserConfig  `yaml:"users"`
}

// TokenConfig is a bearer token (Authorization: Bearer, ?token=, or the
// password of Basic/RTSP with any user name).
type TokenConfig struct {
	Token string   `yaml:"token"`
	Read  []string `yaml:"read"`  // stream names, or "*" for all
	Admin bool     `yaml:"admin"` // runtime API and /metrics; implies reading every stream
}

// UserConfig is a Basic-auth user (HTTP and RTSP).
type UserConfig struct {
	User  string   `yaml:"user"`
	Pass  string   `yaml:"pass"`
	Read  []string `yaml:"read"`
	Admin bool     `yaml:"admin"`
}

// Enabled reports whether any credential is configured.
func (a AuthConfig) Enabled() bool { return len(a.Tokens)+len(a.Users) > 0 }

// Rules turns the credentials into the transport's checker input.
func (a AuthConfig) Rules() []transport.AuthRule {
	var out []transport.AuthRule
	for _, t := range a.Tokens {
		out = append(out, transport.AuthRule{Token: t.Token, Read: t.Read, Admin: t.Admin})
	}
	for _, u := range a.Users {
		out = append(out, transport.AuthRule{User: u.User, Pass: u.Pass, Read: u.Read, Admin: u.Admin})
	}
	return out
}

// TLSConfig serves HTTP (pages, API, WHEP) over TLS from PEM files.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// CheckExposure refuses to serve on a non-loopback address without auth:
// anything on the network could otherwise watch every camera and change streams.
func (c Config) CheckExposure() error {
	if c.Auth.Enabled() {
		return nil
	}
	for _, l := range []struct{ key, addr string }{{"http.listen", c.HTTP.Listen}, {"rtsp.listen", c.RTSP.Listen}} {
		if l.key == "rtsp.listen" && c.RTSP.Disabled {
			continue
		}
		if !IsLoopback(l.addr) {
			return fmt.Errorf("%s is %s (not loopback) but auth is not configured: add auth.tokens or auth.users, or listen on 127.0.0.1", l.key, l.addr)
		}
	}
	return nil
}

// IsLoopback reports a listen address that only this machine can reach.
func IsLoopback(addr string) bool {
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

// HTTPConfig is where the page, the API and WHEP listen.
type HTTPConfig struct {
	Listen string `yaml:"listen"`
	// TrustedProxies: reverse proxies (IP or CIDR) whose X-Forwarded-For names
	// the viewer, for the WHEP rate limit and logs.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Timeouts of the HTTP server (0: transport's defaults, 10s/30s/30s/60s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// Concurrent WHEP viewers, process-wide and per stream (0: 500 each);
	// past them an offer gets 503 with Retry-After, from loopback too.
	MaxWHEPSessions          int `yaml:"max_whep_sessions"`
	MaxWHEPSessionsPerStream int `yaml:"max_whep_sessions_per_stream"`
}

// RTSPConfig is the RTSP relay: rtsp://HOST:PORT/{name} and /{name}/original, H.264.
// The transport keys follow MediaMTX's (rtspTransports, rtpAddress, ...).
type RTSPConfig struct {
	Listen   string `yaml:"listen"`   // default 127.0.0.1:8554
	Disabled bool   `yaml:"disabled"` // turn the relay off
	// Transports offered: udp, multicast, tcp (default [udp, tcp]).
	Transports []string `yaml:"transports"`
	// UDP unicast ports (even, and the next one); default listen's host :8000 and :8001.
	RTPAddress  string `yaml:"rtp_address"`
	RTCPAddress string `yaml:"rtcp_address"`
	// UDP multicast (with "multicast" in transports): 224.1.0.0/16, ports 8002/8003 by default.
	MulticastIPRange  string `yaml:"multicast_ip_range"`
	MulticastRTPPort  int    `yaml:"multicast_rtp_port"`
	MulticastRTCPPort int    `yaml:"multicast_rtcp_port"`
	// WriteQueueSize is each reader's packet queue (power of two, default 512).
	WriteQueueSize int `yaml:"write_queue_size"`
}

// Options is the relay's view of this config.
func (c RTSPConfig) Options() rtsp.Options {
	return rtsp.Options{Listen: c.Listen, Transports: c.Transports, RTPAddress: c.RTPAddress, RTCPAddress: c.RTCPAddress,
		MulticastIPRange: c.MulticastIPRange, MulticastRTPPort: c.MulticastRTPPort, MulticastRTCPPort: c.MulticastRTCPPort,
		WriteQueueSize: c.WriteQueueSize}
}

// WebRTCConfig is where viewers' WebRTC media flows: one UDP port for every
// viewer (ICE UDP mux), an ICE-TCP fallback port, extra host addresses (NAT
// 1:1, containers) and STUN/TURN servers handed to viewers.
type WebRTCConfig struct {
	// UDPListen is the UDP host:port of every viewer (default ":8189": every
	// local address, or only loopback ones while http.listen is loopback);
	// "" gives each viewer its own ephemeral UDP port, as before.
	UDPListen *string `yaml:"udp_listen"`
	// TCPListen is the ICE-TCP fallback for viewers whose UDP is blocked
	// (default ":8189", loopback only while http.listen is loopback); "" is off.
	TCPListen *string `yaml:"tcp_listen"`
	// Hosts are addresses or names offered to viewers beside the local
	// addresses (a public IP mapped 1:1 to this host, the Docker host's address).
	Hosts []string `yaml:"hosts"`
	// ICEServers are STUN/TURN servers for viewers (WHEP Link headers, the player).
	ICEServers []ICEServerConfig `yaml:"ice_servers"`
}

// ICEServerConfig is one STUN or TURN server (TURN needs username and credential).
type ICEServerConfig struct {
	URLs       []string `yaml:"urls"`
	Username   string   `yaml:"username"`
	Credential string   `yaml:"credential"`
}

// DefaultWebRTCPort is the WebRTC media port when none is configured (MediaMTX's).
const DefaultWebRTCPort = "8189"

// UDP and TCP return the effective listen addresses ("" is off).
func (w WebRTCConfig) UDP() string { return deref(w.UDPListen, ":"+DefaultWebRTCPort) }
func (w WebRTCConfig) TCP() string { return deref(w.TCPListen, ":"+DefaultWebRTCPort) }

func deref(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

// Servers converts ICEServers for the transport.
func (w WebRTCConfig) Servers() []transport.ICEServer {
	var out []transport.ICEServer
	for _, s := range w.ICEServers {
		out = append(out, transport.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}

var hostnameRE = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$`)

// ORTConfig locates the ONNX Runtime shared library; empty means search the usual places.
type ORTConfig struct {
	Library string `yaml:"library"`
}

// StreamConfig is one camera and how it is enhanced.
type StreamConfig struct {
	Source   string        `yaml:"source" json:"source,omitempty"`     // rtsp://..., file path, webcam:N, synthetic:WxH@FPS
	Width    int           `yaml:"width" json:"width,omitempty"`       // optional resize of captured frames before SR
	Height   int           `yaml:"height" json:"height,omitempty"`     //
	FPS      float64       `yaml:"fps" json:"fps,omitempty"`           // optional cap on the processed frame rate
	Loop     bool          `yaml:"loop" json:"loop,omitempty"`         // files: start again at the end
	Model    string        `yaml:"model" json:"model,omitempty"`       // ONNX file, or "real" / "clean" (bundled); empty: see ModelPath
	Scale    int           `yaml:"scale" json:"scale,omitempty"`       // 2, 3 or 4; must match the model's metadata when both are set
	Provider string        `yaml:"provider" json:"provider,omitempty"` // cpu | cuda | tensorrt | auto
	Threads  int           `yaml:"threads" json:"threads,omitempty"`   // deprecated and ignored: the top-level threads is the process's budget
	Cache    *bool         `yaml:"cache" json:"cache,omitempty"`       // temporal tile cache, default on
	Bitrate  int           `yaml:"bitrate_kbps" json:"bitrate_kbps,omitempty"`
	Keyframe time.Duration `yaml:"keyframe_interval" json:"keyframe_interval,omitempty"`
	// Deadline bounds the SR of one frame: tiles the shared engine has not
	// started by then go out from the tile cache (or bicubic on a
	// whole-frame pass) and are counted as late, so a busy engine costs
	// detail, not frames. 0: none.
	Deadline time.Duration `yaml:"deadline" json:"deadline,omitempty"`
	// OnDemand starts capture and SR when the first viewer (WebRTC, RTSP or a
	// snapshot) arrives and stops them IdleTimeout after the last one leaves.
	// Off by default: a stream runs always, as MediaMTX's sources do.
	OnDemand    bool          `yaml:"on_demand" json:"on_demand,omitempty"`
	IdleTimeout time.Duration `yaml:"idle_timeout" json:"idle_timeout,omitempty"`
	// Watchdog restarts the source when no frame arrived for this long
	// (default 20 s, as Frigate); viewers stay connected meanwhile.
	Watchdog time.Duration `yaml:"watchdog" json:"watchdog,omitempty"`
	// Main is the camera's main (full-resolution) stream of the same sensor
	// as Source, its sub stream. When set, the stream collects registered
	// sub/main frame pairs into PairsDir for `danstream adapt` (issue 7).
	Main       string        `yaml:"main" json:"main,omitempty"`
	PairsDir   string        `yaml:"pairs_dir" json:"pairs_dir,omitempty"`     // default pairs/<stream name>
	PairsMax   int           `yaml:"pairs_max" json:"pairs_max,omitempty"`     // pairs kept on disk, oldest rotated out (500)
	PairsEvery time.Duration `yaml:"pairs_every" json:"pairs_every,omitempty"` // least time between stored pairs (1s)
	// MaxOutput is the largest output frame, "WIDTHxHEIGHT" (default
	// DefaultMaxOutput, 3840x2160): larger frames are refused, not enhanced.
	MaxOutput string `yaml:"max_output" json:"max_output,omitempty"`
}

// CacheEnabled reports the effective tile-cache switch (default on).
func (s StreamConfig) CacheEnabled() bool { return s.Cache == nil || *s.Cache }

var (
	streamNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	envRE        = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)
)

// LoadConfig reads, expands and validates a config file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ValidateStream checks one stream's settings as the config file would (for the runtime API).
func ValidateStream(name string, s StreamConfig) (StreamConfig, error) {
	c := Config{Streams: map[string]StreamConfig{name: s}}
	c.applyDefaults()
	if err := c.validate(func(...string) int { return 0 }); err != nil {
		return StreamConfig{}, err
	}
	return c.Streams[name], nil
}

// ParseConfig decodes strictly (unknown keys are errors), substitutes ${VAR}
// and ${VAR:-default} from the environment and validates. Errors name the key
// and line.
//
// The environment is substituted inside the scalars of the parsed tree, not
// in the text: a value is data whatever it holds (#, quotes, ": ", newlines,
// backslash escapes), so it cannot add keys, cut a URL at '#' or turn a
// read-only token into an admin one.
func ParseConfig(data []byte) (Config, error) {
	text, refs := markEnvRefs(data)
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		return Config{}, err
	}
	var cfg Config
	if root.Kind != 0 { // 0: an empty file, all defaults
		if err := expandEnv(&root, refs); err != nil {
			return Config{}, err
		}
		if err := knownKeys(&root, reflect.TypeOf(cfg)); err != nil {
			return Config{}, err
		}
		if err := root.Decode(&cfg); err != nil {
			return Config{}, err
		}
	}
	cfg.applyDefaults()
	if err := cfg.validate(lineFinder(&root)); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// envRefs maps the placeholders markEnvRefs put in the text to the ${...}
// references they stand for.
type envRefs struct {
	re   *regexp.Regexp // matches a placeholder, group 1 its index
	refs []string
}

// markEnvRefs replaces each ${...} in the text by a placeholder of letters,
// digits and '_' that parses the same in every YAML context: "${X}" itself
// would end a flow mapping at its '}' ({token: ${X}}). The nonce keeps a
// placeholder from matching text the file already holds.
func markEnvRefs(data []byte) ([]byte, envRefs) {
	prefix := fmt.Sprintf("_dsenv%016x_", rand.Uint64())
	e := envRefs{re: regexp.MustCompile(prefix + `([0-9]+)_`)}
	text := envRE.ReplaceAllFunc(data, func(m []byte) []byte {
		e.refs = append(e.refs, string(m))
		return []byte(prefix + strconv.Itoa(len(e.refs)-1) + "_")
	})
	return text, e
}

// expandEnv substitutes the environment in every scalar (keys too, where a
// stream name may come from it). A plain (unquoted) scalar is typed again
// from its new text, so "scale: ${SCALE}" still gives an int; a quoted one
// stays a string.
func expandEnv(root *yaml.Node, e envRefs) error {
	var missing []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode, yaml.MappingNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.ScalarNode:
			changed := false
			n.Value = e.re.ReplaceAllStringFunc(n.Value, func(m string) string {
				i, _ := strconv.Atoi(e.re.FindStringSubmatch(m)[1])
				if i >= len(e.refs) {
					return m
				}
				changed = true
				sub := envRE.FindStringSubmatch(e.refs[i])
				if v, ok := os.LookupEnv(sub[1]); ok {
					return v
				}
				if strings.Contains(e.refs[i], ":-") {
					return sub[2]
				}
				missing = append(missing, sub[1])
				return ""
			})
			if changed && n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				n.Tag = "" // resolve int/bool/... from the substituted text
			}
		}
		// Aliases point at a node visited where its anchor is.
	}
	walk(root)
	if len(missing) > 0 {
		return fmt.Errorf("environment variable(s) not set: %s", strings.Join(missing, ", "))
	}
	return nil
}

// knownKeys reports mapping keys that no field of the target type takes, with
// their lines, as yaml.v3's Decoder.KnownFields does. Hand-written because
// yaml.v3 offers that check only when decoding text, and the environment is
// substituted in the parsed tree (Node.Decode has no strict mode).
func knownKeys(root *yaml.Node, t reflect.Type) error {
	var errs []string
	type visit struct {
		n *yaml.Node
		t reflect.Type
	}
	seen := map[visit]bool{} // aliases can share a node: check each (node, type) once
	var walk func(n *yaml.Node, t reflect.Type)
	walk = func(n *yaml.Node, t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if seen[visit{n, t}] {
			return
		}
		seen[visit{n, t}] = true
		switch {
		case n.Kind == yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, t)
			}
		case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
			for _, c := range n.Content {
				walk(c, t.Elem())
			}
		case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
			for i := 1; i < len(n.Content); i += 2 {
				walk(n.Content[i], t.Elem())
			}
		case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
			fields := map[string]reflect.Type{}
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if name == "-" || !f.IsExported() {
					continue
				}
				if name == "" {
					name = strings.ToLower(f.Name)
				}
				fields[name] = f.Type
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Value == "<<" { // merge key: its values land in this struct
					walk(n.Content[i+1], t)
					continue
				}
				ft, ok := fields[k.Value]
				if !ok {
					errs = append(errs, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t))
					continue
				}
				walk(n.Content[i+1], ft)
			}
		}
		// Other shapes are type errors that Decode reports with their line.
	}
	walk(root, t)
	if len(errs) > 0 {
		return errors.New("yaml: unmarshal errors:\n  " + strings.Join(errs, "\n  "))
	}
	return nil
}

func (c *Config) applyDefaults() {
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
	if c.RTSP.Listen == "" {
		c.RTSP.Listen = "127.0.0.1:8554"
	}
	for name, s := range c.Streams {
		if s.Provider == "" {
			s.Provider = "cpu"
		}
		if s.Scale == 0 && (s.Model == "" || s.Model == sr.ModelClean || s.Model == sr.ModelReal) {
			s.Scale = 4
		}
		if s.Bitrate == 0 {
			s.Bitrate = 2500
		}
		if s.Keyframe == 0 {
			s.Keyframe = 2 * time.Second
		}
		if s.IdleTimeout == 0 {
			s.IdleTimeout = 10 * time.Second
		}
		if s.Watchdog == 0 {
			s.Watchdog = 20 * time.Second
		}
		if s.Main != "" {
			if s.PairsDir == "" {
				s.PairsDir = filepath.Join("pairs", name)
			}
			if s.PairsMax == 0 {
				s.PairsMax = 500
			}
			if s.PairsEvery == 0 {
				s.PairsEvery = time.Second
			}
		}
		c.Streams[name] = s
	}
}

func (c *Config) validate(line func(path ...string) int) error {
	var errs []error
	bad := func(path []string, format string, args ...any) {
		key := strings.Join(path, ".")
		msg := fmt.Sprintf(format, args...)
		if l := line(path...); l > 0 {
			errs = append(errs, fmt.Errorf("line %d: %s: %s", l, key, msg))
		} else {
			errs = append(errs, fmt.Errorf("%s: %s", key, msg))
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad([]string{"http", "listen"}, "want host:port, got %q", c.HTTP.Listen)
	}
	if _, err := transport.ParseTrustedProxies(c.HTTP.TrustedProxies); err != nil {
		bad([]string{"http", "trusted_proxies"}, "%v", err)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"read_header_timeout", c.HTTP.ReadHeaderTimeout}, {"read_timeout", c.HTTP.ReadTimeout},
		{"write_timeout", c.HTTP.WriteTimeout}, {"idle_timeout", c.HTTP.IdleTimeout}} {
		if d.v != 0 && (d.v < 100*time.Millisecond || d.v > time.Hour) {
			bad([]string{"http", d.key}, "must be 100ms..1h (or unset for the default), got %s", d.v)
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"max_whep_sessions", c.HTTP.MaxWHEPSessions}, {"max_whep_sessions_per_stream", c.HTTP.MaxWHEPSessionsPerStream}} {
		if n.v < 0 || n.v > 100000 {
			bad([]string{"http", n.key}, "must be 1..100000 (or unset for the default 500), got %d", n.v)
		}
	}
	if _, _, err := net.SplitHostPort(c.RTSP.Listen); err != nil {
		bad([]string{"rtsp", "listen"}, "want host:port, got %q", c.RTSP.Listen)
	}
	if err := rtsp.CheckOptions(c.RTSP.Options()); err != nil {
		key, msg, _ := strings.Cut(err.Error(), ": ") // CheckOptions names the key first
		bad([]string{"rtsp", key}, "%s", msg)
	}
	for _, l := range []struct{ key, addr string }{{"udp_listen", c.WebRTC.UDP()}, {"tcp_listen", c.WebRTC.TCP()}} {
		if l.addr == "" {
			continue
		}
		if err := transport.CheckListen(l.addr); err != nil {
			bad([]string{"webrtc", l.key}, "want host:port (\":8189\", \"0.0.0.0:8189\") or \"\" (off), got %q: %v", l.addr, err)
		}
	}
	for _, h := range c.WebRTC.Hosts {
		if ip := net.ParseIP(h); (ip == nil && !hostnameRE.MatchString(h)) || (ip != nil && (ip.IsUnspecified() || ip.IsMulticast())) {
			bad([]string{"webrtc", "hosts"}, "%q is neither a unicast IP address nor a host name", h)
		}
	}
	if err := transport.CheckICEServers(c.WebRTC.Servers()); err != nil {
		bad([]string{"webrtc", "ice_servers"}, "%v", err)
	}
	if len(c.Streams) == 0 {
		bad([]string{"streams"}, "no streams configured")
	}
	if c.Threads < 0 || c.Threads > 256 {
		bad([]string{"threads"}, "must be 0..256, got %d", c.Threads)
	}
	if _, err := shard.Parse(c.Shard); err != nil {
		bad([]string{"shard"}, "%v", err)
	}
	names := make([]string, 0, len(c.Streams))
	for n := range c.Streams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := c.Streams[n]
		p := func(k string) []string { return []string{"streams", n, k} }
		if !streamNameRE.MatchString(n) {
			bad([]string{"streams", n}, "stream names use letters, digits, '-' and '_' (at most 64)")
		}
		if strings.TrimSpace(s.Source) == "" {
			bad(p("source"), "required (rtsp://..., a file, webcam:N or synthetic:WxH@FPS)")
		}
		if s.Scale != 0 && (s.Scale < 2 || s.Scale > 4) {
			bad(p("scale"), "must be 2, 3 or 4, got %d", s.Scale)
		}
		switch s.Provider {
		case "cpu", "cuda", "tensorrt", "auto":
		default:
			bad(p("provider"), "must be cpu, cuda, tensorrt or auto, got %q", s.Provider)
		}
		if s.Threads < 0 || s.Threads > 256 {
			bad(p("threads"), "must be 0..256, got %d", s.Threads)
		}
		if s.Deadline < 0 || s.Deadline > time.Minute {
			bad(p("deadline"), "must be 0..1m, got %s", s.Deadline)
		}
		if (s.Width == 0) != (s.Height == 0) || s.Width < 0 || s.Height < 0 || s.Width > 7680 || s.Height > 4320 {
			bad(p("width"), "width and height are set together, each 1..7680x4320")
		}
		validateOutput(n, s, func(key, format string, args ...any) { bad(p(key), format, args...) })
		if s.FPS < 0 || s.FPS > 240 {
			bad(p("fps"), "must be 0..240, got %g", s.FPS)
		}
		if s.Bitrate < 100 || s.Bitrate > 100000 {
			bad(p("bitrate_kbps"), "must be 100..100000, got %d", s.Bitrate)
		}
		if s.Keyframe < 100*time.Millisecond || s.Keyframe > time.Minute {
			bad(p("keyframe_interval"), "must be 100ms..1m, got %s", s.Keyframe)
		}
		if s.IdleTimeout < time.Second || s.IdleTimeout > time.Hour {
			bad(p("idle_timeout"), "must be 1s..1h, got %s", s.IdleTimeout)
		}
		if s.Watchdog < time.Second || s.Watchdog > time.Hour {
			bad(p("watchdog"), "must be 1s..1h, got %s", s.Watchdog)
		}
		if s.Main == "" {
			if s.PairsDir != "" || s.PairsMax != 0 || s.PairsEvery != 0 {
				bad(p("main"), "pairs_dir, pairs_max and pairs_every need main: the camera's main stream to pair with source")
			}
			continue
		}
		if strings.TrimSpace(s.Main) != s.Main || s.Main == s.Source {
			bad(p("main"), "must be the camera's main stream, a URL other than source (its sub stream)")
		}
		if s.PairsMax < 2 || s.PairsMax > 1000000 {
			bad(p("pairs_max"), "must be 2..1000000, got %d", s.PairsMax)
		}
		if s.PairsEvery < 0 || s.PairsEvery > time.Hour {
			bad(p("pairs_every"), "must be 0..1h, got %s", s.PairsEvery)
		}
	}
	c.validateAuth(bad)
	return errors.Join(errs...)
}

// validateAuth checks credentials without ever quoting a secret in an error.
func (c *Config) validateAuth(bad func(path []string, format string, args ...any)) {
	checkRead := func(path []string, read []string) {
		for _, n := range read {
			if n != "*" && !streamNameRE.MatchString(n) {
				bad(path, "%q is not a stream name or \"*\"", n)
			}
		}
	}
	seen := map[string]bool{}
	for i, t := range c.Auth.Tokens {
		p := []string{"auth", "tokens", strconv.Itoa(i)}
		switch {
		case len(t.Token) < 16:
			bad(append(p, "token"), "must be at least 16 characters (e.g. openssl rand -hex 16)")
		case strings.ContainsAny(t.Token, " \t\r\n"):
			bad(append(p, "token"), "must not contain spaces")
		case seen["t"+t.Token]:
			bad(append(p, "token"), "duplicate token")
		}
		seen["t"+t.Token] = true
		checkRead(append(p, "read"), t.Read)
	}
	for i, u := range c.Auth.Users {
		p := []string{"auth", "users", strconv.Itoa(i)}
		switch {
		case u.User == "" || strings.ContainsAny(u.User, ":\r\n"):
			bad(append(p, "user"), "required, without ':'")
		case seen["u"+u.User]:
			bad(append(p, "user"), "duplicate user %q", u.User)
		}
		seen["u"+u.User] = true
		if len(u.Pass) < 8 {
			bad(append(p, "pass"), "must be at least 8 characters")
		}
		checkRead(append(p, "read"), u.Read)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad([]string{"tls"}, "set both cert and key, or neither")
	}
}

// lineFinder returns a lookup of the source line of a key path in the YAML tree, 0 if absent.
func lineFinder(root *yaml.Node) func(path ...string) int {
	return func(path ...string) int {
		n := root
		if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			n = n.Content[0]
		}
		line := 0
		for _, key := range path {
			if n != nil && n.Kind == yaml.SequenceNode {
				i, err := strconv.Atoi(key)
				if err != nil || i < 0 || i >= len(n.Content) {
					return line
				}
				n = n.Content[i]
				line = n.Line
				continue
			}
			if n == nil || n.Kind != yaml.MappingNode {
				return line
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				return line
			}
			n = next
		}
		return line
	}
}
