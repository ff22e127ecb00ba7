package lvs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRec(t *testing.T, c Client, opt Options) *Reconciler {
	t.Helper()
	opt.Log = quietLog()
	r, err := NewReconciler(c, opt)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReconcilerAppliesOnlyTheDifference(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	foreign := svc("192.0.2.9", 80, "rr", dst("10.9.9.9", 80, 1))
	f.t = table(foreign.clone())
	r := newRec(t, f, Options{})

	t1 := table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1), dst("10.1.0.2", 80, 1)))
	if _, err := r.SetDesired(ctx, t1); err != nil {
		t.Fatal(err)
	}
	if n := len(f.takeOps()); n != 3 {
		t.Fatalf("first apply: %d ops, want 3", n)
	}
	// Same table again: no change at all.
	if st, err := r.SetDesired(ctx, t1); err != nil || st.Ops != 0 {
		t.Fatalf("unchanged reload: %+v %v", st, err)
	}
	// Weight change: exactly one update.
	t2 := table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 7), dst("10.1.0.2", 80, 1)))
	if _, err := r.SetDesired(ctx, t2); err != nil {
		t.Fatal(err)
	}
	ops := f.takeOps()
	if len(ops) != 1 || ops[0].Kind != UpdateDest || ops[0].Dest.Weight != 7 {
		t.Fatalf("weight change: %q", opKinds(ops))
	}
	// Drift: someone flushes the table; a resync restores ours, not the foreign one.
	f.Flush()
	if _, err := r.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := f.Dump()
	if rest := Diff(got, t2, nil); len(rest) != 0 {
		t.Fatalf("after resync still differs: %q", opKinds(rest))
	}
	if _, ok := got[foreign.Key]; ok {
		t.Fatal("foreign service was recreated")
	}
	// Service removed from the config: deleted; foreign one untouched.
	f.t[foreign.Key] = foreign.clone()
	if _, err := r.SetDesired(ctx, Table{}); err != nil {
		t.Fatal(err)
	}
	got, _ = f.Dump()
	if len(got) != 1 || got[foreign.Key] == nil {
		t.Fatalf("after removing all: %v", got.Keys())
	}
}

func TestReconcilerReportsAndRetriesErrors(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	boom := errors.New("EBUSY")
	fails := 1
	f.failOn = func(op Op) error {
		if op.Kind == AddDest && fails > 0 {
			fails--
			return boom
		}
		return nil
	}
	r := newRec(t, f, Options{})
	want := table(svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 1)))
	_, err := r.SetDesired(ctx, want)
	if !errors.Is(err, boom) {
		t.Fatalf("error not reported: %v", err)
	}
	if st := r.Status(); !strings.Contains(st.LastError, "EBUSY") {
		t.Fatalf("status does not show the error: %+v", st)
	}
	// The retry (a resync) completes the table.
	if _, err := r.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := f.Dump()
	if rest := Diff(got, want, nil); len(rest) != 0 {
		t.Fatalf("after retry: %q", opKinds(rest))
	}
	st := r.Status()
	if st.LastError != "" || !st.Services[0].Dests[0].InKernel {
		t.Fatalf("status after retry: %+v", st)
	}
	if out := st.Format(); !strings.Contains(out, "TCP 10.0.0.1:80 rr") || !strings.Contains(out, "10.1.0.1:80") || strings.Contains(out, "missing") {
		t.Fatalf("formatted status:\n%s", out)
	}
}

func TestReconcilerReadBackCatchesSilentFailure(t *testing.T) {
	// A client that acknowledges but does nothing (moby/ipvs on a kernel
	// without IPVS) must not pass as success.
	f := &silentClient{fakeClient: newFake()}
	r := newRec(t, f, Options{})
	_, err := r.SetDesired(context.Background(), table(svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 1))))
	if err == nil || !strings.Contains(err.Error(), "read back") {
		t.Fatalf("silent client not detected: %v", err)
	}
}

// A pass too large to read back at once (a start) is read back by Run
// shortly after, which finds what a silent client left out and repairs it
// once the client works again.
func TestReconcilerLargePassReadBackLater(t *testing.T) {
	f := &silentClient{fakeClient: newFake()}
	r := newRec(t, f, Options{Period: time.Hour, VerifyDelay: time.Millisecond})
	want := Table{}
	for i := range verifyInline + 1 {
		s := svc(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), 80, "rr", dst("10.1.0.1", 80, 1))
		want[s.Key] = s
	}
	st, err := r.SetDesired(context.Background(), want)
	if err != nil || st.Verify != 0 {
		t.Fatalf("large pass: %v (verify %s): want no error and no read-back yet", err, st.Verify)
	}
	f.works.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := f.Dump()
		if len(Diff(got, want, nil)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the table was not read back and repaired within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// silentClient acknowledges changes and makes none (moby/ipvs on a kernel
// without IPVS) until silent is set.
type silentClient struct {
	*fakeClient
	works atomic.Bool // set: it works after all
}

func (s *silentClient) Do(op Op) error {
	if s.works.Load() {
		return s.fakeClient.Do(op)
	}
	return nil
}

func TestReconcilerFlushOptions(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	f.t = table(svc("192.0.2.9", 80, "rr"))
	r := newRec(t, f, Options{Flush: true, FlushOnStop: true})
	if len(f.t) != 0 {
		t.Fatal("lvs_flush did not flush at start")
	}
	if _, err := r.SetDesired(ctx, table(svc("10.0.0.1", 80, "rr"))); err != nil {
		t.Fatal(err)
	}
	f.t[svc("192.0.2.9", 80, "rr").Key] = svc("192.0.2.9", 80, "rr")
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.t) != 1 {
		t.Fatalf("stop with lvs_flush_on_stop: %v, want only the foreign service", f.t.Keys())
	}
}

func TestReconcilerFlushAllOnStop(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	f.t = table(svc("192.0.2.9", 80, "rr")) // foreign
	r := newRec(t, f, Options{FlushOnStop: true, FlushAllOnStop: true})
	if _, err := r.SetDesired(ctx, table(svc("10.0.0.1", 80, "rr"))); err != nil {
		t.Fatal(err)
	}
	if len(f.t) != 2 {
		t.Fatalf("before stop: %v", f.t.Keys())
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.t) != 0 {
		t.Fatalf("bare lvs_flush_on_stop left %v, want an empty table (keepalived flushes everything)", f.t.Keys())
	}
}

// batchFake is a fake client that also takes batches (as Kernel does).
type batchFake struct{ *fakeClient }

func (b batchFake) Batch(ops []Op) ([]error, error) {
	errs := make([]error, len(ops))
	for i, op := range ops {
		errs[i] = b.Do(op)
	}
	return errs, nil
}

func TestReconcilerBatchPath(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	fails := 1
	f.failOn = func(op Op) error {
		if op.Kind == AddDest && op.Dest.Weight == 3 && fails > 0 {
			fails--
			return errors.New("ENOMEM")
		}
		return nil
	}
	r := newRec(t, batchFake{f}, Options{})
	want := Table{}
	for i := range 10 {
		s := svc("10.0.0."+strconv.Itoa(i+1), 80, "wrr", dst("10.1.0.1", 80, 1), dst("10.1.0.2", 80, 3))
		want[s.Key] = s
	}
	if _, err := r.SetDesired(ctx, want); err == nil || !strings.Contains(err.Error(), "ENOMEM") {
		t.Fatalf("batch failure not reported: %v", err)
	}
	if _, err := r.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := f.Dump()
	if rest := Diff(got, want, nil); len(rest) != 0 {
		t.Fatalf("after retry: %q", opKinds(rest))
	}
}

// slowDumpClient's Dump reads the table, then waits for release before
// returning it (a read that takes seconds).
type slowDumpClient struct {
	*fakeClient
	reading chan struct{}
	release chan struct{}
}

func (c *slowDumpClient) Dump() (Table, error) {
	t, err := c.fakeClient.Dump()
	c.reading <- struct{}{}
	<-c.release
	return t, err
}

// A resync reads without holding the reconciler: SetDesired goes on
// meanwhile, and the resync's read of what it changed is not trusted
// (its change is not undone, nor taken for drift).
func TestResyncReadDoesNotBlockNorUndo(t *testing.T) {
	a := svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 1))
	b := svc("10.0.0.2", 80, "rr", dst("10.1.0.1", 80, 1))
	tests := []struct {
		name      string
		meanwhile Table // desired while the resync reads; nil: nothing
		wantErr   error
		want      []string
	}{
		{"nothing changes meanwhile", nil, nil, []string{"TCP 10.0.0.1:80"}},
		{"a service added meanwhile", table(a, b), nil, []string{"TCP 10.0.0.1:80", "TCP 10.0.0.2:80"}},
		{"a service removed meanwhile", Table{}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			r := newRec(t, f, Options{})
			ctx := context.Background()
			if _, err := r.SetDesired(ctx, table(a)); err != nil {
				t.Fatal(err)
			}
			c := &slowDumpClient{fakeClient: f, reading: make(chan struct{}), release: make(chan struct{})}
			r.c = c
			done := make(chan error, 1)
			go func() {
				_, err := r.Resync(ctx)
				done <- err
			}()
			<-c.reading
			if tc.meanwhile != nil {
				r.c = f // SetDesired below does not read
				if _, err := r.SetDesired(ctx, tc.meanwhile); err != nil {
					t.Fatal(err)
				}
			}
			close(c.release)
			if err := <-done; !errors.Is(err, tc.wantErr) {
				t.Fatalf("resync: %v, want %v", err, tc.wantErr)
			}
			got, _ := f.Dump()
			var keys []string
			for _, k := range got.Keys() {
				keys = append(keys, k.String())
			}
			if !slices.Equal(keys, tc.want) {
				t.Fatalf("kernel after the resync: %v, want %v", keys, tc.want)
			}
		})
	}
}

// countingClient counts whole-table reads.
type countingClient struct {
	*fakeClient
	dumps atomic.Int64
}

func (c *countingClient) Dump() (Table, error) {
	c.dumps.Add(1)
	return c.fakeClient.Dump()
}

// Run resyncs about once a Period when nothing changes, never back to
// back (a resync that changed nothing once left Run computing a wait of
// zero: a busy loop of reads). The bound allows 50 times the expected
// count, so only a loop trips it.
func TestRunDoesNotSpinWhenIdle(t *testing.T) {
	tests := []struct {
		name    string
		desired Table
	}{
		{"empty table", Table{}},
		{"one service", table(svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 1)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &countingClient{fakeClient: newFake()}
			period := 20 * time.Millisecond
			r := newRec(t, c, Options{Period: period})
			if _, err := r.SetDesired(context.Background(), tc.desired); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { r.Run(ctx); close(done) }()
			window := 500 * time.Millisecond
			time.Sleep(window)
			cancel()
			<-done
			if n, most := c.dumps.Load(), int64(50*(window/period+1)); n > most {
				t.Fatalf("%d reads in %s with a period of %s: Run loops", n, window, period)
			}
		})
	}
}

// A reload's pass of a few services (more than verifyInline) is read
// back later service by service, not by reading the whole table, and a
// change the kernel silently dropped is still found and repaired.
func TestReconcilerFewServicesReadBackLater(t *testing.T) {
	f := &droppingClient{fakeClient: newFake()}
	r := newRec(t, f, Options{Period: time.Hour, VerifyDelay: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mk := func(n, weight int) Table {
		t := Table{}
		for i := range n {
			s := svc(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), 80, "rr", dst("10.1.0.1", 80, weight))
			t[s.Key] = s
		}
		return t
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s", what)
			}
		}
	}
	// A start larger than verifyFew: read back by a resync (a dump).
	start := mk(verifyFew+44, 1)
	dumps := func() int { f.mu.Lock(); defer f.mu.Unlock(); return f.dumps }
	if _, err := r.SetDesired(ctx, start); err != nil {
		t.Fatal(err)
	}
	d0 := dumps() // the first pass reads the kernel
	go r.Run(ctx)
	waitFor("the start's read-back", func() bool { return dumps() > d0 })
	d1 := dumps()
	// A reload changing 40 services; the kernel drops one change silently.
	reload := maps.Clone(start)
	var changed []ServiceKey
	for k := range start {
		if len(changed) == 40 {
			break
		}
		s := svc(k.Addr.String(), k.Port, "rr", dst("10.1.0.1", 80, 2))
		reload[k] = s
		changed = append(changed, k)
	}
	f.drop.Store(&changed[0])
	f.gets.Store(0)
	if st, err := r.SetDesired(ctx, reload); err != nil || st.Verify != 0 {
		t.Fatalf("reload: %v (verify %s): want no error and no read-back yet", err, st.Verify)
	}
	f.drop.Store(nil)
	kernel := func() Table { f.mu.Lock(); defer f.mu.Unlock(); return f.t.Clone() }
	waitFor("the dropped change repaired", func() bool { return len(Diff(kernel(), reload, nil)) == 0 })
	if f.dropped.Load() == 0 {
		t.Fatal("no change was dropped: the test tests nothing")
	}
	if got := f.gets.Load(); got < int64(len(changed)) || got > int64(2*len(changed)) {
		t.Errorf("read back %d services one by one, want the %d changed ones", got, len(changed))
	}
	if d := dumps() - d1; d != 0 {
		t.Errorf("the table was read %d times after the start's read-back, want 0", d)
	}
}

// droppingClient silently ignores the changes to one service (drop).
type droppingClient struct {
	*fakeClient
	drop    atomic.Pointer[ServiceKey]
	gets    atomic.Int64
	dropped atomic.Int64
}

func (d *droppingClient) Do(op Op) error {
	if k := d.drop.Load(); k != nil && op.Service.Key == *k {
		d.dropped.Add(1)
		return nil
	}
	return d.fakeClient.Do(op)
}

// Dump is slow, as a large table's is (seconds in the VM): a pass comes
// in while the start's read-back reads, which must not lose that pass's
// own read-back.
func (d *droppingClient) Dump() (Table, error) {
	t, err := d.fakeClient.Dump()
	time.Sleep(50 * time.Millisecond)
	return t, err
}

func (d *droppingClient) Get(k ServiceKey) (*Service, error) {
	d.gets.Add(1)
	return d.fakeClient.Get(k)
}

// A resync compares what it read without the reconciler's lock: a pass
// arriving meanwhile does not wait for the comparison, the resync then
// compares again, and drift is repaired either way.
func TestResyncComparesWithoutTheLock(t *testing.T) {
	a := svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 1))
	b := svc("10.0.0.2", 80, "rr", dst("10.1.0.1", 80, 1))
	tests := []struct {
		name      string
		meanwhile Table // desired while the resync compares; nil: nothing
		want      []string
	}{
		{"drift repaired", nil, []string{"TCP 10.0.0.1:80 1", "TCP 10.0.0.2:80 1"}},
		{"a service added meanwhile", table(a, b, svc("10.0.0.3", 80, "rr")), []string{"TCP 10.0.0.1:80 1", "TCP 10.0.0.2:80 1", "TCP 10.0.0.3:80 0"}},
		{"a service removed meanwhile", table(b), []string{"TCP 10.0.0.2:80 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			r := newRec(t, f, Options{})
			ctx := context.Background()
			if _, err := r.SetDesired(ctx, table(a, b)); err != nil {
				t.Fatal(err)
			}
			// Drift: a destination and a service gone behind our back.
			f.mu.Lock()
			delete(f.t, b.Key)
			drifted := f.t[a.Key].clone()
			drifted.Dests = nil
			f.t[a.Key] = drifted
			f.mu.Unlock()
			comparing, release := make(chan struct{}), make(chan struct{})
			r.compared = func() {
				close(comparing)
				<-release
			}
			done := make(chan error, 1)
			go func() {
				_, err := r.Resync(ctx)
				done <- err
			}()
			<-comparing
			if tc.meanwhile != nil {
				passed := make(chan error, 1)
				go func() {
					_, err := r.SetDesired(ctx, tc.meanwhile)
					passed <- err
				}()
				// It must not wait for the comparison (released only after).
				if err := <-passed; err != nil {
					t.Fatal(err)
				}
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatalf("resync: %v", err)
			}
			got, _ := f.Dump()
			var keys []string
			for _, k := range got.Keys() {
				keys = append(keys, fmt.Sprintf("%s %d", k, len(got[k].Dests)))
			}
			if !slices.Equal(keys, tc.want) {
				t.Fatalf("kernel after the resync: %v, want %v", keys, tc.want)
			}
		})
	}
}

// TestAfterLargeReadOncePerChange: the memory of a large table's read is
// returned after the first resync that follows a pass changing the
// kernel, not after each periodic resync.
func TestAfterLargeReadOncePerChange(t *testing.T) {
	f := newFake()
	var calls atomic.Int32
	r := newRec(t, f, Options{Period: 5 * time.Millisecond, VerifyDelay: time.Millisecond, AfterLargeRead: func() { calls.Add(1) }})
	want := Table{}
	for i := range largeTable {
		s := svc(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), 80, "rr", dst("10.1.0.1", 80, 1))
		want[s.Key] = s
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := r.SetDesired(ctx, want); err != nil {
		t.Fatal(err)
	}
	go r.Run(ctx)
	// dumpsAfter waits until the fake has been read n more times.
	dumpsAfter := func(n int) {
		t.Helper()
		f.mu.Lock()
		target := f.dumps + n
		f.mu.Unlock()
		deadline := time.Now().Add(30 * time.Second)
		for {
			f.mu.Lock()
			d := f.dumps
			f.mu.Unlock()
			if d >= target {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d resyncs in 30 s", n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	dumpsAfter(3)
	if n := calls.Load(); n != 1 {
		t.Fatalf("after the start and 3 resyncs: returned %d times, want 1", n)
	}
	// A change: the next large read returns memory once more.
	for _, s := range want {
		s2 := s.clone()
		s2.Dests[0].Weight = 2
		want2 := maps.Clone(want)
		want2[s.Key] = s2
		if _, err := r.SetDesired(ctx, want2); err != nil {
			t.Fatal(err)
		}
		break
	}
	dumpsAfter(3)
	if n := calls.Load(); n != 2 {
		t.Fatalf("after a change and 3 more resyncs: returned %d times, want 2", n)
	}
}
