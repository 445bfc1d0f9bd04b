//go:build !linux

package executor

import (
	"context"

	"github.com/scripthost/scripthost/model"
)

// Runs need Linux: process groups reaped by a subreaper, prlimit(2), and
// the sandbox's namespaces and cgroups (the *_linux.go files). Elsewhere
// the runners only say so, which lets the rest of scripthost build there:
// the client commands, and serve without an executor (--max-concurrent 0)
// in front of executor nodes on Linux.

// SpawnRunner is a runner of fresh interpreters; on this system it cannot
// be made.
type SpawnRunner struct{ noRuns }

// ForkRunner is a runner of forks of a warm interpreter; on this system it
// cannot be made.
type ForkRunner struct{ noRuns }

// NewSpawnRunner returns ErrNeedsLinux.
func NewSpawnRunner(RunnerConfig) (*SpawnRunner, error) { return nil, ErrNeedsLinux }

// NewForkRunner returns ErrNeedsLinux.
func NewForkRunner(RunnerConfig, []string) (*ForkRunner, error) { return nil, ErrNeedsLinux }

// WarmStats are zero: there are no warm parents.
func (*ForkRunner) WarmStats() WarmStats { return WarmStats{} }

// noRuns is a Runner that runs nothing.
type noRuns struct{}

func (noRuns) Run(context.Context, Job) (model.Result, error) { return model.Result{}, ErrNeedsLinux }
func (noRuns) Close() error                                   { return nil }

// SetupProcess returns ErrNeedsLinux.
func SetupProcess() error { return ErrNeedsLinux }

// Preflight returns ErrNeedsLinux.
func Preflight(RunnerConfig, PreflightConfig) error { return ErrNeedsLinux }
