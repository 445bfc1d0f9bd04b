package httpbridge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// Durable jobs: each endpoint is one request to the job service on the
// bus (package jobs).

// maxWait bounds ?wait= on POST /run/{name}.
const maxWait = time.Hour

// Subscriber lets the bridge follow a job's events; *nats.Conn is one.
// Without it, ?wait polls the job instead.
type Subscriber interface {
	ChanSubscribe(subject string, ch chan *nats.Msg) (*nats.Subscription, error)
}

// jobHeaders carries the job headers and the caller's cache choice onto
// the bus.
func jobHeaders(r *http.Request) nats.Header {
	hdr := runHeaders(r)
	for _, h := range []string{bus.HeaderIdempotencyKey, bus.HeaderCallbackURL} {
		if v := r.Header.Get(h); v != "" {
			hdr.Set(h, v)
		}
	}
	return hdr
}

func (b *Bridge) jobRequest(ctx context.Context, subject string, body []byte, hdr nats.Header) (model.Job, []byte, error) {
	reply, err := b.request(ctx, b.cfg.CatalogTimeout, subject, body, hdr)
	if err != nil {
		return model.Job{}, nil, err
	}
	var job model.Job
	if err := json.Unmarshal(reply.Data, &job); err != nil {
		return model.Job{}, nil, err
	}
	return job, reply.Data, nil
}

// submit sends a job submit for the {name} of the path and its checked
// body.
func (b *Bridge) submit(w http.ResponseWriter, r *http.Request, name string) (model.Job, []byte, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Job{}, nil, err
	}
	body, err := b.readBody(w, r)
	if err != nil {
		return model.Job{}, nil, err
	}
	if _, err := model.DecodeJobRequest(body); err != nil {
		return model.Job{}, nil, err
	}
	return b.jobRequest(r.Context(), bus.JobSubmitSubject(name), body, jobHeaders(r))
}

func writeJob(w http.ResponseWriter, code int, job model.Job, body []byte) {
	w.Header().Set("Location", "/jobs/"+job.ID)
	writeJSONBytes(w, code, body)
}

func (b *Bridge) submitJob(w http.ResponseWriter, r *http.Request) error {
	if err := onlyQuery(r, r.URL.Query()); err != nil {
		return err
	}
	job, body, err := b.submit(w, r, pathParam(r, "id"))
	if err != nil {
		return err
	}
	writeJob(w, http.StatusAccepted, job, body)
	return nil
}

func jobID(r *http.Request) (string, error) {
	id := pathParam(r, "id")
	return id, model.ValidateJobID(id)
}

func (b *Bridge) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	_, body, err := b.jobRequest(r.Context(), bus.JobGetSubject(id), nil, nil)
	if err != nil {
		return err
	}
	writeJSONBytes(w, http.StatusOK, body)
	return nil
}

func (b *Bridge) cancelJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	_, body, err := b.jobRequest(r.Context(), bus.JobCancelSubject(id), nil, nil)
	if err != nil {
		return err
	}
	writeJSONBytes(w, http.StatusAccepted, body)
	return nil
}

func (b *Bridge) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyQuery(r, q, "script", "status", "limit"); err != nil {
		return err
	}
	req := model.JobListRequest{Script: q.Get("script"), Status: model.JobStatus(q.Get("status"))}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return model.Errorf(model.ErrBadRequest, "limit %q: want a whole number", l)
		}
		req.Limit = n
	}
	body, _ := json.Marshal(req)
	reply, err := b.request(r.Context(), b.cfg.CatalogTimeout, bus.JobListSubject, body, nil)
	if err != nil {
		return err
	}
	writeJSONBytes(w, http.StatusOK, reply.Data)
	return nil
}

// parseWait reads ?wait=D: a Go duration ("30s") or a number of seconds.
func parseWait(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, nerr := strconv.ParseFloat(v, 64)
		if nerr != nil {
			return 0, model.Errorf(model.ErrBadRequest, "wait %q: want a duration such as 30s or 2m", v)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 || d > maxWait {
		return 0, model.Errorf(model.ErrBadRequest, "wait %q: want a duration from 0 to %s", v, maxWait)
	}
	return d, nil
}

// runWait answers POST /run/{name}?wait=D: the run is a job; if it ends
// within D the answer is the run's, else 202 with the job, which goes on.
func (b *Bridge) runWait(w http.ResponseWriter, r *http.Request, q url.Values) error {
	wait, err := parseWait(q.Get("wait"))
	if err != nil {
		return err
	}
	job, body, err := b.submit(w, r, pathParam(r, "name"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	if !job.Status.Ended() {
		job, body = b.follow(ctx, job, body)
	}
	if !job.Status.Ended() {
		writeJob(w, http.StatusAccepted, job, body)
		return nil
	}
	return b.answerEnded(w, job)
}

// follow waits for the job to end or ctx to end, and answers its last
// known state.
func (b *Bridge) follow(ctx context.Context, job model.Job, body []byte) (model.Job, []byte) {
	var events chan *nats.Msg
	if s, ok := b.bus.(Subscriber); ok {
		events = make(chan *nats.Msg, 16)
		sub, err := s.ChanSubscribe(bus.JobEventSubject(job.Script, job.ID), events)
		if err == nil {
			defer sub.Unsubscribe()
		} else {
			events = nil
		}
	}
	// Polled too: the job may have ended before the subscription, and an
	// event may be missed.
	poll := time.NewTicker(time.Second)
	if events == nil {
		poll.Reset(100 * time.Millisecond)
	}
	defer poll.Stop()
	get := func() {
		if j, bd, err := b.jobRequest(ctx, bus.JobGetSubject(job.ID), nil, nil); err == nil {
			job, body = j, bd
		}
	}
	get()
	for !job.Status.Ended() {
		select {
		case m := <-events:
			var j model.Job
			if json.Unmarshal(m.Data, &j) == nil {
				job, body = j, m.Data
			}
		case <-poll.C:
			get()
		case <-ctx.Done():
			return job, body
		}
	}
	return job, body
}

// answerEnded answers an ended job as POST /run/{name} answers a run.
func (b *Bridge) answerEnded(w http.ResponseWriter, job model.Job) error {
	w.Header().Set("X-Scripthost-Job", job.ID)
	if job.Result == nil {
		// Dead or cancelled: it did not run to its end.
		return model.Errorf(model.ErrUnavailable, "job %s %s: %s", job.ID, job.Status, job.Error)
	}
	if job.Node != "" {
		w.Header().Set(bus.HeaderNode, job.Node)
	}
	cache := "miss"
	if job.Cached {
		cache = "hit"
	}
	w.Header().Set(bus.HeaderCache, cache)
	if job.Status == model.JobTimedOut {
		timedOut := model.TimedOut()
		return &statusError{err: timedOut, body: model.ResultErrorBody(timedOut, *job.Result)}
	}
	writeJSON(w, http.StatusOK, job.Result)
	return nil
}
