package httpbridge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// Requester sends one request on the bus and returns its reply.
// *nats.Conn is one.
type Requester interface {
	RequestMsgWithContext(ctx context.Context, msg *nats.Msg) (*nats.Msg, error)
}

// Config configures the bridge.
type Config struct {
	// MaxBody bounds request bodies, in bytes (413 beyond).
	MaxBody int64
	// RunTimeout bounds the wait for a run's answer: it covers the queue
	// wait and the run itself on the executor.
	RunTimeout time.Duration
	// CatalogTimeout bounds the wait for a catalog answer.
	CatalogTimeout time.Duration
	Log            *slog.Logger

	// Token, when set, is the bearer token that may do everything;
	// RunToken the one that may only list, read and run scripts. With
	// either set, requests without a valid token get 401 (auth.go).
	Token, RunToken string
	// Metrics serves GET /metrics; nil answers 404 there.
	Metrics http.Handler
	// HTTPMetrics, when not nil, is told of every request (metrics.go).
	HTTPMetrics HTTPMetrics
	// Version is the server's version, in /openapi.json.
	Version string
	// StreamBuffer bounds the output held for one client of a streamed
	// run that reads slowly, in bytes (sse.go); 0: DefaultStreamBuffer.
	StreamBuffer int
	// Internal names the bus's internal subjects: the bridge pings only
	// liveness subjects of its bus.
	Internal bus.Internal
}

func (c *Config) fill() {
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.RunTimeout <= 0 {
		c.RunTimeout = time.Minute
	}
	if c.CatalogTimeout <= 0 {
		c.CatalogTimeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.StreamBuffer <= 0 {
		c.StreamBuffer = DefaultStreamBuffer
	}
}

// Bridge translates the REST API into bus requests.
type Bridge struct {
	cfg    Config
	bus    Requester
	log    *slog.Logger
	router chi.Router
	acks   acks

	openapi openapiOnce // the document of GET /openapi.json
	// streamHigh is the most output a streamed run's buffer ever held.
	streamHigh atomic.Int64
}

// New returns a bridge that sends its requests through rq.
func New(cfg Config, rq Requester) *Bridge {
	cfg.fill()
	b := &Bridge{cfg: cfg, bus: rq, log: cfg.Log}
	b.router = b.routes()
	b.declareRoutes(b.router)
	return b
}

// ServeHTTP serves the REST API.
func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.router.ServeHTTP(w, r)
}

func (b *Bridge) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(b.observe)
	r.Use(b.recoverer)
	r.Use(middleware.GetHead) // HEAD on every GET route
	r.Use(b.authorize)        // before OPTIONS: which routes exist is not told without a token
	r.Use(b.options)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, model.ErrorBody{Error: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		allow := b.allowed(routePath(r))
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, model.ErrorBody{Error: "method " + r.Method + " not allowed on " + r.URL.Path + "; allowed: " + allow})
	})
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", b.wrap(b.ready))
	r.Method(http.MethodGet, "/metrics", b.metricsHandler())
	r.Get("/openapi.json", b.wrap(b.serveOpenAPI))
	r.Get("/scripts", b.wrap(b.list))
	r.Post("/scripts", b.wrap(b.create))
	r.Get("/scripts/{name}", b.wrap(b.get))
	r.Put("/scripts/{name}", b.wrap(b.update))
	r.Delete("/scripts/{name}", b.wrap(b.remove))
	r.Post("/run/{name}", b.wrap(b.runOne))
	r.Post("/run", b.wrap(b.runMany))
	// One pattern for the three: a POST names the script, the others a
	// job (OpenAPI allows one template per path).
	r.Post("/jobs/{id}", b.wrap(b.submitJob))
	r.Get("/jobs", b.wrap(b.listJobs))
	r.Get("/jobs/{id}", b.wrap(b.getJob))
	r.Get("/jobs/{id}/events", b.wrap(b.jobEvents))
	r.Delete("/jobs/{id}", b.wrap(b.cancelJob))
	return r
}

// routeMethods are the methods the routes are registered with.
var routeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete}

// allowed lists the methods path answers, for the Allow header (RFC 9110):
// HEAD wherever GET is, and OPTIONS everywhere; "" when no route has path.
func (b *Bridge) allowed(path string) string {
	var allow []string
	for _, m := range routeMethods {
		if b.router.Match(chi.NewRouteContext(), m, path) {
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	if len(allow) == 0 {
		return ""
	}
	return strings.Join(append(allow, http.MethodOptions), ", ")
}

// options answers OPTIONS on every route with 204 and the methods it
// allows (with a token, when the API has them: any token may ask).
func (b *Bridge) options(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		allow := b.allowed(routePath(r))
		if allow == "" {
			next.ServeHTTP(w, r) // 404
			return
		}
		w.Header().Set("Allow", allow)
		w.WriteHeader(http.StatusNoContent)
	})
}

// recoverer answers 500 instead of dropping the connection when a handler
// panics, and logs the panic.
func (b *Bridge) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				b.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, model.ErrorBody{Error: model.ErrInternal.Error()})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// request sends one request on the bus and returns the reply, or the error
// the reply or the transport carries.
func (b *Bridge) request(ctx context.Context, timeout time.Duration, subject string, body []byte, hdr nats.Header) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg := &nats.Msg{Subject: subject, Data: body, Header: hdr}
	reply, err := b.bus.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return nil, transportError(err, subject)
	}
	if err := bus.ReplyError(reply); err != nil {
		return reply, &statusError{err: err, body: reply.Data, hdr: reply.Header}
	}
	return reply, nil
}

func (b *Bridge) catalog(r *http.Request, subject string, body []byte) (*nats.Msg, error) {
	return b.request(r.Context(), b.cfg.CatalogTimeout, subject, body, nil)
}

// readBody reads a request body up to the limit; bodies are JSON whatever
// the Content-Type says.
func (b *Bridge) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > b.cfg.MaxBody {
		// Refused before reading: no "100 Continue" asks for the upload,
		// and the connection ends with the answer.
		w.Header().Set("Connection", "close")
		return nil, &http.MaxBytesError{Limit: b.cfg.MaxBody}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.cfg.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case err == nil, errors.As(err, &tooBig), errors.Is(err, os.ErrDeadlineExceeded):
		return body, err
	case errors.Is(err, io.ErrUnexpectedEOF):
		// (Also a client that went away while sending: nobody reads the
		// answer then.)
		return nil, model.Errorf(model.ErrBadRequest, "request body ended before it was whole (short of its Content-Length, or of its last chunk)")
	case r.Context().Err() != nil:
		return nil, model.Errorf(model.ErrCancelled, "the client went away")
	}
	// A malformed chunked body, for one.
	return nil, model.Errorf(model.ErrBadRequest, "request body could not be read: %v", err)
}

// scriptName takes the {name} of the path and validates it.
func scriptName(r *http.Request) (string, error) {
	name := pathParam(r, "name")
	return name, model.ValidateName(name)
}

// routePath is the path as the router matches it: as escaped in the
// request when that is not the usual escaping of the path (so that %2F
// stays within a segment), the path otherwise.
func routePath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}

// pathParam is the {key} segment of the path, unescaped: hell%6F.py is
// hello.py, and a%2Fb.py is the name a/b.py (which no script has).
func pathParam(r *http.Request, key string) string {
	v := chi.URLParam(r, key)
	if r.URL.RawPath == "" {
		return v // the router matched the unescaped path
	}
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

func (b *Bridge) list(w http.ResponseWriter, r *http.Request) error {
	reply, err := b.catalog(r, bus.ListSubject, nil)
	if err != nil {
		return err
	}
	writeJSONBytes(w, http.StatusOK, reply.Data)
	return nil
}

func (b *Bridge) get(w http.ResponseWriter, r *http.Request) error {
	name, err := scriptName(r)
	if err != nil {
		return err
	}
	reply, err := b.catalog(r, bus.GetSubject(name), nil)
	if err != nil {
		return err
	}
	writeJSONBytes(w, http.StatusOK, reply.Data)
	return nil
}

func (b *Bridge) create(w http.ResponseWriter, r *http.Request) error {
	body, err := b.readBody(w, r)
	if err != nil {
		return err
	}
	req, err := model.DecodeCreate(body)
	if err != nil {
		return err
	}
	if err := model.ValidateName(*req.Name); err != nil {
		return err
	}
	reply, err := b.catalog(r, bus.CreateSubject, body)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/scripts/"+*req.Name)
	writeJSONBytes(w, http.StatusCreated, reply.Data)
	return nil
}

// namedBody takes the {name} of the path and the body, both validated
// (check decodes the body) before anything reaches the bus.
func (b *Bridge) namedBody(w http.ResponseWriter, r *http.Request, check func([]byte) error) (string, []byte, error) {
	name, err := scriptName(r)
	if err != nil {
		return "", nil, err
	}
	body, err := b.readBody(w, r)
	if err != nil {
		return "", nil, err
	}
	return name, body, check(body)
}

func (b *Bridge) update(w http.ResponseWriter, r *http.Request) error {
	name, body, err := b.namedBody(w, r, func(body []byte) error {
		_, err := model.DecodeUpdate(body)
		return err
	})
	if err != nil {
		return err
	}
	reply, err := b.catalog(r, bus.UpdateSubject(name), body)
	if err != nil {
		return err
	}
	writeJSONBytes(w, http.StatusOK, reply.Data)
	return nil
}

func (b *Bridge) remove(w http.ResponseWriter, r *http.Request) error {
	name, err := scriptName(r)
	if err != nil {
		return err
	}
	if _, err := b.catalog(r, bus.DeleteSubject(name), nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// runHeaders carries the caller's cache choice onto the bus.
func runHeaders(r *http.Request) nats.Header {
	hdr := nats.Header{}
	for _, v := range r.Header.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			if d = strings.ToLower(strings.TrimSpace(d)); d == "no-cache" || d == "no-store" {
				hdr.Set(bus.HeaderNoCache, "true")
			}
		}
	}
	return hdr
}

func (b *Bridge) runOne(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyQuery(r, q, "wait"); err != nil {
		return err
	}
	if q.Has("wait") {
		return b.runWait(w, r, q)
	}
	name, body, err := b.namedBody(w, r, func(body []byte) error {
		_, err := model.DecodeRunRequest(body)
		return err
	})
	if err != nil {
		return err
	}
	if wantsEvents(r) {
		return b.runEvents(w, r, name, body, runHeaders(r))
	}
	reply, err := b.runRequest(r.Context(), name, body, runHeaders(r))
	if err != nil {
		return err
	}
	copyHeaders(w, reply.Header)
	writeJSONBytes(w, http.StatusOK, reply.Data)
	return nil
}

// runMany runs several scripts (all of them when names is absent) with the
// same request, concurrently, and answers every result by name.
func (b *Bridge) runMany(w http.ResponseWriter, r *http.Request) error {
	// (A mistyped ?names would run every script.)
	q := r.URL.Query()
	if err := onlyQuery(r, q, "names"); err != nil {
		return err
	}
	body, err := b.readBody(w, r)
	if err != nil {
		return err
	}
	if _, err := model.DecodeRunRequest(body); err != nil {
		return err
	}
	names, err := parseNames(q["names"])
	if err != nil {
		return err
	}
	reply, err := b.catalog(r, bus.ListSubject, nil)
	if err != nil {
		return err
	}
	var known []string
	if err := json.Unmarshal(reply.Data, &known); err != nil {
		return err
	}
	if names == nil {
		names = known
	} else if missing := unknown(names, known); len(missing) > 0 {
		return model.Errorf(model.ErrNotFound, "unknown scripts: %s", strings.Join(missing, ", "))
	}

	results := make(map[string]json.RawMessage, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	hdr := runHeaders(r)
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entry := b.runEntry(r.Context(), name, body, hdr)
			mu.Lock()
			results[name] = entry
			mu.Unlock()
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, model.MultiResult{Results: results})
	return nil
}

// runEntry is one script's entry in a multi-run: its result (also when it
// timed out), or {"error": ...} when it could not run.
func (b *Bridge) runEntry(ctx context.Context, name string, body []byte, hdr nats.Header) json.RawMessage {
	reply, err := b.runRequest(ctx, name, body, hdr)
	if err == nil {
		return reply.Data
	}
	if model.Code(err) == http.StatusGatewayTimeout && reply != nil {
		var res model.Result
		if json.Unmarshal(reply.Data, &res) == nil && res.TimedOut {
			entry, _ := json.Marshal(res)
			return entry
		}
	}
	entry, _ := json.Marshal(model.ErrorBody{Error: model.Message(err)})
	return entry
}

// onlyQuery refuses a query parameter of q other than those allowed, and
// one of them given twice (names alone may be): on the endpoints that
// start runs or list jobs, a mistyped one would otherwise be ignored and
// change what happens.
func onlyQuery(r *http.Request, q url.Values, allowed ...string) error {
	var unknown, twice []string
	for key, values := range q {
		switch {
		case !slices.Contains(allowed, key):
			unknown = append(unknown, key)
		case len(values) > 1 && key != "names":
			twice = append(twice, key)
		}
	}
	slices.Sort(unknown)
	slices.Sort(twice)
	switch {
	case len(unknown) > 0 && len(allowed) == 0:
		return model.Errorf(model.ErrBadRequest, "unknown query parameter %q: %s %s takes none",
			unknown[0], r.Method, r.URL.Path)
	case len(unknown) > 0:
		return model.Errorf(model.ErrBadRequest, "unknown query parameter %q: %s %s takes only %s",
			unknown[0], r.Method, r.URL.Path, strings.Join(allowed, ", "))
	case len(twice) > 0:
		return model.Errorf(model.ErrBadRequest, "query parameter %q given %d times: give it once",
			twice[0], len(q[twice[0]]))
	}
	return nil
}

// parseNames reads ?names=a.py,b.py (also repeated ?names=): nil when
// absent; duplicates are dropped; every name must be valid.
func parseNames(values []string) ([]string, error) {
	if values == nil {
		return nil, nil
	}
	seen := map[string]bool{}
	names := []string{}
	for _, v := range values {
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			if n == "" || seen[n] {
				continue
			}
			if err := model.ValidateName(n); err != nil {
				return nil, err
			}
			seen[n] = true
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, model.Errorf(model.ErrBadRequest, "names: give at least one script name, or leave the parameter out to run all")
	}
	return names, nil
}

func unknown(names, known []string) []string {
	have := make(map[string]bool, len(known))
	for _, k := range known {
		have[k] = true
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	return missing
}
