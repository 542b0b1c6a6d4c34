package transport

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// ModelSwapper is the optional model hot-swap of a Catalog (stream.Manager
// implements it): POST /api/streams/{name}/model with {"path": FILE} loads a
// model file on the server beside the running one and swaps it in between two
// frames; {"rollback": true} returns to the previous one. An optional
// "validation" object ({pairs, psnr_y_bicubic, psnr_y_before, psnr_y_after},
// what `danstream adapt` measured on held-out pairs) is kept with the model
// and shown in /api/streams and on the page. Admin only: the path names a
// file on the server.
type ModelSwapper interface {
	SwapModel(name, path string, v *ModelValidation) (previous string, err error)
	RollbackModel(name string) (restored string, err error)
}

func (s *Server) apiSwapModel(w http.ResponseWriter, r *http.Request) {
	if !s.requireAdmin(w, r) { // before anything else: the body names server files
		return
	}
	sw, ok := s.cat.(ModelSwapper)
	if !ok {
		http.Error(w, "this server cannot swap models", http.StatusNotImplemented)
		return
	}
	var req struct {
		Path       string           `json:"path"`
		Rollback   bool             `json:"rollback"`
		Validation *ModelValidation `json:"validation"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || (req.Path == "") == !req.Rollback || (req.Rollback && req.Validation != nil) {
		http.Error(w, `want {"path": "/server/path/model.onnx", "validation": {...} (optional)} or {"rollback": true}`, http.StatusBadRequest)
		return
	}
	if req.Validation != nil {
		if err := req.Validation.Check(); err != nil {
			http.Error(w, "validation: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	name := r.PathValue("name")
	liftWriteDeadline(w) // a swap loads and warms a model
	var (
		res map[string]any
		err error
	)
	if req.Rollback {
		var restored string
		restored, err = sw.RollbackModel(name)
		res = map[string]any{"name": name, "model_path": restored}
	} else {
		var prev string
		prev, err = sw.SwapModel(name, req.Path, req.Validation)
		res = map[string]any{"name": name, "model_path": req.Path, "previous": prev}
	}
	if err != nil {
		status := http.StatusBadRequest // the model file or the stream state is the request's problem
		if errors.Is(err, ErrNotFound) {
			status = http.StatusNotFound
		}
		http.Error(w, err.Error(), status)
		return
	}
	s.log.Info("transport: model swapped via API", "stream", name, "result", res, "by", principalOf(r).Name)
	writeJSON(w, http.StatusOK, res)
}
