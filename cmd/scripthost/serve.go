package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/catalog"
	"github.com/scripthost/scripthost/executor"
	"github.com/scripthost/scripthost/httpbridge"
	"github.com/scripthost/scripthost/jobs"
	"github.com/scripthost/scripthost/model"
)

// serveConfig is everything `scripthost serve` is told by flags.
type serveConfig struct {
	HTTP         string
	NATSListen   string
	Scripts      string
	ScanInterval time.Duration
	// The node in this process (none with --max-concurrent 0), and the
	// bus: with NATS set, an external NATS server or cluster to use
	// instead of the embedded server.
	nodeConfig
	// Durable jobs (jobs.go).
	jobsConfig
	// HTTP timeouts and limits (edge.go).
	edgeConfig
}

func (c *serveConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTP, "http", "0.0.0.0:3000", "HTTP listen address")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "listen address of the embedded NATS server, for other services; 'none': no listener")
	fs.StringVar(&c.NATS, "nats", "", "URL of an external NATS server or cluster to use instead of the embedded one")
	fs.StringVar(&c.Scripts, "scripts", "./scripts", "scripts folder")
	durationVar(fs, &c.ScanInterval, "scan-interval", 5*time.Second, "how often the scripts folder is rescanned")
	c.nodeConfig.flags(fs, 4, "runs at once on this node; more wait in FIFO order; 0: no executor in this process")
	c.securityConfig.serveFlags(fs)
	c.jobsConfig.flags(fs)
	c.edgeFlags(fs)
	c.fileFlags(fs)
}

// validate checks the flags of serve but its HTTP edge and jobs.
func (c *serveConfig) validate() error {
	if err := c.nodeConfig.validate(); err != nil {
		return err
	}
	if c.ScanInterval <= 0 {
		return errors.New("--scan-interval must be positive")
	}
	return c.validateSecurity()
}

// validateServe checks what only serve has: the HTTP edge.
func (c *serveConfig) validateServe() error {
	if err := c.validate(); err != nil {
		return err
	}
	if c.NATSListen != bus.ListenNone {
		if _, _, err := bus.SplitListen(c.NATSListen); err != nil {
			return fmt.Errorf("--nats-listen %q: %w", c.NATSListen, err)
		}
	}
	return c.validateEdge()
}

// newServeFlagSet is the flag set of serve, filling cfg.
func newServeFlagSet(cfg *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("scripthost serve", flag.ContinueOnError)
	cfg.flags(fs)
	return fs
}

func serveCommand(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg serveConfig
	fs := newServeFlagSet(&cfg)
	fs.SetOutput(stderr)
	if err := cfg.parse(fs, args, "serve"); err != nil {
		return err
	}
	if err := cfg.validateServe(); err != nil {
		return err
	}
	if err := cfg.jobsConfig.validate(); err != nil {
		return err
	}
	if cfg.MaxConcurrent > 0 {
		if err := cfg.prepareNode(); err != nil {
			return err
		}
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	cfg.warnOnCommandLine(log)
	return serve(ctx, cfg, log)
}

// scriptEnv is the environment scripts get: the server's, less its own
// configuration (which holds its secrets).
func scriptEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

// newRunner starts the runner of the configured mode.
func newRunner(mode, preload string, rc executor.RunnerConfig) (executor.Runner, error) {
	if mode == "fork" {
		var mods []string
		for _, m := range strings.Split(preload, ",") {
			if m = strings.TrimSpace(m); m != "" {
				mods = append(mods, m)
			}
		}
		return executor.NewForkRunner(rc, mods)
	}
	return executor.NewSpawnRunner(rc)
}

// server is a running `scripthost serve`: every part in one process.
type server struct {
	log      *slog.Logger
	httpAddr string
	natsURL  string
	http     *http.Server
	served   chan error
	exec     *executor.Service
	worker   *jobs.Worker // takes jobs for exec
	conns    []*nats.Conn
	closers  []func() // run in reverse order by shutdown
	runWait  time.Duration
	obs      *observability // metrics; nil: none
	internal bus.Internal   // the bus's internal subjects
}

// serve runs every part in one process until ctx ends, then shuts down in
// order: no new HTTP requests, runs in progress finish, the bus drains.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger) error {
	s, err := startServer(cfg, log)
	if err != nil {
		return err
	}
	select {
	case err := <-s.served:
		s.close()
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	s.shutdown()
	return nil
}

func (s *server) defer_(f func()) { s.closers = append(s.closers, f) }

// close releases everything started so far, in reverse order.
func (s *server) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// startServer starts every part and returns once HTTP requests are served.
func startServer(cfg serveConfig, log *slog.Logger) (_ *server, err error) {
	s := &server{log: log, served: make(chan error, 1)}
	// A failed start leaves nothing behind: not even the scripts folder,
	// when this start created it and it is still empty, nor the data
	// folder when this start created it (what is in it is this start's).
	_, statErr := os.Stat(cfg.Scripts)
	_, dataErr := os.Lstat(cfg.DataDir)
	defer func() {
		if err != nil {
			s.close()
			if errors.Is(statErr, os.ErrNotExist) {
				os.Remove(cfg.Scripts) // only if empty
			}
			if cfg.DataDir != "" && errors.Is(dataErr, os.ErrNotExist) {
				os.RemoveAll(cfg.DataDir)
			}
		}
	}()
	if cfg.NATS == "" {
		// Before anything else: a second server on the same data folder
		// would share its JetStream store and confuse both.
		if err := s.lockData(cfg.jobsConfig); err != nil {
			return nil, err
		}
	}
	python, err := executor.ResolvePython(cfg.Python)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	s.defer_(func() { ln.Close() })
	s.httpAddr = ln.Addr().String()
	cfg.warnOpen(log)

	connect, err := s.startBus(cfg)
	if err != nil {
		return nil, err
	}

	cat, err := catalog.New(catalog.Config{Dir: cfg.Scripts, ScanInterval: cfg.ScanInterval, Log: log, MaxBody: int(cfg.MaxBody)})
	if err != nil {
		return nil, err
	}
	scanCtx, stopScan := context.WithCancel(context.Background())
	s.defer_(stopScan)
	go cat.Run(scanCtx)
	s.obs = newObservability(func() int { return len(cat.List()) }, cfg.MaxConcurrent)
	cat.OnChange(func(name string, sc *model.Script) { s.obs.scriptChanged(name, sc != nil) })
	catConn, err := connect(bus.RoleCatalog, "catalog")
	if err != nil {
		return nil, err
	}
	// Remote executor nodes find the scripts in the key-value bucket. It
	// is written on a connection of its own: the catalog's answers cannot
	// reach JetStream, whatever reply subject a request names.
	kvConn, err := connect(bus.RoleKV, "catalog-kv")
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(kvConn)
	if err != nil {
		return nil, err
	}
	if _, err := cat.PublishKV(scanCtx, js, bus.ScriptsBucket); err != nil {
		return nil, err
	}
	if _, err := cat.PublishFilesKV(scanCtx, js, bus.FilesBucket); err != nil {
		return nil, err
	}
	catSvc, err := cat.Serve(catConn, version)
	if err != nil {
		return nil, err
	}
	s.defer_(func() { catSvc.Stop() })

	jobsConn, err := connect(bus.RoleJobs, "jobs")
	if err != nil {
		return nil, err
	}
	mgr, err := jobs.NewManager(cfg.managerConfig(log), jobsConn, cat)
	if err != nil {
		return nil, err
	}
	s.defer_(mgr.Close)
	s.obs.jobMetrics(mgr)
	if err := mgr.Serve(version); err != nil {
		return nil, err
	}

	if cfg.MaxConcurrent > 0 {
		execConn, err := connect(bus.RoleNode, "executor")
		if err != nil {
			return nil, err
		}
		if s.exec, err = s.startNode(cfg.nodeConfig, python, execConn, cat); err != nil {
			return nil, err
		}
		if err := s.startWorker(connect); err != nil {
			return nil, err
		}
	} else {
		log.Info("no executor in this process (--max-concurrent 0): runs go to executor nodes on the bus")
	}

	bridgeConn, err := connect(bus.RoleBridge, "bridge")
	if err != nil {
		return nil, err
	}
	s.runWait = cfg.QueueTimeout + cfg.Timeout + 5*time.Second
	bridge := httpbridge.New(httpbridge.Config{
		MaxBody:    int64(cfg.MaxBody),
		RunTimeout: s.runWait,
		Log:        log,
		Token:      cfg.Token,
		RunToken:   cfg.RunToken,
		Version:    version,
		// GET /metrics, and every HTTP request counted.
		Metrics:     s.obs.handler(),
		HTTPMetrics: s.obs.httpMetrics(),
		Internal:    s.internal,
	}, bridgeConn)
	var httpLn net.Listener
	s.http, httpLn = cfg.httpServer(bridge, ln)
	// The services' subscriptions reach the NATS server before the first
	// request can: without this, an early run may find no executor.
	for _, nc := range s.conns {
		if err := nc.Flush(); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
	}
	// Said only once every part has started: a start that fails never
	// claims to listen.
	shown := cfg.HTTP // as given (0.0.0.0:3000), unless the port was chosen
	if _, port, _ := net.SplitHostPort(cfg.HTTP); port == "0" {
		shown = s.httpAddr
	}
	log.Info("Server listening on http://" + shown)
	go func() { s.served <- s.http.Serve(httpLn) }()
	return s, nil
}

// shutdown stops taking HTTP requests, lets the runs in progress finish
// and answer (bounded by the run and queue timeouts), drains the bus and
// releases everything.
func (s *server) shutdown() {
	s.log.Info("shutting down: finishing runs in progress")
	ctx, cancel := context.WithTimeout(context.Background(), s.runWait)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("http shutdown", "err", err)
	}
	if s.worker != nil {
		if err := s.worker.Drain(ctx); err != nil {
			s.log.Warn("jobs drain: running jobs handed back to the queue", "err", err)
		}
	}
	if s.exec != nil {
		if err := s.exec.Drain(ctx); err != nil {
			s.log.Warn("executor drain", "err", err)
		}
	}
	for _, nc := range s.conns {
		nc.Flush()
	}
	s.close()
	s.log.Info("stopped")
}

// connectFunc connects a part of this process to the bus, as role.
type connectFunc func(role bus.Role, name string) (*nats.Conn, error)

// startBus starts the embedded NATS server, or uses the external one of
// --nats, and returns how the parts connect to it: each as its own user
// on the embedded server (bus/users.go), with the credentials of the
// flags on an external one.
func (s *server) startBus(cfg serveConfig) (connectFunc, error) {
	if cfg.NATS != "" {
		return s.joinBus(cfg.nodeConfig), nil
	}
	ns, err := s.startEmbedded(cfg)
	if err != nil {
		return nil, err
	}
	s.internal = ns.Internal()
	return func(role bus.Role, name string) (*nats.Conn, error) {
		return s.connect(ns.ConnFor(role, ""), name)
	}, nil
}

// joinBus returns how the parts connect to the NATS server or cluster of
// --nats, with the credentials of the flags.
func (s *server) joinBus(cfg nodeConfig) connectFunc {
	s.natsURL = cfg.NATS
	s.internal = bus.InternalFromURL(cfg.NATS, cfg.NATSPassword)
	s.log.Info("using the NATS server at " + bus.Redact(cfg.NATS))
	return func(role bus.Role, name string) (*nats.Conn, error) {
		return s.connect(bus.ConnConfig{URL: cfg.NATS, User: cfg.NATSUser, Password: cfg.NATSPassword}, name)
	}
}

// connect opens a connection that the server closes.
func (s *server) connect(c bus.ConnConfig, name string) (*nats.Conn, error) {
	c.Name, c.Log = "scripthost-"+name, s.log
	nc, err := bus.Connect(c)
	if err == nil {
		s.conns = append(s.conns, nc)
		s.defer_(nc.Close)
	}
	return nc, err
}

// lockData makes the data folder and holds its lock until the server
// closes: one server at a time keeps its store there.
func (s *server) lockData(cfg jobsConfig) error {
	dir, err := cfg.storeDir()
	if err != nil || dir == "" {
		return err
	}
	release, err := lockDataDir(dir)
	if err != nil {
		return err
	}
	s.defer_(release)
	return nil
}

// startEmbedded starts the embedded NATS server with the users the flags
// give, or generated ones when an HTTP token is set and none are given.
func (s *server) startEmbedded(cfg serveConfig) (*bus.Server, error) {
	store, err := cfg.storeDir()
	if err != nil {
		return nil, err
	}
	sc := bus.ServerConfig{Listen: cfg.NATSListen, StoreDir: store,
		User: cfg.NATSUser, Password: cfg.NATSPassword, RunUser: cfg.NATSRunUser, RunPassword: cfg.NATSRunPassword,
		MaxPayload: bus.MaxPayloadFor(int64(cfg.MaxBody), int64(cfg.MaxOutput))}
	var gen *generatedCreds
	if cfg.needsGeneratedCreds() {
		g, err := loadOrCreateCreds(cfg.DataDir, s.log)
		if err != nil {
			return nil, fmt.Errorf("NATS credentials: %w", err)
		}
		gen = &g
		sc.User, sc.Password, sc.RunUser, sc.RunPassword = g.User, g.Password, g.RunUser, g.RunPassword
	}
	ns, err := bus.StartServer(sc)
	if err != nil {
		return nil, err
	}
	s.defer_(ns.Close)
	s.natsURL = ns.URL()
	if s.natsURL == "" {
		s.log.Info("NATS: no listener (--nats-listen none): only this process is on the bus")
		return ns, nil
	}
	s.log.Info("NATS listening on " + s.natsURL)
	if gen != nil {
		if err := gen.writeContexts(s.natsURL); err != nil {
			return nil, fmt.Errorf("NATS credentials: %w", err)
		}
		verb := "read from"
		if gen.Created {
			verb = "generated in"
		}
		s.log.Info("NATS demands credentials, as the HTTP API has a token: "+verb+" "+credsDir(cfg.DataDir)+" (0600)",
			"service_user", gen.User, "service_context", gen.ServiceContext, "service_password_file", gen.ServicePassword,
			"run_user", gen.RunUser, "run_context", gen.RunContext, "run_password_file", gen.RunPasswordFile)
	}
	return ns, nil
}

// startNode starts an executor node on nc that finds scripts with scripts.
func (s *server) startNode(cfg nodeConfig, python string, nc *nats.Conn, scripts executor.Scripts) (*executor.Service, error) {
	rc, err := cfg.runnerConfig(python, scriptsDirOf(scripts), s.log)
	if err != nil {
		return nil, err
	}
	runner, err := newRunner(cfg.Mode, cfg.Preload, rc)
	if err != nil {
		return nil, err
	}
	s.defer_(func() { runner.Close() })
	if fr, ok := runner.(*executor.ForkRunner); ok {
		s.obs.warmParents(fr.WarmStats)
	}
	maxQueue := cfg.MaxQueue
	if maxQueue == 0 {
		maxQueue = -1 // none waits
	}
	exec, err := executor.New(executor.Config{
		Node:          cfg.Node,
		MaxConcurrent: cfg.MaxConcurrent,
		QueueTimeout:  cfg.QueueTimeout,
		MaxQueue:      maxQueue,
		MaxBody:       int(cfg.MaxBody),
		Internal:      s.internal,
		CacheTTL:      cfg.CacheTTL,
		CacheSize:     int64(cfg.CacheSize),
		Log:           s.log,
		Metrics:       s.obs.executorMetrics(),
	}, runner, scripts)
	if err != nil {
		return nil, err
	}
	if err := exec.Serve(nc, version); err != nil {
		return nil, err
	}
	s.log.Info("executor ready", "node", cfg.Node, "mode", cfg.Mode, "python", python, "max_concurrent", cfg.MaxConcurrent)
	return exec, nil
}

// managerConfig is the configuration of the job streams.
func (c *serveConfig) managerConfig(log *slog.Logger) jobs.Config {
	return jobs.Config{
		MaxAttempts:     c.JobMaxAttempts,
		TTL:             c.JobTTL,
		MaxTimeout:      c.JobMaxTimeout,
		Timeout:         min(c.Timeout, c.JobMaxTimeout),
		AckWait:         c.JobAckWait,
		CallbackRetries: c.CallbackRetries,
		Replicas:        c.JobReplicas,
		MaxBody:         int64(c.MaxBody),
		Log:             log,
	}
}

// startWorker lets the node take jobs, on a connection of its own (the
// node's drain watches its own connection's subscriptions).
func (s *server) startWorker(connect connectFunc) error {
	nc, err := connect(bus.RoleNode, "jobs-worker")
	if err != nil {
		return err
	}
	s.worker = jobs.NewWorker(nc, s.exec, s.log)
	return s.worker.Start()
}
