// Package jobs runs scripts as durable, asynchronous jobs on JetStream:
// a work-queue stream holds the jobs to run, a durable pull consumer
// shared by the executor nodes hands each to a node with a free slot, and
// a key-value bucket keeps every job's record until its TTL. The Manager
// (in serve) takes submits, cancels and listings; the Worker (on every
// executor node) runs them.
package jobs
