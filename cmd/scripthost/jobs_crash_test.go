package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/client"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// kill9 kills a process started by startBinary and waits for its end.
func (p *process) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err // for the test's cleanup
}

// exited reports whether the process has ended, without waiting.
func (p *process) exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// httpJob is a job client for a server started as a binary.
type httpJob struct {
	t *testing.T
	c *client.HTTP
}

func newHTTPJob(t *testing.T, base string) httpJob { return httpJob{t, httpClient(t, base, "")} }

func (h httpJob) submit(name string, req model.RunRequest) model.Job {
	h.t.Helper()
	job, err := h.c.SubmitJob(context.Background(), name, model.JobRequest{RunRequest: req}, client.JobOptions{})
	if err != nil {
		h.t.Fatalf("submit %s: %v", name, err)
	}
	return job
}

// get answers the job, or ok false while the server does not answer.
func (h httpJob) get(id string) (model.Job, bool) {
	h.t.Helper()
	job, err := h.c.Job(context.Background(), id)
	return job, err == nil
}

func (h httpJob) wait(id, what string, timeout time.Duration, cond func(model.Job) bool) model.Job {
	h.t.Helper()
	var job model.Job
	testutil.WaitFor(h.t, timeout, "job "+id+" "+what, func() bool {
		j, ok := h.get(id)
		job = j
		return ok && cond(j)
	})
	return job
}

// kill -9 of serve with jobs queued, then a restart with the same
// --data-dir: every job answered 202 runs.
func TestJobsSurviveServeKill9(t *testing.T) {
	t.Parallel() // its own server; most of its time waits for scripts, timeouts or acks
	scripts, data, markers := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(scripts, "mark.py"), []byte(
		"import sys, time\nopen(sys.argv[1], 'a').write('ran\\n')\ntime.sleep(0.3)\nprint(sys.argv[1])\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr, natsAddr := freePort(t), freePort(t)
	base := "http://" + httpAddr
	h := newHTTPJob(t, base)
	start := func() *process {
		p := startBinary(t, nil, "serve", "--http", httpAddr, "--nats-listen", natsAddr, "--scripts", scripts,
			"--python", testutil.Python(t), "--mode", testMode(), "--max-concurrent", "1",
			"--data-dir", data, "--job-ack-wait", "2s")
		waitHTTP(t, base+"/healthz")
		return p
	}
	p := start()
	const n = 12
	ids := make([]string, n)
	for i := range ids {
		ids[i] = h.submit("mark.py", model.RunRequest{Args: []string{filepath.Join(markers, fmt.Sprint(i))}}).ID
	}
	last, _ := h.get(ids[n-1])
	p.kill9(t)
	if last.Status != model.JobQueued {
		t.Fatalf("the last job was %q when serve was killed; the test wants jobs queued", last.Status)
	}

	p = start()
	for i, id := range ids {
		job := h.wait(id, "to end after the restart", 60*time.Second, func(j model.Job) bool { return j.Status.Ended() })
		if job.Status != model.JobSucceeded || job.Result == nil || job.Result.Stdout != filepath.Join(markers, fmt.Sprint(i))+"\n" {
			t.Fatalf("job %d after the restart: %+v", i, job)
		}
		if _, err := os.Stat(filepath.Join(markers, fmt.Sprint(i))); err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	if !strings.Contains(p.log(), "jobs: taking jobs") {
		t.Fatalf("no worker in the restarted server's log")
	}
}

// kill -9 of the executor node running a job while another node is up:
// the job runs again there, and succeeds.
func TestJobSurvivesExecutorKill9(t *testing.T) {
	t.Parallel() // its own server; most of its time waits for scripts, timeouts or acks
	c := startClusterWith(t, []string{"--job-ack-wait", "2s"}, 1, "node-a", "node-b")
	c.put("quick.py", "print('quick')\n")
	c.put("slow.py", "import time\ntime.sleep(3)\nprint('done')\n")
	c.waitNodes("quick.py")
	h := newHTTPJob(t, c.base)
	job := h.submit("slow.py", model.RunRequest{})
	job = h.wait(job.ID, "to run", 30*time.Second, func(j model.Job) bool { return j.Status == model.JobRunning })
	first := job.Node
	if c.nodes[first] == nil {
		t.Fatalf("job running on %q", first)
	}
	c.nodes[first].kill9(t)
	job = h.wait(job.ID, "to end on the other node", 60*time.Second, func(j model.Job) bool { return j.Status.Ended() })
	if job.Status != model.JobSucceeded || job.Attempts < 2 || job.Node == first || job.Node == "" || job.Result.Stdout != "done\n" {
		t.Fatalf("after kill -9 of %s: %+v", first, job)
	}
}

// A job whose node dies on every attempt is dead after
// --job-max-attempts, with the reason.
func TestJobDeadAfterMaxAttempts(t *testing.T) {
	t.Parallel() // its own server; most of its time waits for scripts, timeouts or acks
	c := startClusterWith(t, []string{"--job-ack-wait", "2s", "--job-max-attempts", "2"}, 1, "node-a")
	c.put("quick.py", "print('quick')\n")
	// Kills the executor node that runs it (its nearest ancestor that is
	// a scripthost executor).
	c.put("killer.py", "import os, signal, time\n"+
		"pid = os.getppid()\n"+
		"while pid > 1:\n"+
		"    cmd = open('/proc/%d/cmdline' % pid, 'rb').read().split(b'\\0')\n"+
		"    if len(cmd) > 1 and cmd[0].endswith(b'scripthost') and cmd[1] == b'executor':\n"+
		"        os.kill(pid, signal.SIGKILL)\n"+
		"        break\n"+
		"    pid = int(open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()[1])\n"+
		"time.sleep(5)\n")
	c.waitNodes("quick.py")
	h := newHTTPJob(t, c.base)
	job := h.submit("killer.py", model.RunRequest{})
	restarts := 0
	job = h.wait(job.ID, "to be dead", 90*time.Second, func(j model.Job) bool {
		if c.nodes["node-a"].exited() {
			restarts++
			c.addNode("node-a", 1)
		}
		return j.Status.Ended()
	})
	if job.Status != model.JobDead || job.Attempts != 2 || !strings.Contains(job.Error, "given up after 2 attempts") {
		t.Fatalf("job: %+v", job)
	}
	if restarts < 2 {
		t.Fatalf("the node was restarted %d times; the script should have killed it on each of 2 attempts", restarts)
	}
	t.Logf("dead: %s", job.Error)
}
