package httpbridge

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// GET /jobs/{id}/events: a job's output as server-sent events, the same
// events as a streamed run (stdout, stderr, then one result), from the
// job's start and live. The job service keeps every job's state changes
// and output chunks in the stream SCRIPTHOST_JOB_EVENTS; an ordered
// consumer reads this job's from the first, at the pace of the client
// (JetStream holds them, so a slow client makes nobody buffer), and the
// stream ends with the job.

// jobKeepAlive is how often a comment line goes out while a job is quiet,
// so that proxies keep the connection open.
const jobKeepAlive = 15 * time.Second

func (b *Bridge) jobEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	job, _, err := b.jobRequest(r.Context(), bus.JobGetSubject(id), nil, nil)
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		// The headers of the stream, without following the job.
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	nc, ok := b.bus.(*nats.Conn)
	if !ok {
		return model.Errorf(model.ErrUnavailable, "job events need the bridge's own NATS connection")
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return model.Errorf(model.ErrUnavailable, "the job store (JetStream) is not available: %v", err)
	}
	octx, ocancel := context.WithTimeout(ctx, b.cfg.CatalogTimeout)
	defer ocancel()
	cons, err := js.OrderedConsumer(octx, bus.JobEventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{bus.JobEventSubject(job.Script, id), bus.JobOutputPrefix + id + ".>"},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return model.Errorf(model.ErrUnavailable, "the job store (JetStream) is not available: %v", err)
	}
	sw := &sseWriter{w: w, rc: http.NewResponseController(w)}
	if job.Status.Ended() {
		// Nothing kept for it any more (older than the events, or dropped):
		// the record still has the result.
		if info, err := cons.Info(octx); err == nil && info.NumPending == 0 {
			sw.start(job.Node, "")
			return sw.jobResult(job)
		}
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return model.Errorf(model.ErrUnavailable, "the job store (JetStream) is not available: %v", err)
	}
	defer it.Stop()
	msgs := make(chan jetstream.Msg) // unbuffered: read at the client's pace
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	sw.start(job.Node, "")
	_ = sw.flush()
	// Output of an earlier attempt than the job's latest is not shown.
	attempt := job.Attempts
	keep := time.NewTicker(jobKeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-keep.C:
			if _, err := sw.w.Write([]byte(": keep-alive\n\n")); err != nil || sw.flush() != nil {
				return nil
			}
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() == nil {
					msg, _ := json.Marshal(model.ErrorBody{Error: "the job store (JetStream) went away"})
					_ = sw.event("error", msg)
					_ = sw.flush()
				}
				return nil
			}
			subject := m.Subject()
			if strings.HasPrefix(subject, bus.JobEventPrefix) {
				var j model.Job
				if json.Unmarshal(m.Data(), &j) != nil {
					continue
				}
				attempt = max(attempt, j.Attempts)
				if j.Status.Ended() {
					return sw.jobResult(j)
				}
				continue
			}
			n, _ := strconv.Atoi(m.Headers().Get(bus.HeaderAttempt))
			if n < attempt {
				continue
			}
			if n > attempt {
				// A new attempt runs the job again from its start.
				attempt = n
				_, _ = sw.w.Write([]byte(": attempt " + strconv.Itoa(n) + "\n\n"))
			}
			name := subject[strings.LastIndexByte(subject, '.')+1:]
			if name != bus.EventStdout && name != bus.EventStderr {
				continue
			}
			if err := sw.items([]sseItem{{event: name, data: m.Data()}}); err != nil || sw.flush() != nil {
				return nil // the client is gone
			}
		}
	}
}

// jobResult ends a job's events: the run's result (a timeout's with its
// error, as /run answers it), or the reason a job ended without one.
func (s *sseWriter) jobResult(job model.Job) error {
	var data []byte
	switch {
	case job.Result != nil && job.Result.TimedOut:
		data = model.ResultErrorBody(model.TimedOut(), *job.Result)
	case job.Result != nil:
		data, _ = json.Marshal(job.Result)
	default:
		why := job.Error
		if why == "" {
			why = "job " + string(job.Status)
		}
		data, _ = json.Marshal(struct {
			Error  string          `json:"error"`
			Status model.JobStatus `json:"status"`
		}{why, job.Status})
	}
	_ = s.event("result", data)
	_ = s.flush()
	return nil
}
