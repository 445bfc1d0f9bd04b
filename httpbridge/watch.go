package httpbridge

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
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
	RequestWithContext(ctx context.Context, subject string, data []byte) (*nats.Msg, error)
}

// watchEvery is the ping period of a node running a request; a node is
// lost when its alive subject has no responders, or after lostAfter pings
// without an answer.
const (
	watchEvery = 500 * time.Millisecond
	lostAfter  = 3
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
// node that took it.
func (b *Bridge) runRequest(ctx context.Context, name string, body []byte, hdr nats.Header) (*nats.Msg, error) {
	ack, acked := b.ackSubject()
	if ack == "" {
		return b.request(ctx, b.cfg.RunTimeout, bus.RunSubject(name), body, hdr)
	}
	defer b.ackDone(ack)
	h := nats.Header{}
	for k, v := range hdr {
		h[k] = v
	}
	h.Set(bus.HeaderAck, ack)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		reply *nats.Msg
		err   error
	}
	answered := make(chan answer, 1)
	go func() {
		reply, err := b.request(ctx, b.cfg.RunTimeout, bus.RunSubject(name), body, h)
		answered <- answer{reply, err}
	}()

	var alive, node string
	var tick <-chan time.Time
	misses := 0
	for {
		select {
		case a := <-answered:
			return a.reply, a.err
		case m := <-acked:
			alive, node = string(m.Data), m.Header.Get(bus.HeaderNode)
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
			case <-time.After(100 * time.Millisecond):
			}
			return nil, bus.Errorf(bus.ErrUnavailable, "executor node %s was lost while running %s", node, name)
		}
	}
}

// nodeLost pings a node's alive subject.
func (b *Bridge) nodeLost(ctx context.Context, alive string, misses *int) bool {
	w := b.bus.(Watcher)
	ctx, cancel := context.WithTimeout(ctx, watchEvery)
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
