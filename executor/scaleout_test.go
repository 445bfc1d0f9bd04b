package executor

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
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
