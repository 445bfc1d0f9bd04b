package executor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scripthost/scripthost/model"
)

func TestSlotsFIFOAndTimeout(t *testing.T) {
	s := newSlots(1, 64)
	if err := s.acquire(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if s.tryAcquire() {
		t.Fatal("tryAcquire took a slot that is in use")
	}
	// Three waiters in a known order get the slot in that order.
	order := make(chan int, 3)
	for i := range 3 {
		go func() {
			if err := s.acquire(context.Background(), 10*time.Second); err != nil {
				t.Error(err)
				return
			}
			order <- i
			s.release()
		}()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, waiting := s.busy(); waiting == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d did not queue", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	s.release()
	for want := range 3 {
		if got := <-order; got != want {
			t.Fatalf("waiter %d served in place %d", got, want)
		}
	}

	// A waiter that times out leaves the queue and gets 503.
	if err := s.acquire(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	err := s.acquire(context.Background(), 20*time.Millisecond)
	if !errors.Is(err, model.ErrUnavailable) || model.Code(err) != 503 {
		t.Fatalf("queue timeout: %v", err)
	}
	if _, waiting := s.busy(); waiting != 0 {
		t.Fatalf("%d waiters left after timing out", waiting)
	}
	s.release()
	if inUse, _ := s.busy(); inUse != 0 || s.freeCount() != 1 {
		t.Fatalf("slot leaked: %d in use, %d free", inUse, s.freeCount())
	}
}

func TestSlotsFreeSignal(t *testing.T) {
	s := newSlots(1, 64)
	select {
	case <-s.freeSignal():
	default:
		t.Fatal("a free slot does not signal at once")
	}
	if !s.tryAcquire() {
		t.Fatal("no slot")
	}
	sig := s.freeSignal()
	select {
	case <-sig:
		t.Fatal("signalled with no slot free")
	default:
	}
	s.release()
	select {
	case <-sig:
	case <-time.After(5 * time.Second):
		t.Fatal("not signalled when the slot was released")
	}
}
