package vrrp

import (
	"testing"
	"time"
)

// TestRealClockTimer: the timerfd timer fires, Reset discards and re-arms,
// Stop disarms (checked by a later Reset firing once), Close ends it.
func TestRealClockTimer(t *testing.T) {
	c := RealClock{}
	tm := c.NewTimer(time.Millisecond)
	defer tm.Close()
	select {
	case <-tm.C():
	case <-time.After(5 * time.Second):
		t.Fatal("timer did not fire")
	}
	tm.Reset(time.Hour)
	tm.Stop()
	start := c.Now()
	tm.Reset(2 * time.Millisecond)
	select {
	case <-tm.C():
		if c.Now().Sub(start) < 2*time.Millisecond {
			t.Fatal("fired early")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("re-armed timer did not fire")
	}
}
