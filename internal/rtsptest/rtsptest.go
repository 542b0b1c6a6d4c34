// Package rtsptest runs a real RTSP relay server and a real ffmpeg publisher
// for tests: a publisher ANNOUNCEs and RECORDs a path, readers DESCRIBE,
// SETUP and PLAY it, and the server relays the RTP packets unchanged.
package rtsptest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// Server is an in-process RTSP relay on 127.0.0.1 (TCP transport only).
type Server struct {
	Addr string // host:port

	srv   *gortsplib.Server
	mu    sync.Mutex
	paths map[string]*path
}

type path struct {
	stream    *gortsplib.ServerStream
	publisher *gortsplib.ServerSession
	ready     chan struct{} // closed once the publisher is recording
}

// Start runs a server on a free 127.0.0.1 port; it stops when tb ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	var lastErr error
	// The free port is found by binding :0 and releasing it, so another
	// process may grab it in between: retry a few times.
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("rtsptest: find a free port: %v", err)
		}
		addr := l.Addr().String()
		l.Close()
		s := &Server{Addr: addr, paths: map[string]*path{}}
		s.srv = &gortsplib.Server{Handler: s, RTSPAddress: addr}
		if lastErr = s.srv.Start(); lastErr == nil {
			tb.Cleanup(s.Close)
			return s
		}
	}
	tb.Fatalf("rtsptest: start server: %v", lastErr)
	return nil
}

// URL returns the rtsp:// URL of a path on this server, e.g. URL("cam").
func (s *Server) URL(p string) string {
	return "rtsp://" + s.Addr + "/" + strings.TrimPrefix(p, "/")
}

// Close stops the server and disconnects everyone.
func (s *Server) Close() { s.srv.Close() }

// WaitPublishing blocks until a publisher is recording on path p.
func (s *Server) WaitPublishing(ctx context.Context, p string) error {
	s.mu.Lock()
	ps := s.pathLocked(p)
	ready := ps.ready
	s.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rtsptest: no publisher on %s: %w", s.URL(p), ctx.Err())
	}
}

func key(p string) string { return strings.Trim(p, "/") }

func (s *Server) pathLocked(p string) *path {
	k := key(p)
	ps := s.paths[k]
	if ps == nil {
		ps = &path{ready: make(chan struct{})}
		s.paths[k] = ps
	}
	return ps
}

// OnSessionClose ends a stream when its publisher leaves, which disconnects its readers.
func (s *Server) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ps := range s.paths {
		if ps.publisher == ctx.Session {
			if ps.stream != nil {
				ps.stream.Close()
			}
			delete(s.paths, k)
		}
	}
}

// OnDescribe serves the published description to readers.
func (s *Server) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return s.streamResponse(ctx.Path)
}

// OnAnnounce accepts a publisher, replacing any earlier one on the same path.
func (s *Server) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.pathLocked(ctx.Path)
	if ps.stream != nil {
		ps.stream.Close()
		ps.publisher.Close()
	}
	ps.stream = gortsplib.NewServerStream(s.srv, ctx.Description)
	ps.publisher = ctx.Session
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSetup serves SETUP for readers (publishers' SETUP ignores the stream).
func (s *Server) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() != gortsplib.ServerSessionStateInitial && ctx.Session.State() != gortsplib.ServerSessionStatePrePlay {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	return s.streamResponse(ctx.Path)
}

// OnPlay lets readers start.
func (s *Server) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRecord relays every packet of the publisher to the path's readers.
func (s *Server) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.pathLocked(ctx.Path)
	if ps.publisher != ctx.Session {
		return &base.Response{StatusCode: base.StatusBadRequest}, fmt.Errorf("rtsptest: RECORD without ANNOUNCE on %s", ctx.Path)
	}
	stream := ps.stream
	ctx.Session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		stream.WritePacketRTP(medi, pkt) //nolint:errcheck // a slow reader is not the publisher's problem
	})
	select {
	case <-ps.ready:
	default:
		close(ps.ready)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *Server) streamResponse(p string) (*base.Response, *gortsplib.ServerStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.paths[key(p)]
	if ps == nil || ps.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, ps.stream, nil
}

// PublishTestPattern runs `ffmpeg -re -f lavfi -i testsrc2` publishing H.264
// (keyframe every second) to url over TCP until tb ends. It skips the test when
// ffmpeg is not installed (fails under CI=true). stop ends the publisher early (a camera going away);
// it is safe to call more than once.
func PublishTestPattern(tb testing.TB, url string, w, h, fps int) (stop func()) {
	tb.Helper()
	bin := Need(tb, "ffmpeg", "apt-get install ffmpeg")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", w, h, fps),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", fmt.Sprint(fps),
		"-pix_fmt", "yuv420p", "-f", "rtsp", "-rtsp_transport", "tcp", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 3 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("rtsptest: start ffmpeg: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			_ = cmd.Wait() // killed on purpose: the exit status says nothing
		})
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() && stderr.Len() > 0 {
			tb.Logf("ffmpeg stderr:\n%s", stderr.String())
		}
	})
	return stop
}
