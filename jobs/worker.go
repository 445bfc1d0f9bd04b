package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/executor"
	"github.com/scripthost/scripthost/model"
)

// Executor is what a Worker needs of an executor node.
type Executor interface {
	NodeName() string
	// SlotFree returns a channel closed once a slot is free.
	SlotFree() <-chan struct{}
	// AcquireSlot waits for a slot until ctx ends.
	AcquireSlot(ctx context.Context) error
	// ReleaseSlot gives back a slot that was not handed to RunInSlot.
	ReleaseSlot()
	// RunInSlot runs a request in the slot taken, then releases it;
	// output receives the output as it comes.
	RunInSlot(ctx context.Context, name string, req model.RunRequest, timeout time.Duration, noCache bool, output executor.Output) (model.Result, bool, error)
}

// How a Worker waits.
const (
	// fetchWait bounds one pull request.
	fetchWait = time.Second
	// retryWait spaces attempts to reach the streams.
	retryWait = time.Second
	// finishFor bounds the attempts to write a job's end: the server may
	// be restarting.
	finishFor = 2 * time.Minute
)

// Worker runs jobs on an executor node: it pulls a job from the shared
// durable consumer only while the node has a free slot, keeps the
// delivery alive while the job runs (in-progress acks), and writes the
// job's end before it acknowledges the message.
type Worker struct {
	nc   *nats.Conn
	exec Executor
	log  *slog.Logger
	node string

	stopFetch context.CancelFunc
	fetchCtx  context.Context
	killAll   context.CancelFunc
	runCtx    context.Context
	loopDone  chan struct{}
	runs      sync.WaitGroup

	mu      sync.Mutex
	running map[string]*attempt
	killSub *nats.Subscription

	// set once the streams are found
	js          jetstream.JetStream
	cons        jetstream.Consumer
	store       *store
	ackWait     time.Duration
	maxAttempts int
}

// attempt is a job running on this node.
type attempt struct {
	cancel    context.CancelFunc
	cancelled atomic.Bool // by its owner (DELETE /jobs/{id})
}

// NewWorker returns a worker for the node exec on nc; Start starts it.
func NewWorker(nc *nats.Conn, exec Executor, log *slog.Logger) *Worker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Worker{nc: nc, exec: exec, log: log, node: exec.NodeName(), running: map[string]*attempt{}, loopDone: make(chan struct{})}
	w.fetchCtx, w.stopFetch = context.WithCancel(context.Background())
	w.runCtx, w.killAll = context.WithCancel(context.Background())
	return w
}

// Start subscribes to cancels and starts pulling jobs. The streams may
// not exist yet (a node that starts before the server's job manager):
// the worker waits for them.
func (w *Worker) Start() error {
	sub, err := w.nc.Subscribe(bus.JobKillPrefix+"*", func(m *nats.Msg) {
		id, _ := bus.NameFrom(m.Subject, bus.JobKillPrefix)
		w.kill(id)
	})
	if err != nil {
		return err
	}
	w.killSub = sub
	go w.loop()
	return nil
}

// Drain stops pulling jobs and waits for the jobs running here to end.
// When ctx ends first, they are killed and handed back to the queue,
// where another node (or this one, restarted) takes them again.
func (w *Worker) Drain(ctx context.Context) error {
	w.stopFetch()
	<-w.loopDone
	done := make(chan struct{})
	go func() {
		w.runs.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		w.killAll()
		<-done
	}
	if w.killSub != nil {
		w.killSub.Unsubscribe()
	}
	return err
}

func (w *Worker) kill(id string) {
	w.mu.Lock()
	a := w.running[id]
	w.mu.Unlock()
	if a != nil {
		a.cancelled.Store(true)
		a.cancel()
	}
}

// bind finds the streams, the consumer and its settings.
func (w *Worker) bind() error {
	js, err := jetstream.New(w.nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(w.fetchCtx, opTimeout)
	defer cancel()
	cons, err := js.Consumer(ctx, bus.JobsStream, bus.JobsConsumer)
	if err != nil {
		return err
	}
	kv, err := js.KeyValue(ctx, bus.JobsBucket)
	if err != nil {
		return err
	}
	info := cons.CachedInfo()
	w.js, w.cons = js, cons
	w.ackWait, w.maxAttempts = info.Config.AckWait, info.Config.MaxDeliver
	w.store = &store{kv: kv, js: js, nc: w.nc, log: w.log}
	return nil
}

func (w *Worker) loop() {
	defer close(w.loopDone)
	warned := false
	for w.fetchCtx.Err() == nil {
		if w.cons == nil {
			if err := w.bind(); err != nil {
				if !warned {
					w.log.Info("jobs: waiting for the job streams", "err", err)
					warned = true
				}
				w.pause(retryWait)
				continue
			}
			w.log.Info("jobs: taking jobs", "node", w.node, "ack_wait", w.ackWait, "max_attempts", w.maxAttempts)
		}
		select {
		case <-w.exec.SlotFree():
		case <-w.fetchCtx.Done():
			continue
		}
		// The pull ends with the node's stop, not a fetchWait later.
		fetch, cancel := context.WithTimeout(w.fetchCtx, fetchWait)
		batch, err := w.cons.Fetch(1, jetstream.FetchContext(fetch))
		if err != nil {
			cancel()
			w.pause(retryWait)
			continue
		}
		got := false
		for msg := range batch.Messages() {
			got = true
			// The slot free at the fetch may have gone to a run since: the
			// job waits for one here, and no other job is fetched meanwhile.
			if w.takeSlot(msg) {
				w.runs.Add(1)
				go w.run(msg)
			}
		}
		cancel()
		if !got {
			if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) &&
				!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				w.pause(retryWait)
			}
		}
	}
}

// takeSlot waits for a slot for the job in msg, keeping its delivery
// alive meanwhile. When the node stops first, the job goes back to the
// queue.
func (w *Worker) takeSlot(msg jetstream.Msg) bool {
	for {
		ctx, cancel := context.WithTimeout(w.fetchCtx, max(w.ackWait/3, 100*time.Millisecond))
		err := w.exec.AcquireSlot(ctx)
		cancel()
		if err == nil {
			return true
		}
		if w.fetchCtx.Err() != nil {
			msg.Nak()
			return false
		}
		msg.InProgress()
	}
}

func (w *Worker) pause(d time.Duration) {
	select {
	case <-time.After(d):
	case <-w.fetchCtx.Done():
	}
}

// run runs one delivery of a job, in the slot taken for it.
func (w *Worker) run(msg jetstream.Msg) {
	defer w.runs.Done()
	slotHeld := true
	defer func() {
		if slotHeld {
			w.exec.ReleaseSlot()
		}
	}()
	meta, err := msg.Metadata()
	if err != nil {
		msg.Term()
		return
	}
	var q queued
	if err := json.Unmarshal(msg.Data(), &q); err != nil || model.ValidateJobID(q.ID) != nil {
		w.log.Error("jobs: dropping a message that is not a job", "seq", meta.Sequence.Stream, "err", err)
		msg.Term()
		return
	}
	n := int(meta.NumDelivered)
	ctx, cancel := context.WithCancel(w.runCtx)
	defer cancel()
	a := &attempt{cancel: cancel}
	w.mu.Lock()
	w.running[q.ID] = a
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, q.ID)
		w.mu.Unlock()
	}()

	// The record may not exist yet (the submit died between queueing the
	// job and writing it): the message holds all of it.
	if _, _, err := w.store.create(ctx, q.record(meta.Sequence.Stream)); err != nil {
		w.log.Warn("jobs: job record", "job", q.ID, "err", err)
		msg.NakWithDelay(retryWait)
		return
	}
	rec, started, err := w.store.change(ctx, q.ID, func(r *record) bool {
		if r.Status.Ended() {
			return false
		}
		r.Status, r.Attempts, r.Node = model.JobRunning, n, w.node
		r.StartedAt, r.Result, r.Cached = timep(now()), nil, false
		return true
	})
	if err != nil {
		w.log.Warn("jobs: start job", "job", q.ID, "err", err)
		msg.NakWithDelay(retryWait)
		return
	}
	if !started {
		// Cancelled while queued, or it ended in an attempt whose node
		// died before acknowledging it.
		w.queueCallback(rec)
		msg.Ack()
		return
	}
	w.log.Info("job started", "job", q.ID, "script", q.Script, "attempt", n, "node", w.node)

	alive := make(chan struct{})
	go w.keepAlive(ctx, msg, a, q.ID, alive)
	slotHeld = false // RunInSlot releases it
	out := &outputPublisher{nc: w.nc, id: q.ID, attempt: strconv.Itoa(n)}
	res, cached, runErr := w.exec.RunInSlot(ctx, q.Script, model.RunRequest{Data: q.Stdin, Args: q.Args}, time.Duration(q.Timeout), q.NoCache, out)
	close(alive)

	switch {
	case a.cancelled.Load():
		w.log.Info("job cancelled", "job", q.ID, "script", q.Script)
		msg.Ack()
	case w.runCtx.Err() != nil:
		// This node is stopping: the job goes back to the queue.
		w.finish(q.ID, func(r *record) bool {
			if r.Status != model.JobRunning || r.Node != w.node {
				return false
			}
			r.Status, r.Error = model.JobQueued, fmt.Sprintf("attempt %d stopped: node %s shut down", n, w.node)
			return true
		})
		msg.Nak()
	case runErr != nil:
		code := model.Code(runErr)
		// A bad request never runs; anything else may pass on another
		// attempt (a script deleted since the submit is dead at the last).
		final := code == http.StatusBadRequest || n >= w.maxAttempts
		why := fmt.Sprintf("attempt %d on %s: %s", n, w.node, model.Message(runErr))
		rec, changed := w.finish(q.ID, func(r *record) bool {
			if r.Status.Ended() {
				return false
			}
			if final {
				r.Status, r.FinishedAt = model.JobDead, timep(now())
			} else {
				r.Status = model.JobQueued
			}
			r.Error = why
			return true
		})
		w.log.Warn("job attempt failed", "job", q.ID, "script", q.Script, "attempt", n, "final", final, "err", why)
		if final {
			if changed {
				w.queueCallback(rec)
			}
			msg.Term()
			return
		}
		msg.NakWithDelay(retryWait << min(n-1, 5))
	default:
		status := statusOf(res)
		rec, changed := w.finish(q.ID, func(r *record) bool {
			if r.Status.Ended() {
				return false
			}
			r.Status, r.Result, r.Cached, r.FinishedAt, r.Error = status, &res, cached, timep(now()), ""
			return true
		})
		if changed {
			w.log.Info("job ended", "job", q.ID, "script", q.Script, "status", status, "attempt", n, "cache", cached)
			w.queueCallback(rec)
		}
		ackCtx, cancel := context.WithTimeout(context.Background(), opTimeout)
		if err := msg.DoubleAck(ackCtx); err != nil {
			w.log.Warn("jobs: acknowledge job", "job", q.ID, "err", err)
		}
		cancel()
	}
}

// statusOf is the status of a job whose run ended with res.
func statusOf(res model.Result) model.JobStatus {
	switch {
	case res.TimedOut:
		return model.JobTimedOut
	case res.ExitCode != nil && *res.ExitCode == 0:
		return model.JobSucceeded
	}
	return model.JobFailed
}

// keepAlive tells the server every AckWait/3 that the job is in
// progress, and looks at its record: a cancel whose kill message was
// missed is seen there.
func (w *Worker) keepAlive(ctx context.Context, msg jetstream.Msg, a *attempt, id string, done chan struct{}) {
	t := time.NewTicker(max(w.ackWait/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			if err := msg.InProgress(); err != nil {
				w.log.Debug("jobs: in-progress ack", "job", id, "err", err)
			}
			if rec, _, err := w.store.load(ctx, id); err == nil && rec.Status == model.JobCancelled {
				a.cancelled.Store(true)
				a.cancel()
			}
		}
	}
}

// finish writes a job's end, trying again while the store is away.
func (w *Worker) finish(id string, fn func(*record) bool) (record, bool) {
	deadline := time.Now().Add(finishFor)
	for {
		rec, changed, err := w.store.change(context.Background(), id, fn)
		if err == nil {
			return rec, changed
		}
		if time.Now().After(deadline) {
			w.log.Error("jobs: cannot write the end of a job", "job", id, "err", err)
			return rec, false
		}
		time.Sleep(retryWait)
	}
}

func (w *Worker) queueCallback(rec record) {
	if err := w.store.queueCallback(context.Background(), rec); err != nil {
		w.log.Warn("jobs: queue callback", "job", rec.ID, "err", err)
	}
}

// outputPublisher publishes a job's output as it comes, on
// script.job.output.<id>.stdout and .stderr (kept in the events stream for
// replay), each chunk with the attempt it belongs to in the header
// X-Scripthost-Attempt: a job run again sends its output again.
type outputPublisher struct {
	nc      *nats.Conn
	id      string
	attempt string
}

func (o *outputPublisher) Chunk(fd int, p []byte) {
	which := "stdout"
	if fd == 2 {
		which = "stderr"
	}
	m := nats.NewMsg(bus.JobOutputSubject(o.id, which))
	m.Header.Set(bus.HeaderAttempt, o.attempt)
	m.Data = append([]byte(nil), p...)
	o.nc.PublishMsg(m)
}
