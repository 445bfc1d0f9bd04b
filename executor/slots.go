package executor

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/scripthost/scripthost/model"
)

// slots bounds the runs of a node. Requests that find every slot busy wait
// in arrival order, each for at most the queue timeout, and at most
// maxWait of them: the others are refused at once.
type slots struct {
	mu      sync.Mutex
	size    int
	free    int
	maxWait int
	waiters list.List     // of chan struct{}, closed when granted a slot
	freed   chan struct{} // closed when a slot becomes free (see freeSignal)
}

func newSlots(n, maxWait int) *slots {
	return &slots{size: n, free: n, maxWait: maxWait}
}

// tryAcquire takes a free slot if there is one and nobody waits.
func (s *slots) tryAcquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free > 0 && s.waiters.Len() == 0 {
		s.free--
		return true
	}
	return false
}

// freeCount is the number of free slots.
func (s *slots) freeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.free
}

// acquire takes a slot, waiting in FIFO order for at most wait. It fails
// with model.ErrUnavailable when the wait expires, with model.ErrQueueFull at
// once when maxWait requests already wait, or as cancelled says when ctx
// is done.
func (s *slots) acquire(ctx context.Context, wait time.Duration) error {
	s.mu.Lock()
	if s.free > 0 && s.waiters.Len() == 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	if s.waiters.Len() >= s.maxWait {
		s.mu.Unlock()
		return model.Errorf(model.ErrQueueFull, "all %d executor slots busy and %d runs waiting: try again later", s.size, s.maxWait)
	}
	granted := make(chan struct{})
	elem := s.waiters.PushBack(granted)
	s.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	var err error
	select {
	case <-granted:
		return nil
	case <-timer.C:
		err = model.Errorf(model.ErrUnavailable, "all %d executor slots busy: waited %s in the queue", s.size, wait)
	case <-ctx.Done():
		err = cancelled(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-granted:
		// Granted while giving up: keep the slot rather than leak it.
		return nil
	default:
	}
	s.waiters.Remove(elem)
	return err
}

// release returns a slot, handing it to the longest waiter if there is one.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if front := s.waiters.Front(); front != nil {
		s.waiters.Remove(front)
		close(front.Value.(chan struct{}))
		return
	}
	s.free++
	if s.freed != nil {
		close(s.freed)
		s.freed = nil
	}
}

// freeSignal returns a channel closed once a slot is free (at once when
// one is).
func (s *slots) freeSignal() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free > 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if s.freed == nil {
		s.freed = make(chan struct{})
	}
	return s.freed
}

// busy is the number of slots in use and the number of waiters.
func (s *slots) busy() (inUse, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size - s.free, s.waiters.Len()
}
