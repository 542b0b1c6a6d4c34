package transport

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sentinel errors an Admin wraps so the server can pick the status code.
var (
	ErrNotFound = errors.New("not found")       // -> 404
	ErrInvalid  = errors.New("invalid request") // -> 400, with the message
)

// Admin is the optional runtime API of a Catalog (stream.Manager implements
// it): add, change and remove streams and expose Prometheus metrics. The
// server offers PUT/DELETE /api/streams/{name} and GET /metrics only when its
// Catalog is an Admin.
type Admin interface {
	// PutStream creates or replaces a stream from a JSON body holding the
	// stream's config fields (as in the YAML file). An unchanged stream is left
	// alone. Bad JSON or settings wrap ErrInvalid.
	PutStream(name string, body []byte) (created, changed bool, err error)
	// DeleteStream removes a stream and closes its viewers; unknown names wrap ErrNotFound.
	DeleteStream(name string) error
	// Collector gives the catalog's metrics; /metrics serves them with Go's
	// runtime and the process's (danstream_process_*) collectors beside them.
	prometheus.Collector
}

// maxAPIBody bounds a PUT /api/streams body: a stream's config is a few hundred bytes.
const maxAPIBody = 16 << 10

// admin returns the catalog's runtime API for a request that may use it: 501 when the
// catalog has none (naming what), 401/403 unless the caller has the admin right.
func (s *Server) admin(w http.ResponseWriter, r *http.Request, what string) (Admin, bool) {
	a, ok := s.cat.(Admin)
	if !ok {
		http.Error(w, "this server has no "+what, http.StatusNotImplemented)
		return nil, false
	}
	if !s.requireAdmin(w, r) {
		return nil, false
	}
	return a, true
}

func (s *Server) apiPutStream(w http.ResponseWriter, r *http.Request) {
	a, ok := s.admin(w, r, "runtime API")
	if !ok {
		return
	}
	name := r.PathValue("name")
	liftWriteDeadline(w)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("stream config too large: limit %d bytes", maxAPIBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	created, changed, err := a.PutStream(name, body)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrInvalid) {
			status = http.StatusBadRequest
		}
		http.Error(w, err.Error(), status)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/streams/"+url.PathEscape(name))
	}
	s.log.Info("transport: stream put via API", "stream", name, "created", created, "changed", changed, "by", principalOf(r).Name)
	writeJSON(w, status, map[string]any{"name": name, "created": created, "changed": changed})
}

func (s *Server) apiDeleteStream(w http.ResponseWriter, r *http.Request) {
	a, ok := s.admin(w, r, "runtime API")
	if !ok {
		return
	}
	name := r.PathValue("name")
	liftWriteDeadline(w)
	if err := a.DeleteStream(name); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrNotFound) {
			status = http.StatusNotFound
		}
		http.Error(w, err.Error(), status)
		return
	}
	s.log.Info("transport: stream deleted via API", "stream", name, "by", principalOf(r).Name)
	w.WriteHeader(http.StatusNoContent)
}

// apiWriteTimeout is how long a runtime API call may take to answer: building
// a stream loads its model (a TensorRT engine build can take minutes), far
// past the server's write timeout for ordinary requests.
const apiWriteTimeout = 10 * time.Minute

// liftWriteDeadline gives an admin call apiWriteTimeout to answer.
func liftWriteDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(apiWriteTimeout)) // ErrNotSupported in tests' recorders
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.admin(w, r, "metrics"); !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.metricsHandler.ServeHTTP(w, r)
}

// newMetricsHandler serves the catalog's collector with Go's runtime
// collector (go_*) and the process collector (danstream_process_*: CPU, RSS,
// file descriptors, from /proc), through client_golang's own exposition
// (text or OpenMetrics as the scraper asks). One registry per server, so
// several servers in one process (tests, the load tool) do not collide.
func newMetricsHandler(a Admin, more []prometheus.Collector, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "danstream"}), a)
	reg.MustRegister(more...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError})
}
