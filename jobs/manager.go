package jobs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// Scripts tells whether a script exists.
type Scripts interface {
	Locate(name string) (path, version string, err error)
}

// Manager takes job submits, reads, cancels and listings, marks the jobs
// that ran out of attempts dead, and POSTs callbacks. Any number of
// Managers may share the streams (one per serve process).
type Manager struct {
	cfg     Config
	nc      *nats.Conn
	st      *streams
	store   *store
	scripts Scripts
	idx     *index

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	subs   []*nats.Subscription
	svc    interface{ Stop() error }
}

// NewManager sets the streams up on nc's JetStream, loads the index of
// the jobs kept, and starts watching for dead jobs and callbacks.
func NewManager(cfg Config, nc *nats.Conn, scripts Scripts) (*Manager, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, nc: nc, scripts: scripts, ctx: ctx, cancel: cancel}
	setupCtx, done := context.WithTimeout(ctx, 30*time.Second)
	defer done()
	if m.st, err = setup(setupCtx, js, cfg); err != nil {
		cancel()
		return nil, err
	}
	m.store = &store{kv: m.st.kv, js: js, nc: nc, log: cfg.Log}
	if m.idx, err = watchIndex(ctx, m.st.kv, cfg, &m.wg); err != nil {
		cancel()
		return nil, err
	}
	sub, err := nc.QueueSubscribe(maxDeliveriesSubject, bus.JobsQueue, m.onMaxDeliveries)
	if err != nil {
		m.Close()
		return nil, err
	}
	m.subs = append(m.subs, sub)
	m.wg.Add(1)
	go m.callbacks()
	return m, nil
}

// Close stops the manager's watchers and its service.
func (m *Manager) Close() {
	if m.svc != nil {
		m.svc.Stop()
	}
	for _, s := range m.subs {
		s.Unsubscribe()
	}
	m.cancel()
	m.wg.Wait()
}

// Submit is one job submit.
type Submit struct {
	Script string
	// Body is the request body: a run's, plus an optional "timeout".
	Body           []byte
	IdempotencyKey string
	CallbackURL    string
	NoCache        bool
}

// maxKey bounds an Idempotency-Key.
const maxKey = 256

// Submit queues a job and answers its record. A submit whose
// Idempotency-Key came before (within the TTL) answers that job instead.
// Once Submit returns without an error the job is stored on disk.
func (m *Manager) Submit(ctx context.Context, sub Submit) (model.Job, error) {
	if err := model.ValidateName(sub.Script); err != nil {
		return model.Job{}, err
	}
	if m.cfg.MaxBody > 0 && int64(len(sub.Body)) > m.cfg.MaxBody {
		return model.Job{}, model.Errorf(model.ErrTooLarge, "request body larger than %d bytes", m.cfg.MaxBody)
	}
	req, err := model.DecodeJobRequest(sub.Body)
	if err != nil {
		return model.Job{}, err
	}
	timeout := req.Timeout
	if timeout == 0 {
		timeout = m.cfg.Timeout
	}
	if timeout > m.cfg.MaxTimeout {
		return model.Job{}, model.Errorf(model.ErrBadRequest, `"timeout" %s is over the limit of %s (--job-max-timeout)`, timeout, m.cfg.MaxTimeout)
	}
	if err := checkCallback(sub.CallbackURL); err != nil {
		return model.Job{}, err
	}
	if len(sub.IdempotencyKey) > maxKey {
		return model.Job{}, model.Errorf(model.ErrBadRequest, "Idempotency-Key longer than %d bytes", maxKey)
	}
	id := newID()
	if sub.IdempotencyKey != "" {
		id = keyID(sub.Script, sub.IdempotencyKey)
		if rec, _, err := m.store.load(ctx, id); err == nil {
			return rec.Job, nil
		} else if !errors.Is(err, model.ErrNotFound) {
			return model.Job{}, err
		}
	}
	if _, _, err := m.scripts.Locate(sub.Script); err != nil {
		return model.Job{}, err
	}
	q := queued{
		ID: id, Script: sub.Script, Stdin: req.Data, Args: req.Args,
		Timeout: int64(timeout), NoCache: sub.NoCache, CreatedAt: now(),
		IdempotencyKey: sub.IdempotencyKey, CallbackURL: sub.CallbackURL,
	}
	body, err := json.Marshal(q)
	if err != nil {
		return model.Job{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, opTimeout)
	ack, err := m.st.js.PublishMsg(pctx, &nats.Msg{Subject: bus.JobQueuePrefix + sub.Script, Data: body}, jetstream.WithMsgID(id))
	cancel()
	if err != nil {
		return model.Job{}, unavailable(err)
	}
	// A node may have taken the job and written its record already; a
	// duplicate (the same key, at the same time) finds the first's.
	rec, _, err := m.store.create(ctx, q.record(ack.Sequence))
	if err != nil {
		return model.Job{}, err
	}
	return rec.Job, nil
}

// checkCallback accepts absolute http and https URLs.
func checkCallback(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return model.Errorf(model.ErrBadRequest, "X-Callback-Url %q: want an absolute http:// or https:// URL", raw)
	}
	if len(raw) > 2048 {
		return model.Errorf(model.ErrBadRequest, "X-Callback-Url longer than 2048 bytes")
	}
	return nil
}

// newID is a fresh job id: the time in milliseconds (so that ids sort by
// age) and 64 random bits, in lower-case hex.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("%012x%s", time.Now().UnixMilli(), hex.EncodeToString(b[:]))
}

// keyID is the id of the job of an Idempotency-Key for a script: the same
// key always names the same job, which is what makes the work queue's
// de-duplication (Nats-Msg-Id) answer for it.
func keyID(script, key string) string {
	sum := sha256.Sum256([]byte(script + "\x00" + key))
	return "k" + hex.EncodeToString(sum[:14])
}

// Get answers a job's record.
func (m *Manager) Get(ctx context.Context, id string) (model.Job, error) {
	if err := model.ValidateJobID(id); err != nil {
		return model.Job{}, err
	}
	rec, _, err := m.store.load(ctx, id)
	return rec.Job, err
}

// Cancel ends a job that has not ended: a queued one never starts, a
// running one's process group is killed at once. A job that ended is
// answered unchanged.
func (m *Manager) Cancel(ctx context.Context, id string) (model.Job, error) {
	if err := model.ValidateJobID(id); err != nil {
		return model.Job{}, err
	}
	var was model.JobStatus
	rec, changed, err := m.store.change(ctx, id, func(r *record) bool {
		if r.Status.Ended() {
			return false
		}
		was = r.Status
		r.Status = model.JobCancelled
		r.FinishedAt = timep(now())
		r.Error = "cancelled while " + string(was)
		return true
	})
	if err != nil || !changed {
		return rec.Job, err
	}
	if was == model.JobRunning {
		if err := m.nc.Publish(bus.JobKillPrefix+id, nil); err != nil {
			m.cfg.Log.Warn("jobs: kill a cancelled job", "job", id, "err", err)
		}
	}
	if rec.Seq > 0 && was == model.JobQueued {
		// Out of the queue at once; a node that took it already sees the
		// record cancelled and drops it.
		dctx, cancel := context.WithTimeout(ctx, opTimeout)
		if err := m.st.queue.DeleteMsg(dctx, rec.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			m.cfg.Log.Debug("jobs: remove a cancelled job from the queue", "job", id, "err", err)
		}
		cancel()
	}
	if err := m.store.queueCallback(ctx, rec); err != nil {
		m.cfg.Log.Warn("jobs: queue callback", "job", id, "err", err)
	}
	return rec.Job, nil
}

// List answers the jobs kept, newest first, filtered by script and
// status.
func (m *Manager) List(ctx context.Context, req model.JobListRequest) (model.JobList, error) {
	if req.Script != "" {
		if err := model.ValidateName(req.Script); err != nil {
			return model.JobList{}, err
		}
	}
	if req.Status != "" && !req.Status.Valid() {
		names := make([]string, len(model.JobStatuses))
		for i, s := range model.JobStatuses {
			names[i] = string(s)
		}
		return model.JobList{}, model.Errorf(model.ErrBadRequest, "status %q: want one of %s", req.Status, strings.Join(names, ", "))
	}
	switch {
	case req.Limit < 0:
		return model.JobList{}, model.Errorf(model.ErrBadRequest, "limit must not be negative")
	case req.Limit == 0:
		req.Limit = DefaultListLimit
	case req.Limit > MaxListLimit:
		return model.JobList{}, model.Errorf(model.ErrBadRequest, "limit %d: at most %d", req.Limit, MaxListLimit)
	}
	ids := m.idx.find(req.Script, req.Status, req.Limit)
	list := model.JobList{Jobs: []model.Job{}}
	for _, id := range ids {
		rec, _, err := m.store.load(ctx, id)
		if errors.Is(err, model.ErrNotFound) {
			continue // expired since
		}
		if err != nil {
			return model.JobList{}, err
		}
		// The index may lag behind the record by a moment.
		if req.Status != "" && rec.Status != req.Status {
			continue
		}
		list.Jobs = append(list.Jobs, rec.Job)
	}
	sort.SliceStable(list.Jobs, func(i, j int) bool { return list.Jobs[i].CreatedAt.After(list.Jobs[j].CreatedAt.Time) })
	return list, nil
}

// maxDeliveriesSubject is where JetStream says a job was delivered
// MaxDeliver times and will not be delivered again.
var maxDeliveriesSubject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + bus.JobsStream + "." + bus.JobsConsumer

// maxDeliveries is the part of JetStream's advisory that matters here.
type maxDeliveries struct {
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
}

// onMaxDeliveries marks dead a job that JetStream gave up on (its nodes
// died, or went silent past the ack wait, on every attempt) and removes
// it from the queue.
func (m *Manager) onMaxDeliveries(msg *nats.Msg) {
	var adv maxDeliveries
	if err := json.Unmarshal(msg.Data, &adv); err != nil || adv.StreamSeq == 0 {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.giveUp(adv)
	}()
}

func (m *Manager) giveUp(adv maxDeliveries) {
	ctx, cancel := context.WithTimeout(m.ctx, opTimeout)
	defer cancel()
	raw, err := m.st.queue.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		m.cfg.Log.Debug("jobs: max deliveries of a message gone", "seq", adv.StreamSeq, "err", err)
		return
	}
	var q queued
	if err := json.Unmarshal(raw.Data, &q); err != nil || model.ValidateJobID(q.ID) != nil {
		m.st.queue.DeleteMsg(ctx, adv.StreamSeq)
		return
	}
	if _, _, err := m.store.create(ctx, q.record(adv.StreamSeq)); err != nil {
		m.cfg.Log.Warn("jobs: dead job", "job", q.ID, "err", err)
		return
	}
	rec, changed, err := m.store.change(ctx, q.ID, func(r *record) bool {
		if r.Status.Ended() {
			return false
		}
		why := r.Error
		if why == "" || r.Status == model.JobRunning {
			why = fmt.Sprintf("the node running attempt %d (%s) stopped before the run ended", adv.Deliveries, orUnknown(r.Node))
		}
		r.Status = model.JobDead
		r.Attempts = max(r.Attempts, adv.Deliveries)
		r.FinishedAt = timep(now())
		r.Error = fmt.Sprintf("given up after %d attempts: %s", adv.Deliveries, why)
		return true
	})
	if err != nil {
		m.cfg.Log.Warn("jobs: dead job", "job", q.ID, "err", err)
		return
	}
	if changed {
		m.cfg.Log.Warn("job dead", "job", q.ID, "script", q.Script, "attempts", adv.Deliveries, "error", rec.Error)
		if err := m.store.queueCallback(ctx, rec); err != nil {
			m.cfg.Log.Warn("jobs: queue callback", "job", q.ID, "err", err)
		}
	}
	if err := m.st.queue.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		m.cfg.Log.Warn("jobs: remove a dead job from the queue", "job", q.ID, "err", err)
	}
}

func orUnknown(node string) string {
	if node == "" {
		return "unknown"
	}
	return node
}

// Stats are the jobs kept by status, the jobs in the work queue that no
// node took yet, and the age of the oldest queued job.
type Stats struct {
	ByStatus     map[model.JobStatus]int
	QueueDepth   int
	OldestQueued time.Duration
}

// Stats reads the figures of the metrics: the index, and the consumer's
// count of messages not delivered yet.
func (m *Manager) Stats(ctx context.Context) Stats {
	by, oldest := m.idx.counts()
	st := Stats{ByStatus: by}
	if !oldest.IsZero() {
		st.OldestQueued = max(time.Since(oldest), 0)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if info, err := m.st.workers.Info(ctx); err == nil {
		st.QueueDepth = int(info.NumPending)
	}
	return st
}
