package offline

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line bar with rate and ETA on a terminal-ish writer.
type progress struct {
	w     io.Writer
	total int
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, total int) *progress {
	if w == nil {
		w = io.Discard
	}
	return &progress{w: w, total: total, start: time.Now()}
}

func (p *progress) update(n int) {
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	fps := float64(n) / el
	if p.total > 0 {
		frac := min(1, float64(n)/float64(p.total))
		const width = 30
		bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
		eta := time.Duration(float64(p.total-n)/fps) * time.Second
		fmt.Fprintf(p.w, "\r[%s] %d/%d frames %3.0f%% %.2f fps ETA %s   ", bar, n, p.total, 100*frac, fps, eta.Round(time.Second))
	} else {
		fmt.Fprintf(p.w, "\r%d frames %.2f fps   ", n, fps)
	}
}

func (p *progress) done(n int) {
	p.total = max(p.total, n)
	p.last = time.Time{}
	p.update(n)
	fmt.Fprintln(p.w)
}
