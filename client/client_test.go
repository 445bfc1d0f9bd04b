package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/model"
)

func TestRunBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  model.JobRequest
		body string
		err  string
	}{
		{name: "empty", body: `{}`},
		{name: "data as written", req: model.JobRequest{RunRequest: model.RunRequest{Data: []byte(" {\"b\": 1,  \"a\": \"<&>\"}\n")}},
			body: `{"data":{"b": 1,  "a": "<&>"}}`},
		{name: "args", req: model.JobRequest{RunRequest: model.RunRequest{Args: []string{"a b", "", "--x"}}}, body: `{"args":["a b","","--x"]}`},
		{name: "both", req: model.JobRequest{RunRequest: model.RunRequest{Data: []byte(`[1, 2.50]`), Args: []string{"-v"}}},
			body: `{"data":[1, 2.50],"args":["-v"]}`},
		{name: "blank data is none", req: model.JobRequest{RunRequest: model.RunRequest{Data: []byte(" \n")}}, body: `{}`},
		{name: "a job's timeout", req: model.JobRequest{Timeout: 90 * time.Second}, body: `{"timeout":"1m30s"}`},
		{name: "a job's timeout after the run", req: model.JobRequest{RunRequest: model.RunRequest{Data: []byte(`7`)}, Timeout: time.Minute},
			body: `{"data":7,"timeout":"1m0s"}`},
		{name: "data not JSON", req: model.JobRequest{RunRequest: model.RunRequest{Data: []byte(`{`)}}, err: "the data is not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := jobBody(tc.req)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || model.Code(err) != 400 {
					t.Fatalf("body %s, err %v; want a bad request saying %q", body, err, tc.err)
				}
				return
			}
			if err != nil || string(body) != tc.body {
				t.Fatalf("body %s, err %v; want %s", body, err, tc.body)
			}
			// What the client sends, the server reads back as it was.
			back, err := model.DecodeJobRequest(body)
			if err != nil {
				t.Fatalf("the server's decoder refuses %s: %v", body, err)
			}
			if want := strings.TrimSpace(string(tc.req.Data)); string(back.Data) != want ||
				strings.Join(back.Args, "|") != strings.Join(tc.req.Args, "|") || back.Timeout != tc.req.Timeout {
				t.Fatalf("decoded %+v from %s, want %+v", back, body, tc.req)
			}
		})
	}
}

func TestReadEvents(t *testing.T) {
	stream := "event: stdout\ndata: \"a\\n\"\n\n: a comment\n\nevent: stderr\ndata: \"b\"\n\nevent: result\ndata: {\"stdout\":\ndata: \"a\\n\"}\n\nevent: stdout\ndata: \"after\"\n\n"
	var got []string
	err := readEvents(strings.NewReader(stream), func(event, data string) bool {
		got = append(got, event+"="+data)
		return event != "result"
	})
	want := []string{`stdout="a\n"`, `stderr="b"`, `result={"stdout":"a\n"}`}
	if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events %q, err %v; want %q", got, err, want)
	}
}

func TestGaveUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err := gaveUp(ctx, 3*time.Second, "on script.list ", "")
	if !errors.Is(err, ErrNoAnswer) || !errors.Is(err, model.ErrTimeout) || model.Code(err) != 504 ||
		err.Error() != "no answer on script.list within 3s" {
		t.Fatalf("deadline: %v (%d)", err, model.Code(err))
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := gaveUp(ctx, time.Second, "", ""); !errors.Is(err, model.ErrCancelled) || errors.Is(err, ErrNoAnswer) {
		t.Fatalf("cancel: %v", err)
	}
}

func TestNewHTTPURL(t *testing.T) {
	for _, tc := range []struct {
		url, base string
	}{
		{"127.0.0.1:3000", "http://127.0.0.1:3000"},
		{"http://h:1/", "http://h:1"},
		{"https://h", "https://h"},
		{"ftp://h", ""},
		{"", ""},
	} {
		c, err := NewHTTP(Config{URL: tc.url})
		if tc.base == "" {
			if err == nil || model.Code(err) != 400 || !strings.Contains(err.Error(), "want a URL") {
				t.Errorf("%q: %v, want a bad request", tc.url, err)
			}
			continue
		}
		if err != nil || c.base != tc.base {
			t.Errorf("%q: %v, base %q; want %q", tc.url, err, c.base, tc.base)
		}
	}
}

// TestNamesCheckedFirst: a name that breaks the rule never reaches a
// server (none is there to answer), and says so.
func TestNamesCheckedFirst(t *testing.T) {
	c, err := NewHTTP(Config{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, call := range []func() error{
		func() error { _, err := c.Get(ctx, "../x.py"); return err },
		func() error { _, err := c.Run(ctx, "a.py.>", model.RunRequest{}, RunOptions{}); return err },
		func() error { return c.Delete(ctx, "x") },
		func() error { _, err := c.Job(ctx, "../jobs"); return err },
	} {
		if err := call(); err == nil || model.Code(err) >= 500 || !strings.Contains(err.Error(), "invalid") && !strings.Contains(err.Error(), "job id") {
			t.Errorf("%v (%d), want the name's own error", err, model.Code(err))
		}
	}
	if _, err := c.List(ctx); !errors.Is(err, model.ErrUnavailable) || !strings.Contains(err.Error(), "cannot reach the HTTP API at http://127.0.0.1:1") {
		t.Errorf("no server: %v", err)
	}
}
