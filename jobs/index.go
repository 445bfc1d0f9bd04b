package jobs

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/model"
)

// index keeps, in memory, the script, status and age of every job in the
// bucket, fed by a watcher of the bucket: listings and metrics read it
// instead of the whole bucket.
type index struct {
	mu   sync.RWMutex
	jobs map[string]entry
}

type entry struct {
	script  string
	status  model.JobStatus
	created time.Time
}

// watchIndex loads the index and keeps it up to date until ctx ends.
func watchIndex(ctx context.Context, kv jetstream.KeyValue, cfg Config, wg *sync.WaitGroup) (*index, error) {
	idx := &index{jobs: map[string]entry{}}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("jobs: watch bucket: %w", err)
	}
	// Everything kept is delivered first, then a nil entry.
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for loaded := false; !loaded; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("jobs: watch bucket: closed")
			}
			if e == nil {
				loaded = true
				break
			}
			idx.apply(e)
		case <-deadline.C:
			w.Stop()
			return nil, fmt.Errorf("jobs: loading the job records took over a minute")
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Stop()
		// Expired records are also dropped by age, should a marker be missed.
		sweep := time.NewTicker(time.Minute)
		defer sweep.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					idx.apply(e)
				}
			case <-sweep.C:
				idx.expire(cfg.TTL)
			case <-ctx.Done():
				return
			}
		}
	}()
	return idx, nil
}

func (x *index) apply(e jetstream.KeyValueEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(x.jobs, e.Key())
		return
	}
	rec, err := decodeRecord(e.Value())
	if err != nil {
		return
	}
	x.jobs[e.Key()] = entry{script: rec.Script, status: rec.Status, created: rec.CreatedAt.Time}
}

// expire drops jobs older than twice the TTL: their records are gone.
func (x *index) expire(ttl time.Duration) {
	cut := time.Now().Add(-2 * ttl)
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, e := range x.jobs {
		if e.created.Before(cut) && e.status.Ended() {
			delete(x.jobs, id)
		}
	}
}

// find answers the ids of the newest jobs that match, at most limit.
func (x *index) find(script string, status model.JobStatus, limit int) []string {
	type hit struct {
		id      string
		created time.Time
	}
	var hits []hit
	x.mu.RLock()
	for id, e := range x.jobs {
		if (script == "" || e.script == script) && (status == "" || e.status == status) {
			hits = append(hits, hit{id, e.created})
		}
	}
	x.mu.RUnlock()
	sort.Slice(hits, func(i, j int) bool {
		if !hits[i].created.Equal(hits[j].created) {
			return hits[i].created.After(hits[j].created)
		}
		return hits[i].id > hits[j].id
	})
	if len(hits) > limit {
		hits = hits[:limit]
	}
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.id
	}
	return ids
}

// counts are the jobs by status, and the creation time of the oldest
// queued job (zero when none is queued).
func (x *index) counts() (map[model.JobStatus]int, time.Time) {
	n := map[model.JobStatus]int{}
	var oldest time.Time
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, e := range x.jobs {
		n[e.status]++
		if e.status == model.JobQueued && (oldest.IsZero() || e.created.Before(oldest)) {
			oldest = e.created
		}
	}
	return n, oldest
}
