package model

import (
	"errors"
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
		{name: "timeout not a string", body: `{"timeout": 90}`, err: `"timeout" must be a duration string`},
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
