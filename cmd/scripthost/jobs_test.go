package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// Scripts of the job tests.
const (
	echoScript = "import sys\nsys.stdout.write(sys.stdin.read())\n"
	failScript = "import sys\nprint('about to fail')\nsys.exit(3)\n"
	// sleepScript writes its pid to the file named by its first argument
	// (when given), then sleeps for the seconds of its data.
	sleepScript = "import json, os, sys, time\n" +
		"if len(sys.argv) > 1:\n    open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n" +
		"time.sleep(float(json.load(sys.stdin)))\nprint('slept')\n"
	// markScript creates the file named by its first argument.
	markScript = "import sys\nopen(sys.argv[1], 'a').write('ran\\n')\nprint('marked')\n"
)

// submitJob posts a job and checks the 202 and its Location.
func (ts *testServer) submitJob(name, body string, headers ...string) model.Job {
	ts.t.Helper()
	return ts.submitted(name, ts.do("POST", "/jobs/"+name, body, headers...))
}

// submitted checks the answer to a submit of name, as submitJob does, and
// returns the job; from the test's goroutine.
func (ts *testServer) submitted(name string, r response) model.Job {
	ts.t.Helper()
	r.want(ts.t, http.StatusAccepted)
	var job model.Job
	r.json(ts.t, &job)
	if job.ID == "" || r.header.Get("Location") != "/jobs/"+job.ID {
		ts.t.Fatalf("submit %s: Location %q for job %q", name, r.header.Get("Location"), job.ID)
	}
	if job.Script != name || job.CreatedAt.IsZero() {
		ts.t.Fatalf("submit %s: job %+v", name, job)
	}
	return job
}

// jobTimeRe is a job's time as it is written: UTC, microseconds always
// shown.
var jobTimeRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

// wantFixedTimes checks the times of the ended job in body (its JSON as
// sent): each one as wide as model.TimeLayout, and in order.
func wantFixedTimes(t *testing.T, body []byte) {
	t.Helper()
	var raw struct {
		CreatedAt  string `json:"created_at"`
		StartedAt  string `json:"started_at"`
		FinishedAt string `json:"finished_at"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	for _, s := range []string{raw.CreatedAt, raw.StartedAt, raw.FinishedAt} {
		if !jobTimeRe.MatchString(s) {
			t.Fatalf("job time %q is not written as %s: %s", s, model.TimeLayout, body)
		}
	}
	if !(raw.CreatedAt <= raw.StartedAt && raw.StartedAt <= raw.FinishedAt) {
		t.Fatalf("job times out of order as strings: %s", body)
	}
}

func (ts *testServer) job(id string) model.Job {
	ts.t.Helper()
	job, err := ts.api.Job(context.Background(), id)
	if err != nil {
		ts.t.Fatalf("job %s: %v", id, err)
	}
	return job
}

// waitJob polls a job until cond holds.
func (ts *testServer) waitJob(id string, what string, cond func(model.Job) bool) model.Job {
	ts.t.Helper()
	var job model.Job
	testutil.WaitFor(ts.t, 60*time.Second, "job "+id+" "+what, func() bool {
		job = ts.job(id)
		return cond(job)
	})
	return job
}

func (ts *testServer) waitEnded(id string) model.Job {
	ts.t.Helper()
	return ts.waitJob(id, "to end", func(j model.Job) bool { return j.Status.Ended() })
}

func jobsConfigForTest(t *testing.T) serveConfig {
	cfg := testConfig(t)
	cfg.JobMaxTimeout = 2 * time.Minute
	return cfg
}

func TestJobLifecycle(t *testing.T) {
	t.Parallel() // its own server; most of its time waits for scripts, timeouts or acks
	ts := startTest(t, jobsConfigForTest(t), map[string]string{
		"echo.py": echoScript, "fail.py": failScript, "sleep.py": sleepScript,
	})

	job := ts.submitJob("echo.py", `{"data": {"n": 1}}`)
	if job.Status != model.JobQueued && job.Status != model.JobRunning {
		t.Fatalf("new job status %q", job.Status)
	}
	job = ts.waitEnded(job.ID)
	if job.Status != model.JobSucceeded || job.Result == nil || job.Result.Stdout != `{"n": 1}` || job.Attempts != 1 ||
		job.Node != "test-node" || job.StartedAt == nil || job.FinishedAt == nil || job.FinishedAt.Before(job.StartedAt.Time) {
		t.Fatalf("echo job: %+v (result %+v)", job, job.Result)
	}
	wantFixedTimes(t, ts.do("GET", "/jobs/"+job.ID, "").want(t, 200).body)

	// A run that takes a while is seen running, then succeeded.
	job = ts.submitJob("sleep.py", `{"data": 1.5}`)
	ts.waitJob(job.ID, "to run", func(j model.Job) bool { return j.Status == model.JobRunning })
	if job = ts.waitEnded(job.ID); job.Status != model.JobSucceeded || job.Result.Stdout != "slept\n" {
		t.Fatalf("sleep job: %+v", job)
	}

	job = ts.waitEnded(ts.submitJob("fail.py", "").ID)
	if job.Status != model.JobFailed || job.Result == nil || job.Result.ExitCode == nil || *job.Result.ExitCode != 3 || job.Result.Stdout != "about to fail\n" {
		t.Fatalf("failing job: %+v", job)
	}

	// The job's own timeout, not the node's (10s), ends it.
	start := time.Now()
	job = ts.waitEnded(ts.submitJob("sleep.py", `{"data": 30, "timeout": "1s"}`).ID)
	if job.Status != model.JobTimedOut || job.Result == nil || !job.Result.TimedOut || job.Timeout != "1s" {
		t.Fatalf("timed-out job: %+v", job)
	}
	if d := time.Since(start); d > 9*time.Second {
		t.Fatalf("a job with a 1s timeout took %s", d)
	}

	// A job may take longer than the node's run timeout.
	long := ts.submitJob("sleep.py", `{"data": 11, "timeout": "40s"}`)

	for _, c := range []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"timeout over the limit", "/jobs/echo.py", `{"timeout": "3m"}`, 400, "--job-max-timeout"},
		{"bad timeout", "/jobs/echo.py", `{"timeout": "soon"}`, 400, "timeout"},
		{"unknown field", "/jobs/echo.py", `{"dta": 1}`, 400, `"dta"`},
		{"bad JSON", "/jobs/echo.py", `{"data": `, 400, "JSON"},
		{"bad name", "/jobs/..py", ``, 400, "name"},
		{"unknown script", "/jobs/nope.py", ``, 404, "nope.py"},
		{"bad callback", "/jobs/echo.py", ``, 400, "X-Callback-Url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.name == "bad callback" {
				hdr = []string{"X-Callback-Url", "file:///etc/passwd"}
			}
			r := ts.do("POST", c.path, c.body, hdr...).want(t, c.status)
			if msg := r.errorText(t); !strings.Contains(msg, c.msg) {
				t.Fatalf("error %q does not mention %q", msg, c.msg)
			}
		})
	}
	ts.do("GET", "/jobs/0000000000000000000000000000", "").want(t, http.StatusNotFound)
	ts.do("GET", "/jobs/NOT-AN-ID", "").want(t, http.StatusNotFound)
	ts.do("DELETE", "/jobs/0000000000000000000000000000", "").want(t, http.StatusNotFound)

	if job = ts.waitEnded(long.ID); job.Status != model.JobSucceeded {
		t.Fatalf("job longer than the node's run timeout: %+v", job)
	}
}

func TestJobCancel(t *testing.T) {
	cfg := jobsConfigForTest(t)
	cfg.MaxConcurrent = 1
	ts := startTest(t, cfg, map[string]string{"sleep.py": sleepScript, "mark.py": markScript, "echo.py": echoScript})
	dir := t.TempDir()

	// A running job: its process is gone at once.
	pidFile := filepath.Join(dir, "pid")
	running := ts.submitJob("sleep.py", jsonBody(t, map[string]any{"data": 60, "args": []string{pidFile}}))
	var pid int
	testutil.WaitFor(t, 30*time.Second, "the job's process", func() bool {
		b, err := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(string(b))
		return err == nil && pid > 0
	})
	// A queued job behind it (one slot): it never starts.
	marker := filepath.Join(dir, "marker")
	queued := ts.submitJob("mark.py", jsonBody(t, map[string]any{"args": []string{marker}}))
	if j := ts.job(queued.ID); j.Status != model.JobQueued {
		t.Fatalf("second job with one slot busy: %q", j.Status)
	}
	var cancelled model.Job
	ts.do("DELETE", "/jobs/"+queued.ID, "").want(t, http.StatusAccepted).json(t, &cancelled)
	if cancelled.Status != model.JobCancelled {
		t.Fatalf("cancelled queued job: %+v", cancelled)
	}
	start := time.Now()
	ts.do("DELETE", "/jobs/"+running.ID, "").want(t, http.StatusAccepted).json(t, &cancelled)
	if cancelled.Status != model.JobCancelled || cancelled.FinishedAt == nil {
		t.Fatalf("cancelled running job: %+v", cancelled)
	}
	testutil.WaitFor(t, 5*time.Second, "the cancelled job's process to die", func() bool { return !pidAlive(pid) })
	t.Logf("process gone %s after the cancel", time.Since(start))

	// The slot is free again: the next job runs, and the cancelled one
	// (ahead of it in the queue) did not.
	if j := ts.waitEnded(ts.submitJob("echo.py", `{"data": 2}`).ID); j.Status != model.JobSucceeded {
		t.Fatalf("job after the cancels: %+v", j)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the cancelled queued job ran: %v", err)
	}
	for _, id := range []string{running.ID, queued.ID} {
		if j := ts.job(id); j.Status != model.JobCancelled {
			t.Fatalf("job %s later: %+v", id, j)
		}
	}
	// Cancelling an ended job answers it unchanged.
	done := ts.waitEnded(ts.submitJob("echo.py", `{"data": 3}`).ID)
	var again model.Job
	ts.do("DELETE", "/jobs/"+done.ID, "").want(t, http.StatusAccepted).json(t, &again)
	if again.Status != model.JobSucceeded {
		t.Fatalf("cancel of an ended job: %+v", again)
	}
}

func TestJobListAndFilters(t *testing.T) {
	ts := startTest(t, jobsConfigForTest(t), map[string]string{"a.py": echoScript, "b.py": failScript})
	var ids []string
	for i := range 3 {
		ids = append(ids, ts.waitEnded(ts.submitJob("a.py", fmt.Sprintf(`{"data": %d}`, i)).ID).ID)
		ids = append(ids, ts.waitEnded(ts.submitJob("b.py", "").ID).ID)
	}
	list := func(query string) []model.Job {
		var l model.JobList
		ts.do("GET", "/jobs"+query, "").want(t, http.StatusOK).json(t, &l)
		return l.Jobs
	}
	// Every job, newest first.
	all := list("")
	if len(all) != 6 {
		t.Fatalf("list: %d jobs", len(all))
	}
	for i, j := range all {
		if j.ID != ids[len(ids)-1-i] {
			t.Fatalf("list order: job %d is %s, want %s", i, j.ID, ids[len(ids)-1-i])
		}
	}
	for _, j := range list("?script=a.py") {
		if j.Script != "a.py" || j.Status != model.JobSucceeded {
			t.Fatalf("script filter: %+v", j)
		}
	}
	if n := len(list("?script=a.py")); n != 3 {
		t.Fatalf("script filter: %d jobs", n)
	}
	failed := list("?status=failed")
	if len(failed) != 3 || failed[0].Script != "b.py" {
		t.Fatalf("status filter: %+v", failed)
	}
	if l := list("?script=b.py&status=failed&limit=2"); len(l) != 2 || l[0].ID != ids[5] || l[1].ID != ids[3] {
		t.Fatalf("limit: %+v", l)
	}
	if l := list("?status=queued"); len(l) != 0 {
		t.Fatalf("queued: %+v", l)
	}
	ts.do("GET", "/jobs?status=done", "").want(t, 400)
	ts.do("GET", "/jobs?limit=many", "").want(t, 400)
	ts.do("GET", "/jobs?limit=-1", "").want(t, 400)
	ts.do("GET", "/jobs?script=a%20b.py", "").want(t, 400)
}

func TestRunWait(t *testing.T) {
	t.Parallel() // its own server; most of its time waits for scripts, timeouts or acks
	ts := startTest(t, jobsConfigForTest(t), map[string]string{"echo.py": echoScript, "sleep.py": sleepScript})
	r := ts.do("POST", "/run/echo.py?wait=20s", `{"data": "quick"}`).want(t, http.StatusOK)
	if res := r.result(t); res.Stdout != `"quick"` || r.header.Get("X-Scripthost-Job") == "" || r.header.Get("X-Cache") != "miss" {
		t.Fatalf("wait answered %+v, headers %v", res, r.header)
	}
	// The same run again is a cache hit, as a run's would be.
	if r := ts.do("POST", "/run/echo.py?wait=20s", `{"data": "quick"}`).want(t, http.StatusOK); r.header.Get("X-Cache") != "hit" {
		t.Fatalf("second wait: X-Cache %q", r.header.Get("X-Cache"))
	}

	r = ts.do("POST", "/run/sleep.py?wait=200ms", `{"data": 2}`).want(t, http.StatusAccepted)
	var job model.Job
	r.json(t, &job)
	if job.Status.Ended() || r.header.Get("Location") != "/jobs/"+job.ID {
		t.Fatalf("wait over: %+v, Location %q", job, r.header.Get("Location"))
	}
	if job = ts.waitEnded(job.ID); job.Status != model.JobSucceeded {
		t.Fatalf("the job went on: %+v", job)
	}

	r = ts.do("POST", "/run/sleep.py?wait=30s", `{"data": 20, "timeout": "1s"}`).want(t, http.StatusGatewayTimeout)
	var tb model.TimeoutBody
	r.json(t, &tb)
	if tb.Error != model.MsgTimedOut || !tb.TimedOut {
		t.Fatalf("timed out wait: %+v", tb)
	}
	ts.do("POST", "/run/echo.py?wait=forever", "").want(t, 400)
	ts.do("POST", "/run/nope.py?wait=1s", "").want(t, 404)
}

func TestJobIdempotency(t *testing.T) {
	ts := startTest(t, jobsConfigForTest(t), map[string]string{"mark.py": markScript})
	marker := filepath.Join(t.TempDir(), "marker")
	body := jsonBody(t, map[string]any{"args": []string{marker}})
	first := ts.submitJob("mark.py", body, "Idempotency-Key", "order-42", "Cache-Control", "no-cache")
	var wg sync.WaitGroup
	answers := make([]response, 8)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = ts.call("POST", "/jobs/mark.py", body, "Idempotency-Key", "order-42", "Cache-Control", "no-cache")
		}()
	}
	wg.Wait()
	for _, r := range answers {
		if id := ts.submitted("mark.py", r).ID; id != first.ID {
			t.Fatalf("same key, jobs %s and %s", first.ID, id)
		}
	}
	if j := ts.waitEnded(first.ID); j.Status != model.JobSucceeded || j.IdempotencyKey != "order-42" {
		t.Fatalf("job: %+v", j)
	}
	again := ts.submitJob("mark.py", body, "Idempotency-Key", "order-42", "Cache-Control", "no-cache")
	if again.ID != first.ID || again.Status != model.JobSucceeded {
		t.Fatalf("same key after the end: %+v", again)
	}
	other := ts.waitEnded(ts.submitJob("mark.py", body, "Idempotency-Key", "order-43", "Cache-Control", "no-cache").ID)
	if other.ID == first.ID {
		t.Fatal("another key answered the same job")
	}
	b, err := os.ReadFile(marker)
	if err != nil || string(b) != "ran\nran\n" {
		t.Fatalf("the script ran %q times (want twice: one per key): %v", b, err)
	}
}

func TestJobCallbackRetried(t *testing.T) {
	type call struct {
		job model.Job
		at  time.Time
	}
	var mu sync.Mutex
	var calls []call
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var job model.Job
		json.Unmarshal(body, &job)
		mu.Lock()
		calls = append(calls, call{job, time.Now()})
		n := len(calls)
		mu.Unlock()
		if n == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer cb.Close()
	ts := startTest(t, jobsConfigForTest(t), map[string]string{"echo.py": echoScript})
	job := ts.submitJob("echo.py", `{"data": "called back"}`, "X-Callback-Url", cb.URL+"/hook")
	testutil.WaitFor(t, 30*time.Second, "the callback to be retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) >= 2
	})
	// And no more once it was answered 2xx.
	final := ts.waitEnded(job.ID)
	time.Sleep(1500 * time.Millisecond) // past the next backoff: a third call would show
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("%d callback calls, want 2", len(calls))
	}
	for _, c := range calls {
		if c.job.ID != job.ID || c.job.Status != model.JobSucceeded || c.job.Result == nil || c.job.Result.Stdout != `"called back"` {
			t.Fatalf("callback body: %+v", c.job)
		}
	}
	if gap := calls[1].at.Sub(calls[0].at); gap < 900*time.Millisecond {
		t.Fatalf("retried after %s, want a backoff of 1s", gap)
	}
	if final.CallbackURL != cb.URL+"/hook" {
		t.Fatalf("job callback_url %q", final.CallbackURL)
	}
}

func TestJobsOverNATS(t *testing.T) {
	ts := startTest(t, jobsConfigForTest(t), map[string]string{"echo.py": echoScript, "sleep.py": sleepScript})
	nc := ts.nats()
	events := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(bus.JobEventPrefix+">", events)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	request := func(subject string, body string, hdr nats.Header) (*nats.Msg, model.Job) {
		t.Helper()
		m, err := nc.RequestMsg(&nats.Msg{Subject: subject, Data: []byte(body), Header: hdr}, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		var job model.Job
		json.Unmarshal(m.Data, &job)
		return m, job
	}
	_, job := request("script.job.submit.echo.py", `{"data": [1, 2]}`, nats.Header{"Idempotency-Key": []string{"nats-1"}})
	if job.ID == "" || job.Script != "echo.py" {
		t.Fatalf("submit over NATS: %+v", job)
	}
	// Its events: queued, running, succeeded, on script.job.event.<name>.<id>.
	// They come from different processes (the submit's server, the node
	// that runs it) and may arrive in any order; their record revisions
	// order them.
	revs := map[model.JobStatus]uint64{}
	timeout := time.After(30 * time.Second)
	for len(revs) < 3 {
		select {
		case m := <-events:
			var j model.Job
			if err := json.Unmarshal(m.Data, &j); err != nil || j.ID != job.ID {
				continue
			}
			if m.Subject != "script.job.event.echo.py."+job.ID {
				t.Fatalf("event subject %q", m.Subject)
			}
			rev, err := strconv.ParseUint(m.Header.Get(bus.HeaderJobRevision), 10, 64)
			if err != nil || rev == 0 {
				t.Fatalf("%s event: revision header %q", j.Status, m.Header.Get(bus.HeaderJobRevision))
			}
			if _, dup := revs[j.Status]; dup {
				t.Fatalf("%s event twice", j.Status)
			}
			revs[j.Status] = rev
		case <-timeout:
			t.Fatalf("events so far: %v", revs)
		}
	}
	if !(revs[model.JobQueued] > 0 && revs[model.JobQueued] < revs[model.JobRunning] && revs[model.JobRunning] < revs[model.JobSucceeded]) {
		t.Fatalf("events by revision: %v, want queued < running < succeeded", revs)
	}
	if _, got := request("script.job.get."+job.ID, "", nil); got.Status != model.JobSucceeded || got.Result.Stdout != "[1, 2]" {
		t.Fatalf("get over NATS: %+v", got)
	}
	// Its events and its output are kept in the events stream, for replay.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	replay := func(subject string) []*jetstream.RawStreamMsg {
		t.Helper()
		cons, err := js.OrderedConsumer(context.Background(), bus.JobEventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []*jetstream.RawStreamMsg
		for {
			batch, err := cons.FetchNoWait(100)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for m := range batch.Messages() {
				n++
				msgs = append(msgs, &jetstream.RawStreamMsg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			}
			if n == 0 {
				return msgs
			}
		}
	}
	var out string
	for _, m := range replay("script.job.output." + job.ID + ".>") {
		if m.Subject != "script.job.output."+job.ID+".stdout" || m.Header.Get(bus.HeaderAttempt) != "1" {
			t.Fatalf("output chunk on %s, attempt %q", m.Subject, m.Header.Get(bus.HeaderAttempt))
		}
		out += string(m.Data)
	}
	if out != "[1, 2]" {
		t.Fatalf("replayed output %q", out)
	}
	if n := len(replay("script.job.event.echo.py." + job.ID)); n != 3 {
		t.Fatalf("replayed %d events, want 3", n)
	}

	m, _ := request("script.job.list", `{"script": "echo.py", "limit": 5}`, nil)
	var list model.JobList
	if err := json.Unmarshal(m.Data, &list); err != nil || len(list.Jobs) != 1 || list.Jobs[0].ID != job.ID {
		t.Fatalf("list over NATS: %s", m.Data)
	}
	_, slow := request("script.job.submit.sleep.py", `{"data": 30}`, nil)
	ts.waitJob(slow.ID, "to run", func(j model.Job) bool { return j.Status == model.JobRunning })
	if _, c := request("script.job.cancel."+slow.ID, "", nil); c.Status != model.JobCancelled {
		t.Fatalf("cancel over NATS: %+v", c)
	}
	for _, c := range []struct {
		subject, body, code string
	}{
		{"script.job.submit.nope.py", "", "404"},
		{"script.job.submit.echo.py", `{"timeout": [5]}`, "400"},
		{"script.job.list", `{"bogus": 1}`, "400"},
		{"script.job.get.0000", "", "404"},
		{"script.job.cancel.0000", "", "404"},
		{"script.job.list", `{"status": "sleeping"}`, "400"},
		{"script.job.submit.echo.py", `{"data": "` + strings.Repeat("x", 1<<20) + `"}`, "413"},
	} {
		m, _ := request(c.subject, c.body, nil)
		if got := m.Header.Get(bus.HeaderErrorCode); got != c.code {
			t.Fatalf("%s %s: code %q (%s), want %s", c.subject, c.body, got, m.Data, c.code)
		}
	}
}

// 300 jobs submitted by 16 clients at once all succeed, each with its own
// result.
func TestManyJobs(t *testing.T) {
	ts := startTest(t, jobsConfigForTest(t), map[string]string{"echo.py": echoScript})
	const n, clients = 300, 16
	answers := make([]response, n)
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	go func() {
		for i := range n {
			next <- i
		}
		close(next)
	}()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				answers[i] = ts.call("POST", "/jobs/echo.py", fmt.Sprintf(`{"data": {"job": %d}}`, i))
			}
		}()
	}
	wg.Wait()
	submitted := time.Since(start)
	ids := make([]string, n)
	for i, r := range answers {
		ids[i] = ts.submitted("echo.py", r).ID
	}
	for i, id := range ids {
		j := ts.waitEnded(id)
		if want := fmt.Sprintf(`{"job": %d}`, i); j.Status != model.JobSucceeded || j.Result.Stdout != want {
			t.Fatalf("job %d: %+v, want stdout %s", i, j, want)
		}
	}
	t.Logf("%d jobs submitted in %s, all ended %s after the first submit", n, submitted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

func TestJobMetrics(t *testing.T) {
	cfg := jobsConfigForTest(t)
	cfg.MaxConcurrent = 1
	ts := startTest(t, cfg, map[string]string{"sleep.py": sleepScript})
	running := ts.submitJob("sleep.py", `{"data": 60}`)
	ts.waitJob(running.ID, "to run", func(j model.Job) bool { return j.Status == model.JobRunning })
	q1 := ts.submitJob("sleep.py", `{"data": 61}`)
	q2 := ts.submitJob("sleep.py", `{"data": 62}`)
	var m map[string]float64
	testutil.WaitFor(t, 10*time.Second, "the metrics to show the jobs", func() bool {
		m = ts.scrape()
		return m[`scripthost_jobs{status="queued"}`] == 2 && m[`scripthost_jobs{status="running"}`] == 1
	})
	if m["scripthost_job_queue_depth"] != 2 || m["scripthost_job_oldest_queued_seconds"] <= 0 || m[`scripthost_jobs{status="dead"}`] != 0 {
		t.Fatalf("metrics with two jobs queued: %v", m)
	}
	for _, id := range []string{q1.ID, q2.ID, running.ID} {
		ts.do("DELETE", "/jobs/"+id, "").want(t, http.StatusAccepted)
	}
	testutil.WaitFor(t, 10*time.Second, "the metrics to show the cancels", func() bool {
		m = ts.scrape()
		return m[`scripthost_jobs{status="cancelled"}`] == 3 && m[`scripthost_jobs{status="queued"}`] == 0 &&
			m["scripthost_job_queue_depth"] == 0 && m["scripthost_job_oldest_queued_seconds"] == 0
	})
}
