package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/catalog"
	"github.com/scripthost/scripthost/executor"
)

// nodeConfig is what the flags say of an executor node: in `scripthost
// executor` (with --dir and --metrics besides), and of serve's own node.
type nodeConfig struct {
	MaxConcurrent int
	Timeout       time.Duration
	QueueTimeout  time.Duration
	CacheTTL      time.Duration
	CacheSize     byteSize
	Python        string
	Mode          string
	Preload       string
	WarmParents   int
	WarmMemory    byteSize
	WarmIdle      time.Duration
	MaxBody       byteSize
	MaxOutput     byteSize
	MaxQueue      int
	Node          string
	LogFormat     string
	LogLevel      string
	// NATS is the URL of the bus to join ("" in serve: the embedded
	// server).
	NATS string
	// Run limits, run user, tokens and credentials (security.go).
	securityConfig
	// Where the secrets came from (secrets.go).
	secretSources
}

// flags are the flags of an executor node, in serve and in executor.
func (c *nodeConfig) flags(fs *flag.FlagSet, slots int, slotsUsage string) {
	fs.IntVar(&c.MaxConcurrent, "max-concurrent", slots, slotsUsage)
	durationVar(fs, &c.Timeout, "timeout", 30*time.Second, "time limit of one run; the run's process group is killed after it")
	durationVar(fs, &c.QueueTimeout, "queue-timeout", 30*time.Second, "how long a run may wait for a free slot before 503")
	fs.IntVar(&c.MaxQueue, "max-queue", executor.DefaultMaxQueue, "runs that may wait for a slot on this node; beyond it 503 at once (with Retry-After); 0: none waits")
	c.MaxBody = 1 << 20
	fs.Var(&c.MaxBody, "max-body", "request body limit, on HTTP and NATS (413 beyond)")
	durationVar(fs, &c.CacheTTL, "cache-ttl", 5*time.Minute, "how long a successful result is cached; 0 disables the cache")
	c.CacheSize = 64 << 20
	fs.Var(&c.CacheSize, "cache-size", "result cache size (e.g. 64MiB)")
	fs.StringVar(&c.Python, "python", "python3", "Python interpreter, resolved once at start")
	fs.StringVar(&c.Mode, "mode", "fork", "execution mode: spawn (a fresh interpreter per run) or fork (a child of a warm interpreter per run)")
	fs.StringVar(&c.Preload, "preload", "", "fork mode: comma-separated modules the warm interpreter imports once")
	fs.IntVar(&c.WarmParents, "warm-parents", executor.DefaultMaxWarmParents, "fork mode: warm parents at most, each a warm interpreter that imported what one hot script imports; 0: none")
	c.WarmMemory = executor.DefaultWarmParentMemory
	fs.Var(&c.WarmMemory, "warm-memory", "fork mode: memory of the warm parents together (their own, not shared); the least recently used go first")
	durationVar(fs, &c.WarmIdle, "warm-idle", executor.DefaultWarmParentIdle, "fork mode: a warm parent with no run for this long is ended")
	c.MaxOutput = 1 << 20
	fs.Var(&c.MaxOutput, "max-output", "cap of stdout and of stderr of a run; the rest is dropped")
	host, _ := os.Hostname()
	fs.StringVar(&c.Node, "name", host, "name of this executor node, in X-Scripthost-Node")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	c.securityConfig.nodeFlags(fs)
}

func (c *nodeConfig) validate() error {
	switch {
	case c.MaxConcurrent < 0:
		return errors.New("--max-concurrent must not be negative")
	case c.Timeout <= 0:
		return errors.New("--timeout must be positive")
	case c.QueueTimeout <= 0:
		return errors.New("--queue-timeout must be positive")
	case c.MaxQueue < 0:
		return errors.New("--max-queue must not be negative")
	case c.CacheTTL < 0:
		return errors.New("--cache-ttl must not be negative")
	case c.MaxBody <= 0:
		return errors.New("--max-body must be positive")
	case c.WarmParents < 0:
		return errors.New("--warm-parents must not be negative")
	case c.WarmMemory <= 0:
		return errors.New("--warm-memory must be positive")
	case c.WarmIdle <= 0:
		return errors.New("--warm-idle must be positive")
	case c.MaxOutput <= 0:
		return errors.New("--max-output must be positive")
	case c.Mode != "spawn" && c.Mode != "fork":
		return fmt.Errorf("--mode %q: want spawn or fork", c.Mode)
	case c.Node == "":
		return errors.New("--name must not be empty")
	}
	return c.securityConfig.validate()
}

// executorCommand runs `scripthost executor`: an executor node only, that
// joins an existing bus and mirrors the scripts into a folder of its own.
func executorCommand(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg nodeConfig
	fs := flag.NewFlagSet("scripthost executor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.NATS, "nats", "nats://127.0.0.1:4222", "URL of the bus to join (a serve node's NATS port, or any NATS server or cluster)")
	dirFlag := fs.String("dir", "", "folder for this node's copy of the scripts (default: a new temporary folder, removed at exit)")
	cfg.flags(fs, 4, "runs at once on this node; more wait in FIFO order")
	metricsAddr := fs.String("metrics", "", "listen address of GET /metrics (Prometheus) for this node, e.g. 0.0.0.0:9464; empty: none")
	cfg.fileFlags(fs)
	if err := cfg.parse(fs, args, "executor"); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.MaxConcurrent < 1 {
		return errors.New("--max-concurrent must be at least 1 on an executor node")
	}
	if err := cfg.prepareNode(); err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	cfg.warnOnCommandLine(log)
	python, err := executor.ResolvePython(cfg.Python)
	if err != nil {
		return err
	}
	dir := *dirFlag
	if dir == "" {
		if dir, err = os.MkdirTemp("", "scripthost-node-"); err != nil {
			return err
		}
		// The run user (nobody, when root) must read the scripts.
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}

	s := &server{log: log}
	defer s.close()
	if err := s.serveMetrics(*metricsAddr, cfg.MaxConcurrent); err != nil {
		return err
	}
	connect := s.joinBus(cfg)
	// The mirror has a connection of its own: the node's connection is
	// drained on exit by watching its subscriptions go.
	mirrorConn, err := connect(bus.RoleNode, "mirror")
	if err != nil {
		return err
	}
	js, err := jetstream.New(mirrorConn)
	if err != nil {
		return err
	}
	mirror, err := catalog.NewMirror(js, dir, log)
	if err != nil {
		return err
	}
	mirror.OnChange(s.obs.scriptChanged)
	mirrorCtx, stopMirror := context.WithCancel(context.Background())
	defer stopMirror()
	go mirror.Run(mirrorCtx)

	nc, err := connect(bus.RoleNode, "executor")
	if err != nil {
		return err
	}
	exec, err := s.startNode(cfg, python, nc, mirror)
	if err != nil {
		return err
	}
	s.exec = exec
	if err := s.startWorker(connect); err != nil {
		return err
	}
	log.Info("executor node joined the bus", "nats", bus.Redact(cfg.NATS), "node", cfg.Node, "dir", mirror.Dir())

	<-ctx.Done()
	log.Info("draining: no new runs, finishing runs in progress")
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.QueueTimeout+cfg.Timeout+5*time.Second)
	defer cancel()
	if err := s.worker.Drain(drainCtx); err != nil {
		log.Warn("jobs drain: running jobs handed back to the queue", "err", err)
	}
	if err := exec.Drain(drainCtx); err != nil {
		log.Warn("executor drain", "err", err)
	}
	for _, c := range s.conns {
		c.Flush()
	}
	log.Info("stopped")
	return nil
}
