package httpbridge

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// Watching the node that runs a request. A run request carries an ack
// subject; the node that takes the run announces itself there with its
// alive subject, and the bridge pings that subject while it waits. When
// the node is gone (killed, cut off), the caller gets 503 at once instead
// of waiting out the run and queue timeouts.

// Watcher is what the bridge needs of the bus to watch nodes; *nats.Conn
// is one. Without it (a Requester only), runs are not watched.
type Watcher interface {
	Subscribe(subject string, cb nats.MsgHandler) (*nats.Subscription, error)
	NewInbox() string
	RequestWithContext(ctx context.Context, subject string, data []byte) (*nats.Msg, error)
}

// watchEvery is the ping period of a node running a request; a node is
// lost when its alive subject has no responders (it died: at once), or
// after lostAfter pings unanswered for pingTimeout each (cut off). A node
// that is only busy - its connection carrying megabytes of a streamed run
// on a loaded machine - answers late, and must not be taken for lost.
const (
	watchEvery  = 500 * time.Millisecond
	pingTimeout = 2 * time.Second
	lostAfter   = 3
)

// acks routes announcements to the requests waiting for them; the
// subscription starts with the first run.
type acks struct {
	once  sync.Once
	on    bool
	boxes bus.Inboxes
}

func (b *Bridge) ackSubject() (string, chan *nats.Msg) {
	w, ok := b.bus.(Watcher)
	if !ok {
		return "", nil
	}
	a := &b.acks
	a.once.Do(func() {
		if _, err := a.boxes.Subscribe(w); err != nil {
			b.log.Warn("cannot watch executor nodes", "err", err)
			return
		}
		a.on = true
	})
	if !a.on {
		return "", nil
	}
	return a.boxes.Open(4)
}

func (b *Bridge) ackDone(subject string) { b.acks.boxes.Close(subject) }

// runRequest sends a run request and waits for its answer, watching the
// node that took it. When ctx ends first (the HTTP client went away), or
// the bridge gives up waiting, the run is cancelled on its node.
func (b *Bridge) runRequest(ctx context.Context, name string, body []byte, hdr nats.Header) (*nats.Msg, error) {
	return b.runCall(ctx, name, body, hdr, nil)
}

// Streamer is what the bridge needs of the bus to stream a run's output;
// *nats.Conn is one. Without it, runs are answered whole.
type Streamer interface {
	Watcher
	PublishMsg(m *nats.Msg) error
	NewInbox() string
}

// runCall sends a run request and waits for its answer. With events not
// nil the run is streamed: events gets the messages that come before the
// result (start, stdout, stderr), from a NATS callback, so it must not
// block.
func (b *Bridge) runCall(ctx context.Context, name string, body []byte, hdr nats.Header, events func(*nats.Msg)) (*nats.Msg, error) {
	h := nats.Header{}
	for k, v := range hdr {
		h[k] = v
	}
	ack, acked := b.ackSubject()
	if ack != "" {
		h.Set(bus.HeaderAck, ack)
	}
	ackOpen := ack != ""
	defer func() {
		if ackOpen {
			b.ackDone(ack)
		}
	}()

	type answer struct {
		reply *nats.Msg
		err   error
	}
	answered := make(chan answer, 1)
	// replies gets the answer itself when it comes to an inbox of the
	// acks' subscription (a plain run, once that subscription is on): no
	// request of the client's own, and no goroutine, on its way.
	var replies chan *nats.Msg
	var deadline <-chan time.Time
	sb, streams := b.bus.(Streamer)
	switch {
	case streams && events != nil:
		h.Set(bus.HeaderStream, "true")
		inbox := sb.NewInbox()
		sub, err := sb.Subscribe(inbox, func(m *nats.Msg) {
			if m.Header.Get(bus.HeaderEvent) == bus.EventResult || len(m.Data) == 0 && m.Header.Get("Status") != "" {
				// The result, or the server's status message (503: nobody
				// serves the subject) in its place.
				reply, err := runReply(m, name)
				select {
				case answered <- answer{reply, err}:
				default:
				}
				return
			}
			events(m)
		})
		if err != nil {
			return nil, transportError(err, bus.RunSubject(name))
		}
		defer sub.Unsubscribe()
		msg := &nats.Msg{Subject: bus.RunSubject(name), Reply: inbox, Data: body, Header: h}
		if err := sb.PublishMsg(msg); err != nil {
			return nil, transportError(err, msg.Subject)
		}
		t := time.NewTimer(b.cfg.RunTimeout)
		defer t.Stop()
		deadline = t.C
	case streams && ackOpen:
		var inbox string
		inbox, replies = b.acks.boxes.Open(1)
		defer b.ackDone(inbox)
		msg := &nats.Msg{Subject: bus.RunSubject(name), Reply: inbox, Data: body, Header: h}
		if err := sb.PublishMsg(msg); err != nil {
			return nil, transportError(err, msg.Subject)
		}
		t := time.NewTimer(b.cfg.RunTimeout)
		defer t.Stop()
		deadline = t.C
	default:
		// The request outlives ctx: when the caller goes away, the loop
		// below still has to cancel the run.
		rctx, rcancel := context.WithCancel(context.WithoutCancel(ctx))
		defer rcancel()
		go func() {
			reply, err := b.request(rctx, b.cfg.RunTimeout, bus.RunSubject(name), body, h)
			answered <- answer{reply, err}
		}()
	}

	var alive, node, runID string
	var tick <-chan time.Time
	misses := 0
	// stop cancels the run the bridge no longer waits for.
	stop := func() {
		if runID != "" || !ackOpen {
			go b.cancelRun(runID)
			return
		}
		// Not announced yet: the announcement may still come.
		ackOpen = false
		go func() {
			defer b.ackDone(ack)
			select {
			case m := <-acked:
				b.cancelRun(m.Header.Get(bus.HeaderRunID))
			case <-time.After(2 * time.Second):
			}
		}()
	}
	for {
		select {
		case a := <-answered:
			if a.reply == nil && errors.Is(a.err, model.ErrTimeout) {
				stop() // the bus did not answer in time
			}
			return a.reply, a.err
		case m := <-replies:
			return plainReply(m, name)
		case <-ctx.Done():
			stop()
			return nil, model.Errorf(model.ErrCancelled, "the client went away: run cancelled")
		case <-deadline:
			stop()
			return nil, model.Errorf(model.ErrTimeout, "no answer from the bus in time")
		case m := <-acked:
			if !b.cfg.Internal.IsAlive(string(m.Data)) {
				continue // not a node's liveness subject: never ping it
			}
			alive, node = string(m.Data), m.Header.Get(bus.HeaderNode)
			runID = m.Header.Get(bus.HeaderRunID)
			misses = 0
			if tick == nil {
				t := time.NewTicker(watchEvery)
				defer t.Stop()
				tick = t.C
			}
		case <-tick:
			if !b.nodeLost(ctx, alive, &misses) {
				continue
			}
			// The answer may have been sent just before the node went.
			select {
			case a := <-answered:
				return a.reply, a.err
			case m := <-replies:
				return plainReply(m, name)
			case <-time.After(100 * time.Millisecond):
			}
			return nil, model.Errorf(model.ErrUnavailable, "executor node %s was lost while running %s", node, name)
		}
	}
}

// runReply is a run's answer as it came to its reply subject: the
// result, or the error it carries (the server's 503 status when nobody
// serves the subject), as a request's answer is.
func runReply(m *nats.Msg, name string) (*nats.Msg, error) {
	if m.Header.Get("Status") == "503" {
		return m, transportError(nats.ErrNoResponders, bus.RunSubject(name))
	}
	if err := bus.ReplyError(m); err != nil {
		return m, &statusError{err: err, body: m.Data, hdr: m.Header}
	}
	return m, nil
}

// plainReply is runReply for a run that is not streamed, as the client's
// own request answered it: the server's 503 status is no reply.
func plainReply(m *nats.Msg, name string) (*nats.Msg, error) {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return nil, transportError(nats.ErrNoResponders, bus.RunSubject(name))
	}
	return runReply(m, name)
}

// cancelRun asks the node running a run to stop it.
func (b *Bridge) cancelRun(runID string) {
	w, ok := b.bus.(Watcher)
	if runID == "" || !ok || !bus.ValidRunID(runID) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := w.RequestWithContext(ctx, bus.CancelSubject(runID), nil)
	b.log.Debug("cancelled a run whose caller went away", "run", runID, "err", err)
}

// nodeLost pings a node's alive subject.
func (b *Bridge) nodeLost(ctx context.Context, alive string, misses *int) bool {
	w := b.bus.(Watcher)
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	_, err := w.RequestWithContext(ctx, alive, nil)
	switch {
	case err == nil:
		*misses = 0
		return false
	case errors.Is(err, nats.ErrNoResponders):
		return true
	}
	*misses++
	return *misses >= lostAfter
}
