package main

import (
	"bytes"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateWriter blocks every Write until the gate opens: a stalled terminal,
// pipe or syslog daemon.
type gateWriter struct {
	gate chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *gateWriter) Write(p []byte) (int, error) {
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *gateWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestAsyncHandler: logging never waits for the output; what does not fit
// the queue while the output is stalled is dropped and reported as a
// count; what is written keeps its order, attributes and groups.
func TestAsyncHandler(t *testing.T) {
	tests := []struct {
		name    string
		stalled bool // the output blocks until every record was logged
		records int
		queue   int
	}{
		{"output keeps up", false, 50, 64},
		{"output stalled, queue holds all", true, 50, 64},
		{"output stalled, records dropped", true, 500, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &gateWriter{gate: make(chan struct{})}
			if !tt.stalled {
				close(w.gate)
			}
			ah := newAsyncHandler(slog.NewTextHandler(w, nil), tt.queue)
			log := slog.New(ah).With("subsystem", "vrrp").WithGroup("g")
			logged := make(chan struct{})
			go func() {
				defer close(logged)
				for i := 0; i < tt.records; i++ {
					log.Info("rec", "i", i)
				}
			}()
			// A blocked Handle would hang here until the deadline.
			select {
			case <-logged:
			case <-time.After(30 * time.Second):
				t.Fatal("logging blocked on a stalled output")
			}
			if tt.stalled {
				close(w.gate)
			}
			ah.close(30 * time.Second)

			out := w.String()
			recRe := regexp.MustCompile(`msg=rec subsystem=vrrp g\.i=(\d+)`)
			var got []int
			for _, m := range recRe.FindAllStringSubmatch(out, -1) {
				n, _ := strconv.Atoi(m[1])
				got = append(got, n)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("records out of order: %v", got)
				}
			}
			reported := 0
			for _, m := range regexp.MustCompile(`log records dropped.* dropped=(\d+)`).FindAllStringSubmatch(out, -1) {
				n, _ := strconv.Atoi(m[1])
				reported += n
			}
			if len(got)+reported != tt.records || uint64(reported) != ah.dropped() {
				t.Fatalf("%d records written + %d reported dropped (counter %d), want %d in all; output:\n%s",
					len(got), reported, ah.dropped(), tt.records, out)
			}
			wantDrops := tt.records > tt.queue+1 // the writer may hold one besides the queue
			if (reported > 0) != wantDrops {
				t.Fatalf("%d dropped, want drops: %v", reported, wantDrops)
			}
		})
	}
}

// TestAsyncHandlerAfterClose: records logged after close are written in
// line, not lost (the daemon's last words at exit).
func TestAsyncHandlerAfterClose(t *testing.T) {
	var buf strings.Builder
	ah := newAsyncHandler(slog.NewTextHandler(&syncWriter{b: &buf}, nil), 8)
	log := slog.New(ah)
	log.Info("before")
	ah.close(10 * time.Second)
	log.Info("after")
	for _, want := range []string{"msg=before", "msg=after"} {
		if !strings.Contains(buf.String(), want) {
			t.Fatalf("%s missing from %q", want, buf.String())
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
