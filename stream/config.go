package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole service configuration (configs/*.yaml).
type Config struct {
	HTTP        HTTPConfig              `yaml:"http"`
	RTSP        RTSPConfig              `yaml:"rtsp"`
	ONNXRuntime ORTConfig               `yaml:"onnxruntime"`
	Streams     map[string]StreamConfig `yaml:"streams"`
}

// HTTPConfig is where the page, the API and WHEP listen.
type HTTPConfig struct {
	Listen string `yaml:"listen"`
}

// RTSPConfig is the RTSP relay: rtsp://HOST:PORT/{name} and /{name}/original, H.264.
type RTSPConfig struct {
	Listen   string `yaml:"listen"`   // default 127.0.0.1:8554
	Disabled bool   `yaml:"disabled"` // turn the relay off
}

// ORTConfig locates the ONNX Runtime shared library; empty means search the usual places.
type ORTConfig struct {
	Library string `yaml:"library"`
}

// StreamConfig is one camera and how it is enhanced.
type StreamConfig struct {
	Source   string        `yaml:"source"`   // rtsp://..., file path, webcam:N, synthetic:WxH@FPS
	Width    int           `yaml:"width"`    // optional resize of captured frames before SR
	Height   int           `yaml:"height"`   //
	FPS      float64       `yaml:"fps"`      // optional cap on the processed frame rate
	Loop     bool          `yaml:"loop"`     // files: start again at the end
	Model    string        `yaml:"model"`    // ONNX file; empty = the bundled DAN model for Scale
	Scale    int           `yaml:"scale"`    // 2 or 4; must match the model's metadata when both are set
	Provider string        `yaml:"provider"` // cpu | cuda | tensorrt | auto
	Threads  int           `yaml:"threads"`  // ONNX Runtime intra-op threads, 0 = runtime default
	Cache    *bool         `yaml:"cache"`    // temporal tile cache, default on
	Bitrate  int           `yaml:"bitrate_kbps"`
	Keyframe time.Duration `yaml:"keyframe_interval"`
	// OnDemand starts capture and SR when the first viewer (WebRTC, RTSP or a
	// snapshot) arrives and stops them IdleTimeout after the last one leaves.
	// Off by default: a stream runs always, as MediaMTX's sources do.
	OnDemand    bool          `yaml:"on_demand"`
	IdleTimeout time.Duration `yaml:"idle_timeout"`
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

// ParseConfig expands ${VAR} and ${VAR:-default} from the environment, decodes
// strictly (unknown keys are errors) and validates. Errors name the key and line.
func ParseConfig(data []byte) (Config, error) {
	var missing []string
	expanded := envRE.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := envRE.FindSubmatch(m)
		if v, ok := os.LookupEnv(string(sub[1])); ok {
			return []byte(v)
		}
		if bytes.Contains(m, []byte(":-")) {
			return sub[2]
		}
		missing = append(missing, string(sub[1]))
		return nil
	})
	if len(missing) > 0 {
		return Config{}, fmt.Errorf("environment variable(s) not set: %s", strings.Join(missing, ", "))
	}

	var root yaml.Node
	if err := yaml.Unmarshal(expanded, &root); err != nil {
		return Config{}, err
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // io.EOF: empty file, all defaults
		return Config{}, err
	}
	cfg.applyDefaults()
	if err := cfg.validate(lineFinder(&root)); err != nil {
		return Config{}, err
	}
	return cfg, nil
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
		if s.Scale == 0 && s.Model == "" {
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
	if _, _, err := net.SplitHostPort(c.RTSP.Listen); err != nil {
		bad([]string{"rtsp", "listen"}, "want host:port, got %q", c.RTSP.Listen)
	}
	if len(c.Streams) == 0 {
		bad([]string{"streams"}, "no streams configured")
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
		if s.Scale != 0 && s.Scale != 2 && s.Scale != 4 {
			bad(p("scale"), "must be 2 or 4, got %d", s.Scale)
		}
		switch s.Provider {
		case "cpu", "cuda", "tensorrt", "auto":
		default:
			bad(p("provider"), "must be cpu, cuda, tensorrt or auto, got %q", s.Provider)
		}
		if s.Threads < 0 || s.Threads > 256 {
			bad(p("threads"), "must be 0..256, got %d", s.Threads)
		}
		if (s.Width == 0) != (s.Height == 0) || s.Width < 0 || s.Height < 0 || s.Width > 7680 || s.Height > 4320 {
			bad(p("width"), "width and height are set together, each 1..7680x4320")
		}
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
	}
	return errors.Join(errs...)
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
