// Package metrics exposes scripthost's figures in the Prometheus format:
// runs by script and outcome, run and queue times, cache hits, scripts
// known and executor slots. Everything hangs off a registry built by the
// caller; nothing is registered globally.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process
// collectors, to which New and the gauges below add scripthost's own.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves the registry's metrics in the Prometheus text format,
// or in OpenMetrics to a scraper that asks for it (Accept:
// application/openmetrics-text).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

// RegisterBuildInfo registers scripthost_build_info, always 1, whose
// labels say which build this is.
func RegisterBuildInfo(reg prometheus.Registerer, version, revision string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "scripthost_build_info",
		Help:        "Always 1; the labels name the version, the commit (when known) and the Go toolchain of this build.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
	})
	g.Set(1)
	reg.MustRegister(g)
}

// Buckets of the histograms, in seconds. Answers go from a tenth of a
// millisecond (a cache hit) through a few milliseconds (a forked child)
// to the run timeout (30 s by default).
var (
	runBuckets   = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	queueBuckets = []float64{.0001, .001, .005, .01, .05, .1, .5, 1, 5, 10, 30}
)

// outcomes are the values of the outcome label that every known script's
// scripthost_runs_total has from the start (as executor.Outcome* name
// them); the rarer ones appear on first use.
var outcomes = []string{"ok", "error", "signal", "timeout"}

// Executor records what an executor node does; it implements
// executor.Metrics. The script label only ever holds names the node found
// in the catalog ("" for requests naming an unknown script), so the number
// of series stays bounded by the scripts that exist.
type Executor struct {
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	queueWait   prometheus.Histogram
	inFlight    prometheus.Gauge
	cacheHits   *prometheus.CounterVec
	cacheMisses *prometheus.CounterVec
}

// NewExecutor registers the executor metrics with reg.
func NewExecutor(reg prometheus.Registerer) *Executor {
	m := &Executor{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scripthost_runs_total",
			Help: "Run requests answered, by script and outcome (ok, error: non-zero exit, signal, timeout, cancelled, bad_request, not_found, unavailable, ...).",
		}, []string{"script", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scripthost_run_duration_seconds",
			Help:    "Time of the executions of a script, from start to exit (cache hits are not executions).",
			Buckets: runBuckets,
		}, []string{"script"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scripthost_queue_wait_seconds",
			Help:    "Time a run request waited for a free executor slot (also when it gave up with 503).",
			Buckets: queueBuckets,
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scripthost_runs_in_flight",
			Help: "Scripts running now.",
		}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scripthost_cache_hits_total",
			Help: "Run requests answered from the result cache (X-Cache: hit).",
		}, []string{"script"}),
		cacheMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scripthost_cache_misses_total",
			Help: "Run requests answered by running the script (X-Cache: miss).",
		}, []string{"script"}),
	}
	reg.MustRegister(m.runs, m.duration, m.queueWait, m.inFlight, m.cacheHits, m.cacheMisses)
	return m
}

// Known gives a script its series, at zero, as soon as it exists: a
// counter that is absent until its first increase cannot be told from a
// scrape that lost it, and rate() misses the first increase.
func (m *Executor) Known(script string) {
	for _, o := range outcomes {
		m.runs.WithLabelValues(script, o)
	}
	m.cacheHits.WithLabelValues(script)
	m.cacheMisses.WithLabelValues(script)
}

// Forget removes the series of a script that was deleted, so that the
// number of series follows the scripts that exist, not every script that
// ever did.
func (m *Executor) Forget(script string) {
	l := prometheus.Labels{"script": script}
	m.runs.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.cacheHits.DeletePartialMatch(l)
	m.cacheMisses.DeletePartialMatch(l)
}

// Answered counts one answered run request.
func (m *Executor) Answered(script, outcome string) {
	m.runs.WithLabelValues(script, outcome).Inc()
}

// Cache counts a cache hit or miss.
func (m *Executor) Cache(script string, hit bool) {
	if hit {
		m.cacheHits.WithLabelValues(script).Inc()
	} else {
		m.cacheMisses.WithLabelValues(script).Inc()
	}
}

// QueueWaited records the wait for a slot.
func (m *Executor) QueueWaited(d time.Duration) { m.queueWait.Observe(d.Seconds()) }

// RunStarted counts a script that starts running.
func (m *Executor) RunStarted() { m.inFlight.Inc() }

// RunFinished records a finished execution.
func (m *Executor) RunFinished(script string, d time.Duration) {
	m.inFlight.Dec()
	m.duration.WithLabelValues(script).Observe(d.Seconds())
}

// RegisterScripts registers scripthost_scripts, the number of scripts the
// catalog knows, read from count at every scrape.
func RegisterScripts(reg prometheus.Registerer, count func() int) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "scripthost_scripts",
		Help: "Scripts known by the catalog.",
	}, func() float64 { return float64(count()) }))
}

// RegisterSlots registers scripthost_executor_slots, the capacity of the
// executor node in this process (0 when it runs none).
func RegisterSlots(reg prometheus.Registerer, slots int) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "scripthost_executor_slots",
		Help: "Runs the executor node of this process may run at once (--max-concurrent).",
	}, func() float64 { return float64(slots) }))
}

// HTTP records the requests the HTTP API serves; it implements
// httpbridge.HTTPMetrics. Routes are router patterns and methods the
// standard ones, so the label sets stay bounded.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTP registers the HTTP metrics with reg.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scripthost_http_requests_total",
			Help: "HTTP requests served, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scripthost_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method and route pattern.",
			Buckets: runBuckets,
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// Route declares a route the API serves, so that its request counter is
// there, at zero, from the start (for its usual answer, code).
func (m *HTTP) Route(method, route string, code int) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(code))
}

// Served records one HTTP request.
func (m *HTTP) Served(method, route string, code int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}

// WarmParents are the figures of fork mode's per-script warm parents.
type WarmParents struct {
	Parents                   int
	MemoryBytes               int64
	Created, Evicted, Refused uint64
	Runs                      uint64
}

// RegisterWarmParents registers the warm-parent metrics, read from stats
// at every scrape: scripthost_warm_parents and
// scripthost_warm_parent_memory_bytes (gauges), and the counters
// scripthost_warm_parents_created_total, _evicted_total, _refused_total
// and scripthost_warm_parent_runs_total.
func RegisterWarmParents(reg prometheus.Registerer, stats func() WarmParents) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scripthost_warm_parents",
			Help: "Warm parents alive: forks of the warm interpreter that imported what one hot script imports.",
		}, func() float64 { return float64(stats().Parents) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scripthost_warm_parent_memory_bytes",
			Help: "Memory of the warm parents that is their own (not shared with the warm interpreter), as last measured.",
		}, func() float64 { return float64(stats().MemoryBytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scripthost_warm_parents_created_total",
			Help: "Warm parents made.",
		}, func() float64 { return float64(stats().Created) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scripthost_warm_parents_evicted_total",
			Help: "Warm parents ended: idle, over a bound, or replaced by a new version of their script.",
		}, func() float64 { return float64(stats().Evicted) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scripthost_warm_parents_refused_total",
			Help: "Script versions refused a warm parent (importing what they import writes output, or it alone is over the memory bound).",
		}, func() float64 { return float64(stats().Refused) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scripthost_warm_parent_runs_total",
			Help: "Runs served by a warm parent.",
		}, func() float64 { return float64(stats().Runs) }),
	)
}
