package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/bus"
)

// eventsMaxBytes bounds the events stream; the oldest events go first.
const eventsMaxBytes = 1 << 30

// streams are the JetStream parts of the jobs.
type streams struct {
	js        jetstream.JetStream
	queue     jetstream.Stream   // work queue: one message per job to run
	workers   jetstream.Consumer // the durable pull consumer of the nodes
	kv        jetstream.KeyValue // job records
	callbacks jetstream.Stream
	cbCons    jetstream.Consumer
}

// setup creates the streams, the consumers and the bucket, or brings
// their settings in line with cfg.
func setup(ctx context.Context, js jetstream.JetStream, cfg Config) (*streams, error) {
	s := &streams{js: js}
	var err error
	s.queue, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        bus.JobsStream,
		Description: "scripthost jobs waiting to run or running: one message per job, removed once its run ended",
		Subjects:    []string{bus.JobQueuePrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		// The Nats-Msg-Id of a job is its id: a submit with the same
		// Idempotency-Key within the TTL is not queued twice.
		Duplicates: cfg.TTL,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: stream %s: %w", bus.JobsStream, err)
	}
	s.workers, err = js.CreateOrUpdateConsumer(ctx, bus.JobsStream, jetstream.ConsumerConfig{
		Durable:       bus.JobsConsumer,
		Description:   "scripthost executor nodes: each pulls a job only while it has a free slot",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxAttempts,
		MaxAckPending: 10000,
		Replicas:      cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: consumer %s: %w", bus.JobsConsumer, err)
	}
	s.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bus.JobsBucket,
		Description: "scripthost job records: key = job id, value = the job JSON; kept for the job TTL after the last change",
		Storage:     jetstream.FileStorage,
		History:     1,
		TTL:         cfg.TTL,
		Replicas:    cfg.Replicas,
		// Watchers are told when a record expires.
		LimitMarkerTTL: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: bucket %s: %w", bus.JobsBucket, err)
	}
	if _, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        bus.JobEventsStream,
		Description: "scripthost job events (script.job.event.<name>.<id>) and output (script.job.output.<id>), for replay",
		Subjects:    []string{bus.JobEventPrefix + ">", bus.JobOutputPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.TTL,
		MaxBytes:    eventsMaxBytes,
		Discard:     jetstream.DiscardOld,
	}); err != nil {
		return nil, fmt.Errorf("jobs: stream %s: %w", bus.JobEventsStream, err)
	}
	s.callbacks, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        bus.CallbacksStream,
		Description: "scripthost jobs that ended, to POST to their X-Callback-Url",
		Subjects:    []string{bus.JobCallbackSubject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.TTL,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: stream %s: %w", bus.CallbacksStream, err)
	}
	s.cbCons, err = js.CreateOrUpdateConsumer(ctx, bus.CallbacksStream, jetstream.ConsumerConfig{
		Durable:       bus.CallbacksConsumer,
		Description:   "scripthost callbacks: POSTed with retries and backoff",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       callbackTimeout + 20*time.Second,
		MaxDeliver:    cfg.CallbackRetries + 1,
		MaxAckPending: 1000,
		Replicas:      cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: consumer %s: %w", bus.CallbacksConsumer, err)
	}
	return s, nil
}
