package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// jobEvent is one event of GET /jobs/{id}/events and when it came.
type jobEvent struct {
	name, data string
	at         time.Time
}

func (ts *testServer) jobEvents(id string) (int, []jobEvent) {
	ts.t.Helper()
	req, _ := http.NewRequest("GET", ts.base+"/jobs/"+id+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		ts.t.Fatalf("Content-Type %q", ct)
	}
	var evs []jobEvent
	err = readEvents(resp.Body, func(event, data string) bool {
		evs = append(evs, jobEvent{event, data, time.Now()})
		return true
	})
	if err != nil {
		ts.t.Fatal(err)
	}
	return 200, evs
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
	if last.name != "result" {
		t.Fatalf("last event %+v", last)
	}
	var out, errs strings.Builder
	for _, ev := range live[:len(live)-1] {
		var chunk string
		if err := json.Unmarshal([]byte(ev.data), &chunk); err != nil {
			t.Fatalf("event %+v: %v", ev, err)
		}
		switch ev.name {
		case "stdout":
			out.WriteString(chunk)
		case "stderr":
			errs.WriteString(chunk)
		default:
			t.Fatalf("event %+v", ev)
		}
	}
	if live[0].name != "stdout" || last.at.Sub(live[0].at) < time.Second {
		t.Errorf("first event %+v came %v before the result", live[0], last.at.Sub(live[0].at))
	}
	var res model.Result
	if err := json.Unmarshal([]byte(last.data), &res); err != nil {
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
		names, data = append(names, ev.name), append(data, ev.data)
	}
	var liveData []string
	for _, ev := range live {
		liveData = append(liveData, ev.data)
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
	got := make(chan []jobEvent, 1)
	go func() {
		_, evs := ts.jobEvents(job.ID)
		got <- evs
	}()
	ts.waitJob(job.ID, "to run", func(j model.Job) bool { return j.Status == model.JobRunning })
	// HEAD answers the headers at once, without following the job.
	if r := ts.do("HEAD", "/jobs/"+job.ID+"/events", ""); r.status != 200 || r.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HEAD: %d %v", r.status, r.header)
	}
	ts.do("DELETE", "/jobs/"+job.ID, "").want(t, http.StatusAccepted)
	select {
	case evs := <-got:
		last := evs[len(evs)-1]
		if last.name != "result" || !strings.Contains(last.data, `"status":"cancelled"`) {
			t.Fatalf("events of a cancelled job: %+v", evs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the events of a cancelled job did not end")
	}
}
