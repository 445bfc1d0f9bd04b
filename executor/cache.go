package executor

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// cacheKey identifies a run by everything that decides its result: the
// script, its version, the stdin bytes and the arguments. Each part is
// length-prefixed so that no two different runs share a key.
func cacheKey(name, version string, stdin []byte, args []string) string {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put([]byte(name))
	put([]byte(version))
	put(stdin)
	binary.BigEndian.PutUint64(n[:], uint64(len(args)))
	h.Write(n[:])
	for _, a := range args {
		put([]byte(a))
	}
	return string(h.Sum(nil))
}

// resultCache holds encoded results of successful runs for a time.
type resultCache struct {
	c   *ristretto.Cache[string, []byte]
	ttl time.Duration
}

// newResultCache returns nil (no cache) when ttl or size is zero.
func newResultCache(ttl time.Duration, size int64) (*resultCache, error) {
	if ttl <= 0 || size <= 0 {
		return nil, nil
	}
	counters := size / 100 // about ten counters per expected entry of ~1 KiB
	if counters < 1000 {
		counters = 1000
	}
	c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters:        counters,
		MaxCost:            size,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, err
	}
	return &resultCache{c: c, ttl: ttl}, nil
}

func (rc *resultCache) get(key string) ([]byte, bool) {
	if rc == nil {
		return nil, false
	}
	return rc.c.Get(key)
}

// put stores an encoded result and waits until it is visible to get, so a
// caller that has its answer finds it cached on the next request.
func (rc *resultCache) put(key string, value []byte) {
	if rc == nil {
		return
	}
	if rc.c.SetWithTTL(key, value, int64(len(key)+len(value)), rc.ttl) {
		rc.c.Wait()
	}
}

func (rc *resultCache) close() {
	if rc != nil {
		rc.c.Close()
	}
}

// flight shares one execution among identical runs in progress.
type flight struct {
	mu    sync.Mutex
	calls map[string]*call
}

type call struct {
	done   chan struct{}
	out    Outcome
	err    error
	refs   int // callers still waiting
	cancel context.CancelFunc
}

// do runs fn once for all callers with the same key that arrive while it
// runs; shared reports whether this caller got another caller's result.
// The execution has a context of its own, cancelled when every caller's
// ctx is done: a caller that goes away leaves the others their run, and
// the last one to go stops it (and waits for it to end, so that its slot
// is free when do returns).
func (f *flight) do(ctx context.Context, key string, fn func(context.Context) (Outcome, error)) (out Outcome, shared bool, err error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[string]*call)
	}
	c, shared := f.calls[key]
	if shared {
		c.refs++
	} else {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call{done: make(chan struct{}), refs: 1, cancel: cancel}
		f.calls[key] = c
		go func() {
			c.out, c.err = fn(cctx)
			f.mu.Lock()
			if f.calls[key] == c {
				delete(f.calls, key)
			}
			f.mu.Unlock()
			cancel()
			close(c.done)
		}()
	}
	f.mu.Unlock()

	select {
	case <-c.done:
		return c.out, shared, c.err
	case <-ctx.Done():
	}
	f.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last && f.calls[key] == c {
		delete(f.calls, key) // later callers start afresh
	}
	f.mu.Unlock()
	if !last {
		return Outcome{}, shared, cancelled(ctx)
	}
	c.cancel()
	<-c.done
	return c.out, shared, c.err
}
