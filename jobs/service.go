package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
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
			`the run body {data, args}, plus "timeout" ("10m"); headers Idempotency-Key, X-Callback-Url, X-Scripthost-No-Cache; the script name ends the subject`,
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

// answer runs op and replies on the bus itself: it runs in a goroutine of
// its own, after micro's handler returned (micro's Respond and Error may
// only be called from the handler).
func (m *Manager) answer(req micro.Request, name string, op func(context.Context, micro.Request) (any, error)) {
	defer func() {
		if r := recover(); r != nil {
			m.cfg.Log.Error("job service: panic", "endpoint", name, "subject", req.Subject(), "panic", r, "stack", string(debug.Stack()))
			m.reply(req, name, nil, fmt.Errorf("panic: %v", r))
		}
	}()
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	v, err := op(ctx, req)
	var body []byte
	if err == nil {
		body, err = json.Marshal(v)
	}
	m.reply(req, name, body, err)
}

// reply sends body, or err in the micro convention (headers
// Nats-Service-Error-Code and Nats-Service-Error, body {"error": ...});
// internal details stay in the log.
func (m *Manager) reply(req micro.Request, endpoint string, body []byte, err error) {
	if req.Reply() == "" || bus.ReservedReply(req.Reply()) {
		return // never an answer on the bus's own subjects
	}
	msg := &nats.Msg{Data: body}
	if err != nil {
		if model.Code(err) >= 500 {
			m.cfg.Log.Error("job service: request failed", "endpoint", endpoint, "subject", req.Subject(), "error", err)
		}
		msg = bus.ErrorMsg(err, nil)
	}
	msg.Subject = req.Reply()
	if perr := m.nc.PublishMsg(msg); perr != nil {
		m.cfg.Log.Warn("job service: cannot send the reply", "endpoint", endpoint, "bytes", len(msg.Data), "error", perr)
		if err == nil {
			m.reply(req, endpoint, nil, fmt.Errorf("send reply of %d bytes: %w", len(body), perr))
		}
	}
}

func (m *Manager) opSubmit(ctx context.Context, req micro.Request) (any, error) {
	name, ok := bus.NameFrom(req.Subject(), bus.JobSubmitPrefix)
	if !ok {
		return nil, model.Errorf(model.ErrBadRequest, "subject %q names no script: use %s<name>", req.Subject(), bus.JobSubmitPrefix)
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
	lr, err := model.DecodeJobList(req.Data())
	if err != nil {
		return nil, err
	}
	return m.List(ctx, lr)
}
