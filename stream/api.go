package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/danstream/danstream/transport"
)

// UnmarshalJSON decodes a stream's settings as the runtime API receives them:
// the YAML keys, strictly (an unknown key is an error), durations as Go
// strings ("2s", "1m30s") or as seconds.
func (s *StreamConfig) UnmarshalJSON(b []byte) error {
	type plain StreamConfig // no methods: no recursion
	var aux struct {
		plain
		Keyframe    *jsonDuration `json:"keyframe_interval"`
		IdleTimeout *jsonDuration `json:"idle_timeout"`
		Watchdog    *jsonDuration `json:"watchdog"`
		PairsEvery  *jsonDuration `json:"pairs_every"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aux); err != nil {
		return err
	}
	*s = StreamConfig(aux.plain)
	for _, d := range []struct {
		dst *time.Duration
		src *jsonDuration
	}{{&s.Keyframe, aux.Keyframe}, {&s.IdleTimeout, aux.IdleTimeout}, {&s.Watchdog, aux.Watchdog}, {&s.PairsEvery, aux.PairsEvery}} {
		if d.src != nil {
			*d.dst = time.Duration(*d.src)
		}
	}
	return nil
}

type jsonDuration time.Duration

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("duration %q: want e.g. \"2s\" or \"1m\"", x)
		}
		*d = jsonDuration(p)
	case float64:
		if x < 0 || x > 1e6 {
			return fmt.Errorf("duration %g s out of range", x)
		}
		*d = jsonDuration(time.Duration(x * float64(time.Second)))
	default:
		return fmt.Errorf("duration must be a string like \"2s\" or a number of seconds")
	}
	return nil
}

// DecodeStreamJSON parses and validates one stream's settings from the
// runtime API's JSON body. Errors wrap transport.ErrInvalid.
func DecodeStreamJSON(name string, body []byte) (StreamConfig, error) {
	var sc StreamConfig
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&sc); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty body: want a JSON object such as {\"source\":\"synthetic:320x180@15\",\"scale\":4}")
		}
		return StreamConfig{}, fmt.Errorf("%w: stream %q: %v", transport.ErrInvalid, name, err)
	}
	if dec.More() {
		return StreamConfig{}, fmt.Errorf("%w: stream %q: trailing data after the JSON object", transport.ErrInvalid, name)
	}
	v, err := ValidateStream(name, sc)
	if err != nil {
		return StreamConfig{}, fmt.Errorf("%w: %w", transport.ErrInvalid, err)
	}
	return v, nil
}

// PutStream implements transport.Admin (PUT /api/streams/{name}).
func (m *Manager) PutStream(name string, body []byte) (created, changed bool, err error) {
	sc, err := DecodeStreamJSON(name, body)
	if err != nil {
		return false, false, err
	}
	existed, changed, err := m.put(name, sc)
	if err != nil {
		// The settings validated, so what failed is building the stream (most
		// often the model file): still the request's fault.
		return false, false, fmt.Errorf("%w: %w", transport.ErrInvalid, err)
	}
	return changed && !existed, changed, nil
}

// DeleteStream implements transport.Admin (DELETE /api/streams/{name}).
func (m *Manager) DeleteStream(name string) error { return m.Delete(name) }

var _ transport.Admin = (*Manager)(nil)
var _ transport.ModelSwapper = (*Manager)(nil)
