package httpbridge

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// Server-sent events: POST /run/{name} with Accept: text/event-stream
// answers 200 text/event-stream, an event stdout or stderr (data: the
// chunk as a JSON string) for each piece of output as the script writes
// it, then one event result (data: the result, or a timeout's 504 body).
// Until the first event the answer is not committed, so a request that
// fails before the run produces anything (400, 404, 503) gets its usual
// JSON error; a failure after that ends the stream with an event error
// ({"error": ...}).
//
// A client that reads more slowly than the script writes cannot make the
// bridge hold more than StreamBuffer bytes of its output: beyond that,
// chunks are dropped, and an event skipped ({"stdout": bytes, "stderr":
// bytes}) says where and how much. The result event still has the whole
// output (within the caps), and the script is never slowed down.

// DefaultStreamBuffer is the default of Config.StreamBuffer.
const DefaultStreamBuffer = 1 << 20

// wantsEvents tells whether the request's Accept header asks for
// text/event-stream (with a quality above 0: q=0 says "not this").
func wantsEvents(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "text/event-stream" {
				continue
			}
			if q, ok := params["q"]; ok {
				if n, err := strconv.ParseFloat(q, 64); err == nil && n <= 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}

// sseItem is an event waiting to be written: a chunk, or the count of
// chunks dropped at that place.
type sseItem struct {
	event   string
	data    []byte
	skipped map[string]int
}

// itemCost is what an event costs the buffer beyond its data, so that the
// number of events it holds is bounded too.
const itemCost = 64

// sseQueue holds the events of one stream between the bus, which delivers
// them from a NATS callback (never blocked), and the HTTP writer.
type sseQueue struct {
	max   int
	ready chan struct{} // has a value when items wait

	mu    sync.Mutex
	items []sseItem
	size  int
	high  int // the most bytes ever held, for tests
	node  string
}

func newSSEQueue(max int) *sseQueue {
	return &sseQueue{max: max, ready: make(chan struct{}, 1)}
}

// push takes one message of a streamed run.
func (q *sseQueue) push(m *nats.Msg) {
	ev := m.Header.Get(bus.HeaderEvent)
	q.mu.Lock()
	switch ev {
	case bus.EventStart:
		q.node = m.Header.Get(bus.HeaderNode)
		q.mu.Unlock()
		return
	case bus.EventStdout, bus.EventStderr:
	default:
		q.mu.Unlock()
		return
	}
	cost := len(m.Data) + itemCost
	if q.size+cost > q.max {
		n := len(q.items)
		if n == 0 || q.items[n-1].skipped == nil {
			q.items = append(q.items, sseItem{event: "skipped", skipped: map[string]int{}})
			q.size += itemCost
			n++
		}
		q.items[n-1].skipped[ev] += len(m.Data)
	} else {
		q.items = append(q.items, sseItem{event: ev, data: m.Data})
		q.size += cost
	}
	q.high = max(q.high, q.size)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns the events waiting, and the node that runs the script.
func (q *sseQueue) take() ([]sseItem, string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items, q.size = nil, 0
	return items, q.node
}

// sseWriter writes events to the client, committing the answer with the
// first one.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (s *sseWriter) start(node, cache string) {
	if s.started {
		return
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies such as nginx: do not hold it back
	if node != "" {
		h.Set(bus.HeaderNode, node)
	}
	if cache != "" {
		h.Set(bus.HeaderCache, cache)
	}
	// A stream lasts as long as the run: no write deadline applies.
	_ = s.rc.SetWriteDeadline(time.Time{})
	s.w.WriteHeader(http.StatusOK)
}

func (s *sseWriter) event(name string, data []byte) error {
	var b []byte
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	_, err := s.w.Write(b)
	return err
}

// items writes chunks and skip notices.
func (s *sseWriter) items(items []sseItem) error {
	for _, it := range items {
		var data []byte
		if it.skipped != nil {
			data, _ = json.Marshal(it.skipped)
		} else {
			// A JSON string: bytes that are not UTF-8 become U+FFFD, as
			// in the result.
			data, _ = json.Marshal(string(it.data))
		}
		if err := s.event(it.event, data); err != nil {
			return err
		}
	}
	return nil
}

func (s *sseWriter) flush() error {
	err := s.rc.Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// runEvents answers a run as server-sent events.
func (b *Bridge) runEvents(w http.ResponseWriter, r *http.Request, name string, body []byte, hdr nats.Header) error {
	q := newSSEQueue(b.cfg.StreamBuffer)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	type answer struct {
		reply *nats.Msg
		err   error
	}
	done := make(chan answer, 1)
	go func() {
		reply, err := b.runCall(ctx, name, body, hdr, q.push)
		done <- answer{reply, err}
	}()
	sw := &sseWriter{w: w, rc: http.NewResponseController(w)}
	for {
		select {
		case <-q.ready:
			items, node := q.take()
			if len(items) == 0 {
				continue
			}
			sw.start(node, "miss")
			if err := sw.items(items); err != nil || sw.flush() != nil {
				cancel() // the client is gone: so is its run
			}
		case a := <-done:
			b.noteStreamHigh(q)
			// Every event came before the result, on the same subscription.
			items, node := q.take()
			if len(items) > 0 {
				sw.start(node, "miss")
				_ = sw.items(items)
			}
			return b.endEvents(sw, a.reply, a.err)
		}
	}
}

// endEvents writes the end of a stream: the result, or the error.
func (b *Bridge) endEvents(sw *sseWriter, reply *nats.Msg, err error) error {
	var se *statusError
	timedOut := errors.As(err, &se) && model.Code(err) == http.StatusGatewayTimeout && se.body != nil
	switch {
	case errors.Is(err, model.ErrCancelled) && sw.started:
		return nil // nobody is listening any more
	case errors.Is(err, model.ErrCancelled):
		return err
	case err != nil && !timedOut && !sw.started:
		return err // the usual JSON error
	case err != nil && !timedOut:
		msg, _ := json.Marshal(model.ErrorBody{Error: model.Message(err)})
		_ = sw.event("error", msg)
		_ = sw.flush()
		if model.Code(err) == http.StatusInternalServerError {
			b.log.Error("streamed run failed", "err", err)
		}
		return nil
	}
	sw.start(reply.Header.Get(bus.HeaderNode), reply.Header.Get(bus.HeaderCache))
	_ = sw.event("result", reply.Data)
	_ = sw.flush()
	return nil
}

// noteStreamHigh keeps the most output any stream held (see
// Bridge.streamHigh).
func (b *Bridge) noteStreamHigh(q *sseQueue) {
	q.mu.Lock()
	h := int64(q.high)
	q.mu.Unlock()
	for {
		cur := b.streamHigh.Load()
		if h <= cur || b.streamHigh.CompareAndSwap(cur, h) {
			return
		}
	}
}
