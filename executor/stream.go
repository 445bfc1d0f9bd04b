package executor

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// Streaming and cancellation over the bus. A run request with the header
// X-Scripthost-Stream: true gets, on its reply subject, a start message
// (the run's id and node) once the node takes the run, then each chunk of
// output as the script writes it, then the final result; a cache hit gets
// only the result. A request on script.cancel.<run id> stops the run: its
// process group is killed, its slot freed, and its caller answered 499.
// The HTTP bridge cancels the runs of callers that went away the same way.

// coalescer passes a run's output on to an Output in fewer, whole pieces:
// output that comes close together (an unbuffered print is several
// writes) goes on as one chunk, at most streamWindow after its first
// byte, or once streamChunk bytes are pending. A chunk never ends inside
// a UTF-8 sequence: the tail waits for the next chunk, so that each chunk
// is whole characters (bytes that are not UTF-8 pass as they are). close
// passes on what is left when the run has ended.
type coalescer struct {
	out Output

	mu      sync.Mutex
	pending []segment // in order of arrival; neighbours differ in fd
	size    int
	timer   *time.Timer
	carry   [3][]byte // by fd: the start of a character cut by a read
	closed  bool
}

type segment struct {
	fd   int
	data []byte
}

const (
	streamWindow = 10 * time.Millisecond
	streamChunk  = 32 << 10
)

var _ Output = (*coalescer)(nil)

func newCoalescer(out Output) *coalescer { return &coalescer{out: out} }

// Chunk queues p (fd 1: stdout, 2: stderr).
func (c *coalescer) Chunk(fd int, p []byte) {
	if fd != 1 && fd != 2 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if n := len(c.pending); n > 0 && c.pending[n-1].fd == fd {
		c.pending[n-1].data = append(c.pending[n-1].data, p...)
	} else {
		c.pending = append(c.pending, segment{fd, append([]byte(nil), p...)})
	}
	c.size += len(p)
	switch {
	case c.size >= streamChunk:
		c.flushLocked(false)
	case c.timer == nil:
		c.timer = time.AfterFunc(streamWindow, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.timer = nil
			if !c.closed {
				c.flushLocked(false)
			}
		})
	}
}

// close passes on what is left; later chunks are dropped.
func (c *coalescer) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.flushLocked(true)
		c.closed = true
	}
}

func (c *coalescer) flushLocked(final bool) {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	for _, seg := range c.pending {
		data := seg.data
		if k := c.carry[seg.fd]; len(k) > 0 {
			data = append(k, data...)
			c.carry[seg.fd] = nil
		}
		if n := wholeUTF8(data); n < len(data) && !final {
			c.carry[seg.fd] = append([]byte(nil), data[n:]...)
			data = data[:n]
		}
		if len(data) > 0 {
			c.out.Chunk(seg.fd, data)
		}
	}
	if final {
		for fd, k := range c.carry {
			if len(k) > 0 {
				c.out.Chunk(fd, k)
				c.carry[fd] = nil
			}
		}
	}
	c.pending, c.size = c.pending[:0], 0
}

// streamer sends a run's output to the caller's reply subject, a message
// a chunk (the coalescer before it makes the chunks).
type streamer struct {
	nc    *nats.Conn
	reply string
	log   func(err error)
}

var _ Output = (*streamer)(nil)

func (st *streamer) Chunk(fd int, data []byte) {
	m := nats.NewMsg(st.reply)
	m.Header.Set(bus.HeaderEvent, eventOf(fd))
	m.Data = data // PublishMsg copies it before it returns
	if err := st.nc.PublishMsg(m); err != nil && st.log != nil {
		st.log(err)
	}
}

func eventOf(fd int) string {
	if fd == 2 {
		return bus.EventStderr
	}
	return bus.EventStdout
}

// wholeUTF8 is the length of the longest prefix of p that does not end
// inside a UTF-8 sequence that the next bytes may complete.
func wholeUTF8(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if utf8.FullRune(p[i:]) {
				return len(p)
			}
			return i
		}
	}
	return len(p)
}

// cancels holds the runs of this node that a caller may cancel, by id.
type cancels struct {
	token string // the first token of every run id of this node
	mu    sync.Mutex
	runs  map[string]context.CancelFunc
	sub   *nats.Subscription
}

// newID returns a new run id: the node's token, then 128 random bits, so
// that knowing the id of one run tells nothing of another's.
func (c *cancels) newID() string {
	return c.token + "." + rand.Text()
}

func (c *cancels) add(id string, cancel context.CancelFunc) {
	c.mu.Lock()
	if c.runs == nil {
		c.runs = map[string]context.CancelFunc{}
	}
	c.runs[id] = cancel
	c.mu.Unlock()
}

func (c *cancels) remove(id string) {
	c.mu.Lock()
	delete(c.runs, id)
	c.mu.Unlock()
}

// cancel stops the run with the given id; false if it is not in progress.
func (c *cancels) cancel(id string) bool {
	c.mu.Lock()
	f := c.runs[id]
	delete(c.runs, id)
	c.mu.Unlock()
	if f != nil {
		f()
	}
	return f != nil
}

// CancelAnswer is the reply of script.cancel.<run id>.
type CancelAnswer struct {
	ID        string `json:"id"`
	Cancelled bool   `json:"cancelled"`
}

// serveCancels answers script.cancel.<this node's token>.*.
func (s *Service) serveCancels(nc *nats.Conn) error {
	s.cancels.token = nuid.Next()
	sub, err := nc.Subscribe(bus.NodeCancelAll(s.cancels.token), func(m *nats.Msg) {
		id, _ := bus.NameFrom(m.Subject, bus.CancelPrefix)
		if !s.cancels.cancel(id) {
			m.RespondMsg(bus.ErrorMsg(model.Errorf(model.ErrNotFound, "no run %s in progress on node %s", id, s.cfg.Node), nil))
			return
		}
		body, _ := json.Marshal(CancelAnswer{ID: id, Cancelled: true})
		m.Respond(body)
	})
	if err != nil {
		return err
	}
	s.cancels.sub = sub
	return nil
}
