package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/scripthost/scripthost/client"
	"github.com/scripthost/scripthost/model"
)

// The client commands (run, ls, put, rm, cat, and job in cli_jobs.go) talk
// to a running server over NATS (--nats, the default) or over its HTTP API
// (--http), through package client.

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
		durationVar(fs, &c.JobTimeout, "timeout", 0, "with --async: the job's time limit (default: the server's --timeout)")
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

// cliCall is one client command once its command line is read.
type cliCall struct {
	cmd    string // "run", "job submit" ...
	cfg    cliConfig
	pos    []string // the positional arguments
	given  map[string]bool
	log    *slog.Logger
	stderr io.Writer
}

// fail says why the command failed and returns code.
func (c *cliCall) fail(code int, format string, a ...any) int {
	fmt.Fprintf(c.stderr, "scripthost %s: %s\n", c.cmd, fmt.Sprintf(format, a...))
	return code
}

// parseCall reads the command line of the client command cmd: the flags
// of fs (cfg's among them, which it sets), then want positional
// arguments. What
// follows "--" is the script's argv when argv is set (a run's), else more
// positional arguments. When ok is false, it said why and code is the
// exit code.
func parseCall(cmd string, fs *flag.FlagSet, cfg *cliConfig, args []string, want int, argv bool, usage string, stderr io.Writer) (call *cliCall, code int, ok bool) {
	pos, dashed, given, err := parseCLIFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, 0, false
	}
	if err != nil {
		return nil, exitUsage, false // the flag package said why
	}
	if argv {
		cfg.Args = append(cfg.Args, dashed...)
	} else {
		pos = append(pos, dashed...)
	}
	call = &cliCall{cmd: cmd, cfg: *cfg, pos: pos, given: given, stderr: stderr}
	if len(pos) != want {
		fmt.Fprint(stderr, usage)
		return nil, call.fail(exitUsage, "want %d argument(s), got %d: %q", want, len(pos), pos), false
	}
	if given["http"] && given["nats"] {
		return nil, call.fail(exitUsage, "give --nats or --http, not both"), false
	}
	if call.log, err = newLogger(stderr, cfg.LogFormat, cfg.LogLevel); err != nil {
		return nil, call.fail(exitUsage, "%v", err), false
	}
	return call, 0, true
}

// client opens the client of the server the flags name: its HTTP API
// when --http is given (or set by the environment and --nats not given),
// else its bus.
func (c *cliCall) client() (client.Client, error) {
	cc := client.Config{Token: c.cfg.Token, User: c.cfg.NATSUser, Password: c.cfg.NATSPassword,
		Name: "scripthost-cli", Timeout: c.cfg.Wait, Log: c.log}
	if c.given["http"] || (!c.given["nats"] && c.cfg.HTTP != "") {
		cc.URL = c.cfg.HTTP
		h, err := client.NewHTTP(cc)
		if err != nil {
			return nil, fmt.Errorf("--http %w", err)
		}
		return h, nil
	}
	cc.URL = c.cfg.NATS
	n, err := client.NewNATS(cc)
	if err != nil {
		return nil, fmt.Errorf("%w (is `scripthost serve` running? --nats sets the URL, --http uses the HTTP API)", err)
	}
	return n, nil
}

// explain is the text of a client's error: one that --wait ended says so.
func explain(err error) string {
	if errors.Is(err, client.ErrNoAnswer) {
		return err.Error() + " (--wait)"
	}
	return err.Error()
}

// newCLIFlags is the flag set of a client command, whose -h prints usage
// and the flags; not says which flags the environment does not set.
func newCLIFlags(name, usage, not string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nflags (each also SCRIPTHOST_<FLAG>, but for %s):\n", usage, not)
		fs.PrintDefaults()
	}
	return fs
}

// cliCommand runs one client command and returns the process exit code.
// stdin is the data of a run when --data is not given and stdin is not a
// terminal.
func cliCommand(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cfg cliConfig
	fs := newCLIFlags("scripthost "+cmd, cliUsage[cmd], "--arg, --data and --no-cache", stderr)
	cfg.flags(fs, cmd == "run")
	call, code, ok := parseCall(cmd, fs, &cfg, args, cliArgs[cmd], cmd == "run", cliUsage[cmd], stderr)
	if !ok {
		return code
	}
	pos := call.pos
	if cmd != "ls" {
		// Before any connection: a bad name is the caller's mistake
		// whether or not a server is up.
		if err := model.ValidateName(pos[0]); err != nil {
			return call.fail(failCode(cmd, err), "%v", err)
		}
	}
	if cmd == "run" && call.given["timeout"] && !call.cfg.Async {
		return call.fail(exitUsage, "--timeout is for --async runs (a run's time limit is the server's)")
	}
	c, err := call.client()
	if err != nil {
		return call.fail(failCode(cmd, err), "%v", err)
	}
	defer c.Close()

	switch cmd {
	case "run":
		if call.cfg.Async {
			return cliRunAsync(ctx, c, call, stdin, stdout)
		}
		return cliRun(ctx, c, call, stdin, stdout, stderr)
	case "ls":
		names, err := c.List(ctx)
		if err != nil {
			return call.fail(1, "%s", explain(err))
		}
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
	case "cat":
		s, err := c.Get(ctx, pos[0])
		if err != nil {
			return call.fail(1, "%s", explain(err))
		}
		io.WriteString(stdout, s.Code)
	case "put":
		code, err := readFile(pos[1], stdin)
		if err != nil {
			return call.fail(1, "%v", err)
		}
		verb := "created"
		s, err := c.Create(ctx, pos[0], code)
		if errors.Is(err, model.ErrExists) {
			verb = "updated"
			s, err = c.Update(ctx, pos[0], code)
		}
		if err != nil {
			return call.fail(1, "%s", explain(err))
		}
		fmt.Fprintf(stdout, "%s %s (version %s)\n", verb, s.Name, s.Version)
	case "rm":
		if err := c.Delete(ctx, pos[0]); err != nil {
			return call.fail(1, "%s", explain(err))
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

// runRequest is the run that --data (or stdin) and --arg ask for; a
// non-zero code means it failed and said why.
func (c *cliCall) runRequest(stdin io.Reader) (model.RunRequest, int) {
	var data []byte
	switch {
	case c.cfg.Data.set:
		data = []byte(c.cfg.Data.val)
	case !isTerminal(stdin):
		var err error
		if data, err = io.ReadAll(stdin); err != nil {
			return model.RunRequest{}, c.fail(exitFailed, "read stdin: %v", err)
		}
	}
	// The data goes to the script byte for byte: it must be one JSON
	// value as it is written.
	if data = bytes.TrimSpace(data); len(data) > 0 && !json.Valid(data) {
		from := "--data"
		if !c.cfg.Data.set {
			from = "stdin"
		}
		return model.RunRequest{}, c.fail(exitUsage, "%s: the data is not valid JSON (a run's data is one JSON value; --data '' sends none)", from)
	}
	return model.RunRequest{Data: data, Args: c.cfg.Args}, 0
}

// cliRun runs a script and passes on its output and exit code.
func cliRun(ctx context.Context, c client.Client, call *cliCall, stdin io.Reader, stdout, stderr io.Writer) int {
	req, code := call.runRequest(stdin)
	if code != 0 {
		return code
	}
	out, errOut := &seen{w: stdout}, &seen{w: stderr}
	ans, err := c.Run(ctx, call.pos[0], req, client.RunOptions{NoCache: call.cfg.NoCache, Stdout: out, Stderr: errOut})
	if ans.Skipped > 0 {
		call.fail(0, "%d bytes of output were not shown: this client read them too slowly (the server's result has them)", ans.Skipped)
	}
	if errors.Is(err, model.ErrCancelled) {
		return call.fail(exitCancelled, "cancelled: the run was stopped")
	}
	if err != nil {
		return call.fail(failCode("run", err), "%s", explain(err))
	}
	call.log.Debug("answered", "script", call.pos[0], "node", ans.Node, "cache", ans.Cache)
	res := ans.Result
	// What was streamed is printed already; a cache hit streams nothing.
	if !out.any {
		io.WriteString(stdout, res.Stdout)
	}
	if !errOut.any {
		io.WriteString(stderr, res.Stderr)
	}
	if res.StdoutTruncated {
		call.fail(0, "the script's stdout was cut at the server's output limit")
	}
	if res.StderrTruncated {
		call.fail(0, "the script's stderr was cut at the server's output limit")
	}
	switch {
	case res.TimedOut:
		return call.fail(exitTimeout, "%s", model.MsgTimedOut)
	case res.ExitCode != nil:
		return *res.ExitCode
	}
	n := signalNumber(res.Signal)
	if n == 0 {
		return call.fail(exitFailed, "the script died by an unknown signal %q", res.Signal)
	}
	return call.fail(exitSignal+int(n), "the script was killed by %s", res.Signal)
}

// seen is a writer that remembers whether anything came.
type seen struct {
	w   io.Writer
	any bool
}

func (s *seen) Write(p []byte) (int, error) {
	s.any = true
	return s.w.Write(p)
}
