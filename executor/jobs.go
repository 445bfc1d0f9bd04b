package executor

import (
	"context"
	"time"

	"github.com/scripthost/scripthost/model"
)

// Durable jobs (package jobs) share the node's slots with the runs it
// serves: a job worker fetches a job from the queue only while the node has
// a free slot, then takes a slot for it as a run does.

// NodeName is the name of this node, as in X-Scripthost-Node.
func (s *Service) NodeName() string { return s.cfg.Node }

// SlotFree returns a channel closed once a slot is free (at once when one
// is).
func (s *Service) SlotFree() <-chan struct{} { return s.slots.freeSignal() }

// AcquireSlot takes a slot, waiting in the node's FIFO queue (as runs do)
// until ctx ends or the queue timeout passes. The caller hands it to
// RunInSlot or gives it back with ReleaseSlot.
func (s *Service) AcquireSlot(ctx context.Context) error {
	_, err := s.queueSlot(ctx)
	return err
}

// ReleaseSlot gives back a slot taken with AcquireSlot and not used.
func (s *Service) ReleaseSlot() { s.releaseSlot() }

// RunInSlot runs a request in the slot the caller took with
// AcquireSlot, and releases that slot when it returns. The result goes
// through the cache as a run's does (a hit runs nothing). timeout, when
// positive, replaces the node's time limit for this run; ctx's end kills
// the run's process group at once. output, when not nil, receives the
// output as it comes (as a streamed run's).
func (s *Service) RunInSlot(ctx context.Context, name string, req model.RunRequest, timeout time.Duration, noCache bool, output Output) (model.Result, bool, error) {
	start := time.Now()
	used := false
	held := func(context.Context) (bool, error) {
		used = true // execute releases the slot once the run ends
		return false, nil
	}
	out, err := s.execute(ctx, name, req, noCache, runOpts{acquire: held, timeout: timeout, output: output})
	if !used {
		s.releaseSlot() // a cache hit or a request that never ran
	}
	s.logRun(name, start, out, err)
	s.observe(name, out, err)
	return out.Result, out.Cached, err
}
