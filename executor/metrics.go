package executor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/scripthost/scripthost/model"
)

// Metrics receives what an executor node does, for a monitoring system.
// A nil Metrics in Config records nothing. Script names passed to it are
// only names the node found (it never sees a caller's made-up name), so a
// label made of them stays bounded; a request for an unknown or invalid
// name comes with script "".
type Metrics interface {
	// Answered counts one answered run request by its outcome (one of the
	// Outcome* words).
	Answered(script, outcome string)
	// Cache counts a run answered from the result cache (hit) or by a run
	// (miss), as the X-Cache header says.
	Cache(script string, hit bool)
	// QueueWaited is how long a request waited for a slot (also when it
	// gave up).
	QueueWaited(d time.Duration)
	// RunStarted and RunFinished bracket one execution of a script.
	RunStarted()
	RunFinished(script string, d time.Duration)
}

// Outcomes of a run request, as metrics and logs name them.
const (
	OutcomeOK          = "ok"          // exit code 0
	OutcomeError       = "error"       // non-zero exit code
	OutcomeSignal      = "signal"      // killed by a signal
	OutcomeTimeout     = "timeout"     // killed at the run's time limit
	OutcomeBadRequest  = "bad_request" // invalid name or body
	OutcomeNotFound    = "not_found"   // no such script
	OutcomeUnavailable = "unavailable" // no slot within the queue timeout
	OutcomeTooLarge    = "too_large"
	OutcomeDenied      = "denied"    // unauthorized or forbidden
	OutcomeCancelled   = "cancelled" // the caller went away or cancelled it
	OutcomeInternal    = "internal"
)

// OutcomeOf names the outcome of a run request.
func OutcomeOf(res model.Result, err error) string {
	switch {
	case err == nil && res.TimedOut:
		return OutcomeTimeout
	case err == nil && res.ExitCode == nil:
		return OutcomeSignal
	case err == nil && *res.ExitCode == 0:
		return OutcomeOK
	case err == nil:
		return OutcomeError
	case errors.Is(err, model.ErrBadRequest):
		return OutcomeBadRequest
	case errors.Is(err, model.ErrNotFound):
		return OutcomeNotFound
	case errors.Is(err, model.ErrUnavailable):
		return OutcomeUnavailable
	case errors.Is(err, model.ErrTimeout):
		return OutcomeTimeout
	case errors.Is(err, model.ErrTooLarge):
		return OutcomeTooLarge
	case errors.Is(err, model.ErrUnauthorized), errors.Is(err, model.ErrForbidden):
		return OutcomeDenied
	case errors.Is(err, model.ErrCancelled):
		return OutcomeCancelled
	}
	return OutcomeInternal
}

// runStats are the node's own counts, shown in the data of the run
// endpoint's $SRV.STATS, beside the micro figures (microsvc.go).
type runStats struct {
	mu          sync.Mutex
	requests    int64
	errors      int64
	nonZero     int64
	timeouts    int64
	cancelled   int64
	cacheHits   int64
	cacheMisses int64
	runs        int64
	runTime     time.Duration
	lastError   string
}

// RunStats is the data of the run endpoint in $SRV.STATS.
type RunStats struct {
	// Requests is the number of run requests answered.
	Requests int64 `json:"requests"`
	// Errors counts answers that were errors (400, 404, 503, 504 ...);
	// a script that exits non-zero is not one.
	Errors int64 `json:"errors"`
	// NonZeroExits counts results with a non-zero exit code or a signal.
	NonZeroExits int64 `json:"nonzero_exits"`
	// Timeouts counts runs killed at the time limit.
	Timeouts int64 `json:"timeouts"`
	// Cancelled counts requests whose caller went away or cancelled them
	// (not errors: the caller's doing).
	Cancelled   int64 `json:"cancelled"`
	CacheHits   int64 `json:"cache_hits"`
	CacheMisses int64 `json:"cache_misses"`
	// Runs is the number of executions; identical concurrent requests
	// share one, and cache hits need none.
	Runs int64 `json:"runs"`
	// RunTimeSeconds is the total, and AverageRunTimeSeconds the mean,
	// time of the executions.
	RunTimeSeconds        float64 `json:"run_time_seconds"`
	AverageRunTimeSeconds float64 `json:"average_run_time_seconds"`
	LastError             string  `json:"last_error,omitempty"`
	// Slots is the node's capacity; InUse and Waiting are the slots busy
	// and the requests waiting for one now.
	Slots   int `json:"slots"`
	InUse   int `json:"in_use"`
	Waiting int `json:"waiting"`
}

// Stats returns the node's own counts.
func (s *Service) Stats() RunStats {
	st := &s.stats
	st.mu.Lock()
	out := RunStats{
		Requests:       st.requests,
		Errors:         st.errors,
		NonZeroExits:   st.nonZero,
		Timeouts:       st.timeouts,
		Cancelled:      st.cancelled,
		CacheHits:      st.cacheHits,
		CacheMisses:    st.cacheMisses,
		Runs:           st.runs,
		RunTimeSeconds: st.runTime.Seconds(),
		LastError:      st.lastError,
	}
	st.mu.Unlock()
	if out.Runs > 0 {
		out.AverageRunTimeSeconds = out.RunTimeSeconds / float64(out.Runs)
	}
	out.Slots = s.cfg.MaxConcurrent
	out.InUse, out.Waiting = s.slots.busy()
	return out
}

// runEndpoint is the name of the run endpoint of the executor service.
const runEndpoint = "run"

// observe counts one answered request. out.Script is set when the node
// found the script.
func (s *Service) observe(name string, out Outcome, err error) {
	if errors.Is(err, errHandedOver) {
		return // the node that took it over answers and counts it
	}
	outcome := OutcomeOf(out.Result, err)
	st := &s.stats
	st.mu.Lock()
	st.requests++
	switch {
	case errors.Is(err, model.ErrCancelled):
		st.cancelled++
	case err != nil:
		st.errors++
		st.lastError = model.Message(err)
	case out.Result.TimedOut:
		st.errors++ // answered 504
		st.timeouts++
		st.lastError = model.MsgTimedOut
	case outcome != OutcomeOK:
		st.nonZero++
	}
	if err == nil {
		if out.Cached {
			st.cacheHits++
		} else {
			st.cacheMisses++
		}
	}
	st.mu.Unlock()

	m := s.cfg.Metrics
	if m == nil {
		return
	}
	m.Answered(out.Script, outcome)
	if err == nil {
		m.Cache(out.Script, out.Cached)
	}
}

// acquireTimed takes a slot with acquire and reports the wait, unless the
// run went to another node.
func (s *Service) acquireTimed(ctx context.Context, acquire func(context.Context) (bool, error)) (bool, error) {
	start := time.Now()
	handedOver, err := acquire(ctx)
	if !handedOver && s.cfg.Metrics != nil {
		s.cfg.Metrics.QueueWaited(time.Since(start))
	}
	return handedOver, err
}

// runJob runs one job on the runner and counts it.
func (s *Service) runJob(ctx context.Context, name string, job Job) (model.Result, error) {
	m := s.cfg.Metrics
	if m != nil {
		m.RunStarted()
	}
	start := time.Now()
	res, err := s.runner.Run(ctx, job)
	d := time.Since(start)
	if m != nil {
		m.RunFinished(name, d)
	}
	s.stats.mu.Lock()
	s.stats.runs++
	s.stats.runTime += d
	s.stats.mu.Unlock()
	return res, err
}
