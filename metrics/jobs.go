package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// JobStats is what the job metrics show, read at each scrape.
type JobStats struct {
	// ByStatus counts the jobs kept, by status; every status is shown,
	// with 0 for those without jobs.
	ByStatus map[string]int
	// QueueDepth is the number of jobs in the work queue that no node has
	// taken yet.
	QueueDepth int
	// OldestQueued is the age of the oldest queued job (0: none).
	OldestQueued time.Duration
}

// RegisterJobs registers the job metrics; stats is called at each scrape.
func RegisterJobs(reg prometheus.Registerer, statuses []string, stats func() JobStats) {
	reg.MustRegister(&jobCollector{statuses: statuses, stats: stats})
}

var (
	jobsDesc = prometheus.NewDesc("scripthost_jobs",
		"Jobs kept (for --job-ttl after they end), by status.", []string{"status"}, nil)
	queueDepthDesc = prometheus.NewDesc("scripthost_job_queue_depth",
		"Jobs in the work queue that no executor node has taken yet.", nil, nil)
	oldestDesc = prometheus.NewDesc("scripthost_job_oldest_queued_seconds",
		"Age of the oldest queued job, in seconds (0 when none is queued).", nil, nil)
)

type jobCollector struct {
	statuses []string
	stats    func() JobStats
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- queueDepthDesc
	ch <- oldestDesc
}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	for _, s := range c.statuses {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(st.ByStatus[s]), s)
	}
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(st.QueueDepth))
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, st.OldestQueued.Seconds())
}
