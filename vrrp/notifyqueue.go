package vrrp

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// notifyQueueCap bounds the state changes waiting for a slow Notifier.
// Transitions are rare (a few per failover), so reaching it means the
// Notifier is stuck; events beyond it are dropped and counted rather than
// stalling the event loop.
const notifyQueueCap = 1024

// notifyQueue hands the event loop's state changes to the Notifier on a
// goroutine of its own, in order. The Notifier contract says Notify must
// not block; the queue makes that hold whatever Notifier is plugged in (a
// lock held elsewhere, a full channel, a slow logger), so no Notifier can
// delay an advert or a Master_Down timer.
type notifyQueue struct {
	n Notifier

	mu      sync.Mutex
	q       []Event
	kick    chan struct{}
	closed  bool
	done    chan struct{}
	dropped atomic.Uint64
}

func newNotifyQueue(n Notifier) *notifyQueue {
	return &notifyQueue{n: n, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

func (q *notifyQueue) start() { go q.run() }

// put queues e without blocking; false if the queue was full or closed.
func (q *notifyQueue) put(e Event) bool {
	q.mu.Lock()
	if q.closed || len(q.q) >= notifyQueueCap {
		q.mu.Unlock()
		q.dropped.Add(1)
		return false
	}
	q.q = append(q.q, e)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return true
}

func (q *notifyQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		batch := q.q
		q.q = nil
		closed := q.closed
		q.mu.Unlock()
		for _, e := range batch {
			q.n.Notify(e)
		}
		if closed && len(batch) == 0 {
			return
		}
		if len(batch) == 0 {
			<-q.kick
		}
	}
}

// close delivers what is queued, then stops; it waits until ctx ends.
func (q *notifyQueue) close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("deliver queued notifications: %w", ctx.Err())
	}
}

// notify hands e to the Notifier without waiting for it.
func (m *Manager) notify(e Event) {
	if m.notes == nil {
		return
	}
	if !m.notes.put(e) {
		m.log.Error("VRRP notification dropped: the notifier is not keeping up", "name", e.Name,
			"state", e.State.String(), "dropped", m.notes.dropped.Load())
	}
}

// NotificationsDropped counts state changes the Notifier never got because
// it did not keep up (see notifyQueueCap).
func (m *Manager) NotificationsDropped() uint64 {
	if m.notes == nil {
		return 0
	}
	return m.notes.dropped.Load()
}
