package stream

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultMaxOutput is the largest output frame (after SR) a stream makes
// unless streams.NAME.max_output raises it: 4K UHD. An x4 stream of a 7680x4320
// input would otherwise make 30720x17280 frames (1.6 GB each), which takes the
// whole server down with it.
const DefaultMaxOutput = "3840x2160"

// maxOutputSide bounds max_output itself (the encoders' and the int maths' limits are far above).
const maxOutputSide = 32768

// parseSize reads "WxH".
func parseSize(s string) (w, h int, err error) {
	ws, hs, ok := strings.Cut(strings.TrimSpace(s), "x")
	if ok {
		w, err = strconv.Atoi(ws)
		if err == nil {
			h, err = strconv.Atoi(hs)
		}
	}
	if !ok || err != nil || w < 1 || h < 1 || w > maxOutputSide || h > maxOutputSide {
		return 0, 0, fmt.Errorf("want WIDTHxHEIGHT such as 7680x4320, each 1..%d, got %q", maxOutputSide, s)
	}
	return w, h, nil
}

// maxOutput returns the stream's output ceiling (max_output, else the default).
func (s StreamConfig) maxOutput() (w, h int, err error) {
	if s.MaxOutput == "" {
		return parseSize(DefaultMaxOutput)
	}
	return parseSize(s.MaxOutput)
}

// checkOutput refuses input frames of inW x inH whose output at scale would
// exceed the stream's ceiling, naming the key that raises it.
func checkOutput(name string, s StreamConfig, inW, inH, scale int) error {
	mw, mh, err := s.maxOutput()
	if err != nil {
		return fmt.Errorf("streams.%s.max_output: %w", name, err)
	}
	if ow, oh := inW*scale, inH*scale; ow > mw || oh > mh {
		return fmt.Errorf("%dx%d frames at x%d make %dx%d output, above the %dx%d ceiling: "+
			"set a smaller width/height, or raise streams.%s.max_output (e.g. max_output: %dx%d)",
			inW, inH, scale, ow, oh, mw, mh, name, ow, oh)
	}
	return nil
}

// validateOutput checks max_output and, when both the input size (width and
// height) and the scale are known from the settings, the output size.
func validateOutput(name string, s StreamConfig, bad func(key, format string, args ...any)) {
	if _, _, err := s.maxOutput(); err != nil {
		bad("max_output", "%v", err)
		return
	}
	if s.Width > 0 && s.Height > 0 && s.Scale > 0 {
		if err := checkOutput(name, s, s.Width, s.Height, s.Scale); err != nil {
			bad("width", "%v", err)
		}
	}
}
