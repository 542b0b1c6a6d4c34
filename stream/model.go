package stream

import (
	"errors"
	"fmt"
	"os"

	"github.com/danstream/danstream/capture"
	"github.com/danstream/danstream/sr"
)

// ModelPath resolves the ONNX file a stream runs. `model:` is a path, or a
// bundled kind: "real" (sr/models/dan_lite_x{scale}_real.onnx, trained on
// camera-like degradations) or "clean" (dan_lite_x{scale}.onnx, trained on
// clean down-scaling). Unset, a camera (rtsp://, webcam:) gets the realistic
// file of its scale and files and the synthetic scene the clean one, which
// is what their frames look like; when the preferred kind is not bundled at
// that scale the other one is used.
func ModelPath(sc StreamConfig) (string, error) {
	switch sc.Model {
	case sr.ModelClean, sr.ModelReal:
		return sr.BundledModelPath(sc.Scale, sc.Model)
	case "":
	default:
		return sc.Model, nil
	}
	kinds := []string{sr.ModelClean, sr.ModelReal}
	if capture.IsCamera(sc.Source) {
		kinds[0], kinds[1] = kinds[1], kinds[0]
	}
	p, err := sr.BundledModelPath(sc.Scale, kinds[0])
	if err == nil {
		return p, nil
	}
	p, err2 := sr.BundledModelPath(sc.Scale, kinds[1])
	if err2 == nil {
		return p, nil
	}
	if errors.Is(err, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist) {
		return "", fmt.Errorf("no bundled x%d model (neither %s nor %s): %w", sc.Scale,
			sr.BundledModelRel(sc.Scale, kinds[0]), sr.BundledModelRel(sc.Scale, kinds[1]), os.ErrNotExist)
	}
	return "", errors.Join(err, err2)
}
