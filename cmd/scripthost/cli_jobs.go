package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
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
	fs.DurationVar(&o.Timeout, "timeout", 0, "the job's time limit (default: the server's --timeout; at most its --job-max-timeout)")
	fs.StringVar(&o.IdempotencyKey, "idempotency-key", "", "the same key for the same script answers the same job (within the server's --job-ttl)")
	fs.StringVar(&o.CallbackURL, "callback-url", "", "POST the job's JSON to this http(s) URL when it ends")
}

// jobBody adds the job's timeout to a run body (an object, as runBody
// writes it), leaving the data's bytes as they are.
func (o *jobOptions) jobBody(run []byte) ([]byte, error) {
	if o.Timeout == 0 {
		return run, nil
	}
	if len(run) < 2 || run[len(run)-1] != '}' {
		return nil, errors.New("the run body is not a JSON object")
	}
	field := fmt.Sprintf(`"timeout":%q}`, o.Timeout.String())
	if len(run) > 2 {
		field = "," + field
	}
	return append(run[:len(run)-1:len(run)-1], field...), nil
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
	fs := flag.NewFlagSet("scripthost job "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nflags (each also SCRIPTHOST_<FLAG>, but for those of one job):\n", jobUsage[sub])
		fs.PrintDefaults()
	}
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
	pos, dashed, given, err := parseCLIFlags(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return exitUsage
	}
	if sub == "submit" {
		// job submit NAME -- ARG...: the script's own argv, after any --arg.
		cfg.Args = append(cfg.Args, dashed...)
	} else {
		pos = append(pos, dashed...)
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "scripthost job %s: %s\n", sub, fmt.Sprintf(format, a...))
		return code
	}
	want := 1
	if sub == "ls" {
		want = 0
	}
	if len(pos) != want {
		fmt.Fprint(stderr, jobUsage[sub])
		return fail(exitUsage, "want %d argument(s), got %d: %q", want, len(pos), pos)
	}
	if given["http"] && given["nats"] {
		return fail(exitUsage, "give --nats or --http, not both")
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	c, err := newJobClient(cfg, given, log)
	if err != nil {
		return fail(1, "%v", err)
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(ctx, cfg.Wait)
	defer cancel()

	var job model.Job
	switch sub {
	case "submit":
		body, code := jobRunBody(cfg, stdin, stderr, "job submit")
		if code != 0 {
			return code
		}
		if body, err = opts.jobBody(body); err == nil {
			job, err = submitJob(ctx, c, pos[0], body, opts, cfg.NoCache)
		}
	case "get":
		job, err = c.job(ctx, "GET", pos[0])
	case "cancel":
		job, err = c.job(ctx, "DELETE", pos[0])
	case "ls":
		var jobs model.JobList
		if jobs, err = c.jobs(ctx, list); err != nil {
			return fail(1, "%v", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tSCRIPT\tATTEMPTS\tNODE\tCREATED")
		for _, j := range jobs.Jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Status, j.Script, j.Attempts, j.Node, j.CreatedAt.Format(time.RFC3339))
		}
		tw.Flush()
		return 0
	}
	if err != nil {
		return fail(1, "%v", err)
	}
	out, _ := json.MarshalIndent(job, "", "  ")
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}

// jobRunBody builds a run body from --data (or stdin) and --arg; a
// non-zero code means it failed and said why.
func jobRunBody(cfg cliConfig, stdin io.Reader, stderr io.Writer, cmd string) ([]byte, int) {
	var data []byte
	switch {
	case cfg.Data.set:
		data = []byte(cfg.Data.val)
	case !isTerminal(stdin):
		var err error
		if data, err = io.ReadAll(stdin); err != nil {
			fmt.Fprintf(stderr, "scripthost %s: read stdin: %v\n", cmd, err)
			return nil, exitFailed
		}
	}
	body, err := runBody(data, cfg.Args)
	if err != nil {
		fmt.Fprintf(stderr, "scripthost %s: %v (a run's data is one JSON value; --data '' sends none)\n", cmd, err)
		return nil, exitUsage
	}
	return body, 0
}

func submitJob(ctx context.Context, c jobClient, name string, body []byte, opts jobOptions, noCache bool) (model.Job, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Job{}, err
	}
	return c.submit(ctx, name, body, opts, noCache)
}

// cliRunAsync is `scripthost run NAME --async`: it queues the run as a
// job and prints the job's id.
func cliRunAsync(ctx context.Context, c jobClient, cfg cliConfig, name string, stdin io.Reader, stdout, stderr io.Writer) int {
	body, code := jobRunBody(cfg, stdin, stderr, "run")
	if code != 0 {
		return code
	}
	opts := jobOptions{Timeout: cfg.JobTimeout}
	body, err := opts.jobBody(body)
	if err != nil {
		fmt.Fprintf(stderr, "scripthost run: %v\n", err)
		return exitUsage
	}
	job, err := submitJob(ctx, c, name, body, opts, cfg.NoCache)
	if err != nil {
		fmt.Fprintf(stderr, "scripthost run: %v\n", err)
		return failCode("run", err)
	}
	fmt.Fprintln(stdout, job.ID)
	return 0
}

// jobClient is what the job commands need of a server.
type jobClient interface {
	submit(ctx context.Context, name string, body []byte, opts jobOptions, noCache bool) (model.Job, error)
	// job reads (GET) or cancels (DELETE) a job.
	job(ctx context.Context, method, id string) (model.Job, error)
	jobs(ctx context.Context, req model.JobListRequest) (model.JobList, error)
	close()
}

func newJobClient(cfg cliConfig, given map[string]bool, log *slog.Logger) (jobClient, error) {
	if given["http"] || (!given["nats"] && cfg.HTTP != "") {
		return newHTTPClient(cfg, log)
	}
	return newNATSClient(cfg, log)
}

func decodeJob(body []byte, err error) (model.Job, error) {
	var job model.Job
	if err != nil {
		return job, err
	}
	if err := json.Unmarshal(body, &job); err != nil {
		return job, fmt.Errorf("the server's answer is not a job: %v", err)
	}
	return job, nil
}

func (c *natsClient) submit(ctx context.Context, name string, body []byte, opts jobOptions, noCache bool) (model.Job, error) {
	hdr := nats.Header{}
	if noCache {
		hdr.Set(bus.HeaderNoCache, "true")
	}
	if opts.IdempotencyKey != "" {
		hdr.Set(bus.HeaderIdempotencyKey, opts.IdempotencyKey)
	}
	if opts.CallbackURL != "" {
		hdr.Set(bus.HeaderCallbackURL, opts.CallbackURL)
	}
	reply, err := c.request(ctx, bus.JobSubmitSubject(name), body, hdr)
	if err != nil {
		return model.Job{}, err
	}
	return decodeJob(reply.Data, nil)
}

func (c *natsClient) job(ctx context.Context, method, id string) (model.Job, error) {
	if err := model.ValidateJobID(id); err != nil {
		return model.Job{}, err
	}
	subject := bus.JobGetSubject(id)
	if method == "DELETE" {
		subject = bus.JobCancelSubject(id)
	}
	reply, err := c.request(ctx, subject, nil, nil)
	if err != nil {
		return model.Job{}, err
	}
	return decodeJob(reply.Data, nil)
}

func (c *natsClient) jobs(ctx context.Context, req model.JobListRequest) (model.JobList, error) {
	var list model.JobList
	body, _ := json.Marshal(req)
	reply, err := c.request(ctx, bus.JobListSubject, body, nil)
	if err == nil {
		err = json.Unmarshal(reply.Data, &list)
	}
	return list, err
}

func (c *httpClient) submit(ctx context.Context, name string, body []byte, opts jobOptions, noCache bool) (model.Job, error) {
	hdr := http.Header{}
	if noCache {
		hdr.Set("Cache-Control", "no-cache")
	}
	if opts.IdempotencyKey != "" {
		hdr.Set(bus.HeaderIdempotencyKey, opts.IdempotencyKey)
	}
	if opts.CallbackURL != "" {
		hdr.Set(bus.HeaderCallbackURL, opts.CallbackURL)
	}
	_, data, err := c.do(ctx, "POST", "/jobs/"+url.PathEscape(name), body, hdr)
	return decodeJob(data, err)
}

func (c *httpClient) job(ctx context.Context, method, id string) (model.Job, error) {
	if err := model.ValidateJobID(id); err != nil {
		return model.Job{}, err
	}
	_, data, err := c.do(ctx, method, "/jobs/"+id, nil, nil)
	return decodeJob(data, err)
}

func (c *httpClient) jobs(ctx context.Context, req model.JobListRequest) (model.JobList, error) {
	var list model.JobList
	q := url.Values{}
	if req.Script != "" {
		q.Set("script", req.Script)
	}
	if req.Status != "" {
		q.Set("status", string(req.Status))
	}
	if req.Limit != 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	path := "/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	_, data, err := c.do(ctx, "GET", path, nil, nil)
	if err == nil {
		err = json.Unmarshal(data, &list)
	}
	return list, err
}

var (
	_ jobClient = (*natsClient)(nil)
	_ jobClient = (*httpClient)(nil)
)
