package model

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDecodeJobRequest(t *testing.T) {
	for _, c := range []struct {
		name, body string
		data       string
		args       []string
		timeout    time.Duration
		err        string
	}{
		{name: "empty", body: ""},
		{name: "null", body: "null"},
		{name: "data kept byte for byte", body: `{"data": {"b": 1,  "a": [1.50]}, "args": ["x"]}`, data: `{"b": 1,  "a": [1.50]}`, args: []string{"x"}},
		{name: "timeout", body: `{"timeout": "90s"}`, timeout: 90 * time.Second},
		{name: "null timeout", body: `{"timeout": null}`},
		{name: "timeout in seconds", body: `{"timeout": 90}`, timeout: 90 * time.Second},
		{name: "timeout in fractions of a second", body: `{"timeout": 0.25}`, timeout: 250 * time.Millisecond},
		{name: "timeout of no seconds", body: `{"timeout": 0}`, err: `"timeout" 0: want a positive number of seconds`},
		{name: "timeout under a nanosecond", body: `{"timeout": 1e-12}`, err: `"timeout" 1e-12: want a positive number of seconds`},
		{name: "timeout in seconds as a string", body: `{"timeout": "30"}`, timeout: 30 * time.Second},
		{name: "timeout of no seconds as a string", body: `{"timeout": "0"}`, err: `"timeout" "0": want a positive duration such as "90s" or "10m", or seconds`},
		{name: "timeout too large", body: `{"timeout": 1e300}`, err: `want a positive number of seconds`},
		{name: "timeout neither", body: `{"timeout": [90]}`, err: `"timeout" must be a duration string such as "90s" or "10m", or a number of seconds`},
		{name: "bad timeout", body: `{"timeout": "soon"}`, err: `"timeout" "soon"`},
		{name: "negative timeout", body: `{"timeout": "-1s"}`, err: "positive duration"},
		{name: "unknown field", body: `{"data": 1, "zz": 2, "aa": 3}`, err: `unknown field "aa"`},
		{name: "bad args", body: `{"args": "x"}`, err: `"args" must be an array`},
		{name: "not an object", body: `[1]`, err: "invalid JSON body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := DecodeJobRequest([]byte(c.body))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrBadRequest) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(req.Data) != c.data || strings.Join(req.Args, ",") != strings.Join(c.args, ",") || req.Timeout != c.timeout {
				t.Fatalf("got data %q args %q timeout %s", req.Data, req.Args, req.Timeout)
			}
		})
	}
}

func TestJobStatusAndID(t *testing.T) {
	for _, s := range JobStatuses {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
		if s.Ended() == (s == JobQueued || s == JobRunning) {
			t.Errorf("%s: ended %v", s, s.Ended())
		}
	}
	if JobStatus("done").Valid() {
		t.Error("done is not a status")
	}
	for _, id := range []string{"", "A1", "a.b", "a*", "a b", strings.Repeat("a", 65)} {
		if err := ValidateJobID(id); err == nil || !errors.Is(err, ErrNotFound) {
			t.Errorf("id %q: %v", id, err)
		}
	}
	if err := ValidateJobID("01a2338d3635c241af5ed506bd75"); err != nil {
		t.Error(err)
	}
}

// A job's times are written at one width, whatever trailing zeros their
// fractions have, so that string order is time order; times written
// before at a variable width (or with an offset) are still read.
func TestJobTimesFixedWidth(t *testing.T) {
	base := time.Date(2026, 12, 1, 21, 52, 5, 0, time.UTC)
	times := []time.Time{
		base,                             // no fraction at all
		base.Add(90 * time.Millisecond),  // .09
		base.Add(100 * time.Millisecond), // .1
		base.Add(100*time.Millisecond + 10*time.Microsecond),
		base.Add(time.Second), // the next second
		base.Add(time.Second + 5*time.Microsecond),
		time.Date(2026, 12, 1, 23, 52, 6, 200_000_000, time.FixedZone("", 2*3600)), // 21:52:06.2Z
	}
	var written []string
	for _, tm := range times {
		start := Time{tm.Add(time.Minute)}
		b, err := json.Marshal(Job{ID: "a", CreatedAt: Time{tm}, StartedAt: &start})
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			CreatedAt  string  `json:"created_at"`
			StartedAt  string  `json:"started_at"`
			FinishedAt *string `json:"finished_at"`
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		if raw.FinishedAt != nil {
			t.Errorf("finished_at %q, want null", *raw.FinishedAt)
		}
		for _, s := range []string{raw.CreatedAt, raw.StartedAt} {
			if len(s) != len("2026-12-01T21:52:05.000000Z") || !strings.HasSuffix(s, "Z") {
				t.Errorf("%s: %q is not as wide as %q, in UTC", tm, s, TimeLayout)
			}
		}
		var back Job
		if err := json.Unmarshal(b, &back); err != nil || !back.CreatedAt.Equal(tm) || back.StartedAt == nil || !back.StartedAt.Equal(start.Time) {
			t.Errorf("%s read back as %v, %v (%v)", tm, back.CreatedAt, back.StartedAt, err)
		}
		if got := (Time{tm}).String(); got != raw.CreatedAt {
			t.Errorf("%s: String %q, JSON %q", tm, got, raw.CreatedAt)
		}
		written = append(written, raw.CreatedAt)
	}
	if got := written[1]; got != "2026-12-01T21:52:05.090000Z" {
		t.Errorf(".09 written %q", got)
	}
	sorted := slices.Clone(written)
	slices.Sort(sorted)
	if !slices.Equal(sorted, written) {
		t.Errorf("string order %q, time order %q", sorted, written)
	}

	for _, c := range []struct{ in, want string }{
		{"2026-12-01T21:52:15.363Z", "2026-12-01T21:52:15.363000Z"},
		{"2026-12-01T21:52:15Z", "2026-12-01T21:52:15.000000Z"},
		{"2026-12-01T21:52:15.1234567Z", "2026-12-01T21:52:15.123456Z"},
		{"2026-12-01T23:52:15.5+02:00", "2026-12-01T21:52:15.500000Z"},
	} {
		var j Job
		if err := json.Unmarshal([]byte(`{"created_at":"`+c.in+`","started_at":null}`), &j); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		b, _ := json.Marshal(j.CreatedAt)
		if string(b) != `"`+c.want+`"` || j.StartedAt != nil {
			t.Errorf("%s read and written again: %s (started %v), want %q", c.in, b, j.StartedAt, c.want)
		}
	}
	var j Job
	if err := json.Unmarshal([]byte(`{"created_at":"yesterday"}`), &j); err == nil {
		t.Error(`created_at "yesterday" was read`)
	}
}

func TestDecodeJobList(t *testing.T) {
	for _, c := range []struct {
		body, err string
		want      JobListRequest
	}{
		{body: ``},
		{body: `{}`},
		{body: `{"script":"a.py","status":"queued","limit":5}`, want: JobListRequest{Script: "a.py", Status: JobQueued, Limit: 5}},
		{body: `{"bogus":1}`, err: `unknown field "bogus" (the fields are "script", "status", "limit")`},
		{body: `{"Script":"a.py"}`, err: `unknown field "Script"`},
		{body: `{"limit":"5"}`, err: `field "limit" must be an integer`},
		{body: `{"limit":1.5}`, err: `field "limit" must be an integer`},
		{body: `{"script":1}`, err: `field "script" must be a string`},
		{body: `[1]`, err: `expected a JSON object`},
	} {
		got, err := DecodeJobList([]byte(c.body))
		if c.err != "" {
			if err == nil || Code(err) != 400 || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want 400 saying %q", c.body, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.body, got, err, c.want)
		}
	}
}
