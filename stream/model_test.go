package stream

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Model selection against a stand-in repository whose sr/models holds the
// clean x2 and x4, the realistic x2 and x3, and no realistic x4 (files are
// only looked up here, not loaded).
func TestModelPath_CamerasGetTheRealisticFileOfTheirScale(t *testing.T) {
	root := t.TempDir()
	models := filepath.Join(root, "sr", "models")
	if err := os.MkdirAll(models, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"dan_lite_x2.onnx", "dan_lite_x2_real.onnx", "dan_lite_x3_real.onnx", "dan_lite_x4.onnx"} {
		if err := os.WriteFile(filepath.Join(models, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(root)
	for _, tc := range []struct {
		source, model string
		scale         int
		want          string // file name under sr/models, or the path itself
	}{
		{"rtsp://cam/sub", "", 2, "dan_lite_x2_real.onnx"},
		{"RTSPS://cam/sub", "", 2, "dan_lite_x2_real.onnx"},
		{"webcam:0", "", 3, "dan_lite_x3_real.onnx"},
		{"synthetic:320x180@15", "", 2, "dan_lite_x2.onnx"},
		{"/videos/lobby.mp4", "", 2, "dan_lite_x2.onnx"},
		{"rtsp://cam/sub", "clean", 2, "dan_lite_x2.onnx"},
		{"synthetic:64x64", "real", 2, "dan_lite_x2_real.onnx"},
		{"rtsp://cam/sub", "", 4, "dan_lite_x4.onnx"},       // no realistic x4 bundled: the clean one
		{"synthetic:64x64", "", 3, "dan_lite_x3_real.onnx"}, // no clean x3 bundled: the realistic one
		{"rtsp://cam/sub", "my/adapted.onnx", 3, "my/adapted.onnx"},
	} {
		sc := StreamConfig{Source: tc.source, Model: tc.model, Scale: tc.scale}
		got, err := ModelPath(sc)
		if err != nil {
			t.Errorf("%s model %q x%d: %v", tc.source, tc.model, tc.scale, err)
			continue
		}
		want := tc.want
		if !strings.Contains(want, "/") {
			want = filepath.Join(models, want)
		}
		if got != want {
			t.Errorf("%s model %q x%d: %s, want %s", tc.source, tc.model, tc.scale, got, want)
		}
	}
	// Asked for by kind, a missing file is an error that names it.
	_, err := ModelPath(StreamConfig{Source: "rtsp://cam/sub", Model: "clean", Scale: 3})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "dan_lite_x3.onnx") {
		t.Errorf("model clean at x3 with no clean x3 bundled: %v", err)
	}
	_, err = ModelPath(StreamConfig{Source: "rtsp://cam/sub", Scale: 5})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "dan_lite_x5_real.onnx") || !strings.Contains(err.Error(), "dan_lite_x5.onnx") {
		t.Errorf("no model at all: %v", err)
	}
}

func TestParseConfig_ScaleThreeAndModelKinds(t *testing.T) {
	cfg, err := ParseConfig([]byte("streams:\n  a:\n    source: rtsp://cam/sub\n    scale: 3\n  b:\n    source: rtsp://cam/sub2\n    model: clean\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Streams["a"]; s.Scale != 3 || s.Model != "" {
		t.Errorf("a: %+v", s)
	}
	if s := cfg.Streams["b"]; s.Scale != 4 || s.Model != "clean" { // a kind still gets the default scale
		t.Errorf("b: %+v", s)
	}
}
