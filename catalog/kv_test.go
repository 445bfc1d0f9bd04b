package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

func TestPublishKV(t *testing.T) {
	js, err := jetstream.New(testutil.Connect(t, testutil.StartBus(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	// A bucket left by an earlier run, with a script that is gone since.
	const bucket = "scripthost-scripts-test"
	old, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Put(ctx, "gone.py", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}

	c, _ := newCatalog(t, "", 0)
	c.Create("a.py", "print('a')\n")
	c.Create("b.py", "print('b')\n")
	kv, err := c.PublishKV(ctx, js, bucket)
	if err != nil {
		t.Fatal(err)
	}

	get := func(name string) *model.Script {
		t.Helper()
		e, err := kv.Get(ctx, name)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		var s model.Script
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			t.Fatalf("value of %s: %v", name, err)
		}
		return &s
	}
	check := func(step, name, code string) {
		t.Helper()
		s := get(name)
		switch {
		case code == "" && s != nil:
			t.Fatalf("%s: %s still in the bucket", step, name)
		case code != "" && (s == nil || s.Code != code || s.Version != model.Version([]byte(code)) || s.Name != name):
			t.Fatalf("%s: bucket holds %+v for %s, want code %q", step, s, name, code)
		}
	}
	keys, err := kv.Keys(ctx)
	if err != nil || !slices.Equal(keys, []string{"a.py", "b.py"}) {
		t.Fatalf("keys after publishing: %q, %v", keys, err)
	}
	check("initial copy", "a.py", "print('a')\n")

	// Each write is in the bucket by the time it returns: no waiting.
	c.Create("c.d.py", "print('c')\n")
	check("create", "c.d.py", "print('c')\n")
	c.Update("a.py", "print('A')\n")
	check("update", "a.py", "print('A')\n")
	c.Delete("b.py")
	check("delete", "b.py", "")
	writeFile(t, c.Dir(), "hand.py", "print('hand')\n")
	c.Rescan()
	check("hand addition", "hand.py", "print('hand')\n")

	cancel()
	c.Create("late.py", "print('late')\n")
	if _, err := kv.Get(t.Context(), "late.py"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("published after the context ended: %v", err)
	}
}
