package sr

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// EnvORTLib names the environment variable that points at libonnxruntime.so.1.
const EnvORTLib = "DANSTREAM_ORT_LIB"

// ortRelPath is where scripts/setup.sh puts the library, relative to the repository root.
const ortRelPath = "third_party/onnxruntime/libonnxruntime.so.1"

var (
	rtMu   sync.Mutex
	rtPath string // library that loaded; "" until InitRuntime succeeds
)

// InitRuntime loads the ONNX Runtime shared library and creates the process-wide
// ORT environment. It is idempotent: later calls return nil once a library is
// loaded (whatever libPath they pass). Search order: libPath (from config),
// $DANSTREAM_ORT_LIB, third_party/onnxruntime/libonnxruntime.so.1 under the
// working directory, the executable's directory and their parents, then the
// system loader's "libonnxruntime.so.1". The error lists every path tried.
func InitRuntime(libPath string) error {
	rtMu.Lock()
	defer rtMu.Unlock()
	if rtPath != "" {
		return nil
	}
	var cands []string
	if libPath != "" {
		cands = append(cands, libPath)
	}
	if env := os.Getenv(EnvORTLib); env != "" {
		cands = append(cands, env)
	}
	_, searched := FindAsset(ortRelPath)
	cands = append(cands, searched...)
	cands = append(cands, "libonnxruntime.so.1", "libonnxruntime.so") // system loader paths

	var tried []string
	seen := map[string]bool{}
	for _, c := range cands {
		if seen[c] {
			continue
		}
		seen[c] = true
		if strings.ContainsRune(c, os.PathSeparator) {
			// A path: skip absent files without asking dlopen, but say so.
			if _, err := os.Stat(c); err != nil {
				tried = append(tried, fmt.Sprintf("%s (%s)", c, shortErr(err)))
				continue
			}
		}
		ort.SetSharedLibraryPath(c)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			tried = append(tried, fmt.Sprintf("%s (%v)", c, err))
			continue
		}
		rtPath = c
		slog.Debug("sr: onnxruntime loaded", "lib", c, "version", ort.GetVersion())
		return nil
	}
	return fmt.Errorf("sr: cannot load the ONNX Runtime library; run `bash scripts/setup.sh` or set %s to libonnxruntime.so.1. Tried:\n  %s",
		EnvORTLib, strings.Join(tried, "\n  "))
}

// RuntimeLibrary returns the ONNX Runtime library InitRuntime loaded, "" before.
func RuntimeLibrary() string {
	rtMu.Lock()
	defer rtMu.Unlock()
	return rtPath
}

// FindAsset looks for a repository-relative file (e.g. sr/models/dan_lite_x4.onnx)
// under the working directory, the executable's directory, and each of their
// parents, so `go run`, `go test` in a package directory and an installed binary
// beside the repository all find it. It returns the first existing path ("" if
// none) and every path it considered, in order.
func FindAsset(rel string) (string, []string) {
	if filepath.IsAbs(rel) {
		if _, err := os.Stat(rel); err == nil {
			return rel, []string{rel}
		}
		return "", []string{rel}
	}
	var roots []string
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, wd)
	}
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		roots = append(roots, filepath.Dir(exe))
	}
	var cands []string
	seen := map[string]bool{}
	for _, r := range roots {
		for d := r; ; d = filepath.Dir(d) {
			p := filepath.Join(d, rel)
			if !seen[p] {
				seen[p] = true
				cands = append(cands, p)
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, p := range cands {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, cands
		}
	}
	return "", cands
}

// Kinds of bundled DAN model (sr/models, MODEL_CARD.md).
const (
	// ModelClean is dan_lite_x{N}.onnx: trained on clean (bicubic/area) down-scaling.
	ModelClean = "clean"
	// ModelReal is dan_lite_x{N}_real.onnx: trained on camera-like degradations
	// (blur, sensor noise, H.264/JPEG at sub-stream bit rates).
	ModelReal = "real"
)

// BundledModelRel is the repository-relative file of a bundled model kind at a scale.
func BundledModelRel(scale int, kind string) string {
	name := fmt.Sprintf("dan_lite_x%d.onnx", scale)
	if kind == ModelReal {
		name = fmt.Sprintf("dan_lite_x%d_real.onnx", scale)
	}
	return filepath.Join("sr", "models", name)
}

// BundledModelPath finds a bundled DAN model of a kind (ModelClean, ModelReal)
// for a scale the way FindAsset does; the error names every place looked at
// and wraps os.ErrNotExist.
func BundledModelPath(scale int, kind string) (string, error) {
	rel := BundledModelRel(scale, kind)
	p, tried := FindAsset(rel)
	if p == "" {
		if len(tried) > 6 {
			tried = append(tried[:6], "...")
		}
		return "", fmt.Errorf("sr: bundled model %s not found (looked at %s): %w", rel, strings.Join(tried, ", "), os.ErrNotExist)
	}
	return p, nil
}

// SelectModel resolves a model setting: a path is returned as it is; a
// bundled kind (ModelReal, ModelClean) is found for the scale or is an error;
// empty picks the realistic file for a camera (what its frames look like:
// sensor noise and a codec) and the clean one otherwise, and when that kind
// is not bundled at the scale, the other one.
func SelectModel(model string, scale int, camera bool) (string, error) {
	switch model {
	case ModelClean, ModelReal:
		return BundledModelPath(scale, model)
	case "":
	default:
		return model, nil
	}
	kinds := []string{ModelClean, ModelReal}
	if camera {
		kinds[0], kinds[1] = kinds[1], kinds[0]
	}
	p, err := BundledModelPath(scale, kinds[0])
	if err == nil {
		return p, nil
	}
	p, err2 := BundledModelPath(scale, kinds[1])
	if err2 == nil {
		return p, nil
	}
	if errors.Is(err, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist) {
		return "", fmt.Errorf("sr: no bundled x%d model (neither %s nor %s): %w", scale,
			BundledModelRel(scale, kinds[0]), BundledModelRel(scale, kinds[1]), os.ErrNotExist)
	}
	return "", errors.Join(err, err2)
}

// DefaultModelPath finds the bundled clean DAN model for a scale (sr/models/dan_lite_x{N}.onnx).
func DefaultModelPath(scale int) (string, error) { return BundledModelPath(scale, ModelClean) }

func shortErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
