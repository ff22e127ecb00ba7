// Package owner is the one pattern hakeepd's state owners share: a single
// goroutine owns some state and runs the functions sent to it, one at a
// time; callers hand theirs over and wait with a deadline. Nobody else
// touches the state, so there is no lock to hold across a call.
package owner

import (
	"context"
	"sync"
)

// Loop carries functions of the owned state S to its owner goroutine.
type Loop[S any] struct {
	events    chan func(S)
	started   chan struct{}
	stopped   chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
	// ErrStopped is what Do returns once the owner has stopped.
	errStopped error
}

// New returns a loop whose Do fails with errStopped after Stop.
func New[S any](errStopped error) *Loop[S] {
	return &Loop[S]{events: make(chan func(S)), started: make(chan struct{}), stopped: make(chan struct{}), errStopped: errStopped}
}

// Events is what the owner goroutine receives from and runs.
func (l *Loop[S]) Events() <-chan func(S) { return l.events }

// Start says the owner goroutine is receiving: Do calls made before wait
// for it.
func (l *Loop[S]) Start() { l.startOnce.Do(func() { close(l.started) }) }

// Started reports whether Start was called.
func (l *Loop[S]) Started() bool {
	select {
	case <-l.started:
		return true
	default:
		return false
	}
}

// Stop says the owner goroutine receives no more: pending and later Do
// calls return the stopped error.
func (l *Loop[S]) Stop() { l.stopOnce.Do(func() { close(l.stopped) }) }

// Do runs f on the owner goroutine and waits until it has run, the owner
// stopped, or ctx ended.
func (l *Loop[S]) Do(ctx context.Context, f func(S)) error {
	select {
	case <-l.started:
	case <-l.stopped:
		return l.errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	done := make(chan struct{})
	select {
	case l.events <- func(s S) { f(s); close(done) }:
	case <-l.stopped:
		return l.errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
