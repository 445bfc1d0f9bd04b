package httpbridge

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/scripthost/scripthost/model"
)

// HTTPMetrics receives one call per HTTP request served. route is the
// router's pattern ("/run/{name}"), never the raw path, and method is one
// of the standard methods or "OTHER", so labels made of them stay bounded.
type HTTPMetrics interface {
	Served(method, route string, code int, d time.Duration)
}

// routeDeclarer is an HTTPMetrics that wants every route, with its usual
// status code, before the first request: its counters then start at zero.
type routeDeclarer interface {
	Route(method, route string, code int)
}

// declareRoutes tells cfg.HTTPMetrics of every route of r.
func (b *Bridge) declareRoutes(r chi.Routes) {
	d, ok := b.cfg.HTTPMetrics.(routeDeclarer)
	if !ok {
		return
	}
	chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		code := http.StatusOK
		switch {
		case method == http.MethodPost && route == "/scripts":
			code = http.StatusCreated
		case method == http.MethodDelete:
			code = http.StatusNoContent
		}
		d.Route(method, route, code)
		return nil
	})
}

// metricsHandler serves GET /metrics: the configured handler, or 404 when
// the server exposes no metrics.
func (b *Bridge) metricsHandler() http.Handler {
	if b.cfg.Metrics != nil {
		return b.cfg.Metrics
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, model.ErrorBody{Error: "this server exposes no metrics"})
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
