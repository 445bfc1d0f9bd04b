package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// jobEvents follows GET /jobs/{id}/events to its end: its status, and the
// events when it is 200.
func (ts *testServer) jobEvents(id string) (int, []testutil.Event) {
	ts.t.Helper()
	code, evs, err := ts.followJob(id)
	if err != nil {
		ts.t.Fatal(err)
	}
	return code, evs
}

// followJob is jobEvents for any goroutine: it returns what went wrong.
func (ts *testServer) followJob(id string) (int, []testutil.Event, error) {
	req, _ := http.NewRequest("GET", ts.base+"/jobs/"+id+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		return 0, nil, fmt.Errorf("events of job %s: Content-Type %q", id, ct)
	}
	var evs []testutil.Event
	err = testutil.ReadEvents(resp.Body, func(ev testutil.Event) bool {
		evs = append(evs, ev)
		return true
	})
	if err != nil {
		return 0, nil, fmt.Errorf("events of job %s: %w", id, err)
	}
	return 200, evs, nil
}

// A job's events: live, the output as it comes and the result last; and
// replayed from the start once the job has ended.
func TestJobEvents(t *testing.T) {
	ts := startTest(t, jobsConfigForTest(t), map[string]string{
		"tick.py": "import sys, time\nfor i in range(4):\n    print('tick', i)\n    time.sleep(0.4)\nprint('bye', file=sys.stderr)\n",
	})
	job := ts.submitJob("tick.py", `{}`)
	code, live := ts.jobEvents(job.ID)
	if code != 200 || len(live) < 2 {
		t.Fatalf("%d %+v", code, live)
	}
	last := live[len(live)-1]
	if last.Name != "result" {
		t.Fatalf("last event %+v", last)
	}
	var out, errs strings.Builder
	for _, ev := range live[:len(live)-1] {
		var chunk string
		if err := json.Unmarshal([]byte(ev.Data), &chunk); err != nil {
			t.Fatalf("event %+v: %v", ev, err)
		}
		switch ev.Name {
		case "stdout":
			out.WriteString(chunk)
		case "stderr":
			errs.WriteString(chunk)
		default:
			t.Fatalf("event %+v", ev)
		}
	}
	if live[0].Name != "stdout" || last.At.Sub(live[0].At) < time.Second {
		t.Errorf("first event %+v came %v before the result", live[0], last.At.Sub(live[0].At))
	}
	var res model.Result
	if err := json.Unmarshal([]byte(last.Data), &res); err != nil {
		t.Fatal(err)
	}
	ended := ts.waitEnded(job.ID)
	if ended.Status != model.JobSucceeded || ended.Result == nil || res.Stdout != ended.Result.Stdout ||
		out.String() != "tick 0\ntick 1\ntick 2\ntick 3\n" || errs.String() != "bye\n" || res.Stderr != "bye\n" {
		t.Fatalf("job %+v; result event %+v; streamed %q %q", ended, res, out.String(), errs.String())
	}

	// Replayed: the same events, at once.
	start := time.Now()
	code, replay := ts.jobEvents(job.ID)
	if code != 200 || time.Since(start) > 10*time.Second {
		t.Fatalf("replay: %d after %v", code, time.Since(start))
	}
	var names, data []string
	for _, ev := range replay {
		names, data = append(names, ev.Name), append(data, ev.Data)
	}
	var liveData []string
	for _, ev := range live {
		liveData = append(liveData, ev.Data)
	}
	if strings.Join(data, "|") != strings.Join(liveData, "|") {
		t.Errorf("replay %v\nlive   %v", data, liveData)
	}
	if names[len(names)-1] != "result" {
		t.Errorf("replay ends with %v", names)
	}

	if code, _ := ts.jobEvents("0123456789abcdef0123456789ab"); code != 404 {
		t.Errorf("events of an unknown job: %d", code)
	}

	// A job cancelled while someone follows it: the stream ends with a
	// result that says so.
	ts.write("wait.py", "import time\nprint('waiting', flush=True)\ntime.sleep(60)\n")
	testutil.WaitFor(t, 10*time.Second, "wait.py in the catalog", func() bool { return ts.do("GET", "/scripts/wait.py", "").status == 200 })
	job = ts.submitJob("wait.py", `{}`)
	type followed struct {
		evs []testutil.Event
		err error
	}
	got := make(chan followed, 1)
	go func() {
		_, evs, err := ts.followJob(job.ID)
		got <- followed{evs, err}
	}()
	ts.waitJob(job.ID, "to run", func(j model.Job) bool { return j.Status == model.JobRunning })
	// HEAD answers the headers at once, without following the job.
	if r := ts.do("HEAD", "/jobs/"+job.ID+"/events", ""); r.status != 200 || r.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HEAD: %d %v", r.status, r.header)
	}
	ts.do("DELETE", "/jobs/"+job.ID, "").want(t, http.StatusAccepted)
	select {
	case f := <-got:
		if f.err != nil || len(f.evs) == 0 {
			t.Fatalf("events of a cancelled job: %+v, %v", f.evs, f.err)
		}
		last := f.evs[len(f.evs)-1]
		if last.Name != "result" || !strings.Contains(last.Data, `"status":"cancelled"`) {
			t.Fatalf("events of a cancelled job: %+v", f.evs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the events of a cancelled job did not end")
	}
}
