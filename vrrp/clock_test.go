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

// TestFDTimer: the timerfd alone (no runtime timer) fires once per arming,
// not before its time, through the netpoller; after close it never fires
// and arming is harmless.
func TestFDTimer(t *testing.T) {
	fired := make(chan time.Time, 4)
	ft, err := newFDTimer(func() { fired <- time.Now() })
	if err != nil {
		t.Skipf("no timerfd: %v", err)
	}
	for range 3 {
		start := time.Now()
		ft.arm(3 * time.Millisecond)
		select {
		case at := <-fired:
			if at.Sub(start) < 3*time.Millisecond {
				t.Fatalf("fired after %v, armed for 3ms", at.Sub(start))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("timerfd did not fire")
		}
	}
	ft.arm(time.Hour)
	ft.arm(0) // disarmed
	ft.close()
	ft.arm(time.Millisecond)
	select {
	case <-fired:
		t.Fatal("fired after close")
	case <-time.After(50 * time.Millisecond):
	}
}
