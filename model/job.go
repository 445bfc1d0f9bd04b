package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// JobStatus is the state of a job.
type JobStatus string

// The states of a job. queued → running → succeeded | failed | timed_out;
// queued or running → cancelled; running → queued when its attempt could
// not finish (the node died or the run could not start), until dead.
const (
	JobQueued    JobStatus = "queued"
	JobRunning   JobStatus = "running"
	JobSucceeded JobStatus = "succeeded"
	JobFailed    JobStatus = "failed"
	JobTimedOut  JobStatus = "timed_out"
	JobCancelled JobStatus = "cancelled"
	JobDead      JobStatus = "dead"
)

// JobStatuses lists every state, in the order of the state machine.
var JobStatuses = []JobStatus{JobQueued, JobRunning, JobSucceeded, JobFailed, JobTimedOut, JobCancelled, JobDead}

// Ended reports a state no job leaves.
func (s JobStatus) Ended() bool {
	switch s {
	case JobSucceeded, JobFailed, JobTimedOut, JobCancelled, JobDead:
		return true
	}
	return false
}

// Valid reports a known state.
func (s JobStatus) Valid() bool {
	for _, v := range JobStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Job is a durable, asynchronous run of a script.
type Job struct {
	ID     string    `json:"id"`
	Script string    `json:"script"`
	Status JobStatus `json:"status"`
	// Attempts counts the deliveries of the job to executor nodes.
	Attempts int `json:"attempts"`
	// Node is the executor node of the last attempt ("" before one).
	Node       string `json:"node"`
	CreatedAt  Time   `json:"created_at"`
	StartedAt  *Time  `json:"started_at"`
	FinishedAt *Time  `json:"finished_at"`
	// Result is the run's result once it ended (null before).
	Result *Result `json:"result"`
	// Cached reports a result served from the result cache.
	Cached bool `json:"cached,omitempty"`
	// Timeout is the job's time limit, as a Go duration ("30s").
	Timeout string `json:"timeout"`
	// Error says why a job is dead or cancelled, or why its last attempt
	// did not finish.
	Error          string `json:"error,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	CallbackURL    string `json:"callback_url,omitempty"`
}

// TimeLayout is how a job's times are written: UTC, with microseconds
// always shown, so that every one has the same width and sorting them as
// strings sorts them in time (RFC3339Nano drops trailing zeros: "05.1Z"
// sorted after "05.09Z").
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// Time is a job's time: a time.Time written in JSON as TimeLayout, and
// read from any RFC 3339 time (the variable width written before too).
type Time struct{ time.Time }

// MarshalJSON writes t as TimeLayout, in UTC.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

// String is t as its JSON shows it: TimeLayout, in UTC.
func (t Time) String() string { return t.UTC().Format(TimeLayout) }

// UnmarshalJSON reads an RFC 3339 time, with a fraction of any length or
// none, in UTC or with an offset.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// JobList is the answer of a job listing.
type JobList struct {
	Jobs []Job `json:"jobs"`
}

// JobListRequest filters a job listing; every field is optional.
type JobListRequest struct {
	Script string    `json:"script,omitempty"`
	Status JobStatus `json:"status,omitempty"`
	Limit  int       `json:"limit,omitempty"`
}

// DecodeJobList parses the body of script.job.list: empty, or an object
// of the fields of JobListRequest, each optional; another field is an
// error naming it, as in every request body.
func DecodeJobList(body []byte) (JobListRequest, error) {
	var req JobListRequest
	if isEmpty(body) {
		return req, nil
	}
	raw, err := decodeFields(body, "script", "status", "limit")
	if err != nil {
		return req, err
	}
	for _, f := range []struct {
		name, what string
		to         any
	}{{"script", "a string", &req.Script}, {"status", "a string", &req.Status}, {"limit", "an integer", &req.Limit}} {
		if v, ok := raw[f.name]; ok && json.Unmarshal(v, f.to) != nil {
			return JobListRequest{}, Errorf(ErrBadRequest, "invalid JSON body: field %q must be %s", f.name, f.what)
		}
	}
	return req, nil
}

// secondsDuration is n seconds, which must come to at least a nanosecond
// and fit a time.Duration.
func secondsDuration(n float64) (time.Duration, error) {
	if !(n > 0 && n < float64(math.MaxInt64/time.Second)) {
		return 0, errors.New("out of range")
	}
	d := time.Duration(n * float64(time.Second))
	if d <= 0 {
		return 0, errors.New("under a nanosecond")
	}
	return d, nil
}

var jobIDRule = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

// ValidateJobID checks that id can be a job's: it is then a single
// subject token and a single path segment.
func ValidateJobID(id string) error {
	if !jobIDRule.MatchString(id) {
		return Errorf(ErrNotFound, "no job %q: a job id is 1 to 64 lower-case letters and digits", id)
	}
	return nil
}

// JobRequest is the body of a job submit: a run request and the job's own
// time limit (zero: the server's default).
type JobRequest struct {
	RunRequest
	Timeout time.Duration
}

// jobFields are the fields a job submit body may have.
var jobFields = map[string]bool{"data": true, "args": true, "timeout": true}

// DecodeJobRequest parses a job submit body: a run request body with an
// optional "timeout" (a Go duration such as "90s" or "10m", or a number
// of seconds). An unknown
// field is an error naming it. Errors wrap ErrBadRequest.
func DecodeJobRequest(body []byte) (JobRequest, error) {
	var req JobRequest
	if isEmpty(body) {
		return req, nil
	}
	var raw map[string]json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		return req, err
	}
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !jobFields[k] {
			return req, Errorf(ErrBadRequest, "unknown field %q: a job body has data, args and timeout", k)
		}
	}
	if t, ok := raw["timeout"]; ok && !bytes.Equal(bytes.TrimSpace(t), []byte("null")) {
		var text string
		var seconds float64
		switch {
		case json.Unmarshal(t, &text) == nil:
			d, err := time.ParseDuration(text)
			if n, nerr := strconv.ParseFloat(text, 64); err != nil && nerr == nil {
				d, err = secondsDuration(n) // "30": seconds, as the flags take them
			}
			if err != nil || d <= 0 {
				return req, Errorf(ErrBadRequest, `"timeout" %q: want a positive duration such as "90s" or "10m", or seconds`, text)
			}
			req.Timeout = d
		case json.Unmarshal(t, &seconds) == nil:
			// A number is seconds, as the flags' times may be.
			d, err := secondsDuration(seconds)
			if err != nil {
				return req, Errorf(ErrBadRequest, `"timeout" %s: want a positive number of seconds, or a duration such as "90s"`, t)
			}
			req.Timeout = d
		default:
			return req, Errorf(ErrBadRequest, `"timeout" must be a duration string such as "90s" or "10m", or a number of seconds`)
		}
	}
	delete(raw, "timeout") // a job's own field; the rest is a run's
	run, err := runFromRaw(raw)
	if err != nil {
		return req, err
	}
	req.RunRequest = run
	return req, nil
}
