package bus

import (
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Subscriber is the part of *nats.Conn that Inboxes needs.
type Subscriber interface {
	Subscribe(subject string, cb nats.MsgHandler) (*nats.Subscription, error)
	NewInbox() string
}

// Inboxes routes messages for many short waits through one subscription
// (prefix.*): each wait opens a subject of its own and a channel that
// receives what arrives on it. It saves a subscription per request. The
// prefix is one of the connection's own inboxes, and each wait's subject
// is random too, so that nobody who has not been told one can publish
// on it.
type Inboxes struct {
	prefix string
	mu     sync.Mutex
	waits  map[string]chan *nats.Msg
}

// Subscribe starts the subscription that serves every inbox.
func (in *Inboxes) Subscribe(nc Subscriber) (*nats.Subscription, error) {
	in.mu.Lock()
	in.prefix = nc.NewInbox()
	if in.waits == nil {
		in.waits = map[string]chan *nats.Msg{}
	}
	in.mu.Unlock()
	return nc.Subscribe(in.prefix+".*", func(m *nats.Msg) {
		in.mu.Lock()
		ch := in.waits[m.Subject]
		in.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default: // the waiter has what it needs
			}
		}
	})
}

// Open returns a new inbox subject and the channel its messages reach;
// size is the channel's buffer. Close it when done.
func (in *Inboxes) Open(size int) (string, chan *nats.Msg) {
	in.mu.Lock()
	defer in.mu.Unlock()
	subject := in.prefix + "." + nuid.Next()
	ch := make(chan *nats.Msg, size)
	if in.waits == nil {
		// Opened before Subscribe: nothing arrives on it until then, but
		// the wait is kept (and times out) rather than crashing the server.
		in.waits = map[string]chan *nats.Msg{}
	}
	in.waits[subject] = ch
	return subject, ch
}

// Close forgets an inbox.
func (in *Inboxes) Close(subject string) {
	in.mu.Lock()
	delete(in.waits, subject)
	in.mu.Unlock()
}
