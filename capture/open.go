package capture

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/danstream/danstream/frame"
)

// Open starts capturing from url:
//
//	rtsp://[user:pass@]host[:port]/path  network camera (GoCV, FFmpeg backend)
//	/path/video.mp4, file:///path/x.avi  local file (GoCV), paced at its fps unless AsFastAsPossible
//	webcam:N                              local camera N (GoCV)
//	synthetic: or synthetic:WxH@FPS       built-in surveillance-like scene (pure Go), default 320x180@25
//
// Open returns once the source is open (or failed within opts.OpenTimeout);
// capture then runs on its own goroutine until Close. ctx bounds only the open.
// Errors name the URL with any password redacted.
func Open(ctx context.Context, url string, opts Options) (Source, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("%w (source %s)", err, Redact(url))
	}
	switch {
	case url == "":
		return nil, fmt.Errorf("capture: empty source URL (want rtsp://..., a file path, webcam:N or synthetic:)")
	case strings.HasPrefix(url, "synthetic:"):
		cfg, err := parseSynthetic(url, opts)
		if err != nil {
			return nil, err
		}
		return openSynthetic(cfg, opts), nil
	case strings.HasPrefix(url, "webcam:"):
		n, err := strconv.Atoi(strings.TrimPrefix(url, "webcam:"))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("capture: invalid webcam source %q (want webcam:N with N >= 0)", url)
		}
		return openCV(ctx, cvTarget{kind: "webcam", shown: url, device: n}, opts)
	case hasScheme(url, "rtsp"), hasScheme(url, "rtsps"):
		if _, err := parseURL(url); err != nil {
			return nil, err
		}
		return openCV(ctx, cvTarget{kind: "rtsp", shown: Redact(url), path: url, live: true}, opts)
	case hasScheme(url, "file"):
		u, err := parseURL(url)
		if err != nil {
			return nil, err
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("capture: file URL %q names host %q; only local files are supported", url, u.Host)
		}
		return openFile(ctx, u.Path, url, opts)
	case strings.Contains(url, "://"):
		return nil, fmt.Errorf("capture: unsupported source %s (want rtsp://..., a file path, webcam:N or synthetic:)", Redact(url))
	default:
		return openFile(ctx, url, url, opts)
	}
}

// IsCamera reports a live camera source (rtsp://, rtsps://, webcam:N): what a
// real sensor and codec deliver, as opposed to a file or the synthetic scene.
func IsCamera(url string) bool {
	return strings.HasPrefix(url, "webcam:") || hasScheme(url, "rtsp") || hasScheme(url, "rtsps")
}

func hasScheme(s, scheme string) bool {
	return len(s) > len(scheme)+3 && strings.EqualFold(s[:len(scheme)+3], scheme+"://")
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the raw URL, password included: report only the redacted form.
		return nil, fmt.Errorf("capture: malformed source URL %s", Redact(raw))
	}
	return u, nil
}

// Redact hides the password of a URL for logs and errors
// (rtsp://admin:secret@cam/x -> rtsp://admin:xxxxx@cam/x). Non-URLs pass unchanged.
func Redact(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	u, err := url.Parse(raw)
	if err == nil {
		return u.Redacted()
	}
	// Unparsable: blank everything between scheme and the last '@' of the authority.
	rest := raw[i+3:]
	auth := rest
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		auth = rest[:j]
	}
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		return raw[:i+3] + "xxxxx" + rest[at:]
	}
	return raw
}

// loop is the part every source shares: a producer goroutine feeding a mailbox.
type loop struct {
	info   Info
	box    *mailbox
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (l *loop) Next(ctx context.Context) (frame.Frame, error) { return l.box.next(ctx) }
func (l *loop) Info() Info                                    { return l.info }
func (l *loop) Stats() Stats                                  { return l.box.snapshot() }

// Close stops the capture goroutine and waits for it, so every C resource it
// held (capture handle, Mats) is freed when Close returns. A read blocked in a
// stalled network stream ends within the read timeout (Options.OpenTimeout).
func (l *loop) Close() error {
	l.once.Do(func() {
		l.cancel()
		<-l.done
		l.box.shut(ErrClosed)
	})
	return nil
}

// start runs produce on its own goroutine; produce returns the terminal error
// (nil when stopped by Close).
func (l *loop) start(produce func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	l.box, l.cancel, l.done = newMailbox(), cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		if err := produce(ctx); err != nil {
			l.box.finish(err)
		}
	}()
}
