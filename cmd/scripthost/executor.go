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

// executorCommand runs `scripthost executor`: an executor node only, that
// joins an existing bus and mirrors the scripts into a folder of its own.
func executorCommand(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg serveConfig
	fs := flag.NewFlagSet("scripthost executor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.NATS, "nats", "nats://127.0.0.1:4222", "URL of the bus to join (a serve node's NATS port, or any NATS server or cluster)")
	fs.StringVar(&cfg.Dir, "dir", "", "folder for this node's copy of the scripts (default: a new temporary folder, removed at exit)")
	cfg.nodeFlags(fs, 4, "runs at once on this node; more wait in FIFO order")
	metricsAddr := fs.String("metrics", "", "listen address of GET /metrics (Prometheus) for this node, e.g. 0.0.0.0:9464; empty: none")
	cfg.fileFlags(fs)
	given, err := parseFlagsGiven(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("executor: unexpected arguments %q", fs.Args())
	}
	if err := cfg.readSecrets(fs, given); err != nil {
		return err
	}
	cfg.ScanInterval = time.Second // not used by an executor node
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
	dir := cfg.Dir
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

	s := &server{log: log, cfg: cfg}
	defer s.close()
	if err := s.serveMetrics(*metricsAddr); err != nil {
		return err
	}
	connect, err := s.startBus(cfg)
	if err != nil {
		return err
	}
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
