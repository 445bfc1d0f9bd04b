package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// NATS is a client of the catalog, the executor nodes and the job service
// on the server's bus.
type NATS struct {
	nc  *nats.Conn
	cfg Config
	url string // cfg.URL without its secrets
	log *slog.Logger

	// denied holds, per subject, the requests waiting for an answer: a
	// permissions violation the server reports (asynchronously) for that
	// subject ends them at once instead of at their timeout.
	mu     sync.Mutex
	denied map[string][]chan error
}

var _ Client = (*NATS)(nil)

// NewNATS connects to the bus at cfg.URL.
func NewNATS(cfg Config) (*NATS, error) {
	name := cfg.Name
	if name == "" {
		name = "scripthost-client"
	}
	nc, err := bus.Connect(bus.ConnConfig{URL: cfg.URL, Name: name, User: cfg.User, Password: cfg.Password})
	if err != nil {
		return nil, model.Errorf(model.ErrUnavailable, "cannot reach the NATS bus at %s: %v", bus.Redact(cfg.URL), errors.Unwrap(err))
	}
	c := &NATS{nc: nc, cfg: cfg, url: bus.Redact(cfg.URL), log: cfg.logger(), denied: map[string][]chan error{}}
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.asyncError(err) })
	return c, nil
}

// Close closes the connection.
func (c *NATS) Close() { c.nc.Close() }

// violationSubject finds the subject in the server's permissions
// violation message: Permissions Violation for Publish to "script.create".
var violationSubject = regexp.MustCompile(`(?i)permissions violation for publish to "([^"]+)"`)

// asyncError ends the requests that a permissions violation is about.
func (c *NATS) asyncError(err error) {
	m := violationSubject.FindStringSubmatch(err.Error())
	if !errors.Is(err, nats.ErrPermissionViolation) || m == nil {
		c.log.Debug("nats", "err", err)
		return
	}
	user := "this NATS user"
	if c.cfg.User != "" {
		user = "the NATS user " + strconv.Quote(c.cfg.User)
	}
	denied := model.Errorf(model.ErrForbidden, "%s may not send on %s: the bus refused it at once (a run-only user may list, read and run scripts, not change them)", user, m[1])
	c.mu.Lock()
	waiting := c.denied[m[1]]
	delete(c.denied, m[1])
	c.mu.Unlock()
	for _, ch := range waiting {
		ch <- denied
	}
}

// watchDenied registers a request on subject; the channel gets the error
// of a permissions violation for it.
func (c *NATS) watchDenied(subject string) (<-chan error, func()) {
	ch := make(chan error, 1)
	c.mu.Lock()
	c.denied[subject] = append(c.denied[subject], ch)
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		list := c.denied[subject]
		for i, x := range list {
			if x == ch {
				c.denied[subject] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(c.denied[subject]) == 0 {
			delete(c.denied, subject)
		}
	}
}

// request sends one request; the reply's error headers become the error.
func (c *NATS) request(ctx context.Context, subject string, body []byte, hdr nats.Header) (*nats.Msg, error) {
	ctx, cancel := bound(ctx, c.cfg.Timeout)
	defer cancel()
	start := time.Now()
	denied, unwatch := c.watchDenied(subject)
	defer unwatch()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	refused := make(chan error, 1) // the violation, or nil
	go func() {
		select {
		case e := <-denied:
			stop()
			refused <- e
		case <-rctx.Done():
			refused <- nil
		}
	}()
	reply, err := c.nc.RequestMsgWithContext(rctx, &nats.Msg{Subject: subject, Data: body, Header: hdr})
	stop()
	if e := <-refused; e != nil && err != nil {
		c.log.Debug("nats request", "subject", subject, "took", time.Since(start).Round(time.Microsecond), "err", e)
		return nil, e
	}
	c.log.Debug("nats request", "subject", subject, "took", time.Since(start).Round(time.Microsecond), "err", err)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		who := "catalog"
		switch {
		case strings.HasPrefix(subject, bus.RunPrefix):
			who = "executor"
		case strings.HasPrefix(subject, "script.job."):
			who = "job service"
		}
		return nil, model.Errorf(model.ErrUnavailable, "no %s is serving %s on the bus at %s", who, subject, c.url)
	case err != nil && ctx.Err() != nil, errors.Is(err, nats.ErrTimeout):
		return nil, gaveUp(ctx, c.cfg.Timeout, "on "+subject+" ", "")
	case err != nil:
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	if err := bus.ReplyError(reply); err != nil {
		return reply, err
	}
	return reply, nil
}

func (c *NATS) script(ctx context.Context, subject string, body []byte) (model.Script, error) {
	reply, err := c.request(ctx, subject, body, nil)
	if err != nil {
		return model.Script{}, err
	}
	return decodeAs[model.Script](reply.Data, "a script")
}

// List answers the names of the scripts, sorted.
func (c *NATS) List(ctx context.Context) ([]string, error) {
	reply, err := c.request(ctx, bus.ListSubject, nil, nil)
	if err != nil {
		return nil, err
	}
	return decodeAs[[]string](reply.Data, "a list of names")
}

// Get answers a script.
func (c *NATS) Get(ctx context.Context, name string) (model.Script, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Script{}, err
	}
	return c.script(ctx, bus.GetSubject(name), nil)
}

// Create creates a script.
func (c *NATS) Create(ctx context.Context, name, code string) (model.Script, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Script{}, err
	}
	body, _ := json.Marshal(map[string]string{"name": name, "code": code})
	return c.script(ctx, bus.CreateSubject, body)
}

// Update replaces the code of a script.
func (c *NATS) Update(ctx context.Context, name, code string) (model.Script, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Script{}, err
	}
	body, _ := json.Marshal(map[string]string{"code": code})
	return c.script(ctx, bus.UpdateSubject(name), body)
}

// Delete deletes a script.
func (c *NATS) Delete(ctx context.Context, name string) error {
	if err := model.ValidateName(name); err != nil {
		return err
	}
	_, err := c.request(ctx, bus.DeleteSubject(name), nil, nil)
	return err
}

// Run runs a script: a plain run is one request and its reply; a streamed
// run gets, in an inbox of this client, a start message (the run's id, by
// which it is cancelled when ctx ends), the chunks of output, then the
// result.
func (c *NATS) Run(ctx context.Context, name string, req model.RunRequest, opts RunOptions) (Answer, error) {
	if err := model.ValidateName(name); err != nil {
		return Answer{}, err
	}
	body, err := runBody(req)
	if err != nil {
		return Answer{}, err
	}
	subject := bus.RunSubject(name)
	hdr := nats.Header{}
	if opts.NoCache {
		hdr.Set(bus.HeaderNoCache, "true")
	}
	if !opts.streamed() {
		reply, err := c.request(ctx, subject, body, hdr)
		if reply == nil {
			return Answer{}, err
		}
		return answerOf(reply, err)
	}
	ctx, cancel := bound(ctx, c.cfg.Timeout)
	defer cancel()
	hdr.Set(bus.HeaderStream, "true")
	msg := &nats.Msg{Subject: subject, Reply: c.nc.NewInbox(), Header: hdr, Data: body}
	sub, err := c.nc.SubscribeSync(msg.Reply)
	if err != nil {
		return Answer{}, fmt.Errorf("%s: %w", subject, err)
	}
	defer sub.Unsubscribe()
	start := time.Now()
	if err := c.nc.PublishMsg(msg); err != nil {
		return Answer{}, fmt.Errorf("%s: %w", subject, err)
	}
	var runID string
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if runID != "" {
				// Stop the run on its node, and say so only once it is.
				cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, cerr := c.nc.RequestWithContext(cctx, bus.CancelSubject(runID), nil)
				cancel()
				c.log.Debug("cancel", "run", runID, "err", cerr)
			}
			return Answer{}, gaveUp(ctx, c.cfg.Timeout, "", "; the run was cancelled")
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return Answer{}, model.Errorf(model.ErrUnavailable, "no executor is serving %s on the bus at %s", subject, c.url)
		}
		switch m.Header.Get(bus.HeaderEvent) {
		case bus.EventStart:
			runID = m.Header.Get(bus.HeaderRunID)
			c.log.Debug("started", "script", name, "node", m.Header.Get(bus.HeaderNode), "run", runID)
		case bus.EventStdout:
			opts.write("stdout", m.Data)
		case bus.EventStderr:
			opts.write("stderr", m.Data)
		default:
			c.log.Debug("nats request", "subject", subject, "took", time.Since(start).Round(time.Microsecond))
			return answerOf(m, bus.ReplyError(m))
		}
	}
}

// answerOf reads a run's reply.
func answerOf(m *nats.Msg, err error) (Answer, error) {
	ans := Answer{Node: m.Header.Get(bus.HeaderNode), Cache: m.Header.Get(bus.HeaderCache)}
	ans.Result, err = decodeRun(m.Data, err)
	return ans, err
}

// SubmitJob queues a job.
func (c *NATS) SubmitJob(ctx context.Context, name string, req model.JobRequest, opts JobOptions) (model.Job, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Job{}, err
	}
	body, err := jobBody(req)
	if err != nil {
		return model.Job{}, err
	}
	hdr := nats.Header{}
	if opts.NoCache {
		hdr.Set(bus.HeaderNoCache, "true")
	}
	if opts.IdempotencyKey != "" {
		hdr.Set(bus.HeaderIdempotencyKey, opts.IdempotencyKey)
	}
	if opts.CallbackURL != "" {
		hdr.Set(bus.HeaderCallbackURL, opts.CallbackURL)
	}
	return c.job(ctx, bus.JobSubmitSubject(name), body, hdr)
}

func (c *NATS) job(ctx context.Context, subject string, body []byte, hdr nats.Header) (model.Job, error) {
	reply, err := c.request(ctx, subject, body, hdr)
	if err != nil {
		return model.Job{}, err
	}
	return decodeAs[model.Job](reply.Data, "a job")
}

// Job answers a job.
func (c *NATS) Job(ctx context.Context, id string) (model.Job, error) {
	if err := model.ValidateJobID(id); err != nil {
		return model.Job{}, err
	}
	return c.job(ctx, bus.JobGetSubject(id), nil, nil)
}

// CancelJob cancels a job.
func (c *NATS) CancelJob(ctx context.Context, id string) (model.Job, error) {
	if err := model.ValidateJobID(id); err != nil {
		return model.Job{}, err
	}
	return c.job(ctx, bus.JobCancelSubject(id), nil, nil)
}

// Jobs lists the jobs.
func (c *NATS) Jobs(ctx context.Context, filter model.JobListRequest) ([]model.Job, error) {
	body, _ := json.Marshal(filter)
	reply, err := c.request(ctx, bus.JobListSubject, body, nil)
	if err != nil {
		return nil, err
	}
	list, err := decodeAs[model.JobList](reply.Data, "a list of jobs")
	return list.Jobs, err
}
