package executor

import (
	"context"
	"time"

	"github.com/scripthost/scripthost/bus"
)

// Durable jobs (package jobs) share the node's slots with the runs it
// serves: a job worker takes a free slot first, then fetches one job from
// the queue for it, so that a node never holds a job it cannot start.

// NodeName is the name of this node, as in X-Scripthost-Node.
func (s *Service) NodeName() string { return s.cfg.Node }

// TryAcquireSlot takes a free slot without waiting, and only when no run
// waits for one. The caller hands it to RunInSlot or gives it back with
// ReleaseSlot.
func (s *Service) TryAcquireSlot() bool { return s.tryAcquire() }

// ReleaseSlot gives back a slot taken with TryAcquireSlot and not used.
func (s *Service) ReleaseSlot() { s.releaseSlot() }

// RunInSlot runs a request in the slot the caller took with
// TryAcquireSlot, and releases that slot when it returns. The result goes
// through the cache as a run's does (a hit runs nothing). timeout, when
// positive, replaces the node's time limit for this run; ctx's end kills
// the run's process group at once.
func (s *Service) RunInSlot(ctx context.Context, name string, req bus.RunRequest, timeout time.Duration, noCache bool) (bus.Result, bool, error) {
	start := time.Now()
	used := false
	held := func(context.Context) (bool, error) {
		used = true // execute releases the slot once the run ends
		return false, nil
	}
	out, err := s.execute(ctx, name, req, noCache, runOpts{acquire: held, timeout: timeout})
	if !used {
		s.releaseSlot() // a cache hit or a request that never ran
	}
	s.logRun(name, start, out, err)
	s.observe(name, out, err)
	return out.Result, out.Cached, err
}
