package e2e

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

type textResult struct {
	OK    bool     `json:"ok"`
	Texts []string `json:"texts"`
	Logs  []string `json:"logs"`
}

// A model swapped in with its validation figures (what `danstream adapt`
// sends) is named on the stream list page with those figures, and a stream
// with a main source shows its pair collection, here failing with the reason.
func TestPageShowsTheAdaptedModelsValidationAndThePairCollection(t *testing.T) {
	s := startServe(t, `
http: {listen: HTTP_ADDR}
rtsp: {listen: RTSP_ADDR}
streams:
  cam:
    source: "synthetic:64x48@10"
    main: rtsp://127.0.0.1:1/main
    pairs_dir: `+t.TempDir()+`
    model: sr/testdata/nearest_x4.onnx
    threads: 1
`)
	s.waitRunning(t, "cam")
	body := `{"path": "sr/models/dan_lite_x4.onnx", "validation": {"pairs": 40, "psnr_y_bicubic": 29.22, "psnr_y_before": 29.33, "psnr_y_after": 31.23}}`
	r, err := http.Post("http://"+s.http+"/api/streams/cam/model", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("swap with validation figures: %s", r.Status)
	}
	for _, want := range []string{"adapted: 31.23 dB vs 29.33 before, 40 held-out pairs", "pairs 0 on disk, retrying: capture: open rtsp://127.0.0.1:1/main"} {
		var res textResult
		runProbe(t, "text.mjs", "http://"+s.http+"/", 60000, &res, "--selector", ".m-src", "--want", want)
		if !res.OK {
			t.Errorf("the stream card never showed %q; it showed %q (logs %v)", want, strings.Join(res.Texts, " | "), res.Logs)
		}
	}
}
