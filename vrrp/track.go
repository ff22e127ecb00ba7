package vrrp

import (
	"context"
	"fmt"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"hakeep/script"
)

// LinkWatcher reports interface state for track_interface (and for the
// instance's own interface). Watch reports the current state of each named
// link and every later change until ctx ends; report may be called from any
// goroutine. A missing link is reported down.
type LinkWatcher interface {
	Watch(ctx context.Context, names []string, report func(name string, up bool)) error
}

// ScriptExec runs a track script once and reports success. It is called
// off the event loop.
type ScriptExec func(ctx context.Context, ts TrackScript) bool

func scriptRunner(user, group string, secure bool, ts TrackScript) *script.Runner {
	r := &script.Runner{User: user, Group: group, Secure: secure}
	if ts.User != "" {
		r.User, r.Group = ts.User, ts.Group
	}
	return r
}

func defaultScriptExec(user, group string, secure bool) ScriptExec {
	return func(ctx context.Context, ts TrackScript) bool {
		r := scriptRunner(user, group, secure, ts)
		timeout := ts.Timeout
		if timeout == 0 {
			timeout = ts.Interval
		}
		return r.Run(ctx, ts.Script, nil, timeout).OK()
	}
}

type trackKind int

const (
	trackLink trackKind = iota
	trackScript
	trackFile
)

type trackEvent struct {
	kind trackKind
	name string
	ok   bool
	val  int64
}

// tracker owns the tracked objects' state (event loop only) and the
// goroutines that observe them.
type tracker struct {
	ctx     context.Context
	m       *Manager
	links   map[string]bool
	scripts map[string]bool
	files   map[string]int64

	linkNames  []string
	linkCancel context.CancelFunc
	scriptRun  map[string]runningScript
	fileRun    map[string]context.CancelFunc
}

type runningScript struct {
	def    TrackScript
	cancel context.CancelFunc
}

func newTracker(ctx context.Context, m *Manager) *tracker {
	return &tracker{ctx: ctx, m: m, links: map[string]bool{}, scripts: map[string]bool{}, files: map[string]int64{},
		scriptRun: map[string]runningScript{}, fileRun: map[string]context.CancelFunc{}}
}

// emit hands an observation to the event loop.
func (t *tracker) emit(ctx context.Context, ev trackEvent) {
	select {
	case t.m.trackCh <- ev:
	case <-ctx.Done():
	}
}

// configure starts and stops observers to match the instances.
func (t *tracker) configure(insts []*inst) {
	var links []string
	scripts := map[string]TrackScript{}
	files := map[string]bool{}
	for _, in := range insts {
		links = appendUnique(links, in.spec.Interface)
		for _, ti := range in.spec.TrackInterfaces {
			links = appendUnique(links, ti.Name)
		}
		for _, ts := range in.spec.TrackScripts {
			def := ts
			def.Weight, def.Reverse = 0, false // per-instance; not part of the run
			scripts[ts.Name] = def
		}
		for _, tf := range in.spec.TrackFiles {
			files[tf.Path] = true
		}
	}
	if !reflect.DeepEqual(links, t.linkNames) {
		if t.linkCancel != nil {
			t.linkCancel()
		}
		t.linkNames = links
		ctx, cancel := context.WithCancel(t.ctx)
		t.linkCancel = cancel
		w := t.m.opt.Links
		if w == nil {
			w = NetlinkLinks{}
		}
		// Reports made while Watch runs are the initial state: taken
		// directly (the loop cannot receive its own channel sends).
		var mu sync.Mutex
		initial, inWatch := map[string]bool{}, true
		report := func(name string, up bool) {
			mu.Lock()
			if inWatch {
				initial[name] = up
				mu.Unlock()
				return
			}
			mu.Unlock()
			t.emit(ctx, trackEvent{kind: trackLink, name: name, ok: up})
		}
		if err := w.Watch(ctx, links, report); err != nil {
			t.m.log.Error("cannot watch interfaces; track_interface is blind", "err", err)
		}
		mu.Lock()
		inWatch = false
		for k, v := range initial {
			t.links[k] = v
		}
		mu.Unlock()
	}
	for name, r := range t.scriptRun {
		if def, ok := scripts[name]; !ok || !reflect.DeepEqual(def, r.def) {
			r.cancel()
			delete(t.scriptRun, name)
			delete(t.scripts, name)
		}
	}
	for name, def := range scripts {
		if _, ok := t.scriptRun[name]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(t.ctx)
		t.scriptRun[name] = runningScript{def: def, cancel: cancel}
		t.scripts[name] = !def.InitFail
		go t.runScript(ctx, def)
	}
	for path, cancel := range t.fileRun {
		if !files[path] {
			cancel()
			delete(t.fileRun, path)
			delete(t.files, path)
		}
	}
	for path := range files {
		if _, ok := t.fileRun[path]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(t.ctx)
		t.fileRun[path] = cancel
		t.files[path] = readTrackFile(path)
		go t.pollFile(ctx, path, t.files[path])
	}
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// runScript runs one vrrp_script every interval, applying rise and fall,
// and reports changes. Scripts never run on the event loop.
func (t *tracker) runScript(ctx context.Context, def TrackScript) {
	if t.m.checkScript != nil {
		// As keepalived: a script that may not run is disabled (and so not
		// tracked), loudly, instead of failing every interval.
		if err := t.m.checkScript(def); err != nil {
			t.m.log.Error("VRRP script disabled", "script", def.Name, "err", err)
			return
		}
	}
	ok := !def.InitFail
	count := 0
	interval := def.Interval
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		res := t.m.opt.Scripts(ctx, def)
		if ctx.Err() != nil {
			return
		}
		if res == ok {
			count = 0
		} else {
			count++
			need := max(def.Fall, 1)
			if !ok {
				need = max(def.Rise, 1)
			}
			if count >= need {
				ok, count = res, 0
				t.m.log.Info("VRRP script "+def.Name+" now "+map[bool]string{true: "succeeding", false: "failing"}[ok], "script", def.Name)
				t.emit(ctx, trackEvent{kind: trackScript, name: def.Name, ok: ok})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// readTrackFile reads the number in a track file; a missing or unreadable
// file counts as 0.
func readTrackFile(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func (t *tracker) pollFile(ctx context.Context, path string, last int64) {
	tick := time.NewTicker(t.m.opt.FilePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if v := readTrackFile(path); v != last {
			last = v
			t.emit(ctx, trackEvent{kind: trackFile, name: path, val: v})
		}
	}
}

func (t *tracker) apply(ev trackEvent) {
	switch ev.kind {
	case trackLink:
		t.links[ev.name] = ev.ok
	case trackScript:
		if _, ok := t.scriptRun[ev.name]; ok {
			t.scripts[ev.name] = ev.ok
		}
	case trackFile:
		if _, ok := t.fileRun[ev.name]; ok {
			t.files[ev.name] = ev.val
		}
	}
}

// weigh applies keepalived's rule for one tracked object: weight 0 means
// FAULT when failed; a positive weight is added while up, a negative one
// while down; reverse swaps up and down.
func weigh(up bool, weight int, reverse bool) (delta int, fault bool) {
	if reverse {
		up = !up
	}
	switch {
	case weight == 0:
		return 0, !up
	case weight > 0 && up, weight < 0 && !up:
		return weight, false
	}
	return 0, false
}

// effective is the instance's priority and fault reason from its tracked
// objects: base + weights, clamped to 1..254; the owner's 255 never moves.
func (t *tracker) effective(s *InstanceSpec) (uint8, string) {
	p := int(s.Priority)
	fault := ""
	if up, ok := t.links[s.Interface]; ok && !up {
		fault = "interface " + s.Interface + " down"
	}
	for _, ti := range s.TrackInterfaces {
		up, ok := t.links[ti.Name]
		if !ok {
			continue
		}
		d, f := weigh(up, ti.Weight, ti.Reverse)
		p += d
		if f && fault == "" {
			fault = "tracked interface " + ti.Name + " down"
		}
	}
	for _, ts := range s.TrackScripts {
		ok, known := t.scripts[ts.Name]
		if !known {
			continue
		}
		d, f := weigh(ok, ts.Weight, ts.Reverse)
		p += d
		if f && fault == "" {
			fault = "track script " + ts.Name + " failed"
		}
	}
	for _, tf := range s.TrackFiles {
		v := t.files[tf.Path]
		w := int64(tf.Weight)
		if tf.Reverse {
			w = -w
		}
		if tf.Weight == 0 {
			if v != 0 && fault == "" {
				fault = "track file " + tf.Name + " non-zero"
			}
			continue
		}
		d := v * w
		if d <= -254 {
			if fault == "" {
				fault = "track file " + tf.Name + " below -253"
			}
			continue
		}
		p += int(max(min(d, 254), -254))
	}
	if s.Priority == 255 {
		return 255, fault
	}
	return uint8(max(min(p, 254), 1)), fault
}

// NetlinkLinks watches links through netlink, in namespace NS or (nil)
// the calling thread's.
type NetlinkLinks struct {
	NS *netns.NsHandle
}

// Watch implements LinkWatcher.
func (w NetlinkLinks) Watch(ctx context.Context, names []string, report func(string, bool)) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	if err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{Namespace: w.NS}); err != nil {
		return fmt.Errorf("subscribe to link changes: %w", err)
	}
	h := &netlink.Handle{}
	if w.NS != nil {
		var err error
		if h, err = netlink.NewHandleAt(*w.NS, unix.NETLINK_ROUTE); err != nil {
			close(done)
			return fmt.Errorf("netlink handle: %w", err)
		}
	}
	for _, n := range names {
		l, err := h.LinkByName(n)
		report(n, err == nil && linkUp(l))
	}
	if w.NS != nil {
		h.Close()
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-ch:
				if !ok {
					return
				}
				name := u.Attrs().Name
				if !want[name] {
					continue
				}
				report(name, u.Header.Type != unix.RTM_DELLINK && linkUp(u.Link))
			}
		}
	}()
	return nil
}

func linkUp(l netlink.Link) bool {
	a := l.Attrs()
	return a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown)
}
