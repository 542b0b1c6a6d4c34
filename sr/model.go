package sr

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// Metadata keys of the danstream ONNX model contract (see notes / MODEL_CARD.md).
const (
	MetaScale      = "danstream.scale"
	MetaTile       = "danstream.tile"
	MetaOverlap    = "danstream.overlap"
	MetaInputRange = "danstream.input_range"
	MetaColorOrder = "danstream.color_order"
	MetaName       = "danstream.name"
	MetaVersion    = "danstream.version"
	MetaArch       = "danstream.arch"

	inputName  = "lr"
	outputName = "hr"
)

// ErrBadModel marks a model file that exists but breaks the danstream contract
// (corrupt, truncated, missing or inconsistent metadata, wrong shapes).
var ErrBadModel = errors.New("invalid danstream model")

// ModelInfo is what a model file declares about itself, already validated.
type ModelInfo struct {
	Path    string
	Name    string // danstream.name, e.g. "dan-lite-x4"
	Version string
	Arch    string
	Scale   int // output = input * Scale
	Tile    int // T: the model takes [N,3,T,T]
	Overlap int // LR pixels shared by neighbouring tiles
}

// ReadModelInfo reads and validates a model's metadata and input/output shapes
// without creating a session. The ONNX Runtime must be initialised (InitRuntime).
func ReadModelInfo(path string) (ModelInfo, error) {
	if err := checkModelFile(path); err != nil {
		return ModelInfo{}, err
	}
	if err := InitRuntime(""); err != nil {
		return ModelInfo{}, err
	}
	md, err := ort.GetModelMetadata(path)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("sr: model %s: cannot be read as ONNX (corrupt or truncated?): %v: %w", path, err, ErrBadModel)
	}
	defer md.Destroy()
	get := func(k string) (string, bool, error) {
		v, ok, err := md.LookupCustomMetadataMap(k)
		return strings.TrimSpace(v), ok, err
	}
	info := ModelInfo{Path: path}
	var missing []string
	vals := map[string]string{}
	for _, k := range []string{MetaScale, MetaTile, MetaOverlap, MetaInputRange, MetaColorOrder, MetaName, MetaVersion} {
		v, ok, err := get(k)
		if err != nil {
			return ModelInfo{}, fmt.Errorf("sr: model %s: reading metadata %q: %v: %w", path, k, err, ErrBadModel)
		}
		if !ok || v == "" {
			missing = append(missing, k)
			continue
		}
		vals[k] = v
	}
	if len(missing) > 0 {
		return ModelInfo{}, fmt.Errorf("sr: model %s: metadata lacks %s (export it with the danstream exporter): %w",
			path, strings.Join(missing, ", "), ErrBadModel)
	}
	info.Arch, _, _ = get(MetaArch)
	info.Name, info.Version = vals[MetaName], vals[MetaVersion]
	bad := func(format string, a ...any) error {
		return fmt.Errorf("sr: model %s: %s: %w", path, fmt.Sprintf(format, a...), ErrBadModel)
	}
	atoi := func(k string) (int, error) {
		n, err := strconv.Atoi(vals[k])
		if err != nil {
			return 0, bad("metadata %s=%q is not an integer", k, vals[k])
		}
		return n, nil
	}
	if info.Scale, err = atoi(MetaScale); err != nil {
		return ModelInfo{}, err
	}
	if info.Tile, err = atoi(MetaTile); err != nil {
		return ModelInfo{}, err
	}
	if info.Overlap, err = atoi(MetaOverlap); err != nil {
		return ModelInfo{}, err
	}
	switch {
	case info.Scale < 1 || info.Scale > 8:
		return ModelInfo{}, bad("metadata %s=%d out of range 1..8", MetaScale, info.Scale)
	case info.Tile < 4:
		return ModelInfo{}, bad("metadata %s=%d is too small", MetaTile, info.Tile)
	case info.Overlap < 0 || 2*info.Overlap >= info.Tile:
		return ModelInfo{}, bad("metadata %s=%d must be >= 0 and less than half the tile (%d)", MetaOverlap, info.Overlap, info.Tile)
	}
	if r := strings.ReplaceAll(vals[MetaInputRange], " ", ""); r != "0,1" {
		return ModelInfo{}, bad("metadata %s=%q: only \"0,1\" is supported", MetaInputRange, vals[MetaInputRange])
	}
	if c := strings.ToUpper(vals[MetaColorOrder]); c != "RGB" {
		return ModelInfo{}, bad("metadata %s=%q: only \"RGB\" is supported", MetaColorOrder, vals[MetaColorOrder])
	}

	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return ModelInfo{}, bad("reading inputs/outputs: %v", err)
	}
	if len(ins) != 1 || len(outs) != 1 {
		return ModelInfo{}, bad("want one input %q and one output %q, have %d inputs and %d outputs", inputName, outputName, len(ins), len(outs))
	}
	T, S := int64(info.Tile), int64(info.Tile*info.Scale)
	if err := checkIO(ins[0], inputName, T); err != nil {
		return ModelInfo{}, bad("input: %v (metadata says tile %d)", err, info.Tile)
	}
	if err := checkIO(outs[0], outputName, S); err != nil {
		return ModelInfo{}, bad("output: %v (metadata says tile %d x scale %d = %d)", err, info.Tile, info.Scale, S)
	}
	return info, nil
}

// checkIO verifies one tensor is float32 [N,3,side,side] with N free (or any
// batch) and the contract's name.
func checkIO(io ort.InputOutputInfo, name string, side int64) error {
	if io.Name != name {
		return fmt.Errorf("named %q, want %q", io.Name, name)
	}
	if io.OrtValueType != ort.ONNXTypeTensor || io.DataType != ort.TensorElementDataTypeFloat {
		return fmt.Errorf("%s, want a float32 tensor", io.String())
	}
	d := io.Dimensions
	if len(d) != 4 || d[1] != 3 || d[2] != side || d[3] != side {
		return fmt.Errorf("shape %v, want [N 3 %d %d]", d, side, side)
	}
	return nil
}

// checkModelFile turns the common file problems into messages naming the file.
func checkModelFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("sr: model file %s: %w", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("sr: model file %s is a directory: %w", path, ErrBadModel)
	}
	if st.Size() == 0 {
		return fmt.Errorf("sr: model file %s is empty: %w", path, ErrBadModel)
	}
	return nil
}
