package executor

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// Scripts finds the file and the version of a script by name.
type Scripts interface {
	Locate(name string) (path, version string, err error)
}

// Config configures an executor node.
type Config struct {
	// Node names this node in replies (X-Scripthost-Node) and logs.
	Node string
	// MaxConcurrent bounds the runs of this node.
	MaxConcurrent int
	// QueueTimeout bounds how long a request waits for a slot.
	QueueTimeout time.Duration
	// CacheTTL and CacheSize configure the result cache; a zero TTL
	// disables it.
	CacheTTL  time.Duration
	CacheSize int64
	Log       *slog.Logger
	// Metrics, when not nil, receives the node's counts (metrics.go).
	Metrics Metrics
	// Internal names the subjects the nodes of the bus share (offers and
	// liveness); the zero value is that of a bus without credentials.
	Internal bus.Internal
	// MaxBody bounds a run request's body (413 beyond); 0: 1 MiB.
	MaxBody int
	// MaxQueue bounds the requests waiting for a slot; beyond it they get
	// 503 at once. 0 means DefaultMaxQueue; negative: none may wait.
	MaxQueue int

	// announceEvery is how often a node that knows no peer announces
	// itself again (0: peerAnnounceEvery; tests set it shorter).
	announceEvery time.Duration
}

func (c *Config) valid() error {
	switch {
	case c.Node == "":
		return errors.New("executor: node name is required")
	case c.MaxConcurrent < 1:
		return errors.New("executor: max concurrent runs must be at least 1")
	case c.QueueTimeout <= 0:
		return errors.New("executor: queue timeout must be positive")
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.announceEvery <= 0 {
		c.announceEvery = peerAnnounceEvery
	}
	switch {
	case c.MaxQueue == 0:
		c.MaxQueue = DefaultMaxQueue
	case c.MaxQueue < 0:
		c.MaxQueue = 0
	}
	return nil
}

// DefaultMaxQueue bounds the requests waiting for a slot by default.
const DefaultMaxQueue = 64

// Service is an executor node.
type Service struct {
	cfg     Config
	runner  Runner
	scripts Scripts
	slots   *slots
	cache   *resultCache
	flight  flight
	stats   runStats

	mu       sync.Mutex
	nc       *nats.Conn
	svc      *runService
	inflight int           // requests taken and not yet answered
	idle     chan struct{} // closed when inflight drops to zero

	alive     string             // subject this node answers while up
	aliveSub  *nats.Subscription // on alive
	offers    bus.Inboxes        // answers to runs offered to other nodes
	offersSub *nats.Subscription
	cancels   cancels            // runs a caller may cancel (stream.go)
	peersSub  *nats.Subscription // on the peers subject
	spareMu   sync.Mutex
	spareSub  *nats.Subscription // on SpareAll while a slot is free (and peers)
	spareOff  bool               // no spare interest: not serving, or draining
	peers     bool               // another node announced itself, or answered
	announcer *time.Timer        // announces the node again while it knows no peer
}

// New returns an executor node that runs scripts found by scripts with
// runner.
func New(cfg Config, runner Runner, scripts Scripts) (*Service, error) {
	if err := cfg.valid(); err != nil {
		return nil, err
	}
	cache, err := newResultCache(cfg.CacheTTL, cfg.CacheSize)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg:     cfg,
		runner:  runner,
		scripts: scripts,
		slots:   newSlots(cfg.MaxConcurrent, cfg.MaxQueue),
		cache:   cache,
	}, nil
}

// Outcome is the answer to one run request.
type Outcome struct {
	// Body is the JSON of the result.
	Body []byte
	// Result is the decoded result.
	Result model.Result
	// Cached reports a result served from the cache.
	Cached bool
	// Script is the name of the script once the node found it; it stays
	// empty for a name the node does not know.
	Script string
}

// errHandedOver reports a run that another node took over: it answers the
// caller itself.
var errHandedOver = errors.New("run handed over to another node")

// runOpts says how one request gets its slot.
type runOpts struct {
	// acquire takes a slot, or hands the run over to another node.
	acquire func(ctx context.Context) (handedOver bool, err error)
	// share lets identical runs in progress share one execution.
	share bool
	// onMiss is called when the request needs a real run.
	onMiss func()
	// output, when not nil, receives the run's output as it comes, in
	// whole characters, output close together in one chunk (coalescer).
	output Output
	// timeout, when positive, is the run's own time limit (a job's).
	timeout time.Duration
}

// queueSlot waits in this node's FIFO queue for a slot.
func (s *Service) queueSlot(ctx context.Context) (bool, error) {
	err := s.slots.acquire(ctx, s.cfg.QueueTimeout)
	s.reconcileSpare()
	return false, err
}

func (s *Service) execute(ctx context.Context, name string, req model.RunRequest, noCache bool, opts runOpts) (out Outcome, err error) {
	if err := model.ValidateName(name); err != nil {
		return Outcome{}, err
	}
	path, version, err := s.scripts.Locate(name)
	if err != nil {
		return Outcome{}, err
	}
	defer func() { out.Script = name }()
	key := cacheKey(name, version, req.Data, req.Args)
	if !noCache {
		if body, ok := s.cache.get(key); ok {
			out := Outcome{Body: body, Cached: true}
			if err := json.Unmarshal(body, &out.Result); err != nil {
				return Outcome{}, err
			}
			return out, nil
		}
	}
	if opts.onMiss != nil {
		opts.onMiss()
	}
	run := func(ctx context.Context, acquire func(context.Context) (bool, error)) (Outcome, error) {
		handedOver, err := s.acquireTimed(ctx, acquire)
		if err != nil {
			return Outcome{}, err
		}
		if handedOver {
			return Outcome{}, errHandedOver
		}
		defer s.releaseSlot()
		job := Job{Path: path, Args: req.Args, Stdin: req.Data, Version: version, Timeout: opts.timeout}
		if opts.output != nil {
			c := newCoalescer(opts.output)
			defer c.close() // before the slot goes: the output precedes the result
			job.Output = c
		}
		res, err := s.runJob(ctx, name, job)
		if err != nil {
			// A cancelled run keeps what it wrote, for its caller.
			return Outcome{Result: res}, err
		}
		body, err := json.Marshal(res)
		if err != nil {
			return Outcome{}, err
		}
		if !res.TimedOut && res.ExitCode != nil && *res.ExitCode == 0 {
			s.cache.put(key, body)
		}
		return Outcome{Body: body, Result: res}, nil
	}
	if noCache || !opts.share {
		return run(ctx, opts.acquire)
	}
	out, shared, err := s.flight.do(ctx, key, func(ctx context.Context) (Outcome, error) {
		return run(ctx, opts.acquire)
	})
	if shared && errors.Is(err, errHandedOver) {
		// The run this request joined went to another node, which answers
		// only its own caller: run again here.
		return run(ctx, s.queueSlot)
	}
	return out, err
}

// Serve registers the node as the scripthost-executor service on nc and
// starts taking run requests.
func (s *Service) Serve(nc *nats.Conn, version string) error {
	// Requests may arrive as soon as the endpoint exists.
	s.mu.Lock()
	s.nc = nc
	s.mu.Unlock()
	// The micro protocol, with counts taken when a run answers (microsvc.go).
	svc, err := startRunService(nc, runServiceConfig{
		Name:        "scripthost-executor",
		Version:     version,
		Description: "Runs scripthost scripts: script.run.<name>",
		Metadata:    map[string]string{"node": s.cfg.Node},
		Endpoint: micro.EndpointInfo{
			Name:       runEndpoint,
			Subject:    bus.RunAll,
			QueueGroup: bus.ExecutorQueue,
			Metadata: map[string]string{
				"description": "Run a script: body {data, args}, reply {stdout, stderr, exit_code, timed_out}",
				"request":     `{"data": any JSON (the script's stdin), "args": [str]}, both optional; the script name ends the subject; header X-Scripthost-No-Cache: true bypasses the cache; X-Scripthost-Stream: true streams the output (messages marked X-Scripthost-Event: start, stdout, stderr, then result), cancel with script.cancel.<X-Scripthost-Run-Id>`,
				"response":    `{"stdout", "stderr", "exit_code" (null when killed by a signal), "timed_out", "signal"?, "stdout_truncated"?, "stderr_truncated"?}; headers X-Scripthost-Node, X-Cache: hit|miss`,
				"errors":      `headers Nats-Service-Error-Code (400, 404, 499 cancelled, 503, 504) and Nats-Service-Error; body {"error": "..."}; 499 and 504 carry the output so far`,
				"stats":       "num_requests, num_errors, processing_time: counted when a run answers; data: requests, errors, nonzero_exits, timeouts, cancelled, cache_hits, cache_misses, runs, run_time_seconds, average_run_time_seconds, slots, in_use, waiting",
			},
		},
		Stats: func() any { return s.Stats() },
	}, s.handle)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.nc, s.svc = nc, svc
	s.mu.Unlock()
	if err := s.serveScaleOut(nc); err != nil {
		svc.stop()
		return err
	}
	if err := s.serveCancels(nc); err != nil {
		svc.stop()
		s.closeAlive()
		return err
	}
	// Requests sent on other connections right after Serve returns must
	// find the subscriptions in place on the server.
	return nc.Flush()
}

// handle takes one request off the subscription and answers it from its
// own goroutine: a subscription hands over one message at a time.
func (s *Service) handle(m *nats.Msg) {
	s.begin()
	go func() {
		defer s.end()
		s.answer(m, runOpts{acquire: func(ctx context.Context) (bool, error) {
			if s.tryAcquire() {
				return false, nil
			}
			if s.handOver(m) {
				return true, nil
			}
			return s.queueSlot(ctx)
		}, share: true})
	}()
}

// answer runs the request in m and replies to m.Reply (unless the run
// was handed over to another node).
func (s *Service) answer(m *nats.Msg, opts runOpts) {
	start := time.Now()
	name, _ := bus.NameFrom(m.Subject, bus.RunPrefix)
	if n, ok := s.cfg.Internal.SpareName(m.Subject); ok {
		name = n
	}
	noCache := m.Header.Get(bus.HeaderNoCache) == "true"
	// Answers and announcements go where the request says, but never on
	// the internal subjects (which the node may publish on, for its
	// offers); the server's permissions keep them off every other subject
	// but inboxes (bus/users.go).
	if s.cfg.Internal.Has(m.Reply) || bus.ReservedReply(m.Reply) {
		s.cfg.Log.Warn("run request refused: its reply subject is one of the bus's own", "script", name)
		return
	}
	ctx := context.Background()
	ack := m.Header.Get(bus.HeaderAck)
	if s.cfg.Internal.Has(ack) || bus.ReservedReply(ack) {
		ack = ""
	}
	var st *streamer
	if m.Header.Get(bus.HeaderStream) == "true" && m.Reply != "" {
		st = &streamer{nc: s.nc, reply: m.Reply, log: func(err error) {
			s.cfg.Log.Warn("streaming output failed", "script", name, "err", err)
		}}
		// A stream shows one run from its start: it joins no other.
		opts.output, opts.share = st, false
	}
	if ack != "" || st != nil {
		// The caller can learn this run's id: let it cancel the run.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		id := s.cancels.newID()
		opts.onMiss = func() {
			s.cancels.add(id, cancel)
			if ack != "" {
				s.announce(ack, id)
			}
			if st != nil {
				start := nats.NewMsg(m.Reply)
				start.Header.Set(bus.HeaderEvent, bus.EventStart)
				start.Header.Set(bus.HeaderRunID, id)
				start.Header.Set(bus.HeaderNode, s.cfg.Node)
				s.nc.PublishMsg(start)
			}
		}
		defer s.cancels.remove(id)
	}
	out, err := s.run(ctx, name, m.Data, noCache, opts)
	if errors.Is(err, errHandedOver) {
		return
	}
	rm := s.replyMsg(out, err)
	rm.Subject = m.Reply
	if st != nil {
		rm.Header.Set(bus.HeaderEvent, bus.EventResult)
	}
	// Counted before the reply goes out: a caller that has its answer
	// finds it in the stats and metrics, and the last error is that of
	// the last request answered.
	s.mu.Lock()
	svc := s.svc
	s.mu.Unlock()
	if svc != nil {
		svc.answered(time.Since(start), rm.Header.Get(bus.HeaderErrorCode), rm.Header.Get(bus.HeaderError))
	}
	s.observe(name, out, err)
	if m.Reply != "" {
		if perr := s.nc.PublishMsg(rm); perr != nil {
			s.cfg.Log.Warn("reply failed", "script", name, "err", perr)
		}
	}
	s.logRun(name, start, out, err)
}

func (s *Service) run(ctx context.Context, name string, body []byte, noCache bool, opts runOpts) (Outcome, error) {
	if len(body) > s.cfg.MaxBody {
		return Outcome{}, model.Errorf(model.ErrTooLarge, "request body larger than %d bytes", s.cfg.MaxBody)
	}
	req, err := model.DecodeRunRequest(body)
	if err != nil {
		return Outcome{}, err
	}
	return s.execute(ctx, name, req, noCache, opts)
}

// replyMsg encodes an outcome as a bus reply.
func (s *Service) replyMsg(out Outcome, err error) *nats.Msg {
	var m *nats.Msg
	switch {
	case errors.Is(err, model.ErrCancelled):
		// What the run wrote before it was stopped goes with the error.
		m = bus.ErrorMsg(err, model.ResultErrorBody(err, out.Result))
	case err != nil:
		m = bus.ErrorMsg(err, nil)
	case out.Result.TimedOut:
		timedOut := model.TimedOut()
		m = bus.ErrorMsg(timedOut, model.ResultErrorBody(timedOut, out.Result))
	default:
		m = nats.NewMsg("")
		m.Data = out.Body
	}
	m.Header.Set(bus.HeaderNode, s.cfg.Node)
	if err == nil {
		m.Header.Set(bus.HeaderCache, cacheWord(out.Cached))
	}
	return m
}

func cacheWord(hit bool) string {
	if hit {
		return "hit"
	}
	return "miss"
}

func (s *Service) logRun(name string, start time.Time, out Outcome, err error) {
	attrs := []any{"script", name, "node", s.cfg.Node, "duration", time.Since(start).Round(time.Microsecond),
		"outcome", OutcomeOf(out.Result, err)}
	if err != nil {
		s.cfg.Log.Info("run", append(attrs, "error", model.Message(err), "code", model.Code(err))...)
		return
	}
	exit := "null"
	if out.Result.ExitCode != nil {
		exit = strconv.Itoa(*out.Result.ExitCode)
	}
	attrs = append(attrs, "exit_code", exit, "timed_out", out.Result.TimedOut, "cache", cacheWord(out.Cached))
	if out.Result.Signal != "" {
		attrs = append(attrs, "signal", out.Result.Signal)
	}
	s.cfg.Log.Info("run", attrs...)
}

func (s *Service) begin() {
	s.mu.Lock()
	s.inflight++
	s.mu.Unlock()
}

func (s *Service) end() {
	s.mu.Lock()
	s.inflight--
	if s.inflight == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
}

// waitIdle waits until no request is in progress.
func (s *Service) waitIdle(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.inflight == 0 {
			s.mu.Unlock()
			return nil
		}
		if s.idle == nil {
			s.idle = make(chan struct{})
		}
		idle := s.idle
		s.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Drain stops taking requests, answers those already taken (runs in
// progress finish, bounded by their timeout), then closes the cache. The
// node's connection must be its own: Drain watches its subscriptions go.
func (s *Service) Drain(ctx context.Context) error {
	s.mu.Lock()
	svc, nc := s.svc, s.nc
	s.mu.Unlock()
	if svc != nil {
		s.stopScaleOut()
		if err := svc.stop(); err != nil {
			return err
		}
		// Stop drains asynchronously: messages already delivered to the
		// node are still handed to handle until the subscriptions go
		// (all but the node's own, see ownSubs).
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for nc.NumSubscriptions() > ownSubs && !nc.IsClosed() {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if err := s.waitIdle(ctx); err != nil {
		return err
	}
	s.closeAlive()
	s.cache.close()
	return nil
}
