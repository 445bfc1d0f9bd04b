package httpbridge

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/scripthost/scripthost/bus"
)

// HTTPMetrics receives one call per HTTP request served. route is the
// router's pattern ("/run/{name}"), never the raw path, and method is one
// of the standard methods or "OTHER", so labels made of them stay bounded.
type HTTPMetrics interface {
	Served(method, route string, code int, d time.Duration)
}

// metricsHandler serves GET /metrics: the configured handler, or 404 when
// the server exposes no metrics.
func (b *Bridge) metricsHandler() http.Handler {
	if b.cfg.Metrics != nil {
		return b.cfg.Metrics
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, bus.ErrorBody{Error: "this server exposes no metrics"})
	})
}

// observe reports every request to cfg.HTTPMetrics.
func (b *Bridge) observe(next http.Handler) http.Handler {
	m := b.cfg.HTTPMetrics
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			code := ww.Status()
			if code == 0 {
				code = http.StatusOK
			}
			m.Served(methodLabel(r.Method), route, code, time.Since(start))
		}()
		next.ServeHTTP(ww, r)
	})
}

// methodLabel keeps the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
