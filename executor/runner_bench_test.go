package executor

import (
	"context"
	"testing"
	"time"
)

// The benchmarks print per-run figures for a trivial script; they assert
// nothing about time. Run with SCRIPTHOST_TEST_PYTHON=/usr/bin/python3 for
// the system interpreter:
//
//	go test -run '^$' -bench Runner -benchtime 200x ./executor/

func benchRunner(b *testing.B, r Runner, parallel bool) {
	dir := b.TempDir()
	path := writeScript(b, dir, "hello.py", `print("Hello, World!")`)
	job := Job{Path: path}
	one := func() {
		res, err := r.Run(context.Background(), job)
		if err != nil || res.Stdout != "Hello, World!\n" {
			b.Fatalf("run: %+v %v", res, err)
		}
	}
	one() // warm caches
	b.ResetTimer()
	if !parallel {
		for b.Loop() {
			one()
		}
		return
	}
	b.SetParallelism(2) // 2 × GOMAXPROCS runs in flight
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			one()
		}
	})
}

func BenchmarkSpawnRunner(b *testing.B) {
	r, err := NewSpawnRunner(testConfig(b, Limits{Timeout: 30 * time.Second}))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.Run("serial", func(b *testing.B) { benchRunner(b, r, false) })
	b.Run("parallel", func(b *testing.B) { benchRunner(b, r, true) })
}

func BenchmarkForkRunner(b *testing.B) {
	r, err := NewForkRunner(testConfig(b, Limits{Timeout: 30 * time.Second}), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.Run("serial", func(b *testing.B) { benchRunner(b, r, false) })
	b.Run("parallel", func(b *testing.B) { benchRunner(b, r, true) })
}
