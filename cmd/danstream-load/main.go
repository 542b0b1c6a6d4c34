// Command danstream-load is danstream's own WHEP load generator: N concurrent
// pion viewers of one stream on loopback, ramped up, each counting the frames
// and bytes it receives, its join-to-first-frame time and whether a keyframe
// came within 1 s; optionally some viewers stop reading RTP (--slow). At the
// end it DELETEs every session and prints a summary with the server's CPU and
// memory (from /proc of --server-pid) against an idle and a one-viewer baseline.
//
//	danstream-load --viewers 100 --duration 60s --server-pid $(pidof danstream)
//	danstream-load --in-process configs/default.yaml --viewers 5 --duration 20s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/danstream/danstream/stream"
)

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "danstream-load: %v\n", err)
		if errors.Is(err, flag.ErrHelp) || strings.HasPrefix(err.Error(), "usage") {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("danstream-load", flag.ContinueOnError)
	var o Options
	fs.StringVar(&o.BaseURL, "url", "http://127.0.0.1:8080", "danstream server")
	fs.StringVar(&o.Stream, "stream", "demo", "stream name")
	fs.StringVar(&o.Variant, "variant", "", `"" (enhanced) or "original"`)
	fs.StringVar(&o.Codec, "codec", "VP8", "VP8 or H264 (the only codec the viewers offer)")
	fs.IntVar(&o.Viewers, "viewers", 10, fmt.Sprintf("concurrent viewers (max %d)", MaxViewers))
	fs.IntVar(&o.Slow, "slow", 0, "of which this many stop reading RTP after their first frames")
	fs.DurationVar(&o.SlowAfter, "slow-after", 2*time.Second, "a slow viewer stops reading this long after its first frame")
	fs.Float64Var(&o.RampRate, "ramp", 20, "viewers started per second")
	fs.DurationVar(&o.Duration, "duration", 60*time.Second, "measuring window once all viewers joined")
	fs.DurationVar(&o.Settle, "settle", 3*time.Second, "wait after the last join before measuring")
	fs.DurationVar(&o.Baseline, "baseline", 10*time.Second, "idle and one-viewer CPU phases (needs --server-pid; 0 skips)")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "server process id for CPU and RSS from /proc (0: not measured)")
	fs.Float64Var(&o.NominalFPS, "project-fps", 15, "frame rate to project the per-frame fan-out cost to (0: the one-viewer phase's)")
	fs.Float64Var(&o.NominalKbps, "project-kbps", 2500, "bitrate to project the per-kB fan-out cost to (the stream's bitrate_kbps)")
	fs.IntVar(&o.RcvBuf, "rcvbuf", 1<<20, "per-viewer UDP receive buffer in bytes (0: pion's shared default sockets)")
	inProc := fs.String("in-process", "", "config file: run the server in this process and place frames on its clock (CPU is then not the server's alone)")
	inListen := fs.String("listen", "", "with --in-process: the server's address (default a free loopback port), e.g. for a browser to watch too")
	jsonOut := fs.String("json", "", "also write the result as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("usage: unexpected arguments %q", fs.Args())
	}
	if *inProc != "" {
		cfg, err := stream.LoadConfig(*inProc)
		if err != nil {
			return err
		}
		srv, err := startInProcess(ctx, cfg, *inListen, slog.Default())
		if err != nil {
			return err
		}
		defer func() {
			if err := srv.Close(); err != nil {
				slog.Warn("in-process server", "err", err)
			}
		}()
		o.BaseURL = srv.URL
		if o.Probe, err = srv.Probe(o.Stream, o.Variant); err != nil {
			return err
		}
		if o.ServerPID == 0 {
			o.Baseline = 0
		}
		// Let the pipeline produce its first frames (model warm-up) before joining.
		if err := waitRunning(ctx, o.BaseURL, o.Stream, 60*time.Second); err != nil {
			return err
		}
	}
	res, err := Run(ctx, o)
	if res != nil {
		res.Machine = machine()
		res.Print(os.Stdout)
		if *jsonOut != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); werr != nil {
				err = errors.Join(err, fmt.Errorf("writing %s: %w", *jsonOut, werr))
			}
		}
		if err == nil {
			err = res.Check()
		}
	}
	return err
}

// Check turns the run's pass conditions into an error naming what failed.
func (res *Result) Check() error {
	var bad []string
	if res.Joined < res.Requested {
		bad = append(bad, fmt.Sprintf("%d of %d viewers failed to join", res.Requested-res.Joined, res.Requested))
	}
	if res.GotFrames < res.Joined {
		bad = append(bad, fmt.Sprintf("%d viewers received no frame", res.Joined-res.GotFrames))
	}
	if res.Encoder.Note == "" && !res.Encoder.Once {
		bad = append(bad, "the encoder did not run once per frame")
	}
	if res.OwnSessionsLeft != 0 || res.DeleteFailed > 0 {
		bad = append(bad, fmt.Sprintf("after DELETE: %d failed, %d of our sessions still there", res.DeleteFailed, res.OwnSessionsLeft))
	}
	if len(bad) > 0 {
		return errors.New("check failed: " + strings.Join(bad, "; "))
	}
	return nil
}

// waitRunning polls /api/streams until the stream has produced output frames.
func waitRunning(ctx context.Context, base, name string, limit time.Duration) error {
	r := &runner{o: Options{BaseURL: base, Stream: name}}
	r.o, _ = r.o.withDefaultsLoose()
	deadline := time.Now().Add(limit)
	for {
		st, err := r.apiStatus(ctx)
		if err == nil {
			if s := r.streamOf(st); s.State == "running" && s.OutW > 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream %q at %s not running after %s (last error: %v)", name, base, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// machine describes this host for the report: cores, CPU model, OS.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	osName := runtime.GOOS
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				osName = strings.Trim(v, `"`)
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s", runtime.NumCPU(), model, osName)
}
