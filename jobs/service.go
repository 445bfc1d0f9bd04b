package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/scripthost/scripthost/bus"
)

// ServiceName is the job service's name among NATS services.
const ServiceName = "scripthost-jobs"

// maxInFlight bounds the requests the service answers at once.
const maxInFlight = 64

// Serve answers the job subjects (script.job.submit.<name>, get, cancel,
// list) as a NATS micro service, in the queue group bus.JobsQueue.
func (m *Manager) Serve(version string) error {
	svc, err := micro.AddService(m.nc, micro.Config{
		Name:        ServiceName,
		Version:     version,
		Description: "scripthost durable jobs: submit, read, cancel and list asynchronous runs kept in JetStream",
		QueueGroup:  bus.JobsQueue,
	})
	if err != nil {
		return fmt.Errorf("job service: %w", err)
	}
	slots := make(chan struct{}, maxInFlight)
	endpoints := []struct {
		name, subject, request, response string
		op                               func(ctx context.Context, req micro.Request) (any, error)
	}{
		{"submit", bus.JobSubmitPrefix + ">",
			`the run body {data, args, version}, plus "timeout" ("10m"); headers Idempotency-Key, X-Callback-Url, X-Scripthost-No-Cache; the script name ends the subject`,
			`the job {"id","script","status","attempts","node","created_at","started_at","finished_at","result",...}`, m.opSubmit},
		{"get", bus.JobGetPrefix + "*", "empty; the job id ends the subject", "the job", m.opGet},
		{"cancel", bus.JobCancelPrefix + "*", "empty; the job id ends the subject", "the job, now cancelled (or unchanged if it had ended)", m.opCancel},
		{"list", bus.JobListSubject, `{"script","status","limit"}, each optional`, `{"jobs": [job...]}, newest first`, m.opList},
	}
	for _, ep := range endpoints {
		op := ep.op
		name := ep.name
		handler := micro.HandlerFunc(func(req micro.Request) {
			slots <- struct{}{}
			go func() {
				defer func() { <-slots }()
				m.answer(req, name, op)
			}()
		})
		err := svc.AddEndpoint(ep.name, handler,
			micro.WithEndpointSubject(ep.subject),
			micro.WithEndpointQueueGroup(bus.JobsQueue),
			micro.WithEndpointMetadata(map[string]string{
				"request":  ep.request,
				"response": ep.response,
				"errors":   `headers Nats-Service-Error-Code (400, 404, 413, 503) and Nats-Service-Error; body {"error": "..."}`,
			}))
		if err != nil {
			svc.Stop()
			return fmt.Errorf("job service: endpoint %s: %w", ep.name, err)
		}
	}
	if err := m.nc.Flush(); err != nil {
		svc.Stop()
		return fmt.Errorf("job service: %w", err)
	}
	m.svc = svc
	return nil
}

func (m *Manager) answer(req micro.Request, name string, op func(context.Context, micro.Request) (any, error)) {
	defer func() {
		if r := recover(); r != nil {
			m.cfg.Log.Error("job service: panic", "endpoint", name, "subject", req.Subject(), "panic", r, "stack", string(debug.Stack()))
			m.replyError(req, name, fmt.Errorf("panic: %v", r))
		}
	}()
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	v, err := op(ctx, req)
	if err != nil {
		m.replyError(req, name, err)
		return
	}
	body, err := json.Marshal(v)
	if err != nil {
		m.replyError(req, name, err)
		return
	}
	if err := req.Respond(body); err != nil {
		m.replyError(req, name, fmt.Errorf("send reply of %d bytes: %w", len(body), err))
	}
}

func (m *Manager) replyError(req micro.Request, endpoint string, err error) {
	code, msg := bus.Code(err), bus.Message(err)
	if code >= 500 {
		m.cfg.Log.Error("job service: request failed", "endpoint", endpoint, "subject", req.Subject(), "error", err)
	}
	body, _ := json.Marshal(bus.ErrorBody{Error: msg})
	if rerr := req.Error(strconv.Itoa(code), msg, body); rerr != nil {
		m.cfg.Log.Warn("job service: cannot send error reply", "endpoint", endpoint, "error", rerr)
	}
}

func (m *Manager) opSubmit(ctx context.Context, req micro.Request) (any, error) {
	name, ok := bus.NameFrom(req.Subject(), bus.JobSubmitPrefix)
	if !ok {
		return nil, bus.Errorf(bus.ErrBadRequest, "subject %q names no script: use %s<name>", req.Subject(), bus.JobSubmitPrefix)
	}
	h := req.Headers()
	return m.Submit(ctx, Submit{
		Script:         name,
		Body:           req.Data(),
		IdempotencyKey: h.Get(bus.HeaderIdempotencyKey),
		CallbackURL:    h.Get(bus.HeaderCallbackURL),
		NoCache:        h.Get(bus.HeaderNoCache) == "true",
	})
}

func (m *Manager) opGet(ctx context.Context, req micro.Request) (any, error) {
	id, _ := bus.NameFrom(req.Subject(), bus.JobGetPrefix)
	return m.Get(ctx, id)
}

func (m *Manager) opCancel(ctx context.Context, req micro.Request) (any, error) {
	id, _ := bus.NameFrom(req.Subject(), bus.JobCancelPrefix)
	return m.Cancel(ctx, id)
}

func (m *Manager) opList(ctx context.Context, req micro.Request) (any, error) {
	var lr bus.JobListRequest
	if body := req.Data(); len(body) > 0 {
		if err := json.Unmarshal(body, &lr); err != nil {
			return nil, bus.Errorf(bus.ErrBadRequest, `invalid JSON body: want {"script","status","limit"}`)
		}
	}
	return m.List(ctx, lr)
}
