package offline

import (
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/term"
)

// progress reports how far a run is. On a terminal it redraws one line (bar,
// rate, ETA) in place; anywhere else (a log file, a pipe, CI) a
// carriage-return redraw would leave hundreds of updates in the log, so it
// writes one plain line per progressStep percent (every progressEvery when
// the total is unknown) and a last one at the end.
//
// Hand-written: github.com/schollz/progressbar/v3, the usual Go bar, always
// redraws with '\r' (no line-per-step mode for logs) and its current releases
// need Go 1.25, past this module's go 1.24. Terminal detection is x/term's.
type progress struct {
	w     io.Writer
	tty   bool
	total int
	start time.Time
	last  time.Time
	step  int // logs: the last progressStep printed
}

const (
	progressStep  = 5                // percent between lines in a log
	progressEvery = 10 * time.Second // between lines in a log when the total is unknown
)

func newProgress(w io.Writer, total int) *progress {
	if w == nil {
		w = io.Discard
	}
	tty := false
	if f, ok := w.(interface{ Fd() uintptr }); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	now := time.Now()
	return &progress{w: w, tty: tty, total: total, start: now, last: now}
}

func (p *progress) update(n int) {
	now := time.Now()
	if !p.tty {
		if p.total > 0 {
			s := min(100, 100*n/p.total) / progressStep
			if s <= p.step || s*progressStep >= 100 { // 100 % is done's line
				return
			}
			p.step = s
		} else if now.Sub(p.last) < progressEvery {
			return
		}
		p.last = now
		fmt.Fprintln(p.w, p.status(n, now))
		return
	}
	if now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	if p.total > 0 {
		frac := min(1, float64(n)/float64(p.total))
		const width = 30
		bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
		fmt.Fprintf(p.w, "\r[%s] %s   ", bar, p.status(n, now))
	} else {
		fmt.Fprintf(p.w, "\r%s   ", p.status(n, now))
	}
}

// status is "n/total frames  pct% fps ETA" (or "n frames fps" without a total).
func (p *progress) status(n int, now time.Time) string {
	fps := float64(n) / max(now.Sub(p.start).Seconds(), 1e-9)
	if p.total <= 0 {
		return fmt.Sprintf("%d frames %.2f fps", n, fps)
	}
	frac := min(1, float64(n)/float64(p.total))
	eta := time.Duration(0)
	if fps > 0 {
		eta = time.Duration(float64(max(p.total-n, 0))/fps) * time.Second
	}
	return fmt.Sprintf("%d/%d frames %3.0f%% %.2f fps ETA %s", n, p.total, 100*frac, fps, eta.Round(time.Second))
}

func (p *progress) done(n int) {
	p.total = max(p.total, n)
	if !p.tty {
		fmt.Fprintln(p.w, p.status(n, time.Now()))
		return
	}
	p.last = time.Time{}
	p.update(n)
	fmt.Fprintln(p.w)
}
