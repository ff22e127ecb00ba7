package lvs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Reconciler.
type Options struct {
	// Period between full resyncs that read the kernel table and repair
	// drift (someone ran ipvsadm -C, deleted a destination). Default 2 s.
	Period time.Duration
	// Workers apply independent services in parallel. Default 4.
	Workers int
	// Flush (lvs_flush) empties the whole kernel table at start, foreign
	// services included. Without it, services the configuration does not
	// own are never touched.
	Flush bool
	// FlushOnStop (lvs_flush_on_stop) deletes the owned services on Stop.
	// Without it the table stays, so a restart reconciles to it without
	// churn (deleted destinations linger in the kernel's dest trash and
	// make every later add slow).
	FlushOnStop bool
	// FlushAllOnStop (bare lvs_flush_on_stop) empties the whole kernel
	// table on Stop, foreign services included, as keepalived does.
	FlushAllOnStop bool
	// StateFile, when set, records the services this reconciler owns
	// (see the invariant at Reconciler.owned), so that the first pass of a
	// later run deletes those no longer desired: services of a removed
	// virtual_server do not outlive a restart. Services it does not list
	// are foreign and never touched. hakeepd keeps it in /run, which is
	// cleared at boot exactly like the kernel's IPVS table. "": no record;
	// services of a previous run are then foreign.
	StateFile string
	// VerifyDelay is how long after a pass too large to read back at
	// once Run reads the table back. Default 5 s.
	VerifyDelay time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after an error.
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger
	// AfterLargeRead, if set, is called (on Run's goroutine) after the
	// first resync since a pass changed the kernel that read a table of
	// largeTable entries or more (a start's or a large reload's
	// read-back): the read's copy of the whole table is garbage then, and
	// the daemon may return it to the system (a dump of 42,000 entries
	// left ~20 MB resident). The periodic resyncs after it leave the
	// same garbage to the collector, without a forced collection each.
	AfterLargeRead func()
}

// Stats describe one reconcile pass.
type Stats struct {
	Ops      int           // changes applied
	Failed   int           // changes that failed
	Read     time.Duration // reading the kernel table (resync only)
	Apply    time.Duration // applying the changes
	Verify   time.Duration // reading back what was written
	Services int           // desired services
	Entries  int           // services and destinations read (resync only)
}

// Reconciler keeps the kernel's IPVS table equal to the desired table.
// SetDesired applies a new desired table at once (only the difference);
// Run also resyncs from the kernel every Period and retries failures with
// backoff.
type Reconciler struct {
	c    Client
	opt  Options
	log  *slog.Logger
	kick chan struct{}
	// later asks Run for the read-back of a large pass, after
	// verifyDelay: of the services it touched (toVerify) when they are
	// few, else a resync (read everything, compare, repair).
	later chan struct{}

	mu      sync.Mutex // serializes passes and guards the fields below
	desired Table
	// owned are the services that are ours to delete: desired now, or
	// before (in this run or, through the state file, a previous one) and
	// maybe still in the kernel. A key is added before the service is
	// created and dropped only once the service is gone.
	//
	// Invariant with Options.StateFile: the file lists every service of
	// ours the kernel may hold. A key is written to the file before its
	// service is created or adopted, and removed only after the service
	// is deleted (or seen absent); so a crash between a kernel change and
	// the file write leaves at most a key whose service is not in the
	// kernel, which the next run drops without touching anything, and
	// never a service of ours the file forgets (stale for ever) nor a
	// foreign service the file claims. The one exception needs someone to
	// create a service with that very key while hakeepd is down after such
	// a crash.
	owned      map[ServiceKey]bool
	stateDirty bool // owned changed since the state file was last written
	stateText  stateText
	cache      Table // the kernel as last read or written; nil: unknown
	// applied records desired services known to be in cache as they are
	// (same pointer: unchanged since), so a reload that reuses them skips
	// comparing their destinations.
	applied map[ServiceKey]*Service
	// gen counts passes that changed the kernel; during, while reading
	// (resyncs reading the kernel), the services they changed.
	gen       uint64
	reading   int
	during    map[ServiceKey]bool
	changedAt time.Time // end of the last pass that changed the kernel (or the start)
	// toVerify: services touched by large passes whose read-back is due
	// (Run); nil after a resync, which reads them all anyway.
	toVerify map[ServiceKey]bool
	lastErr  error
	lastOK   time.Time
	total    Stats
	// ver counts changes of desired, owned and the picture (passes,
	// SetDesired, Stop): a resync's comparison made outside the lock
	// stands only if none came meanwhile.
	ver uint64
	// compared, if set (tests), runs after a resync's comparison made
	// outside the lock.
	compared func()
}

// NewReconciler returns a reconciler writing through c. With opt.Flush it
// flushes the kernel table first.
func NewReconciler(c Client, opt Options) (*Reconciler, error) {
	if opt.Period <= 0 {
		opt.Period = 2 * time.Second
	}
	if opt.Workers <= 0 {
		opt.Workers = 4
	}
	if opt.VerifyDelay <= 0 {
		opt.VerifyDelay = verifyDelay
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = 100 * time.Millisecond
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 10 * time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	r := &Reconciler{c: c, opt: opt, log: opt.Log.With("component", "lvs"),
		kick: make(chan struct{}, 1), later: make(chan struct{}, 1), owned: map[ServiceKey]bool{}, desired: Table{},
		changedAt: time.Now()}
	if opt.StateFile != "" {
		prev, err := readState(opt.StateFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// First run (or after a boot): nothing owned from before.
		case err != nil:
			// Never delete on a guess: what the file listed stays in
			// the kernel as if foreign. Keep the bad file for a look.
			bad := opt.StateFile + ".corrupt"
			if rerr := os.Rename(opt.StateFile, bad); rerr != nil {
				bad = ""
			}
			r.log.Error("IPVS state file unreadable: services of the previous run that are no longer configured will not be deleted; writing a new one",
				"file", opt.StateFile, "err", err, "kept_as", bad)
			r.stateDirty = true
		default:
			r.owned = prev
			if len(prev) > 0 {
				r.log.Info("IPVS services of the previous run", "file", opt.StateFile, "count", len(prev))
			}
		}
	}
	if opt.Flush {
		r.log.Info("ipvs flush at start (lvs_flush)")
		if err := c.Flush(); err != nil {
			return nil, err
		}
		r.cache = Table{}
		r.disownAll()
	}
	if err := r.saveState(); err != nil {
		// Passes retry the write and report it.
		r.log.Error("cannot write the IPVS state file", "err", err)
	}
	return r, nil
}

// disownAll forgets every owned service (the table was flushed).
func (r *Reconciler) disownAll() {
	if len(r.owned) > 0 {
		clear(r.owned)
		r.stateDirty = true
	}
}

// forgetGone drops the owned services that are neither desired nor in the
// cache: deleted (by us or by someone else), hence no longer ours.
func (r *Reconciler) forgetGone() {
	if len(r.owned) == len(r.desired) {
		return // owned holds the desired keys and nothing else
	}
	for k := range r.owned {
		if _, ok := r.desired[k]; !ok {
			if _, inKernel := r.cache[k]; !inKernel {
				delete(r.owned, k)
				r.stateDirty = true
			}
		}
	}
}

// saveState writes the owned set to the state file when it changed since
// the last write. On an error the file stays marked as out of date, so
// the next pass tries again.
func (r *Reconciler) saveState() error {
	if r.opt.StateFile == "" || !r.stateDirty {
		return nil
	}
	if err := r.stateText.write(r.opt.StateFile, r.owned); err != nil {
		return err
	}
	r.stateDirty = false
	return nil
}

// SetDesired replaces the desired table and applies the difference at once
// against the reconciler's picture of the kernel. The error is the pass's;
// Run retries it.
func (r *Reconciler) SetDesired(ctx context.Context, t Table) (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.desired = t
	r.ver++
	for k := range t {
		if !r.owned[k] {
			r.owned[k] = true
			r.stateDirty = true
		}
	}
	return r.pass(ctx, false)
}

// Resync reads the kernel table and applies the difference (drift repair).
//
// The read (seconds for a large table under an emulated CPU) and the
// comparison of what it read with the desired table (a whole table's
// destinations) are made without the reconciler's lock, so SetDesired
// never waits for them. A read that a pass's changes overtook is not used
// (ErrResyncOvertaken): it would undo them. A comparison that a pass or a
// new desired table overtook is made again under the lock.
func (r *Reconciler) Resync(ctx context.Context) (Stats, error) {
	r.mu.Lock()
	gen := r.beginRead()
	r.mu.Unlock()
	t0 := time.Now()
	cur, err := r.c.Dump()
	read := time.Since(t0)
	r.mu.Lock()
	if err != nil {
		r.reading--
		defer r.mu.Unlock()
		return r.passRead(ctx, cur, err, read, nil)
	}
	if !r.patchRead(cur, gen) {
		r.reading--
		r.mu.Unlock()
		return Stats{Read: read}, ErrResyncOvertaken
	}
	// Compare outside the lock, against the desired table and the owned
	// services of now (desired tables are not modified once set; the
	// services the read took from the picture are copies).
	desired, owned, ver := r.desired, maps.Clone(r.owned), r.ver
	r.mu.Unlock()
	ops := diff(cur, desired, func(k ServiceKey) bool { return owned[k] }, nil)
	if r.compared != nil {
		r.compared()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reading--
	if r.ver != ver {
		// Overtaken: compare again, here.
		if !r.patchRead(cur, gen) {
			return Stats{Read: read}, ErrResyncOvertaken
		}
		r.readVerified(gen)
		return r.passRead(ctx, cur, nil, read, nil)
	}
	r.readVerified(gen)
	return r.passRead(ctx, cur, nil, read, &ops)
}

// beginRead starts a read of the kernel made without the lock (the
// caller holds it now): it returns the pass generation the read begins
// at, and from now on passes record the services they change (during),
// which the read's picture must take from the cache (patchRead). The
// caller decrements reading when the read is done.
func (r *Reconciler) beginRead() uint64 {
	r.reading++
	if r.reading == 1 {
		r.during = map[ServiceKey]bool{}
	}
	return r.gen
}

// patchRead makes a read that passes may have overtaken (the kernel
// changed since gen) usable: for the services they changed the read may
// be stale, so the picture of them is the reconciler's own (what it
// wrote, copied); the rest of the read stands. False: there is no
// picture (the read is not to be used).
func (r *Reconciler) patchRead(cur Table, gen uint64) bool {
	if r.gen == gen {
		return true
	}
	if r.cache == nil {
		return false
	}
	for k := range r.during {
		if c, ok := r.cache[k]; ok {
			cur[k] = c.clone()
		} else {
			delete(cur, k)
		}
	}
	return true
}

// readVerified forgets the services awaiting a read-back that a read
// begun at pass generation gen saw as they are: all of them, or, when
// passes changed services meanwhile, all but those (their picture is the
// reconciler's, not the read's).
func (r *Reconciler) readVerified(gen uint64) {
	if r.gen == gen {
		r.toVerify = nil
		return
	}
	for k := range r.toVerify {
		if !r.during[k] {
			delete(r.toVerify, k)
		}
	}
}

// verifyFew is the most services a deferred read-back reads one by one
// (Kernel.Get); a pass touching more (a start) is read back by a resync.
// A 1% reload of 2,000 services touches 60: reading those took ~1 s of
// TCG in the VM, the whole table 4-8 s and ~20 MB of garbage (issue 13:
// RSS and CPU after a reload).
const verifyFew = 256

// takeToVerify returns and forgets the services awaiting a read-back.
func (r *Reconciler) takeToVerify() []ServiceKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]ServiceKey, 0, len(r.toVerify))
	for k := range r.toVerify {
		keys = append(keys, k)
	}
	r.toVerify = nil
	return keys
}

// resyncKeys is Resync for the given services only: it reads them
// without the lock, then takes the rest of the picture from the cache and
// repairs what differs. Without a picture it reads everything.
func (r *Reconciler) resyncKeys(ctx context.Context, keys []ServiceKey) (Stats, error) {
	r.mu.Lock()
	if r.cache == nil {
		r.mu.Unlock()
		return r.Resync(ctx)
	}
	gen := r.beginRead()
	r.mu.Unlock()
	t0 := time.Now()
	got := make(Table, len(keys))
	var err error
	for _, k := range keys {
		s, gerr := r.c.Get(k)
		if errors.Is(gerr, ErrNoService) {
			continue
		}
		if gerr != nil {
			err = fmt.Errorf("read back: %w", gerr)
			break
		}
		got[k] = s
	}
	read := time.Since(t0)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reading--
	if err != nil {
		return Stats{Read: read}, err
	}
	if r.cache == nil {
		return Stats{Read: read}, ErrResyncOvertaken
	}
	cur := maps.Clone(r.cache)
	for _, k := range keys {
		if r.gen != gen && r.during[k] {
			continue // changed while read: the picture of it is ours
		}
		if s, ok := got[k]; ok {
			cur[k] = s
		} else {
			delete(cur, k)
		}
	}
	st, perr := r.passRead(ctx, cur, nil, read, nil)
	if perr == nil && st.Ops > 0 {
		r.log.Warn("ipvs read-back repaired the kernel table", "services", len(keys), "changes", st.Ops)
	}
	return st, perr
}

// ErrResyncOvertaken: the kernel changed under a resync's read (by a pass
// of this reconciler) whose outcome is unknown; Run tries again.
var ErrResyncOvertaken = errors.New("ipvs resync overtaken by a change")

// Kick asks Run for a resync soon.
func (r *Reconciler) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run resyncs every Period (and when kicked) until ctx ends, retrying a
// failed pass with exponential backoff. Errors are logged and kept for
// Status; Run returns only when ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	backoff := time.Duration(0)
	// A full read of a large table costs real CPU (42,000 entries: tens of
	// ms on a server, a second under an emulated CPU): keep drift repair
	// of a large table to at most ~0.2% of a core when idle by spacing
	// resyncs at least resyncSpacing reads apart (a small one: 20 reads,
	// at most 5%, so that it is repaired within a Period or two).
	var lastRead time.Duration
	spacing := time.Duration(20)
	readBack := false // a large pass awaits its read-back
	// fullDue: a read of the whole table was overtaken or failed: the
	// next read-back reads everything, not only the services awaiting it.
	fullDue := false
	lastResync := time.Now()
	var returnedAt time.Time // AfterLargeRead's last call
	// since is the time since the kernel was last read or written: a
	// start or a reload is not followed at once by a resync of its table.
	since := func() time.Duration {
		ref := r.lastChange()
		if lastResync.After(ref) {
			ref = lastResync
		}
		return time.Since(ref)
	}
	for {
		wait := max(r.opt.Period, spacing*lastRead)
		if readBack {
			wait = min(wait, r.opt.VerifyDelay)
		}
		if backoff > 0 {
			wait = backoff
		} else {
			wait = max(0, wait-since())
		}
		t := time.NewTimer(wait)
		kicked := false
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.kick:
			t.Stop()
			kicked = true
		case <-r.later:
			t.Stop()
			readBack = true
			continue
		case <-t.C:
		}
		if !kicked && !readBack && backoff == 0 && since() < max(r.opt.Period, spacing*lastRead) {
			continue // a pass changed the kernel meanwhile: wait from it
		}
		var (
			st  Stats
			err error
		)
		if keys := r.takeToVerify(); readBack && !kicked && !fullDue && len(keys) > 0 && len(keys) <= verifyFew {
			// A reload's few services: read those back, not the table.
			st, err = r.resyncKeys(ctx, keys)
			readBack = false
			if err != nil {
				if !errors.Is(err, ErrResyncOvertaken) {
					r.log.Error("ipvs read-back failed; reading the whole table", "err", err)
				}
				readBack, fullDue = true, true
			}
			continue
		}
		readBack = false
		st, err = r.Resync(ctx)
		lastResync = time.Now()
		if errors.Is(err, ErrResyncOvertaken) {
			readBack, fullDue = true, true // read the whole table again soon
			continue
		}
		fullDue = false
		lastRead = st.Read
		spacing = 20
		if st.Entries >= largeTable {
			spacing = resyncSpacing
			if r.opt.AfterLargeRead != nil && r.lastChange().After(returnedAt) {
				returnedAt = time.Now()
				r.opt.AfterLargeRead()
			}
		}
		if err != nil {
			if backoff == 0 {
				backoff = r.opt.MinBackoff
			} else {
				backoff = min(2*backoff, r.opt.MaxBackoff)
			}
			r.log.Error("ipvs reconcile failed; retrying", "err", err, "retry_in", backoff)
		} else {
			backoff = 0
		}
	}
}

// lastChange is when a pass last changed the kernel.
func (r *Reconciler) lastChange() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changedAt
}

// verifyDelay is how long after a large pass Run reads the table back by
// default (Options.VerifyDelay):
// the pass's own acknowledgements say every change was taken; the
// read-back, which costs as much as the writing, comes once the daemon's
// start or reload is over.
const verifyDelay = 5 * time.Second

// resyncSpacing is how many times the last full read's duration Run
// waits before the next drift repair of a table of at least largeTable
// entries (services and destinations): 42,000 entries read in ~40 ms are
// checked every 20 s.
const (
	resyncSpacing = 500
	largeTable    = 1000
)

// Stop deletes the owned services when FlushOnStop is set (and records in
// the state file that they are gone); otherwise it leaves the kernel table
// and the record of what is ours as they are, for the next run.
func (r *Reconciler) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.opt.FlushAllOnStop {
		r.desired, r.cache = Table{}, nil
		r.ver++
		if err := r.c.Flush(); err != nil {
			return fmt.Errorf("flush IPVS at stop: %w", err)
		}
		r.log.Info("IPVS table flushed at stop (lvs_flush_on_stop)")
		// After the flush, so the record never misses a service.
		r.disownAll()
		return r.saveState()
	}
	if !r.opt.FlushOnStop {
		// The table stays, and so does the record (written now if a
		// write failed before), for the next run to adopt.
		return r.saveState()
	}
	r.desired = Table{}
	_, err := r.pass(ctx, true) // forgets what it deleted
	return err
}

// pass diffs and applies. With read, the kernel is read first; otherwise
// the cached picture is used (and read when there is none).
func (r *Reconciler) pass(ctx context.Context, read bool) (Stats, error) {
	if read || r.cache == nil {
		t0 := time.Now()
		cur, err := r.c.Dump()
		return r.passRead(ctx, cur, err, time.Since(t0), nil)
	}
	return r.passRead(ctx, nil, nil, 0, nil)
}

// passRead is pass with the kernel's table read already (cur, or the
// read's error), or not read (cur and err nil: the cached picture).
// diffed: the changes from cur to the desired table, computed already
// (Resync), with the same desired table and owned services.
func (r *Reconciler) passRead(ctx context.Context, cur Table, err error, read time.Duration, diffed *[]Op) (Stats, error) {
	r.ver++ // a resync comparing meanwhile compares again
	st := Stats{Services: len(r.desired), Read: read}
	// Record newly owned services before creating them. A failed write
	// does not hold the table back: the service would merely not be
	// deleted by a later run if this one crashed before a retry succeeds.
	stateErr := r.saveState()
	if cur != nil || err != nil {
		if err != nil {
			r.cache = nil
			return st, r.fail(errors.Join(fmt.Errorf("read kernel IPVS table: %w", err), stateErr))
		}
		r.cache = cur
		st.Entries = len(cur)
		for _, s := range cur {
			st.Entries += len(s.Dests)
		}
		r.applied = nil // compare everything against what was read
	}
	var ops []Op
	if diffed != nil && cur != nil {
		ops = *diffed
	} else {
		ops = diff(r.cache, r.desired, func(k ServiceKey) bool { return r.owned[k] },
			func(k ServiceKey, s *Service) bool { return r.applied[k] == s })
	}
	if len(ops) == 0 {
		r.markApplied()
		return st, r.done()
	}
	t0 := time.Now()
	r.gen++ // a resync reading meanwhile must not trust its read of these
	if r.reading > 0 {
		for _, op := range ops {
			r.during[op.Service.Key] = true
		}
	}
	touched, errs := r.apply(ctx, ops)
	st.Apply = time.Since(t0)
	r.changedAt = time.Now()
	st.Ops, st.Failed = len(ops), len(errs)
	r.total.Ops += st.Ops
	r.total.Failed += st.Failed
	if len(errs) > 0 {
		// Our picture is uncertain now: read the kernel next time.
		r.cache = nil
		return st, r.fail(errors.Join(fmt.Errorf("apply %d IPVS changes, %d failed: %w", len(ops), len(errs), errors.Join(errs...)), stateErr))
	}
	if len(touched) > verifyInline {
		// Read back later (Run), off the path to a programmed table.
		if r.toVerify == nil {
			r.toVerify = map[ServiceKey]bool{}
		}
		for _, k := range touched {
			r.toVerify[k] = true
		}
		select {
		case r.later <- struct{}{}:
		default:
		}
	} else {
		t0 = time.Now()
		err := r.verify(touched)
		st.Verify = time.Since(t0)
		if err != nil {
			r.cache = nil
			return st, r.fail(errors.Join(err, stateErr))
		}
	}
	r.markApplied()
	r.log.Info("ipvs reconciled", "changes", st.Ops, "services", st.Services, "apply", st.Apply, "verify", st.Verify, "read_back_later", len(touched) > verifyInline)
	return st, r.done()
}

// done ends a pass whose kernel changes all succeeded: services no longer
// owned are forgotten, after their deletion, and the record follows.
func (r *Reconciler) done() error {
	r.forgetGone()
	if err := r.saveState(); err != nil {
		return r.fail(err)
	}
	r.ok()
	return nil
}

// markApplied records the desired services as present in the kernel, and
// points the picture of the kernel at the frozen ones (equal as the
// kernel holds them) rather than keeping a second copy of the table.
func (r *Reconciler) markApplied() {
	r.applied = maps.Clone(map[ServiceKey]*Service(r.desired))
	if r.cache == nil {
		return
	}
	for k, s := range r.desired {
		if s.frozen {
			r.cache[k] = s
		}
	}
}

func (r *Reconciler) fail(err error) error {
	r.applied = nil
	r.lastErr = err
	return err
}

func (r *Reconciler) ok() {
	r.lastErr = nil
	r.lastOK = time.Now()
}

// Batcher is implemented by clients that can apply many changes in one
// go (Kernel does, over netlink). It returns one error slot per op.
type Batcher interface {
	Batch(ops []Op) ([]error, error)
}

// batchMin is the number of changes from which a Batcher is used; fewer
// go one by one (a single change is one round trip either way).
const batchMin = 16

// applyBatch applies ops through b in order and updates the cache.
func (r *Reconciler) applyBatch(b Batcher, ops []Op) ([]ServiceKey, []error) {
	var keys []ServiceKey
	for i, op := range ops {
		if i == 0 || op.Service.Key != ops[i-1].Service.Key {
			keys = append(keys, op.Service.Key)
		}
	}
	slots, err := b.Batch(ops)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	var done changeLog
	for i, op := range ops {
		if i > 0 && op.Service.Key != ops[i-1].Service.Key {
			done.flush(r.log)
		}
		var e error
		if i < len(slots) {
			e = slots[i]
		} else {
			e = errors.New("not applied")
		}
		if e != nil {
			if err == nil {
				errs = append(errs, e)
				r.log.Error("ipvs change failed", opAttrs(op, "err", e)...)
			}
			continue
		}
		applyOp(r.cache, op)
		done.add(op)
	}
	done.flush(r.log)
	return keys, errs
}

// apply runs the ops: the ops of one service in order, different services
// in parallel (or all in one ordered batch when the client can). It updates the cache with what succeeded and returns the
// touched service keys.
func (r *Reconciler) apply(ctx context.Context, ops []Op) ([]ServiceKey, []error) {
	if b, ok := r.c.(Batcher); ok && len(ops) >= batchMin {
		return r.applyBatch(b, ops)
	}
	var groups [][]Op
	var keys []ServiceKey
	for i := 0; i < len(ops); {
		j := i + 1
		for j < len(ops) && ops[j].Service.Key == ops[i].Service.Key {
			j++
		}
		groups = append(groups, ops[i:j])
		keys = append(keys, ops[i].Service.Key)
		i = j
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	work := make(chan []Op)
	for range min(r.opt.Workers, len(groups)) {
		wg.Go(func() {
			for g := range work {
				var done changeLog
				for _, op := range g {
					if ctx.Err() != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s: %w", op, ctx.Err()))
						mu.Unlock()
						break
					}
					err := r.c.Do(op)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
						r.log.Error("ipvs change failed", opAttrs(op, "err", err)...)
						mu.Unlock()
						break // the rest of this service depends on it
					}
					applyOp(r.cache, op)
					mu.Unlock()
					done.add(op)
				}
				done.flush(r.log)
			}
		})
	}
	for _, g := range groups {
		work <- g
	}
	close(work)
	wg.Wait()
	return keys, errs
}

// changeLog collects the applied changes of one service into one log
// line: every change is logged, at a cost that a 42,000-change start can
// afford (one formatted record per change costs more than the change).
type changeLog struct {
	vs  *Service
	n   int
	buf []byte
}

func (c *changeLog) add(op Op) {
	if c.n > 0 {
		c.buf = append(c.buf, "; "...)
	}
	c.vs = op.Service
	c.n++
	c.buf = append(c.buf, op.Kind.String()...)
	switch op.Kind {
	case AddService, UpdateService:
		c.buf = append(c.buf, ' ')
		c.buf = append(c.buf, op.Service.Scheduler...)
		c.buf = append(c.buf, " flags "...)
		c.buf = strconv.AppendUint(c.buf, uint64(op.Service.Flags&flagsCompared), 16)
		c.buf = append(c.buf, " timeout "...)
		c.buf = strconv.AppendUint(c.buf, uint64(op.Service.Timeout), 10)
	case AddDest, UpdateDest:
		c.buf = append(c.buf, ' ')
		c.buf = netip.AddrPortFrom(op.Dest.Addr, op.Dest.Port).AppendTo(c.buf)
		c.buf = append(c.buf, ' ')
		c.buf = append(c.buf, op.Dest.Method.String()...)
		c.buf = append(c.buf, " weight "...)
		c.buf = strconv.AppendInt(c.buf, int64(op.Dest.Weight), 10)
	case DelDest:
		c.buf = append(c.buf, ' ')
		c.buf = netip.AddrPortFrom(op.Dest.Addr, op.Dest.Port).AppendTo(c.buf)
	}
}

func (c *changeLog) flush(log *slog.Logger) {
	if c.n == 0 {
		return
	}
	log.Info("ipvs change", "vs", c.vs.Key.String(), "count", c.n, "changes", string(c.buf))
	c.n, c.buf = 0, c.buf[:0]
}

// opAttrs are the log attributes of a change, with stable keys.
func opAttrs(op Op, extra ...any) []any {
	a := []any{"op", op.Kind.String(), "vs", op.Service.Key.String()}
	switch op.Kind {
	case AddService, UpdateService:
		a = append(a, "sched", op.Service.Scheduler, "flags", op.Service.Flags&flagsCompared, "timeout", op.Service.Timeout)
	case AddDest, UpdateDest:
		a = append(a, "rs", op.Dest.Key().String(), "method", op.Dest.Method.String(), "weight", op.Dest.Weight)
	case DelDest:
		a = append(a, "rs", op.Dest.Key().String())
	}
	return append(a, extra...)
}

// verifyInline: a pass touching at most this many services reads them
// back at once, one by one; a larger one (a start, a reload) is read back
// by a resync verifyDelay later, so the read-back does not hold the table
// back (or compete with the writing) at start. A burst of health changes
// touches a few services. 16, not 64: a 1% reload of 2,000 services
// touches 60, and reading them back one by one took 0.78 s in the VM right
// after the 0.21 s of writing them (issue 13).
const verifyInline = 16

// verify reads back the touched services and compares them with the
// desired table.
func (r *Reconciler) verify(keys []ServiceKey) error {
	got := Table{}
	for _, k := range keys {
		s, err := r.c.Get(k)
		if errors.Is(err, ErrNoService) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		got[k] = s
	}
	want := Table{}
	for _, k := range keys {
		if s, ok := r.desired[k]; ok {
			want[k] = s
		}
	}
	var bad []Op
	for _, k := range keys {
		bad = appendKeyDiff(bad, got, want, k, r.owned[k])
	}
	if len(bad) > 0 {
		return fmt.Errorf("read back after writing: the kernel still differs in %d places, first: %s", len(bad), bad[0])
	}
	return nil
}

func appendKeyDiff(ops []Op, got, want Table, k ServiceKey, owned bool) []Op {
	w, inWant := want[k]
	g, inGot := got[k]
	switch {
	case inWant:
		var cur *Service
		if inGot {
			cur = g
		}
		return appendServiceDiff(ops, cur, w)
	case inGot && owned:
		return append(ops, Op{Kind: DelService, Service: g})
	}
	return ops
}

// Status is the reconciler's view for the API.
type Status struct {
	Services  []ServiceStatus `json:"services"`
	LastError string          `json:"last_error,omitempty"`
	LastOK    time.Time       `json:"last_ok,omitzero"`
	Changes   int             `json:"changes"`
	Failures  int             `json:"failures"`
}

// ServiceStatus is one service as the kernel holds it, with health.
type ServiceStatus struct {
	Service   string       `json:"service"` // "TCP 10.0.0.1:80"
	Origin    string       `json:"virtual_server,omitempty"`
	Scheduler string       `json:"scheduler"`
	Persist   uint32       `json:"persistence_timeout,omitempty"`
	QuorumUp  bool         `json:"quorum_up"`
	InKernel  bool         `json:"in_kernel"`
	Dests     []DestStatus `json:"real_servers"`
}

// DestStatus is one destination: kernel state plus the health column.
type DestStatus struct {
	Addr       string `json:"addr"`
	Method     string `json:"forward"`
	Weight     int    `json:"weight"`
	ActiveConn int    `json:"active_conn"`
	InActConn  int    `json:"inact_conn"`
	Health     string `json:"health"`
	InKernel   bool   `json:"in_kernel"`
}

// Status reads the kernel table and joins it with the desired one. Desired
// entries missing in the kernel show InKernel false.
func (r *Reconciler) Status() Status {
	kern, err := r.c.Dump()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{LastOK: r.lastOK, Changes: r.total.Ops, Failures: r.total.Failed}
	if r.lastErr != nil {
		st.LastError = r.lastErr.Error()
	}
	if err != nil {
		st.LastError = err.Error()
		kern = Table{}
	}
	for _, k := range r.desired.Keys() {
		want := r.desired[k]
		got, in := kern[k]
		ss := ServiceStatus{Service: k.String(), Origin: want.Origin, Scheduler: want.Scheduler,
			Persist: want.Timeout, QuorumUp: want.QuorumUp, InKernel: in}
		for _, d := range want.SortedDests() {
			ds := DestStatus{Addr: d.Key().String(), Method: d.Method.String(), Weight: d.Weight, Health: d.Health}
			if in {
				if kd, ok := got.Dests.Get(d.Key()); ok {
					ds.InKernel, ds.Weight, ds.ActiveConn, ds.InActConn = true, kd.Weight, kd.ActiveConns, kd.InactConns
				}
			}
			ss.Dests = append(ss.Dests, ds)
		}
		st.Services = append(st.Services, ss)
	}
	return st
}

// Format renders the status like `ipvsadm -Ln`, with a health column and
// a mark for what the kernel lacks (drift not yet repaired).
func (st Status) Format() string {
	var b strings.Builder
	b.WriteString("Prot LocalAddress:Port Scheduler Flags\n")
	b.WriteString("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health\n")
	for _, s := range st.Services {
		fmt.Fprintf(&b, "%s %s", s.Service, s.Scheduler)
		if s.Persist > 0 {
			fmt.Fprintf(&b, " persistent %d", s.Persist)
		}
		if !s.QuorumUp {
			b.WriteString(" [quorum down]")
		}
		if !s.InKernel {
			b.WriteString(" [missing in kernel]")
		}
		b.WriteByte('\n')
		for _, d := range s.Dests {
			h := d.Health
			if !d.InKernel {
				h += " [missing in kernel]"
			}
			fmt.Fprintf(&b, "  -> %-28s %-7s %-6d %-10d %-9d %s\n", d.Addr, d.Method, d.Weight, d.ActiveConn, d.InActConn, h)
		}
	}
	if st.LastError != "" {
		fmt.Fprintf(&b, "last error: %s\n", st.LastError)
	}
	return b.String()
}
