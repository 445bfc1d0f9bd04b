package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// Mirror keeps, for an executor node that does not share the catalog's
// folder, a copy of every script in a folder of its own (so scripts can
// import their siblings), fed by the key-value bucket that PublishKV
// writes (kv.go), and of the data files beside them. Locate asks the bucket
// for the current version on every run, so a node never runs a version
// older than the last one the catalog answered.
type Mirror struct {
	dir string
	js  jetstream.JetStream
	log *slog.Logger

	mu    sync.Mutex
	kv    jetstream.KeyValue
	index map[string]uint64 // name -> bucket revision written to dir
	hooks []func(name string, exists bool)
}

// OnChange calls fn whenever a script appears in the folder or leaves it.
// fn runs with the mirror locked: it must be quick and must not call the
// Mirror.
func (m *Mirror) OnChange(fn func(name string, exists bool)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hooks = append(m.hooks, fn)
}

// forget removes a script from the folder. mu must be held.
func (m *Mirror) forget(name string) {
	if _, ok := m.index[name]; ok {
		for _, fn := range m.hooks {
			fn(name, false)
		}
	}
	delete(m.index, name)
	os.Remove(filepath.Join(m.dir, name))
}

// NewMirror mirrors the bucket into dir, which it creates.
func NewMirror(js jetstream.JetStream, dir string, log *slog.Logger) (*Mirror, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &Mirror{dir: dir, js: js, log: log, index: map[string]uint64{}}, nil
}

// Dir is the folder the scripts are mirrored into.
func (m *Mirror) Dir() string { return m.dir }

// bucket returns the bucket once the catalog has created it.
func (m *Mirror) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	m.mu.Lock()
	kv := m.kv
	m.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	kv, err := m.js.KeyValue(ctx, bus.ScriptsBucket)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.kv = kv
	m.mu.Unlock()
	return kv, nil
}

// Run follows the bucket until ctx ends: every put is written into the
// folder, every delete removed from it. The data files beside the
// scripts (bus.FilesBucket) are followed the same way.
func (m *Mirror) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.follow(ctx, "data files", func(ctx context.Context) (jetstream.KeyValue, error) {
			return m.js.KeyValue(ctx, bus.FilesBucket)
		}, m.applyFile)
	}()
	defer func() { <-done }()
	m.follow(ctx, "scripts", m.bucket, func(e jetstream.KeyValueEntry) { m.apply(e) })
}

// follow applies every entry of a bucket, the current ones then each
// change, until ctx ends; while the bucket is missing (the catalog has
// not published yet) or its watch ends, it tries again.
func (m *Mirror) follow(ctx context.Context, what string, bucket func(context.Context) (jetstream.KeyValue, error), apply func(jetstream.KeyValueEntry)) {
	for ctx.Err() == nil {
		if err := m.watch(ctx, bucket, apply); err != nil && ctx.Err() == nil {
			m.log.Debug("mirror: waiting for the "+what+" bucket", "err", err)
			select {
			case <-time.After(250 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

func (m *Mirror) watch(ctx context.Context, bucket func(context.Context) (jetstream.KeyValue, error), apply func(jetstream.KeyValueEntry)) error {
	kv, err := bucket(ctx)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e == nil { // the initial values have all been delivered
				continue
			}
			apply(e)
		}
	}
}

// apply brings the folder in line with one bucket entry.
func (m *Mirror) apply(e jetstream.KeyValueEntry) (model.Script, error) {
	name := e.Key()
	if err := model.ValidateName(name); err != nil {
		return model.Script{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		m.forget(name)
		return model.Script{}, model.Errorf(model.ErrNotFound, "script %q not found", name)
	}
	var s model.Script
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return s, model.Errorf(model.ErrInternal, "script %q: bad bucket entry: %v", name, err)
	}
	if m.index[name] >= e.Revision() {
		return s, nil
	}
	if err := WriteFile(m.dir, name, []byte(s.Code)); err != nil {
		return s, err
	}
	if _, ok := m.index[name]; !ok {
		for _, fn := range m.hooks {
			fn(name, true)
		}
	}
	m.index[name] = e.Revision()
	return s, nil
}

// Locate returns the mirrored file of the script's current version,
// fetching it first when the folder holds an older one.
func (m *Mirror) Locate(name string) (path, version string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := m.bucket(ctx)
	if err != nil {
		return "", "", model.Errorf(model.ErrUnavailable, "scripts are not published yet: %v", err)
	}
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		m.mu.Lock()
		m.forget(name)
		m.mu.Unlock()
		return "", "", model.Errorf(model.ErrNotFound, "script %q not found", name)
	}
	if err != nil {
		return "", "", model.Errorf(model.ErrUnavailable, "scripts bucket: %v", err)
	}
	s, err := m.apply(e)
	if err != nil {
		return "", "", err
	}
	return filepath.Join(m.dir, name), s.Version, nil
}

// applyFile brings the folder in line with one data file entry. A name
// that is not a data file's (a script's, a path) is never written.
func (m *Mirror) applyFile(e jetstream.KeyValueEntry) {
	name := e.Key()
	if model.ValidateFileName(name) != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		os.Remove(filepath.Join(m.dir, name))
		return
	}
	if err := WriteDataFile(m.dir, name, e.Value()); err != nil {
		m.log.Warn("mirror: cannot write data file", "name", name, "err", err)
	}
}
