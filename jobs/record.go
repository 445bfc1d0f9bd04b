package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// opTimeout bounds one JetStream operation.
const opTimeout = 10 * time.Second

// record is a job as the bucket keeps it: the job and the stream sequence
// of its message in the work queue.
type record struct {
	model.Job
	Seq uint64 `json:"seq,omitempty"`
}

// queued is the message of a job in the work queue: everything a node
// needs to run it, and to write its record if the submit died before.
type queued struct {
	ID             string    `json:"id"`
	Script         string    `json:"script"`
	Stdin          []byte    `json:"stdin,omitempty"`
	Args           []string  `json:"args,omitempty"`
	Timeout        int64     `json:"timeout_ns"`
	NoCache        bool      `json:"no_cache,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	CallbackURL    string    `json:"callback_url,omitempty"`
}

// record is the first record of the job q describes.
func (q queued) record(seq uint64) record {
	return record{Job: model.Job{
		ID: q.ID, Script: q.Script, Status: model.JobQueued, CreatedAt: model.Time{Time: q.CreatedAt},
		Timeout: time.Duration(q.Timeout).String(), IdempotencyKey: q.IdempotencyKey, CallbackURL: q.CallbackURL,
	}, Seq: seq}
}

// store reads and changes job records, and tells others of the changes.
type store struct {
	kv  jetstream.KeyValue
	js  jetstream.JetStream
	nc  *nats.Conn
	log *slog.Logger
}

func decodeRecord(value []byte) (record, error) {
	var rec record
	if err := json.Unmarshal(value, &rec); err != nil {
		return rec, fmt.Errorf("jobs: bad record: %w", err)
	}
	return rec, nil
}

// load reads a job's record and its revision.
func (st *store) load(ctx context.Context, id string) (record, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	e, err := st.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, 0, model.Errorf(model.ErrNotFound, "no job %q (jobs are kept for their TTL after they end)", id)
	}
	if err != nil {
		return record{}, 0, unavailable(err)
	}
	rec, err := decodeRecord(e.Value())
	return rec, e.Revision(), err
}

// create writes the first record of a job; if one exists already it is
// answered instead, with created false.
func (st *store) create(ctx context.Context, rec record) (record, bool, error) {
	value, err := json.Marshal(rec)
	if err != nil {
		return record{}, false, err
	}
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	rev, err := st.kv.Create(cctx, rec.ID, value)
	cancel()
	if errors.Is(err, jetstream.ErrKeyExists) {
		old, _, err := st.load(ctx, rec.ID)
		return old, false, err
	}
	if err != nil {
		return record{}, false, unavailable(err)
	}
	st.publish(rec, rev)
	return rec, true, nil
}

// change applies fn to a job's record and writes it back unless another
// change came first, in which case fn sees the newer record. fn returns
// false to leave the record as it is. The record answered is the one
// stored; changed says whether fn's change was written.
func (st *store) change(ctx context.Context, id string, fn func(*record) bool) (record, bool, error) {
	for range 50 {
		rec, rev, err := st.load(ctx, id)
		if err != nil {
			return record{}, false, err
		}
		if !fn(&rec) {
			return rec, false, nil
		}
		value, err := json.Marshal(rec)
		if err != nil {
			return record{}, false, err
		}
		uctx, cancel := context.WithTimeout(ctx, opTimeout)
		rev, err = st.kv.Update(uctx, id, value, rev)
		cancel()
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return record{}, false, unavailable(err)
		}
		st.publish(rec, rev)
		return rec, true, nil
	}
	return record{}, false, model.Errorf(model.ErrUnavailable, "job %s: too many concurrent changes", id)
}

// publish tells other services of a job's new state on its event subject
// (kept in the events stream for replay), with the record's revision rev.
// The changes of one job are written by different processes (the server
// that took the submit or the cancel, the node that runs it), each on its
// own connection, so their events may arrive in another order than they
// were written; the revision header orders them: a higher revision is a
// later state.
func (st *store) publish(rec record, rev uint64) {
	body, err := json.Marshal(rec.Job)
	if err != nil {
		return
	}
	m := &nats.Msg{Subject: bus.JobEventSubject(rec.Script, rec.ID), Data: body, Header: nats.Header{}}
	m.Header.Set(bus.HeaderJobRevision, strconv.FormatUint(rev, 10))
	if err := st.nc.PublishMsg(m); err != nil {
		st.log.Warn("jobs: publish event", "job", rec.ID, "err", err)
	}
}

// queueCallback hands an ended job to the callback stream, once per job
// (its id is the message id).
func (st *store) queueCallback(ctx context.Context, rec record) error {
	if rec.CallbackURL == "" || !rec.Status.Ended() {
		return nil
	}
	body, err := json.Marshal(rec.Job)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	_, err = st.js.PublishMsg(ctx, &nats.Msg{Subject: bus.JobCallbackSubject, Data: body}, jetstream.WithMsgID("cb-"+rec.ID))
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// unavailable wraps a JetStream failure for the caller.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", model.Errorf(model.ErrUnavailable, "the job store (JetStream) is not available"), err)
}

// now is the time written into records, in UTC at the microsecond
// precision a job's JSON shows (model.TimeLayout).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func timep(t time.Time) *model.Time { return &model.Time{Time: t} }
