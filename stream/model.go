package stream

import (
	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/sr"
)

// ModelPath resolves the ONNX file a stream runs. `model:` is a path, or a
// bundled kind: "real" (sr/models/dan_lite_x{scale}_real.onnx, trained on
// camera-like degradations) or "clean" (dan_lite_x{scale}.onnx, trained on
// clean down-scaling). Unset, a camera (rtsp://, webcam:) gets the realistic
// file of its scale and files and the synthetic scene the clean one, which
// is what their frames look like; when the preferred kind is not bundled at
// that scale the other one is used (sr.SelectModel).
func ModelPath(sc StreamConfig) (string, error) {
	return sr.SelectModel(sc.Model, sc.Scale, capture.IsCamera(sc.Source))
}
