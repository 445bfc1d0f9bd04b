package jobs

import (
	"errors"
	"log/slog"
	"time"
)

// Defaults of Config.
const (
	DefaultMaxAttempts     = 3
	DefaultTTL             = 24 * time.Hour
	DefaultMaxTimeout      = time.Hour
	DefaultTimeout         = 30 * time.Second
	DefaultAckWait         = 30 * time.Second
	DefaultCallbackRetries = 5
	DefaultCallbackBackoff = time.Second
	DefaultListLimit       = 100
	MaxListLimit           = 1000
)

// Config configures the job streams, the Manager and the Worker. Every
// process of a deployment must agree on it: the Manager writes it into the
// streams, the Worker reads the delivery settings back from there.
type Config struct {
	// MaxAttempts is how many times a job is delivered to a node before
	// it is dead (the consumer's MaxDeliver).
	MaxAttempts int
	// TTL is how long a job's record is kept after its last change, and
	// the window in which an Idempotency-Key answers the same job.
	TTL time.Duration
	// MaxTimeout bounds a job's own "timeout"; Timeout is the default.
	MaxTimeout, Timeout time.Duration
	// AckWait is how long a node may stay silent about a job before it
	// goes to another node; a node running a job tells the server it is
	// in progress every AckWait/3.
	AckWait time.Duration
	// CallbackRetries is how many times a failed callback POST is tried
	// again, with a backoff doubling from CallbackBackoff.
	CallbackRetries int
	CallbackBackoff time.Duration
	// Replicas of every stream and of the bucket: 1 on a single server,
	// 3 on a cluster of three or more.
	Replicas int
	// MaxBody bounds a submit's body, in bytes (0: no bound here).
	MaxBody int64
	Log     *slog.Logger
}

func (c *Config) fill() error {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.MaxTimeout == 0 {
		c.MaxTimeout = DefaultMaxTimeout
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout > c.MaxTimeout {
		c.Timeout = c.MaxTimeout
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.CallbackBackoff == 0 {
		c.CallbackBackoff = DefaultCallbackBackoff
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.MaxAttempts < 1:
		return errors.New("jobs: max attempts must be at least 1")
	case c.TTL < time.Minute:
		return errors.New("jobs: the job TTL must be at least 1m")
	case c.MaxTimeout < 0 || c.Timeout < 0:
		return errors.New("jobs: negative timeout")
	case c.AckWait < time.Second:
		return errors.New("jobs: the ack wait must be at least 1s")
	case c.CallbackRetries < 0:
		return errors.New("jobs: negative callback retries")
	case c.CallbackBackoff < 0:
		return errors.New("jobs: negative callback backoff")
	case c.Replicas < 1 || c.Replicas > 5:
		return errors.New("jobs: replicas must be 1 to 5")
	}
	return nil
}
