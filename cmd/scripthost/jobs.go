package main

import (
	"errors"
	"flag"
	"os"
	"time"

	"github.com/scripthost/scripthost/jobs"
)

// jobsConfig are the flags of durable jobs, in serve.
type jobsConfig struct {
	// DataDir holds the embedded server's JetStream store: the jobs.
	DataDir         string
	JobMaxAttempts  int
	JobTTL          time.Duration
	JobMaxTimeout   time.Duration
	JobAckWait      time.Duration
	CallbackRetries int
	JobReplicas     int
}

func (c *jobsConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", "./data", "folder of the embedded NATS server's JetStream store, where jobs are kept (created 0700)")
	fs.IntVar(&c.JobMaxAttempts, "job-max-attempts", jobs.DefaultMaxAttempts, "deliveries of a job to executor nodes before it is dead")
	durationVar(fs, &c.JobTTL, "job-ttl", jobs.DefaultTTL, "how long a job is kept after it ended (and an Idempotency-Key answers the same job)")
	durationVar(fs, &c.JobMaxTimeout, "job-max-timeout", jobs.DefaultMaxTimeout, `the largest "timeout" a job may ask for; a job without one gets --timeout`)
	durationVar(fs, &c.JobAckWait, "job-ack-wait", jobs.DefaultAckWait, "how long a node may stay silent about a running job before it goes to another node")
	fs.IntVar(&c.CallbackRetries, "callback-retries", jobs.DefaultCallbackRetries, "retries of a failed X-Callback-Url POST, with a backoff doubling from 1s")
	fs.IntVar(&c.JobReplicas, "job-replicas", 1, "replicas of the job streams and bucket (3 on a NATS cluster of three or more, with --nats)")
}

func (c *jobsConfig) validate() error {
	switch {
	case c.JobMaxAttempts < 1:
		return errors.New("--job-max-attempts must be at least 1")
	case c.JobTTL < time.Minute:
		return errors.New("--job-ttl must be at least 1m")
	case c.JobMaxTimeout <= 0:
		return errors.New("--job-max-timeout must be positive")
	case c.JobAckWait < time.Second:
		return errors.New("--job-ack-wait must be at least 1s")
	case c.CallbackRetries < 0:
		return errors.New("--callback-retries must not be negative")
	case c.JobReplicas < 1 || c.JobReplicas > 5:
		return errors.New("--job-replicas must be 1 to 5")
	}
	return nil
}

// storeDir makes the data folder of the embedded server's JetStream store.
func (c *jobsConfig) storeDir() (string, error) {
	if c.DataDir == "" {
		return "", nil // a temporary store, removed at exit
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return "", err
	}
	return c.DataDir, nil
}
