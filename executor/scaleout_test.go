package executor

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// heldRunner holds every run until release is closed.
type heldRunner struct{ release chan struct{} }

func (r heldRunner) Run(ctx context.Context, _ Job) (model.Result, error) {
	select {
	case <-r.release:
	case <-ctx.Done():
	}
	code := 0
	return model.Result{Stdout: "ok\n", ExitCode: &code}, nil
}

func (heldRunner) Close() error { return nil }

// Offers that reach a node together, when it has one free slot: the first
// takes the slot, and the node withdraws from the offers; the others,
// already on their way, are answered busy at once (or the server says
// no node listens), not dropped (an
// offering node would wait out handOverWait for them, its run stalled
// while slots elsewhere may be free).
func TestSpareOffersAnsweredWhenFull(t *testing.T) {
	held := heldRunner{release: make(chan struct{})}
	svc, nc := startNodeWith(t, Config{Node: "n1", MaxConcurrent: 1, QueueTimeout: time.Second},
		held, fakeScripts{"x.py": "v1"})
	defer close(held.release)
	announcePeer(t, svc, nc)

	const offers = 6
	answers := make(chan string, offers)
	callers := make(chan *nats.Msg, offers)
	if _, err := nc.ChanSubscribe("_INBOX.caller", callers); err != nil {
		t.Fatal(err)
	}
	for i := range offers {
		inbox := nats.NewInbox()
		sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
			if m.Header.Get("Status") == "503" {
				answers <- "busy" // no node listened any more: as prompt
			} else {
				answers <- string(m.Data)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		sub.AutoUnsubscribe(1)
		offer := nats.NewMsg(svc.cfg.Internal.SpareSubject("x.py"))
		offer.Reply = inbox
		offer.Header.Set(bus.HeaderReplyTo, "_INBOX.caller")
		offer.Data = []byte(`{"args":["` + string(rune('a'+i)) + `"]}`)
		if err := nc.PublishMsg(offer); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	// A dropped offer is never answered; any wait tells them apart.
	const within = 10 * time.Second
	deadline := time.After(within)
	for range offers {
		select {
		case a := <-answers:
			got[a]++
		case <-deadline:
			t.Fatalf("offers answered within %s: %v of %d; the others were dropped", within, got, offers)
		}
	}
	if got["taken"] != 1 || got["busy"] != offers-1 {
		t.Fatalf("answers to %d offers on one free slot: %v, want 1 taken and %d busy", offers, got, offers-1)
	}
}

// announcePeer announces a peer of svc on nc, as a node that starts
// serving does, and waits for svc's answer: it then listens for offers
// if it has a free slot.
func announcePeer(t *testing.T, svc *Service, nc *nats.Conn) {
	t.Helper()
	peers := svc.cfg.Internal.PeersSubject()
	heard, err := nc.SubscribeSync(peers)
	if err != nil {
		t.Fatal(err)
	}
	defer heard.Unsubscribe()
	hello := nats.NewMsg(peers)
	hello.Reply, hello.Data = peers, []byte("test-peer-"+nuid.Next())
	if err := nc.PublishMsg(hello); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := heard.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		if string(m.Data) == svc.alive {
			return
		}
	}
	t.Fatal("the node did not answer a peer's announcement")
}

// offer offers a run of x.py as a full node does, and tells what came
// back: "taken", "busy", or "none" when no node listens.
func offer(t *testing.T, nc *nats.Conn, in bus.Internal) string {
	t.Helper()
	m := nats.NewMsg(in.SpareSubject("x.py"))
	m.Header.Set(bus.HeaderReplyTo, "_INBOX.caller."+nuid.Next())
	m.Data = []byte(`{"args":["` + nuid.Next() + `"]}`)
	resp, err := nc.RequestMsg(m, 10*time.Second)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return "none"
	case err != nil:
		t.Fatal(err)
	}
	return string(resp.Data)
}

// A node that knows no peer announces itself again, so that two nodes that
// missed each other's announcements (a reconnect meanwhile) still meet; once
// a peer answers, it stops, and takes offers.
func TestNodeAloneAnnouncesAgain(t *testing.T) {
	held := heldRunner{release: make(chan struct{})}
	svc, nc := startNodeWith(t, Config{Node: "n1", MaxConcurrent: 1, QueueTimeout: time.Second,
		announceEvery: 20 * time.Millisecond}, held, fakeScripts{"x.py": "v1"})
	defer close(held.release)
	peers := svc.cfg.Internal.PeersSubject()
	heard, err := nc.SubscribeSync(peers)
	if err != nil {
		t.Fatal(err)
	}
	defer heard.Unsubscribe()
	// Two announcements after the node's first one, which came before
	// this subscription.
	for n := 0; n < 2; {
		m, err := heard.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("announcement %d: %v", n+1, err)
		}
		if string(m.Data) == svc.alive && m.Reply == peers {
			n++
		}
	}
	if got := offer(t, nc, svc.cfg.Internal); got != "none" {
		t.Fatalf("an offer to a node alone on the bus: %q, want no node listening", got)
	}
	// A peer answers, as a node that heard the announcement does.
	if err := nc.Publish(peers, []byte("test-peer-"+nuid.Next())); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for offer(t, nc, svc.cfg.Internal) != "taken" {
		if time.Now().After(deadline) {
			t.Fatal("the node took no offer after a peer answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// It announces itself no more: past one that may have been on its
	// way, nothing of it for 25 of its periods.
	for late := 0; ; {
		m, err := heard.NextMsg(500 * time.Millisecond)
		if errors.Is(err, nats.ErrTimeout) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) == svc.alive && m.Reply == peers {
			if late++; late > 1 {
				t.Fatal("the node still announces itself with a peer known")
			}
		}
	}
}

// A node alone on the bus listens for no offers (only other nodes make
// them): an offer finds nobody. Once another node announces itself, the
// node with a free slot takes offers; full, it withdraws again.
func TestSpareInterestOnlyWithPeers(t *testing.T) {
	held := heldRunner{release: make(chan struct{})}
	svc, nc := startNodeWith(t, Config{Node: "n1", MaxConcurrent: 1, QueueTimeout: time.Second},
		held, fakeScripts{"x.py": "v1"})
	defer close(held.release)
	if got := offer(t, nc, svc.cfg.Internal); got != "none" {
		t.Fatalf("an offer to a node alone on the bus: %q, want no node listening", got)
	}
	announcePeer(t, svc, nc)
	if got := offer(t, nc, svc.cfg.Internal); got != "taken" {
		t.Fatalf("an offer to a node with a free slot and a peer: %q, want taken", got)
	}
	// Its one slot is the offered run's now: it listens no more.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := offer(t, nc, svc.cfg.Internal)
		if got == "none" {
			break
		}
		if got != "busy" || time.Now().After(deadline) {
			t.Fatalf("an offer to a full node: %q, want busy, then no node listening", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two nodes that start on one bus learn of each other, whichever starts
// first: each takes the offers made while the other is full.
func TestNodesLearnOfPeers(t *testing.T) {
	ns := testutil.StartBus(t)
	var nodes []*Service
	for _, name := range []string{"n1", "n2"} {
		held := heldRunner{release: make(chan struct{})}
		defer close(held.release)
		svc, err := New(Config{Node: name, MaxConcurrent: 1, QueueTimeout: time.Second,
			Log: testutil.Logger(t, slog.LevelDebug)}, held, fakeScripts{"x.py": "v1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Serve(testutil.Connect(t, ns), "1.2.3"); err != nil {
			t.Fatal(err)
		}
		drainAtCleanup(t, svc, 10*time.Second)
		nodes = append(nodes, svc)
	}
	nc := testutil.Connect(t, ns)
	// Each offer takes a node's one slot: two are taken, by both nodes
	// (an offer is answered by the node that took it, named in the run's
	// answer; here, by the slots they hold).
	deadline := time.Now().Add(10 * time.Second)
	taken := 0
	for taken < 2 {
		switch got := offer(t, nc, nodes[0].cfg.Internal); got {
		case "taken":
			taken++
		case "none", "busy": // the nodes have not heard each other yet
			if time.Now().After(deadline) {
				t.Fatalf("%d offers taken by two nodes with a free slot each; then %q", taken, got)
			}
			time.Sleep(10 * time.Millisecond)
		default:
			t.Fatalf("offer answered %q", got)
		}
	}
	for _, n := range nodes {
		if free := n.slots.freeCount(); free != 0 {
			t.Errorf("node %s has %d free slots after two offers, want each to have taken one", n.cfg.Node, free)
		}
	}
}
