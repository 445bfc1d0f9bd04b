package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// The client commands (run, ls, put, rm, cat) talk to a running server over
// NATS (--nats, the default) or over its HTTP API (--http).

// Exit codes of `scripthost run` when the script's own code cannot be
// passed on, chosen as timeout(1) and shells do.
const (
	exitUsage    = 2   // bad flags or arguments
	exitTimeout  = 124 // the script was killed at its time limit
	exitFailed   = 125 // scripthost could not run the script (bus, server, 400, 503 ...)
	exitNotFound = 127 // no such script
	exitSignal   = 128 // + the number of the signal that killed the script
	// exitCancelled: the run was cancelled (^C), as a shell reports SIGINT.
	exitCancelled = exitSignal + int(syscall.SIGINT)
)

// cliConfig is what the client commands are told by flags.
type cliConfig struct {
	NATS         string
	HTTP         string
	Token        string
	NATSUser     string
	NATSPassword string
	Wait         time.Duration
	LogFormat    string
	LogLevel     string

	// run only
	Args    []string
	Data    optString
	NoCache bool
	// run --async: a durable job instead (cli_jobs.go)
	Async      bool
	JobTimeout time.Duration
}

// perRun are the flags of a single run that the environment does not set:
// an exported SCRIPTHOST_DATA would silently feed every run.
var perRun = map[string]bool{"arg": true, "data": true, "no-cache": true, "async": true, "timeout": true,
	"idempotency-key": true, "callback-url": true, "script": true, "status": true, "limit": true}

func (c *cliConfig) flags(fs *flag.FlagSet, run bool) {
	fs.StringVar(&c.NATS, "nats", "nats://127.0.0.1:4222", "NATS URL of the server's bus (nats://user:pass@host:port also works)")
	fs.StringVar(&c.HTTP, "http", "", "use the server's HTTP API at this URL (e.g. http://127.0.0.1:3000) instead of NATS")
	fs.StringVar(&c.Token, "token", "", "HTTP bearer token, when the server has one")
	fs.StringVar(&c.NATSUser, "nats-user", "", "NATS user, when the bus demands one")
	fs.StringVar(&c.NATSPassword, "nats-password", "", "password of --nats-user")
	durationVar(fs, &c.Wait, "wait", 2*time.Minute, "how long to wait for an answer (a run's answer includes its queue wait and run time)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "warn", "log level: debug (shows each request and which node answered), info, warn or error")
	if run {
		fs.Func("arg", "an argument for the script (repeat for more)", func(s string) error {
			c.Args = append(c.Args, s)
			return nil
		})
		fs.Var(&c.Data, "data", "JSON sent to the script's stdin (default: read from stdin when it is not a terminal; --data '' sends none)")
		fs.BoolVar(&c.NoCache, "no-cache", false, "run the script even when a cached result exists")
	}
	if run && fs.Name() == "scripthost run" {
		fs.BoolVar(&c.Async, "async", false, "queue the run as a durable job and print its id (see scripthost job)")
		fs.DurationVar(&c.JobTimeout, "timeout", 0, "with --async: the job's time limit (default: the server's --timeout)")
	}
}

// optString is a string flag that knows whether it was given.
type optString struct {
	set bool
	val string
}

func (o *optString) String() string { return o.val }
func (o *optString) Set(s string) error {
	o.set, o.val = true, s
	return nil
}

// cliUsage describes the client commands, for `scripthost <command> -h`.
var cliUsage = map[string]string{
	"run": "usage: scripthost run NAME [--arg A]... [--data JSON] [--no-cache] [flags] [-- ARG...]\n\n" +
		"Runs a script on the server: prints its stdout to stdout and its stderr to stderr\n" +
		"as it writes them, and exits with its exit code (128+N when killed by signal N,\n" +
		"124 when it timed out, 127 when there is no such script, 125 when scripthost could\n" +
		"not run it). ^C cancels the run on the server (exit 130).\n" +
		"Without --data, the JSON on stdin is the script's data when stdin is not a terminal.\n" +
		"What follows -- is the script's argv as it is (scripthost run argp.py -- --times 2).\n" +
		"With --async, the run is queued as a durable job and its id printed (scripthost job get ID).\n",
	"ls":  "usage: scripthost ls [flags]\n\nLists the scripts, one name a line.\n",
	"cat": "usage: scripthost cat NAME [flags]\n\nPrints the code of a script.\n",
	"put": "usage: scripthost put NAME FILE [flags]\n\nCreates the script NAME from FILE ('-': stdin), or replaces its code if it exists.\n",
	"rm":  "usage: scripthost rm NAME [flags]\n\nDeletes a script.\n",
}

// cliArgs is the number of positional arguments of each command.
var cliArgs = map[string]int{"run": 1, "ls": 0, "cat": 1, "put": 2, "rm": 1}

// cliCommand runs one client command and returns the process exit code.
// stdin is the data of a run when --data is not given and stdin is not a
// terminal.
func cliCommand(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cfg cliConfig
	fs := flag.NewFlagSet("scripthost "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nflags (each also SCRIPTHOST_<FLAG>, but for --arg, --data and --no-cache):\n", cliUsage[cmd])
		fs.PrintDefaults()
	}
	cfg.flags(fs, cmd == "run")
	pos, dashed, given, err := parseCLIFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return exitUsage // the flag package said why
	}
	if cmd == "run" {
		// run NAME -- ARG...: the script's own argv, after any --arg.
		cfg.Args = append(cfg.Args, dashed...)
	} else {
		pos = append(pos, dashed...)
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "scripthost %s: %s\n", cmd, fmt.Sprintf(format, a...))
		return code
	}
	if len(pos) != cliArgs[cmd] {
		fmt.Fprint(stderr, cliUsage[cmd])
		return fail(exitUsage, "want %d argument(s), got %d: %q", cliArgs[cmd], len(pos), pos)
	}
	if given["http"] && given["nats"] {
		return fail(exitUsage, "give --nats or --http, not both")
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	if cmd != "ls" {
		// The name rule keeps a name a single subject token on the bus
		// and a single path segment in a URL.
		if err := model.ValidateName(pos[0]); err != nil {
			return fail(failCode(cmd, err), "%v", err)
		}
	}
	var c client
	if given["http"] || (!given["nats"] && cfg.HTTP != "") {
		c, err = newHTTPClient(cfg, log)
	} else {
		c, err = newNATSClient(cfg, log)
	}
	if err != nil {
		return fail(failCode(cmd, err), "%v", err)
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(ctx, cfg.Wait)
	defer cancel()

	switch cmd {
	case "run":
		if cfg.Async {
			return cliRunAsync(ctx, c.(jobClient), cfg, pos[0], stdin, stdout, stderr)
		}
		if given["timeout"] {
			return fail(exitUsage, "--timeout is for --async runs (a run's time limit is the server's)")
		}
		return cliRun(ctx, c, cfg, pos[0], stdin, stdout, stderr, log)
	case "ls":
		names, err := c.list(ctx)
		if err != nil {
			return fail(1, "%v", err)
		}
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
	case "cat":
		s, err := c.get(ctx, pos[0])
		if err != nil {
			return fail(1, "%v", err)
		}
		io.WriteString(stdout, s.Code)
	case "put":
		code, err := readFile(pos[1], stdin)
		if err != nil {
			return fail(1, "%v", err)
		}
		verb := "created"
		s, err := c.create(ctx, pos[0], code)
		if errors.Is(err, model.ErrExists) {
			verb = "updated"
			s, err = c.update(ctx, pos[0], code)
		}
		if err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprintf(stdout, "%s %s (version %s)\n", verb, s.Name, s.Version)
	case "rm":
		if err := c.remove(ctx, pos[0]); err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprintf(stdout, "removed %s\n", pos[0])
	}
	return 0
}

// failCode is the exit code of a failed command.
func failCode(cmd string, err error) int {
	if cmd != "run" {
		return 1
	}
	if errors.Is(err, model.ErrNotFound) {
		return exitNotFound
	}
	return exitFailed
}

// parseCLIFlags parses flags before and after the positional arguments
// (`run hello.py --arg x`), up to a "--": what follows it is returned as
// dashed, flags or not; then flags not given on the command line are set
// from the environment. given tells which flags the command line gave.
func parseCLIFlags(fs *flag.FlagSet, args []string) (pos, dashed []string, given map[string]bool, err error) {
	for {
		if err := parseArgs(fs, args); err != nil {
			return nil, nil, nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			dashed = rest
			break
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || perRun[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, serr)
				fmt.Fprintln(fs.Output(), err)
			}
		}
	})
	return pos, dashed, given, err
}

// readFile reads a script's code from path, or from stdin for "-".
func readFile(path string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return string(b), nil
}

// isTerminal tells whether r is a terminal, from which a run's data is
// never read (nor from /dev/null, which is a character device too).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err != nil || fi.Mode()&os.ModeCharDevice != 0
}

// runBody builds the body of a run request. The data goes in as it was
// written, so the script reads exactly those bytes (json.Marshal would
// compact them and escape <, > and &).
func runBody(data []byte, args []string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if data = bytes.TrimSpace(data); len(data) > 0 {
		if !json.Valid(data) {
			return nil, errors.New("the data is not valid JSON")
		}
		b.WriteString(`"data":`)
		b.Write(data)
	}
	if len(args) > 0 {
		a, err := json.Marshal(args)
		if err != nil {
			return nil, err
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(`"args":`)
		b.Write(a)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// cliRun runs a script and passes on its output and exit code.
func cliRun(ctx context.Context, c client, cfg cliConfig, name string, stdin io.Reader, stdout, stderr io.Writer, log *slog.Logger) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "scripthost run: %s\n", fmt.Sprintf(format, a...))
		return code
	}
	var data []byte
	switch {
	case cfg.Data.set:
		data = []byte(cfg.Data.val)
	case !isTerminal(stdin):
		var err error
		if data, err = io.ReadAll(stdin); err != nil {
			return fail(exitFailed, "read stdin: %v", err)
		}
	}
	body, err := runBody(data, cfg.Args)
	if err != nil {
		from := "--data"
		if !cfg.Data.set {
			from = "stdin"
		}
		return fail(exitUsage, "%s: %v (a run's data is one JSON value; --data '' sends none)", from, err)
	}
	sink := &runSink{out: [3]io.Writer{nil, stdout, stderr}}
	ans, err := c.run(ctx, name, body, cfg.NoCache, sink)
	if sink.skipped > 0 {
		fail(0, "%d bytes of output were not shown: this client read them too slowly (the server's result has them)", sink.skipped)
	}
	if errors.Is(err, model.ErrCancelled) {
		return fail(exitCancelled, "cancelled: the run was stopped")
	}
	if err != nil {
		return fail(failCode("run", err), "%v", err)
	}
	log.Debug("answered", "script", name, "node", ans.node, "cache", ans.cache)
	res := ans.result
	// What was streamed is printed already; a cache hit streams nothing.
	if !sink.got[1] {
		io.WriteString(stdout, res.Stdout)
	}
	if !sink.got[2] {
		io.WriteString(stderr, res.Stderr)
	}
	if res.StdoutTruncated {
		fail(0, "the script's stdout was cut at the server's output limit")
	}
	if res.StderrTruncated {
		fail(0, "the script's stderr was cut at the server's output limit")
	}
	switch {
	case res.TimedOut:
		return fail(exitTimeout, "%s", model.MsgTimedOut)
	case res.ExitCode != nil:
		return *res.ExitCode
	}
	n := signalNumber(res.Signal)
	if n == 0 {
		return fail(exitFailed, "the script died by an unknown signal %q", res.Signal)
	}
	return fail(exitSignal+int(n), "the script was killed by %s", res.Signal)
}

// client is what the commands need of a server, over NATS or HTTP.
type client interface {
	list(ctx context.Context) ([]string, error)
	get(ctx context.Context, name string) (model.Script, error)
	create(ctx context.Context, name, code string) (model.Script, error)
	update(ctx context.Context, name, code string) (model.Script, error)
	remove(ctx context.Context, name string) error
	// run returns the result also when the script timed out. The output
	// goes to sink as it comes. When ctx ends first (^C, --wait), the run
	// is cancelled on the server, and run returns an error wrapping
	// model.ErrCancelled (^C) or model.ErrTimeout.
	run(ctx context.Context, name string, body []byte, noCache bool, sink *runSink) (runAnswer, error)
	close()
}

// runSink prints a run's output as it comes.
type runSink struct {
	out     [3]io.Writer // by fd: 1 stdout, 2 stderr
	got     [3]bool      // output came for that fd
	skipped int          // bytes the server did not send (a slow client)
}

func (s *runSink) write(fd int, p []byte) {
	if fd == 1 || fd == 2 {
		s.got[fd] = true
		s.out[fd].Write(p)
	}
}

// gaveUp is the error of a run whose caller stopped waiting: ctx is done.
func gaveUp(ctx context.Context, wait time.Duration) error {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return model.Errorf(model.ErrTimeout, "no answer within %s (--wait); the run was cancelled", wait)
	}
	return model.Errorf(model.ErrCancelled, "cancelled")
}

// runAnswer is a run's result and where it came from.
type runAnswer struct {
	result      model.Result
	node, cache string
}

// decodeRun reads a run answer: a result, or a timeout that carries one.
func decodeRun(body []byte, hdr func(string) string, err error) (runAnswer, error) {
	ans := runAnswer{node: hdr(bus.HeaderNode), cache: hdr(bus.HeaderCache)}
	if err != nil {
		var tb model.TimeoutBody
		if errors.Is(err, model.ErrTimeout) && json.Unmarshal(body, &tb) == nil && tb.TimedOut {
			ans.result = tb.Result
			return ans, nil
		}
		return ans, err
	}
	if err := json.Unmarshal(body, &ans.result); err != nil {
		return ans, fmt.Errorf("the server's answer is not a run result: %v", err)
	}
	return ans, nil
}

// natsClient talks to the catalog and the executors on the bus.
type natsClient struct {
	nc   *nats.Conn
	url  string
	user string
	log  *slog.Logger
	wait time.Duration

	// denied holds, per subject, the requests waiting for an answer: a
	// permissions violation the server reports (asynchronously) for that
	// subject ends them at once instead of at --wait.
	mu     sync.Mutex
	denied map[string][]chan error
}

func newNATSClient(cfg cliConfig, log *slog.Logger) (*natsClient, error) {
	nc, err := bus.Connect(bus.ConnConfig{URL: cfg.NATS, Name: "scripthost-cli", User: cfg.NATSUser, Password: cfg.NATSPassword})
	if err != nil {
		return nil, model.Errorf(model.ErrUnavailable, "cannot reach the NATS bus at %s: %v (is `scripthost serve` running? --nats sets the URL, --http uses the HTTP API)",
			bus.Redact(cfg.NATS), errors.Unwrap(err))
	}
	c := &natsClient{nc: nc, url: bus.Redact(cfg.NATS), user: cfg.NATSUser, log: log, wait: cfg.Wait, denied: map[string][]chan error{}}
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.asyncError(err) })
	return c, nil
}

// violationSubject finds the subject in the server's permissions
// violation message: Permissions Violation for Publish to "script.create".
var violationSubject = regexp.MustCompile(`(?i)permissions violation for publish to "([^"]+)"`)

// asyncError ends the requests that a permissions violation is about.
func (c *natsClient) asyncError(err error) {
	m := violationSubject.FindStringSubmatch(err.Error())
	if !errors.Is(err, nats.ErrPermissionViolation) || m == nil {
		c.log.Debug("nats", "err", err)
		return
	}
	user := "this NATS user"
	if c.user != "" {
		user = "the NATS user " + strconv.Quote(c.user)
	}
	denied := model.Errorf(model.ErrForbidden, "%s may not send on %s: the bus refused it at once (a run-only user may list, read and run scripts, not change them)", user, m[1])
	c.mu.Lock()
	waiting := c.denied[m[1]]
	delete(c.denied, m[1])
	c.mu.Unlock()
	for _, ch := range waiting {
		ch <- denied
	}
}

// watchDenied registers a request on subject; the channel gets the error
// of a permissions violation for it.
func (c *natsClient) watchDenied(subject string) (<-chan error, func()) {
	ch := make(chan error, 1)
	c.mu.Lock()
	c.denied[subject] = append(c.denied[subject], ch)
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		list := c.denied[subject]
		for i, x := range list {
			if x == ch {
				c.denied[subject] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(c.denied[subject]) == 0 {
			delete(c.denied, subject)
		}
	}
}

func (c *natsClient) close() { c.nc.Close() }

// request sends one request; the reply's error headers become the error.
func (c *natsClient) request(ctx context.Context, subject string, body []byte, hdr nats.Header) (*nats.Msg, error) {
	start := time.Now()
	denied, unwatch := c.watchDenied(subject)
	defer unwatch()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	refused := make(chan error, 1) // the violation, or nil
	go func() {
		select {
		case e := <-denied:
			cancel()
			refused <- e
		case <-ctx.Done():
			refused <- nil
		}
	}()
	reply, err := c.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: body, Header: hdr})
	cancel()
	if e := <-refused; e != nil && err != nil {
		c.log.Debug("nats request", "subject", subject, "took", time.Since(start).Round(time.Microsecond), "err", e)
		return nil, e
	}
	c.log.Debug("nats request", "subject", subject, "took", time.Since(start).Round(time.Microsecond), "err", err)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		who := "catalog"
		if strings.HasPrefix(subject, bus.RunPrefix) {
			who = "executor"
		}
		return nil, model.Errorf(model.ErrUnavailable, "no %s is serving %s on the bus at %s", who, subject, c.url)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, model.Errorf(model.ErrTimeout, "no answer on %s within %s (--wait)", subject, c.wait)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	if err := bus.ReplyError(reply); err != nil {
		return reply, err
	}
	return reply, nil
}

func (c *natsClient) script(ctx context.Context, subject string, body []byte) (model.Script, error) {
	var s model.Script
	reply, err := c.request(ctx, subject, body, nil)
	if err == nil {
		err = json.Unmarshal(reply.Data, &s)
	}
	return s, err
}

func (c *natsClient) list(ctx context.Context) ([]string, error) {
	var names []string
	reply, err := c.request(ctx, bus.ListSubject, nil, nil)
	if err == nil {
		err = json.Unmarshal(reply.Data, &names)
	}
	return names, err
}

func (c *natsClient) get(ctx context.Context, name string) (model.Script, error) {
	return c.script(ctx, bus.GetSubject(name), nil)
}

func (c *natsClient) create(ctx context.Context, name, code string) (model.Script, error) {
	body, _ := json.Marshal(map[string]string{"name": name, "code": code})
	return c.script(ctx, bus.CreateSubject, body)
}

func (c *natsClient) update(ctx context.Context, name, code string) (model.Script, error) {
	body, _ := json.Marshal(map[string]string{"code": code})
	return c.script(ctx, bus.UpdateSubject(name), body)
}

func (c *natsClient) remove(ctx context.Context, name string) error {
	_, err := c.request(ctx, bus.DeleteSubject(name), nil, nil)
	return err
}

// run streams the run: the node sends a start message (the run's id),
// the chunks of output, then the result, to an inbox of this client.
func (c *natsClient) run(ctx context.Context, name string, body []byte, noCache bool, sink *runSink) (runAnswer, error) {
	subject := bus.RunSubject(name)
	msg := nats.NewMsg(subject)
	if noCache {
		msg.Header.Set(bus.HeaderNoCache, "true")
	}
	msg.Header.Set(bus.HeaderStream, "true")
	msg.Data = body
	msg.Reply = c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(msg.Reply)
	if err != nil {
		return runAnswer{}, fmt.Errorf("%s: %w", subject, err)
	}
	defer sub.Unsubscribe()
	start := time.Now()
	if err := c.nc.PublishMsg(msg); err != nil {
		return runAnswer{}, fmt.Errorf("%s: %w", subject, err)
	}
	var runID string
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if runID != "" {
				// Stop the run on its node, and say so only once it is.
				cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, cerr := c.nc.RequestWithContext(cctx, bus.CancelSubject(runID), nil)
				cancel()
				c.log.Debug("cancel", "run", runID, "err", cerr)
			}
			return runAnswer{}, gaveUp(ctx, c.wait)
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return runAnswer{}, model.Errorf(model.ErrUnavailable, "no executor is serving %s on the bus at %s", subject, c.url)
		}
		switch m.Header.Get(bus.HeaderEvent) {
		case bus.EventStart:
			runID = m.Header.Get(bus.HeaderRunID)
			c.log.Debug("started", "script", name, "node", m.Header.Get(bus.HeaderNode), "run", runID)
		case bus.EventStdout:
			sink.write(1, m.Data)
		case bus.EventStderr:
			sink.write(2, m.Data)
		default:
			c.log.Debug("nats request", "subject", subject, "took", time.Since(start).Round(time.Microsecond))
			return decodeRun(m.Data, m.Header.Get, bus.ReplyError(m))
		}
	}
}

// httpClient talks to the HTTP API.
type httpClient struct {
	base  string
	token string
	hc    *http.Client
	log   *slog.Logger
	wait  time.Duration
}

func newHTTPClient(cfg cliConfig, log *slog.Logger) (*httpClient, error) {
	base := strings.TrimRight(cfg.HTTP, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base // a listen address, as in SCRIPTHOST_HTTP
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, model.Errorf(model.ErrBadRequest, "--http %q: want a URL such as http://127.0.0.1:3000", cfg.HTTP)
	}
	return &httpClient{base: base, token: cfg.Token, hc: &http.Client{}, log: log, wait: cfg.Wait}, nil
}

func (c *httpClient) close() { c.hc.CloseIdleConnections() }

// do sends one request; a status of 400 or more becomes the bus error of
// that code, with the server's message.
func (c *httpClient) do(ctx context.Context, method, path string, body []byte, hdr http.Header) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, model.Errorf(model.ErrTimeout, "no answer from %s within the --wait time", c.base)
		}
		return nil, nil, model.Errorf(model.ErrUnavailable, "cannot reach the HTTP API at %s: %v", c.base, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	c.log.Debug("http request", "method", method, "path", path, "status", resp.StatusCode, "took", time.Since(start).Round(time.Microsecond))
	if err != nil {
		return resp, nil, fmt.Errorf("read the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		return resp, data, statusErr(resp.StatusCode, data)
	}
	return resp, data, nil
}

// statusErr turns an HTTP error answer into the bus error of its code,
// through the one mapping of codes to errors (bus.ReplyError).
func statusErr(code int, body []byte) error {
	var e model.ErrorBody
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	}
	m := nats.NewMsg("")
	m.Header.Set(bus.HeaderErrorCode, strconv.Itoa(code))
	m.Header.Set(bus.HeaderError, e.Error)
	return bus.ReplyError(m)
}

func (c *httpClient) script(ctx context.Context, method, path string, body []byte) (model.Script, error) {
	var s model.Script
	_, data, err := c.do(ctx, method, path, body, nil)
	if err == nil {
		err = json.Unmarshal(data, &s)
	}
	return s, err
}

func scriptPath(name string) string { return "/scripts/" + url.PathEscape(name) }

func (c *httpClient) list(ctx context.Context) ([]string, error) {
	var names []string
	_, data, err := c.do(ctx, "GET", "/scripts", nil, nil)
	if err == nil {
		err = json.Unmarshal(data, &names)
	}
	return names, err
}

func (c *httpClient) get(ctx context.Context, name string) (model.Script, error) {
	return c.script(ctx, "GET", scriptPath(name), nil)
}

func (c *httpClient) create(ctx context.Context, name, code string) (model.Script, error) {
	body, _ := json.Marshal(map[string]string{"name": name, "code": code})
	return c.script(ctx, "POST", "/scripts", body)
}

func (c *httpClient) update(ctx context.Context, name, code string) (model.Script, error) {
	body, _ := json.Marshal(map[string]string{"code": code})
	return c.script(ctx, "PUT", scriptPath(name), body)
}

func (c *httpClient) remove(ctx context.Context, name string) error {
	_, _, err := c.do(ctx, "DELETE", scriptPath(name), nil, nil)
	return err
}

// run asks for server-sent events: the chunks of output, then the result.
// Closing the request (^C, --wait) makes the server cancel the run.
func (c *httpClient) run(ctx context.Context, name string, body []byte, noCache bool, sink *runSink) (runAnswer, error) {
	path := "/run/" + url.PathEscape(name)
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+path, bytes.NewReader(body))
	if err != nil {
		return runAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if noCache {
		req.Header.Set("Cache-Control", "no-cache")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return runAnswer{}, gaveUp(ctx, c.wait)
		}
		return runAnswer{}, model.Errorf(model.ErrUnavailable, "cannot reach the HTTP API at %s: %v", c.base, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	c.log.Debug("http request", "method", "POST", "path", path, "status", resp.StatusCode, "took", time.Since(start).Round(time.Microsecond))
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return runAnswer{}, fmt.Errorf("read the answer of POST %s: %w", path, err)
		}
		var serr error
		if resp.StatusCode >= 400 {
			serr = statusErr(resp.StatusCode, data)
		}
		return decodeRun(data, resp.Header.Get, serr)
	}
	var ans *runAnswer
	var evErr error
	err = readEvents(resp.Body, func(event, data string) bool {
		switch event {
		case "stdout", "stderr":
			var chunk string
			if json.Unmarshal([]byte(data), &chunk) == nil {
				sink.write(map[string]int{"stdout": 1, "stderr": 2}[event], []byte(chunk))
			}
		case "skipped":
			var n map[string]int
			json.Unmarshal([]byte(data), &n)
			sink.skipped += n["stdout"] + n["stderr"]
		case "result":
			a, err := decodeRun([]byte(data), resp.Header.Get, nil)
			ans, evErr = &a, err
			return false
		case "error":
			var e model.ErrorBody
			json.Unmarshal([]byte(data), &e)
			evErr = model.Errorf(model.ErrUnavailable, "%s", e.Error)
			return false
		}
		return true
	})
	switch {
	case ctx.Err() != nil:
		return runAnswer{}, gaveUp(ctx, c.wait)
	case evErr != nil || ans != nil:
		if ans == nil {
			return runAnswer{}, evErr
		}
		return *ans, evErr
	case err != nil:
		return runAnswer{}, fmt.Errorf("read the answer of POST %s: %w", path, err)
	}
	return runAnswer{}, fmt.Errorf("the answer of POST %s ended before its result", path)
}

// readEvents reads a text/event-stream, calling each for every event
// until it returns false.
func readEvents(r io.Reader, each func(event, data string) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 256<<20) // a result event holds the whole output
	var event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event != "" && !each(event, data) {
				return nil
			}
			event, data = "", ""
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	return sc.Err()
}
