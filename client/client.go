// Package client is the Go client of a scripthost server, over its HTTP API
// (NewHTTP) or its NATS bus (NewNATS), behind one interface. Errors are
// *model.Error values: model.Code says their status (404 for no such
// script, 503 for no executor or a full queue, ...), errors.Is tells their
// kind (model.ErrNotFound ...). It builds wherever Go does, so that the
// scripthost commands run, ls, cat, put, rm and job work from a laptop.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/scripthost/scripthost/model"
)

// Client is a scripthost server. Names are checked against the name rule
// (model.ValidateName) and job ids against model.ValidateJobID before any
// request goes out.
type Client interface {
	// List answers the names of the scripts, sorted.
	List(ctx context.Context) ([]string, error)
	Get(ctx context.Context, name string) (model.Script, error)
	// Create fails with an error wrapping model.ErrExists when the
	// script exists.
	Create(ctx context.Context, name, code string) (model.Script, error)
	Update(ctx context.Context, name, code string) (model.Script, error)
	Delete(ctx context.Context, name string) error
	// Run runs a script and answers its result, also when the script
	// timed out (Result.TimedOut; the server answered 504). With
	// opts.Stdout or opts.Stderr set, the run is streamed: its output
	// goes there as the script writes it. When ctx ends first, a streamed
	// run is cancelled on the server (its processes killed), and Run
	// returns an error wrapping model.ErrTimeout (Config.Timeout or a
	// deadline of ctx) or model.ErrCancelled.
	Run(ctx context.Context, name string, req model.RunRequest, opts RunOptions) (Answer, error)
	// SubmitJob queues a durable run of a script (req.Timeout: its time
	// limit, zero for the server's).
	SubmitJob(ctx context.Context, name string, req model.JobRequest, opts JobOptions) (model.Job, error)
	Job(ctx context.Context, id string) (model.Job, error)
	// CancelJob cancels a job that has not ended (a running one is
	// killed) and answers it; an ended job is answered unchanged.
	CancelJob(ctx context.Context, id string) (model.Job, error)
	// Jobs lists the jobs kept, newest first.
	Jobs(ctx context.Context, filter model.JobListRequest) ([]model.Job, error)
	// Close ends the client's connections.
	Close()
}

// Config says how to reach a server.
type Config struct {
	// URL is the server's HTTP API (http://127.0.0.1:3000; a bare
	// host:port is taken for http://) for NewHTTP, or its bus
	// (nats://127.0.0.1:4222, nats://user:pass@host:port) for NewNATS.
	URL string
	// Token is the HTTP API's bearer token, when the server has one.
	Token string
	// User and Password authenticate on the bus, when it demands it.
	User, Password string
	// Name names the NATS connection in the server's monitoring
	// (default "scripthost-client").
	Name string
	// Timeout, when positive, bounds each call, from the request to the
	// whole answer: a run's answer includes its wait for a slot and its
	// run time.
	Timeout time.Duration
	// Log, when set, gets a debug line per request (what, how long, which
	// node answered).
	Log *slog.Logger
}

func (c Config) logger() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// RunOptions are a run's own options.
type RunOptions struct {
	// NoCache runs the script even when a cached result exists.
	NoCache bool
	// Stdout and Stderr, when either is set, stream the run: each gets
	// the script's output on that stream as it comes (a cache hit sends
	// none; the result always has all of it).
	Stdout, Stderr io.Writer
}

func (o RunOptions) streamed() bool { return o.Stdout != nil || o.Stderr != nil }

// write passes a chunk of streamed output on.
func (o RunOptions) write(stream string, p []byte) {
	w := o.Stdout
	if stream == "stderr" {
		w = o.Stderr
	}
	if w != nil {
		w.Write(p)
	}
}

// Answer is a run's result and where it came from.
type Answer struct {
	Result model.Result
	// Node is the executor node that answered.
	Node string
	// Cache is "hit" for a result served from the cache, "miss" for a
	// run.
	Cache string
	// Skipped counts the bytes of a streamed run's output that the
	// server did not send, because this client read them too slowly
	// (Result has them).
	Skipped int
}

// JobOptions are a job submit's own options.
type JobOptions struct {
	// IdempotencyKey: the same key for the same script answers the same
	// job (within the server's --job-ttl).
	IdempotencyKey string
	// CallbackURL, when set, gets the job's JSON POSTed when it ends.
	CallbackURL string
	// NoCache runs the script even when a cached result exists.
	NoCache bool
}

// runBody encodes a run request. The data goes in as it is written, so
// that the script reads exactly those bytes (json.Marshal would compact
// them and escape <, > and &); only the blanks around it are dropped.
func runBody(req model.RunRequest) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if data := bytes.TrimSpace(req.Data); len(data) > 0 {
		if !json.Valid(data) {
			return nil, model.Errorf(model.ErrBadRequest, "the data is not valid JSON")
		}
		b.WriteString(`"data":`)
		b.Write(data)
	}
	if len(req.Args) > 0 {
		a, err := json.Marshal(req.Args)
		if err != nil {
			return nil, err
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(`"args":`)
		b.Write(a)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// jobBody encodes a job submit: a run request and its time limit.
func jobBody(req model.JobRequest) ([]byte, error) {
	body, err := runBody(req.RunRequest)
	if err != nil || req.Timeout == 0 {
		return body, err
	}
	field := fmt.Sprintf(`"timeout":%q}`, req.Timeout.String())
	if len(body) > 2 {
		field = "," + field
	}
	return append(body[:len(body)-1], field...), nil
}

// decodeRun reads a run's answer: a result, or a timeout that carries one.
func decodeRun(body []byte, err error) (model.Result, error) {
	var res model.Result
	if err != nil {
		var tb model.TimeoutBody
		if errors.Is(err, model.ErrTimeout) && json.Unmarshal(body, &tb) == nil && tb.TimedOut {
			return tb.Result, nil
		}
		return res, err
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return res, fmt.Errorf("the server's answer is not a run result: %v", err)
	}
	return res, nil
}

// decodeAs reads an answer of the server into a T.
func decodeAs[T any](body []byte, what string) (T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("the server's answer is not %s: %v", what, err)
	}
	return v, nil
}

// bound applies Config.Timeout to one call.
func bound(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout > 0 {
		return context.WithTimeout(ctx, timeout)
	}
	return context.WithCancel(ctx)
}

// ErrNoAnswer is the kind of error of a call that this client stopped
// waiting for, because Config.Timeout or a deadline of ctx passed: a
// model.ErrTimeout (504), and not the server's.
var ErrNoAnswer = fmt.Errorf("%w: no answer", model.ErrTimeout)

// gaveUp is the error of a call whose ctx ended before its answer: what
// says what did not answer ("on script.list ").
func gaveUp(ctx context.Context, timeout time.Duration, what, then string) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return model.Errorf(model.ErrCancelled, "cancelled")
	}
	within := "in time"
	if timeout > 0 {
		within = "within " + timeout.String()
	}
	return model.Errorf(ErrNoAnswer, "no answer %s%s%s", what, within, then)
}
