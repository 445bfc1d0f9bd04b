package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scripthost/scripthost/executor"
	"github.com/scripthost/scripthost/httpbridge"
	"github.com/scripthost/scripthost/jobs"
	"github.com/scripthost/scripthost/metrics"
	"github.com/scripthost/scripthost/model"
)

// observability is the metrics of one process: a registry of its own (no
// global one) and the parts that feed it. A nil *observability records
// nothing.
type observability struct {
	reg  *prometheus.Registry
	exec *metrics.Executor
	http *metrics.HTTP
}

// newObservability registers the process's metrics. scripts counts the
// scripts the catalog knows (nil when this process runs no catalog);
// slots is the capacity of the executor node of this process.
func newObservability(scripts func() int, slots int) *observability {
	reg := metrics.NewRegistry()
	o := &observability{reg: reg, exec: metrics.NewExecutor(reg)}
	metrics.RegisterBuildInfo(reg, version, buildRevision())
	metrics.RegisterSlots(reg, slots)
	if scripts != nil {
		metrics.RegisterScripts(reg, scripts)
		o.http = metrics.NewHTTP(reg)
	}
	return o
}

// scriptChanged keeps the per-script series in line with the scripts
// that exist: a new script's counters start at zero, a deleted script's
// series go.
func (o *observability) scriptChanged(name string, exists bool) {
	if o == nil {
		return
	}
	if exists {
		o.exec.Known(name)
	} else {
		o.exec.Forget(name)
	}
}

// executorMetrics is the hook of the executor node; nil when off.
func (o *observability) executorMetrics() executor.Metrics {
	if o == nil {
		return nil
	}
	return o.exec
}

// httpMetrics is the hook of the HTTP API; nil when off.
func (o *observability) httpMetrics() httpbridge.HTTPMetrics {
	if o == nil || o.http == nil {
		return nil
	}
	return o.http
}

// warmParents registers the metrics of fork mode's warm parents.
func (o *observability) warmParents(stats func() executor.WarmStats) {
	if o == nil {
		return
	}
	metrics.RegisterWarmParents(o.reg, func() metrics.WarmParents {
		st := stats()
		return metrics.WarmParents{Parents: st.Parents, MemoryBytes: st.MemoryBytes,
			Created: st.Created, Evicted: st.Evicted, Refused: st.Refused, Runs: st.Runs}
	})
}

// handler serves the metrics; nil when off.
func (o *observability) handler() http.Handler {
	if o == nil {
		return nil
	}
	return metrics.Handler(o.reg)
}

// serveMetrics serves GET /metrics of an executor node of slots slots on
// addr, until the server closes; an empty addr serves none.
func (s *server) serveMetrics(addr string, slots int) error {
	if addr == "" {
		return nil
	}
	s.obs = newObservability(nil, slots)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.obs.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	s.defer_(func() { srv.Close() })
	s.log.Info("metrics on http://" + ln.Addr().String() + "/metrics")
	return nil
}

// jobMetrics shows the job manager's figures.
func (o *observability) jobMetrics(m *jobs.Manager) {
	if o == nil {
		return
	}
	statuses := make([]string, len(model.JobStatuses))
	for i, s := range model.JobStatuses {
		statuses[i] = string(s)
	}
	metrics.RegisterJobs(o.reg, statuses, func() metrics.JobStats {
		st := m.Stats(context.Background())
		by := make(map[string]int, len(st.ByStatus))
		for s, n := range st.ByStatus {
			by[string(s)] = n
		}
		return metrics.JobStats{ByStatus: by, QueueDepth: st.QueueDepth, OldestQueued: st.OldestQueued}
	})
}
