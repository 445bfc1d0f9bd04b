package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/model"
)

// kvTimeout bounds one write to the bucket. Writes happen before the
// catalog answers, so a stuck bus must not hold the catalog for long.
const kvTimeout = 5 * time.Second

// PublishKV mirrors the catalog into the JetStream key-value bucket named
// bucket, for executor nodes that do not share the folder: one key per
// script name, whose value is the model.Script JSON ({"name","code",
// "version"}); a deleted script's key is deleted. The bucket is created if
// missing, in memory storage (the folder is the source of truth), and
// brought in line with the catalog before PublishKV returns; keys of
// scripts that no longer exist are deleted.
//
// From then on every change is written to the bucket before the write that
// made it is answered, until ctx ends. A failed bucket write is logged and
// repaired by the next change of that script, or by the next PublishKV.
func (c *Catalog) PublishKV(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "scripthost scripts: key = script name, value = {\"name\",\"code\",\"version\"}",
		Storage:     jetstream.MemoryStorage,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: key-value bucket %q: %w", bucket, err)
	}
	put := func(ctx context.Context, s *model.Script) error {
		value, err := json.Marshal(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, kvTimeout)
		defer cancel()
		_, err = kv.Put(ctx, s.Name, value)
		return err
	}
	del := func(ctx context.Context, name string) error {
		ctx, cancel := context.WithTimeout(ctx, kvTimeout)
		defer cancel()
		return kv.Delete(ctx, name)
	}

	// Under opMu, no change can slip between the initial copy and the hook.
	c.opMu.Lock()
	defer c.opMu.Unlock()
	keys, err := kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, fmt.Errorf("catalog: list keys of bucket %q: %w", bucket, err)
	}
	c.mu.RLock()
	var stale []string
	for _, key := range keys {
		if _, ok := c.index[key]; !ok {
			stale = append(stale, key)
		}
	}
	c.mu.RUnlock()
	for _, key := range stale {
		if err := del(ctx, key); err != nil {
			return nil, fmt.Errorf("catalog: delete %q from bucket %q: %w", key, bucket, err)
		}
	}
	if err := c.each(func(s *model.Script) error { return put(ctx, s) }); err != nil {
		return nil, fmt.Errorf("catalog: publish to bucket %q: %w", bucket, err)
	}
	c.hooks = append(c.hooks, func(name string, s *model.Script) {
		if ctx.Err() != nil {
			return
		}
		var err error
		if s == nil {
			err = del(ctx, name)
		} else {
			err = put(ctx, s)
		}
		if err != nil {
			c.log.Error("catalog: cannot publish script change", "bucket", bucket, "name", name, "deleted", s == nil, "error", err)
		}
	})
	return kv, nil
}

// PublishFilesKV copies the data files beside the scripts into the
// key-value bucket named bucket (key: file name, value: the file's bytes),
// as PublishKV does for scripts: created if missing, in memory storage,
// brought in line before it returns, then kept in line with every change
// a scan finds until ctx ends. Executor nodes mirror it into their folders.
func (c *Catalog) PublishFilesKV(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "scripthost data files beside the scripts: key = file name, value = its bytes",
		Storage:     jetstream.MemoryStorage,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: key-value bucket %q: %w", bucket, err)
	}
	write := func(ctx context.Context, name string, data []byte) error {
		ctx, cancel := context.WithTimeout(ctx, kvTimeout)
		defer cancel()
		if data == nil {
			return kv.Delete(ctx, name)
		}
		_, err := kv.Put(ctx, name, data)
		return err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	keys, err := kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, fmt.Errorf("catalog: list keys of bucket %q: %w", bucket, err)
	}
	for _, key := range keys {
		if _, ok := c.files[key]; !ok {
			if err := write(ctx, key, nil); err != nil {
				return nil, fmt.Errorf("catalog: delete %q from bucket %q: %w", key, bucket, err)
			}
		}
	}
	// A file the bus cannot carry (over an external server's max_payload)
	// is logged and stays on this node's folder; the rest go on.
	c.onFileChange(func(name string, data []byte) {
		if ctx.Err() != nil {
			return
		}
		if err := write(ctx, name, data); err != nil {
			c.log.Error("catalog: cannot publish data file", "bucket", bucket, "name", name, "deleted", data == nil, "error", err)
		}
	})
	return kv, nil
}
