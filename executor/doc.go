// Package executor runs scripts for the bus: it serves script.run.> in the
// executor queue group, bounds the runs of its node, starts the interpreter
// for each run (a fresh one, or a fork of a warm one), caps what a run may
// take, and keeps the result cache that HTTP and NATS callers share.
package executor
