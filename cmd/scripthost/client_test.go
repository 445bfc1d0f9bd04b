package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/client"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// clientScripts are the scripts of the client's tests.
var clientScripts = map[string]string{
	"echo.py": "import sys\nsys.stdout.write('data=%s args=%s' % (sys.stdin.read(), sys.argv[1:]))\nsys.stderr.write('to stderr')\n",
	"tick.py": "import sys, time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.2)\nsys.stderr.write('done')\n",
	"loop.py": "print('started', flush=True)\nwhile True: pass\n",
	// slow.py writes its pid to the file named by its argument, then
	// sleeps far beyond every time limit of the test.
	"slow.py": "import os, sys, time\nopen(sys.argv[1] + '.tmp', 'w').write('%d\\n' % os.getpid()); os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n" +
		"print('started', flush=True)\ntime.sleep(60)\n",
}

// TestClient drives a server through package client, over HTTP and over
// NATS alike: what each call answers, and the kind and status of each
// error.
func TestClient(t *testing.T) {
	cfg := jobsConfigForTest(t)
	cfg.Timeout = 3 * time.Second
	ts := startTest(t, cfg, clientScripts)
	nc, err := client.NewNATS(client.Config{URL: ts.s.natsURL, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := context.Background()

	for _, tr := range []struct {
		name string
		c    client.Client
		url  string
	}{
		{"http", ts.api, ts.base},
		{"nats", nc, ts.s.natsURL},
	} {
		c := tr.c
		t.Run(tr.name, func(t *testing.T) {
			wantErr := func(what string, err error, kind error, code int) {
				t.Helper()
				if !errors.Is(err, kind) || model.Code(err) != code || model.Message(err) == "" {
					t.Errorf("%s: %v (code %d), want %v (%d)", what, err, model.Code(err), kind, code)
				}
			}

			// Scripts.
			name := "new_" + tr.name + ".py"
			s, err := c.Create(ctx, name, "print('v1')\n")
			if err != nil || s.Name != name || s.Version != model.Version([]byte("print('v1')\n")) {
				t.Fatalf("create: %+v, %v", s, err)
			}
			_, err = c.Create(ctx, name, "print('again')\n")
			wantErr("create again", err, model.ErrExists, 409)
			if s, err = c.Update(ctx, name, "print('v2')\n"); err != nil || s.Version != model.Version([]byte("print('v2')\n")) {
				t.Fatalf("update: %+v, %v", s, err)
			}
			if s, err = c.Get(ctx, name); err != nil || s.Code != "print('v2')\n" {
				t.Fatalf("get: %+v, %v", s, err)
			}
			names, err := c.List(ctx)
			if err != nil || !slices.Contains(names, name) || !slices.Contains(names, "echo.py") || !slices.IsSorted(names) {
				t.Fatalf("list: %q, %v", names, err)
			}
			if err := c.Delete(ctx, name); err != nil {
				t.Fatalf("delete: %v", err)
			}
			_, err = c.Get(ctx, name)
			wantErr("get a deleted script", err, model.ErrNotFound, 404)
			wantErr("delete again", c.Delete(ctx, name), model.ErrNotFound, 404)
			_, err = c.Update(ctx, "bad name.py", "x")
			wantErr("a bad name", err, model.ErrBadRequest, 400)

			// Runs: the answer, where it came from, the cache.
			req := model.RunRequest{Data: []byte(`{"who": "` + tr.name + `",  "n": 2.50}`), Args: []string{"a b", "-x"}}
			ans, err := c.Run(ctx, "echo.py", req, client.RunOptions{})
			wantOut := `data={"who": "` + tr.name + `",  "n": 2.50} args=['a b', '-x']`
			if err != nil || ans.Result.Stdout != wantOut || ans.Result.Stderr != "to stderr" ||
				ans.Result.ExitCode == nil || *ans.Result.ExitCode != 0 || ans.Node != "test-node" || ans.Cache != "miss" {
				t.Fatalf("run: %+v, %v", ans, err)
			}
			if ans, err = c.Run(ctx, "echo.py", req, client.RunOptions{}); err != nil || ans.Cache != "hit" || ans.Result.Stdout != wantOut {
				t.Fatalf("the same run again: %+v, %v", ans, err)
			}
			if ans, err = c.Run(ctx, "echo.py", req, client.RunOptions{NoCache: true}); err != nil || ans.Cache != "miss" {
				t.Fatalf("a run without the cache: %+v, %v", ans, err)
			}

			// A streamed run: the output as it comes, then the result.
			var out, errOut chunks
			ans, err = c.Run(ctx, "tick.py", model.RunRequest{}, client.RunOptions{NoCache: true, Stdout: &out, Stderr: &errOut})
			if err != nil || ans.Result.Stdout != "tick 0\ntick 1\ntick 2\n" || out.String() != ans.Result.Stdout || errOut.String() != "done" {
				t.Fatalf("streamed run: %+v, %v; stdout chunks %q, stderr chunks %q", ans, err, out.got, errOut.got)
			}
			if len(out.got) < 2 {
				t.Errorf("stdout came in %d chunk(s) %q: not as the script wrote it", len(out.got), out.got)
			}

			// A run that times out is a result that says so.
			for _, opts := range []client.RunOptions{{}, {Stdout: &chunks{}}} {
				ans, err = c.Run(ctx, "loop.py", model.RunRequest{}, opts)
				if err != nil || !ans.Result.TimedOut || ans.Result.Stdout != "started\n" {
					t.Fatalf("timed-out run (streamed %v): %+v, %v", opts.Stdout != nil, ans, err)
				}
			}
			_, err = c.Run(ctx, "nope.py", model.RunRequest{}, client.RunOptions{})
			wantErr("run of no script", err, model.ErrNotFound, 404)
			_, err = c.Run(ctx, "echo.py", model.RunRequest{Data: []byte(`{"x":`)}, client.RunOptions{})
			wantErr("data that is not JSON", err, model.ErrBadRequest, 400)

			// A streamed run that outlasts the client's Timeout is cancelled
			// on the server: its process goes at once.
			quick, err := newClient(tr.name, tr.url, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer quick.Close()
			pidFile := filepath.Join(t.TempDir(), "pid")
			start := time.Now()
			_, err = quick.Run(ctx, "slow.py", model.RunRequest{Args: []string{pidFile}}, client.RunOptions{Stdout: &chunks{}})
			wantErr("a run past the client's timeout", err, client.ErrNoAnswer, 504)
			if !strings.Contains(err.Error(), "within 1s; the run was cancelled") || time.Since(start) > 20*time.Second {
				t.Errorf("after %s: %v", time.Since(start), err)
			}
			pid := testutil.ReadPids(t, pidFile)[0]
			testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("slow.py (pid %d) to be killed", pid), func() bool { return testutil.ProcessGone(pid) })

			// Jobs.
			opts := client.JobOptions{IdempotencyKey: "key-" + tr.name}
			job, err := c.SubmitJob(ctx, "echo.py", model.JobRequest{RunRequest: model.RunRequest{Data: []byte(`[1]`)}, Timeout: time.Minute}, opts)
			if err != nil || job.ID == "" || job.Script != "echo.py" || job.Timeout != "1m0s" {
				t.Fatalf("submit: %+v, %v", job, err)
			}
			if again, err := c.SubmitJob(ctx, "echo.py", model.JobRequest{}, opts); err != nil || again.ID != job.ID {
				t.Fatalf("the same idempotency key: %+v, %v; want job %s", again, err, job.ID)
			}
			testutil.WaitFor(t, 60*time.Second, "job "+job.ID+" to end", func() bool {
				job, err = c.Job(ctx, job.ID)
				return err == nil && job.Status.Ended()
			})
			if job.Status != model.JobSucceeded || job.Result == nil || job.Result.Stdout != "data=[1] args=[]" {
				t.Fatalf("job: %+v (result %+v)", job, job.Result)
			}
			// The listing is an index fed by a watch of the bucket: it shows
			// an ended job a moment after GET /jobs/{id} does.
			var jobs []model.Job
			testutil.WaitFor(t, 30*time.Second, "job "+job.ID+" in the list of succeeded echo.py jobs", func() bool {
				jobs, err = c.Jobs(ctx, model.JobListRequest{Script: "echo.py", Status: model.JobSucceeded})
				if err != nil {
					t.Fatalf("list: %v", err)
				}
				return slices.ContainsFunc(jobs, func(j model.Job) bool { return j.ID == job.ID })
			})
			slow, err := c.SubmitJob(ctx, "slow.py", model.JobRequest{RunRequest: model.RunRequest{Args: []string{pidFile + ".job"}}}, client.JobOptions{NoCache: true})
			if err != nil {
				t.Fatalf("submit slow.py: %v", err)
			}
			testutil.ReadPids(t, pidFile+".job")
			if slow, err = c.CancelJob(ctx, slow.ID); err != nil || slow.Status != model.JobCancelled {
				t.Fatalf("cancel: %+v, %v", slow, err)
			}
			_, err = c.Job(ctx, "0123456789abcdef")
			wantErr("no such job", err, model.ErrNotFound, 404)
			_, err = c.Jobs(ctx, model.JobListRequest{Status: "done"})
			wantErr("no such status", err, model.ErrBadRequest, 400)
		})
	}
}

// TestClientUnreachable: a server that is not there is a 503 that says
// where the client looked.
func TestClientUnreachable(t *testing.T) {
	dead := freePort(t)
	if _, err := client.NewNATS(client.Config{URL: "nats://" + dead}); !errors.Is(err, model.ErrUnavailable) ||
		!strings.Contains(err.Error(), "cannot reach the NATS bus at nats://"+dead) {
		t.Errorf("NATS: %v", err)
	}
	c, err := client.NewHTTP(client.Config{URL: dead})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Run(context.Background(), "a.py", model.RunRequest{}, client.RunOptions{}); !errors.Is(err, model.ErrUnavailable) ||
		!strings.Contains(err.Error(), "cannot reach the HTTP API at http://"+dead) {
		t.Errorf("HTTP: %v", err)
	}
}

// newClient is a client over transport ("http" or "nats") with a timeout.
func newClient(transport, url string, timeout time.Duration) (client.Client, error) {
	cfg := client.Config{URL: url, Timeout: timeout}
	if transport == "http" {
		return client.NewHTTP(cfg)
	}
	return client.NewNATS(cfg)
}

// chunks keeps the chunks of a streamed run's output.
type chunks struct{ got []string }

func (c *chunks) Write(p []byte) (int, error) {
	c.got = append(c.got, string(p))
	return len(p), nil
}

func (c *chunks) String() string { return strings.Join(c.got, "") }
