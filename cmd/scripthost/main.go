// Command scripthost hosts Python scripts as plugins behind a REST API and
// a NATS bus. `scripthost serve` runs everything in one process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is scripthost's SemVer, announced by its NATS services.
const version = "0.1.0"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: scripthost <command> [flags]

commands:
  serve      run the HTTP API, the catalog, an executor and the embedded NATS server
  executor   run an executor node only, joining an existing bus (--nats URL)
  help       show this help
  version    print the version (also --version)

client commands, over NATS (--nats URL, default nats://127.0.0.1:4222) or HTTP (--http URL):
  run NAME [--arg A]... [--data JSON] [-- ARG...]
             run a script: its stdout, its stderr and its exit code are passed on
             (what follows -- is the script's argv)
             (data from stdin when --data is not given and stdin is not a terminal)
  ls         list the scripts
  cat NAME   print a script's code
  put NAME FILE
             create a script from FILE ('-': stdin), or replace its code
  rm NAME    delete a script
  run NAME --async [--timeout D]
             queue the run as a durable job and print its id
  job submit NAME [--data JSON] [--arg A]... [--timeout D] [--idempotency-key K] [--callback-url URL]
  job get ID | job cancel ID | job ls [--script NAME] [--status S] [--limit N]
             durable jobs: submit (prints the job), read, cancel, list

Run 'scripthost <command> -h' for the flags of a command. Every flag can
also be set by the environment variable SCRIPTHOST_<FLAG>, '-' written '_'
(e.g. SCRIPTHOST_MAX_CONCURRENT=8).
`

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCommand(ctx, args[1:], stderr)
	case "executor":
		err = executorCommand(ctx, args[1:], stderr)
	case "run", "ls", "cat", "put", "rm":
		return cliCommand(ctx, args[0], args[1:], os.Stdin, stdout, stderr)
	case "job":
		return jobCommand(ctx, args[1:], os.Stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionLine())
		return 0
	default:
		if strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(stderr, "scripthost: %s: the flags come after the command (scripthost <command> [flags], e.g. scripthost run NAME %s ...); 'scripthost help' lists the commands\n", args[0], args[0])
			return 2
		}
		fmt.Fprintf(stderr, "scripthost: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errUsage) {
		return 2 // the flag package said what is wrong
	}
	if err != nil {
		fmt.Fprintf(stderr, "scripthost: %v\n", err)
		return 1
	}
	return 0
}

// versionLine says which scripthost this is: its version, the commit it
// was built from (when the build knew it) and the Go toolchain.
func versionLine() string {
	var details []string
	if rev := buildRevision(); rev != "" {
		details = append(details, "commit "+rev)
	}
	details = append(details, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return "scripthost " + version + " (" + strings.Join(details, ", ") + ")"
}

// buildRevision is the commit the binary was built from (12 digits,
// "+dirty" with uncommitted changes), or "" when the build did not say.
func buildRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev[:min(12, len(rev))] + dirty
}

// newLogger builds the process logger: text or JSON on stderr.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
