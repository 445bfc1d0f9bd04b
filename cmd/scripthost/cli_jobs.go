package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/scripthost/scripthost/client"
	"github.com/scripthost/scripthost/model"
)

// The job commands: `scripthost job submit|get|cancel|ls` and
// `scripthost run --async`, over NATS or HTTP like the other client
// commands.

// jobOptions are the flags of a job submit.
type jobOptions struct {
	Timeout        time.Duration
	IdempotencyKey string
	CallbackURL    string
}

func (o *jobOptions) flags(fs *flag.FlagSet) {
	durationVar(fs, &o.Timeout, "timeout", 0, "the job's time limit (default: the server's --timeout; at most its --job-max-timeout)")
	fs.StringVar(&o.IdempotencyKey, "idempotency-key", "", "the same key for the same script answers the same job (within the server's --job-ttl)")
	fs.StringVar(&o.CallbackURL, "callback-url", "", "POST the job's JSON to this http(s) URL when it ends")
}

var jobUsage = map[string]string{
	"submit": "usage: scripthost job submit NAME [--arg A]... [--data JSON] [--timeout D] [--idempotency-key K] [--callback-url URL] [flags]\n\n" +
		"Queues a durable job that runs the script and prints the job as JSON.\n" +
		"Without --data, the JSON on stdin is the script's data when stdin is not a terminal.\n",
	"get":    "usage: scripthost job get ID [flags]\n\nPrints a job as JSON: its status and, once it ended, its result.\n",
	"cancel": "usage: scripthost job cancel ID [flags]\n\nCancels a job (a running one is killed at once) and prints it as JSON.\n",
	"ls":     "usage: scripthost job ls [--script NAME] [--status S] [--limit N] [flags]\n\nLists the jobs kept, newest first: id, status, script, attempts, node, created.\n",
}

// jobCommand runs `scripthost job <sub>` and returns the exit code.
func jobCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || jobUsage[args[0]] == "" {
		fmt.Fprint(stderr, "usage: scripthost job submit|get|cancel|ls ... (scripthost job <command> -h for its flags)\n")
		return exitUsage
	}
	sub := args[0]
	var cfg cliConfig
	var opts jobOptions
	var list model.JobListRequest
	fs := newCLIFlags("scripthost job "+sub, jobUsage[sub], "those of one job", stderr)
	cfg.flags(fs, sub == "submit")
	switch sub {
	case "submit":
		opts.flags(fs)
	case "ls":
		fs.StringVar(&list.Script, "script", "", "only the jobs of this script")
		fs.Func("status", "only the jobs in this state: queued, running, succeeded, failed, timed_out, cancelled or dead", func(s string) error {
			list.Status = model.JobStatus(s)
			return nil
		})
		fs.IntVar(&list.Limit, "limit", 0, "at most this many jobs (default 100)")
	}
	want := 1
	if sub == "ls" {
		want = 0
	}
	call, code, ok := parseCall("job "+sub, fs, &cfg, args[1:], want, sub == "submit", jobUsage[sub], stderr)
	if !ok {
		return code
	}
	c, err := call.client()
	if err != nil {
		return call.fail(1, "%v", err)
	}
	defer c.Close()

	var job model.Job
	switch sub {
	case "submit":
		req, code := call.runRequest(stdin)
		if code != 0 {
			return code
		}
		job, err = c.SubmitJob(ctx, call.pos[0], model.JobRequest{RunRequest: req, Timeout: opts.Timeout},
			client.JobOptions{IdempotencyKey: opts.IdempotencyKey, CallbackURL: opts.CallbackURL, NoCache: call.cfg.NoCache})
	case "get":
		job, err = c.Job(ctx, call.pos[0])
	case "cancel":
		job, err = c.CancelJob(ctx, call.pos[0])
	case "ls":
		jobs, err := c.Jobs(ctx, list)
		if err != nil {
			return call.fail(1, "%s", explain(err))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tSCRIPT\tATTEMPTS\tNODE\tCREATED")
		for _, j := range jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Status, j.Script, j.Attempts, j.Node, j.CreatedAt)
		}
		tw.Flush()
		return 0
	}
	if err != nil {
		return call.fail(1, "%s", explain(err))
	}
	out, _ := json.MarshalIndent(job, "", "  ")
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}

// cliRunAsync is `scripthost run NAME --async`: it queues the run as a
// job and prints the job's id.
func cliRunAsync(ctx context.Context, c client.Client, call *cliCall, stdin io.Reader, stdout io.Writer) int {
	req, code := call.runRequest(stdin)
	if code != 0 {
		return code
	}
	job, err := c.SubmitJob(ctx, call.pos[0], model.JobRequest{RunRequest: req, Timeout: call.cfg.JobTimeout},
		client.JobOptions{NoCache: call.cfg.NoCache})
	if err != nil {
		return call.fail(failCode("run", err), "%s", explain(err))
	}
	fmt.Fprintln(stdout, job.ID)
	return 0
}
