package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

// kill -9 of the server in the middle of a flood of updates leaves every
// script on disk whole: one of the versions sent, never a mix, and the
// next server serves them.
func TestKillDuringUpdatesLeavesScriptsWhole(t *testing.T) {
	dir := t.TempDir()
	const scripts, versions = 6, 40
	names := make([]string, scripts)
	contents := map[string]map[string]bool{} // name -> every content that may be on disk
	rng := rand.New(rand.NewPCG(5, 6))
	body := func(name string, v int) string {
		// Large and distinct: a mix of two versions cannot pass for one.
		size := 200<<10 + rng.IntN(500<<10)
		line := fmt.Sprintf("# %s version %d\n", name, v)
		return strings.Repeat(line, size/len(line)) + fmt.Sprintf("print(%q)\n", line)
	}
	planned := map[string][]string{}
	for i := range names {
		names[i] = fmt.Sprintf("s%d.py", i)
		contents[names[i]] = map[string]bool{}
		for v := range versions {
			c := body(names[i], v)
			planned[names[i]] = append(planned[names[i]], c)
			contents[names[i]][c] = true
		}
		// Version 0 is on disk before the server starts.
		if err := os.WriteFile(filepath.Join(dir, names[i]), []byte(planned[names[i]][0]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	httpAddr := freePort(t)
	base := "http://" + httpAddr
	start := func() *process {
		p := startBinary(t, nil, "serve", "--http", httpAddr, "--nats-listen", freePort(t), "--scripts", dir,
			"--python", testutil.Python(t), "--max-concurrent", "1")
		waitHTTP(t, base+"/healthz")
		return p
	}
	p := start()

	// Eight writers replace the scripts as fast as the server takes it.
	var done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			client := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				name := names[rng.IntN(scripts)]
				code := planned[name][1+rng.IntN(versions-1)]
				put, err := json.Marshal(map[string]string{"code": code})
				if err != nil {
					t.Error(err)
					return
				}
				req, _ := http.NewRequest("PUT", base+"/scripts/"+name, bytes.NewReader(put))
				resp, err := client.Do(req)
				if err != nil {
					continue // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					done.Add(1)
				}
			}
		}()
	}
	testutil.WaitFor(t, 60*time.Second, "updates to flow", func() bool { return done.Load() >= 50 })
	// SIGKILL, while writes are in flight.
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil
	close(stop)
	wg.Wait()
	t.Logf("%d updates answered before the kill", done.Load())

	check := func(when string) {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".scripthost-tmp-") {
				continue // a write the kill interrupted: not a script
			}
			if contents[name] == nil {
				t.Errorf("%s: unexpected file %s", when, name)
				continue
			}
			seen++
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !contents[name][string(data)] {
				t.Errorf("%s: %s is not a version that was sent (%d bytes, starts %q)", when, name, len(data), cut(data))
			}
		}
		if seen != scripts {
			t.Errorf("%s: %d scripts on disk, want %d", when, seen, scripts)
		}
	}
	check("after the kill")

	// A new server on the same folder serves every script, whole.
	start()
	resp, err := http.Get(base + "/scripts")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	json.NewDecoder(resp.Body).Decode(&listed)
	resp.Body.Close()
	if len(listed) != scripts {
		t.Fatalf("listed %v", listed)
	}
	for _, name := range names {
		resp, err := http.Get(base + "/scripts/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var s struct{ Code string }
		json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if !contents[name][s.Code] {
			t.Errorf("after restart: %s served %d bytes that are no version sent", name, len(s.Code))
		}
	}
	check("after the restart")
}
