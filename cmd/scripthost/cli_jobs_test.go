package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/model"
)

// jobCLI runs `scripthost job ...` in the test process.
func jobCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = jobCommand(ctx, args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestJobCLI(t *testing.T) {
	ts := startTest(t, jobsConfigForTest(t), map[string]string{"echo.py": echoScript, "sleep.py": sleepScript})
	for _, transport := range []struct{ name, flag, url string }{
		{"nats", "--nats", ts.s.natsURL},
		{"http", "--http", ts.base},
	} {
		t.Run(transport.name, func(t *testing.T) {
			c := func(stdin string, args ...string) (int, string, string) {
				t.Helper()
				return jobCLI(t, stdin, append(args, transport.flag, transport.url)...)
			}
			decode := func(out string) model.Job {
				t.Helper()
				var j model.Job
				if err := json.Unmarshal([]byte(out), &j); err != nil {
					t.Fatalf("not a job: %q", out)
				}
				return j
			}
			code, out, errs := c(`{"via": "stdin"}`, "submit", "echo.py", "--idempotency-key", "cli-"+transport.name, "--timeout", "20s")
			if code != 0 {
				t.Fatalf("submit: %d %s", code, errs)
			}
			job := decode(out)
			if job.Timeout != "20s" || job.IdempotencyKey != "cli-"+transport.name {
				t.Fatalf("submitted: %+v", job)
			}
			ts.waitEnded(job.ID)
			_, out, _ = c("", "get", job.ID)
			if j := decode(out); j.Status != model.JobSucceeded || j.Result.Stdout != `{"via": "stdin"}` {
				t.Fatalf("get: %+v", j)
			}
			wantFixedTimes(t, []byte(out))
			code, out, errs = c("", "ls", "--script", "echo.py", "--status", "succeeded")
			if code != 0 || !strings.HasPrefix(out, "ID ") || !strings.Contains(out, job.ID+"  succeeded  echo.py") ||
				!strings.Contains(out, job.CreatedAt.Format(model.TimeLayout)+"\n") {
				t.Fatalf("ls: %d %q %s, want the created time %s", code, out, errs, job.CreatedAt.Format(model.TimeLayout))
			}

			// run --async prints the id; cancel kills it.
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code = cliCommand(ctx, "run", []string{"sleep.py", "--async", "--data", "60", "--timeout", "90s", transport.flag, transport.url},
				strings.NewReader(""), &stdout, &stderr)
			id := strings.TrimSpace(stdout.String())
			if code != 0 || model.ValidateJobID(id) != nil {
				t.Fatalf("run --async: %d %q %s", code, stdout.String(), stderr.String())
			}
			ts.waitJob(id, "to run", func(j model.Job) bool { return j.Status == model.JobRunning && j.Timeout == "1m30s" })
			code, out, _ = c("", "cancel", id)
			if code != 0 || decode(out).Status != model.JobCancelled {
				t.Fatalf("cancel: %d %s", code, out)
			}

			for _, bad := range []struct {
				args []string
				code int
				msg  string
			}{
				{[]string{"get", "0000"}, 1, "no job"},
				{[]string{"submit", "nope.py", "--data", "1"}, 1, "not found"},
				{[]string{"submit", "echo.py", "--data", "{"}, exitUsage, "not valid JSON"},
				{[]string{"ls", "--status", "later"}, 1, "status"},
				{[]string{"get"}, exitUsage, "want 1 argument"},
			} {
				code, _, errs := c("", bad.args...)
				if code != bad.code || !strings.Contains(errs, bad.msg) {
					t.Fatalf("%v: %d %q", bad.args, code, errs)
				}
			}
		})
	}
	if code, _, errs := jobCLI(t, "", "frobnicate"); code != exitUsage || !strings.Contains(errs, "submit|get|cancel|ls") {
		t.Fatalf("unknown job command: %d %s", code, errs)
	}
}
