package executor

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
)

// Balancing by capacity. NATS spreads script.run.> over the queue group at
// random, so a node can receive a run while all its slots are busy and
// another node has one free. Such a node first offers the run on
// an offer subject (bus.Internal.SpareSubject), where only nodes with a
// free slot listen; one of
// them takes it and answers the caller. Only when none does (every node is
// full) does the run wait in the node's own FIFO queue.
//
// Offers come only from other nodes, so a node listens for them only once
// it knows it has peers (bus.Internal.PeersSubject): alone on the bus, as
// a serve process with its own executor usually is, it would otherwise
// subscribe and drain its interest on nearly every run at full load (its
// last free slot taken and freed again).

// handOverWait bounds the offer of a run to another node.
const handOverWait = time.Second

// peerAnnounceEvery is how often a node that knows no peer announces
// itself again: an announcement, or the answers to it, can be missed (a
// node reconnecting to a cluster meanwhile), and two nodes that missed each
// other would never offer each other runs.
const peerAnnounceEvery = 10 * time.Second

// taken and busy answer an offer on the spare subject.
var (
	taken = []byte("taken")
	busy  = []byte("busy")
)

// handOver offers the run in m to a node with a free slot; it reports
// whether one took it (and will answer the caller).
func (s *Service) handOver(m *nats.Msg) bool {
	name, _ := bus.NameFrom(m.Subject, bus.RunPrefix)
	if name == "" || m.Reply == "" {
		return false
	}
	var answer chan *nats.Msg
	offer := nats.NewMsg(s.cfg.Internal.SpareSubject(name))
	for k, v := range m.Header {
		offer.Header[k] = v
	}
	offer.Header.Set(bus.HeaderReplyTo, m.Reply)
	offer.Data = m.Data
	offer.Reply, answer = s.offers.Open(1)
	defer s.offers.Close(offer.Reply)
	if err := s.nc.PublishMsg(offer); err != nil {
		return false
	}
	timer := time.NewTimer(handOverWait)
	defer timer.Stop()
	select {
	case resp := <-answer:
		// A status reply (no responders) has no data.
		return string(resp.Data) == string(taken)
	case <-timer.C:
		return false
	}
}

// handleSpare takes a run offered by a full node, if a slot is free. An
// offer that arrives after the node withdrew its interest (its last slot
// was taken meanwhile, or it is stopping) is answered busy at once, so
// the offering node queues the run instead of waiting out handOverWait.
func (s *Service) handleSpare(m *nats.Msg) {
	s.spareMu.Lock()
	stopping := s.spareOff
	s.spareMu.Unlock()
	if stopping || !s.tryAcquire() {
		m.Respond(busy)
		return
	}
	if err := m.Respond(taken); err != nil {
		s.releaseSlot()
		return
	}
	run := &nats.Msg{Subject: m.Subject, Reply: m.Header.Get(bus.HeaderReplyTo), Data: m.Data, Header: m.Header}
	s.begin()
	go func() {
		defer s.end()
		held := true
		s.answer(run, runOpts{acquire: func(context.Context) (bool, error) {
			held = false // the run owns the slot now, and releases it
			return false, nil
		}})
		if held { // answered without running (cache hit, unknown script)
			s.releaseSlot()
		}
	}()
}

// announce tells a caller watching its request which node took it, and
// the id under which it may cancel the run.
func (s *Service) announce(ack, runID string) {
	m := nats.NewMsg(ack)
	m.Header.Set(bus.HeaderNode, s.cfg.Node)
	m.Header.Set(bus.HeaderRunID, runID)
	m.Data = []byte(s.alive)
	s.nc.PublishMsg(m)
}

// ownSubs is the number of subscriptions the node keeps while it drains:
// its alive subject, its offers inbox, its peers subject and its cancel
// subject.
const ownSubs = 4

// serveScaleOut starts the alive subject and the spare interest.
func (s *Service) serveScaleOut(nc *nats.Conn) error {
	s.alive = s.cfg.Internal.NewAlive()
	sub, err := nc.Subscribe(s.alive, func(m *nats.Msg) { m.Respond(nil) })
	if err != nil {
		return err
	}
	s.aliveSub = sub
	if s.offersSub, err = s.offers.Subscribe(nc); err != nil {
		sub.Unsubscribe()
		return err
	}
	peers := s.cfg.Internal.PeersSubject()
	if s.peersSub, err = nc.Subscribe(peers, s.handlePeer); err != nil {
		sub.Unsubscribe()
		s.offersSub.Unsubscribe()
		return err
	}
	if err := s.announceSelf(nc); err != nil {
		sub.Unsubscribe()
		s.offersSub.Unsubscribe()
		s.peersSub.Unsubscribe()
		return err
	}
	s.spareMu.Lock()
	s.announcer = time.AfterFunc(s.cfg.announceEvery, s.announceAgain)
	s.spareMu.Unlock()
	return nil
}

// announceSelf announces the node on the peers subject. The nodes already
// there answer on the same subject, so that the others hear it too (they
// know of each other already).
func (s *Service) announceSelf(nc *nats.Conn) error {
	peers := s.cfg.Internal.PeersSubject()
	hello := nats.NewMsg(peers)
	hello.Reply, hello.Data = peers, []byte(s.alive)
	return nc.PublishMsg(hello)
}

// announceAgain announces the node again while it knows no peer and
// serves.
func (s *Service) announceAgain() {
	s.spareMu.Lock()
	defer s.spareMu.Unlock()
	if s.peers || s.spareOff || s.announcer == nil {
		return
	}
	if err := s.announceSelf(s.nc); err != nil {
		s.cfg.Log.Debug("peer announcement", "err", err)
	}
	s.announcer.Reset(s.cfg.announceEvery)
}

// handlePeer hears a node announce itself (the peers subject as its
// reply subject), or answer an announcement: it is a peer unless it is
// this node.
func (s *Service) handlePeer(m *nats.Msg) {
	if string(m.Data) == s.alive {
		return
	}
	s.spareMu.Lock()
	known := s.peers
	s.peers = true
	s.spareMu.Unlock()
	if !known {
		s.reconcileSpare()
	}
	// After the interest: a node that hears this answer can offer runs
	// here at once. An announcement is answered on the peers subject
	// itself, whatever reply subject it names.
	if peers := s.cfg.Internal.PeersSubject(); m.Reply == peers {
		s.nc.Publish(peers, []byte(s.alive))
	}
}

// tryAcquire takes a free slot without waiting.
func (s *Service) tryAcquire() bool {
	ok := s.slots.tryAcquire()
	if ok {
		s.reconcileSpare()
	}
	return ok
}

// releaseSlot returns a slot. The spare interest is brought in line before
// the run's reply goes out on the same connection, so the server knows
// this node has a free slot before the caller can send its next request.
func (s *Service) releaseSlot() {
	s.slots.release()
	s.reconcileSpare()
}

// reconcileSpare keeps the node subscribed to the spare subject exactly
// while it has a free slot, once it knows it has peers.
func (s *Service) reconcileSpare() {
	s.spareMu.Lock()
	defer s.spareMu.Unlock()
	if s.nc == nil || s.spareOff || !s.peers {
		return
	}
	free := s.slots.freeCount() > 0
	switch {
	case free && s.spareSub == nil:
		sub, err := s.nc.QueueSubscribe(s.cfg.Internal.SpareAll(), bus.SpareQueue, s.handleSpare)
		if err != nil {
			s.cfg.Log.Warn("spare subscription", "err", err)
			return
		}
		s.spareSub = sub
	case !free && s.spareSub != nil:
		// Drained, not dropped: offers already on their way to this
		// node still reach handleSpare and are answered.
		s.spareSub.Drain()
		s.spareSub = nil
	}
}

// stopScaleOut withdraws the spare interest for good; the alive subject
// stays until closeAlive, so callers keep seeing the node while it
// finishes its runs.
func (s *Service) stopScaleOut() {
	s.spareMu.Lock()
	defer s.spareMu.Unlock()
	s.spareOff = true // (and announceAgain announces no more)
	if s.spareSub != nil {
		s.spareSub.Drain()
		s.spareSub = nil
	}
}

func (s *Service) closeAlive() {
	s.spareMu.Lock()
	if s.announcer != nil {
		s.announcer.Stop()
		s.announcer = nil
	}
	s.spareMu.Unlock()
	if s.aliveSub != nil {
		s.aliveSub.Unsubscribe()
		s.offersSub.Unsubscribe()
		s.peersSub.Unsubscribe()
	}
	if s.cancels.sub != nil {
		s.cancels.sub.Unsubscribe()
	}
}
