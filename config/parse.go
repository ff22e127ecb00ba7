package config

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Options controls how a configuration is read.
type Options struct {
	// ConfigID selects "@id" / "@^id" lines (keepalived's -i). The caller
	// sets it (hakeepd defaults it to the short hostname); empty matches no
	// "@id" line and every "@^id" line.
	ConfigID string
	// BaseDir resolves relative includes for Parse (Load uses the
	// directory of each including file).
	BaseDir string
	// NoInclude refuses include lines (e.g. for a pushed config whose
	// includes would name files on another machine).
	NoInclude bool
	// Reuse is an earlier load (the running configuration, for a reload):
	// virtual_server blocks whose text is unchanged are taken from it
	// instead of parsed again (incremental.go). The result is the same.
	Reuse *Config
}

// Load reads, parses and validates the configuration file at path.
// It never panics; the returned Config is nil only when nothing could be
// read at all.
func Load(path string, opts Options) (*Config, Diagnostics) {
	var diags Diagnostics
	lx, p, tb := newPipeline(opts, &diags)
	cfg, ds := run(p, &diags, func() {
		lx.readFile(path, Pos{})
		tb.finish()
	})
	if len(lx.files) == 0 {
		return nil, ds
	}
	cfg.Files = lx.files
	return cfg, ds
}

// Parse parses and validates configuration text held in memory; name is
// used in positions. Includes resolve against opts.BaseDir (the current
// directory when empty) unless opts.NoInclude.
func Parse(name string, data []byte, opts Options) (*Config, Diagnostics) {
	var diags Diagnostics
	lx, p, tb := newPipeline(opts, &diags)
	base := opts.BaseDir
	if base == "" {
		base = "."
	}
	if abs, err := filepath.Abs(filepath.Join(base, name)); err == nil {
		lx.stack = []string{abs}
	}
	lx.files = []string{name}
	cfg, ds := run(p, &diags, func() {
		lx.lexText(name, string(data), base)
		tb.finish()
	})
	cfg.Files = lx.files
	return cfg, ds
}

// newPipeline connects lexer -> tree builder -> parser: each top-level
// statement is parsed as soon as it is complete.
func newPipeline(opts Options, diags *Diagnostics) (*lexer, *parser, *treeBuilder) {
	p := &parser{diags: diags, opts: opts, cfg: &Config{Global: defaultGlobal()}}
	tb := newTreeBuilder(diags, p.topNode)
	lx := &lexer{opts: opts, diags: diags, emit: tb.line, idle: tb.idle}
	lx.inc = newIncLoad(opts, p, tb)
	p.cfg.inc = lx.inc.next
	return lx, p, tb
}

func run(p *parser, diags *Diagnostics, read func()) (cfg *Config, ds Diagnostics) {
	defer func() {
		// Never panic on any input: a bug here becomes an error diagnostic.
		if r := recover(); r != nil {
			addDiag(diags, Diagnostic{Severity: Error, Msg: fmt.Sprintf("internal error reading configuration: %v", r)})
			if cfg == nil {
				cfg = &Config{}
			}
			ds = *diags
		}
	}()
	read()
	p.finalize()
	p.validate()
	return p.cfg, *diags
}

// parser turns statements into the model.
type parser struct {
	diags *Diagnostics
	opts  Options
	cfg   *Config

	// What was set explicitly, for inheritance applied in finalize.
	instGARP    map[*VRRPInstance]*garpOverride
	instVersion map[*VRRPInstance]bool
	instAccept  map[*VRRPInstance]bool
	instPrio    map[*VRRPInstance]bool

	globalLowerDelay, globalLowerRepeat bool // vrrp_garp_lower_prio_* written
	advertRaw                           map[*VRRPInstance]float64
	removedScript                       map[string]bool
	slabs                               slabs
	hasGlobal                           bool
	tops                                int // top-level statements parsed (incremental.go)
	nextRulePref                        int // keepalived's default rule preferences count down
}

func (p *parser) errorf(pos Pos, format string, args ...any) {
	addDiag(p.diags, Diagnostic{Pos: pos, Severity: Error, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(pos Pos, format string, args ...any) {
	addDiag(p.diags, Diagnostic{Pos: pos, Severity: Warning, Msg: fmt.Sprintf(format, args...)})
}

// handler applies one keyword to its target.
type handler[T any] func(p *parser, n *node, t T)

// table maps the keywords of one kind of block to their handlers.
type table[T any] map[string]handler[T]

// dispatch applies each statement of a block with tab; unknown keywords
// are warnings naming the nearest known keyword.
func dispatch[T any](p *parser, nodes []*node, tab table[T], t T, where string) {
	ni := notImplemented[notImplBlock(where)] // once per block, not per line
	for _, n := range nodes {
		dispatchNI(p, n, tab, t, where, ni)
	}
}

func dispatchOne[T any](p *parser, n *node, tab table[T], t T, where string) {
	dispatchNI(p, n, tab, t, where, notImplemented[notImplBlock(where)])
}

// dispatchNI is dispatchOne with where's not-implemented keywords.
func dispatchNI[T any](p *parser, n *node, tab table[T], t T, where string, notImpl map[string]bool) {
	if len(n.words) == 0 {
		return
	}
	h, ok := tab[n.kw()]
	if !ok {
		p.unknown(n, keysOf(tab), where)
		return
	}
	if notImpl[n.kw()] {
		p.warnf(n.pos(), "%s: accepted, not implemented in hakeepd", n.kw())
	}
	h(p, n, t)
}

func keysOf[T any](tab table[T]) []string {
	out := make([]string, 0, len(tab))
	for k := range tab {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (p *parser) unknown(n *node, known []string, where string) {
	if _, top := topTable[n.kw()]; top && where != "the top level" {
		// A top-level block inside another one: almost always a '}'
		// missing above. keepalived only warns and drops the block; that
		// silently loses e.g. a whole vrrp_instance, so this is an error.
		p.errorf(n.pos(), "'%s' can not be inside %s: is a '}' missing before this line?", n.kw(), where)
		return
	}
	msg := fmt.Sprintf("unknown keyword '%s' in %s", n.kw(), where)
	if s := nearest(n.kw(), known); s != "" {
		msg += fmt.Sprintf(" (did you mean '%s'?)", s)
	}
	if n.hasBlock {
		msg += "; its block is skipped"
	}
	p.warnf(n.pos(), "%s", msg)
}

// --- argument helpers ---------------------------------------------------

// noBlock warns when a simple keyword is followed by a block.
func (p *parser) noBlock(n *node) {
	if n.hasBlock {
		p.warnf(n.pos(), "'%s' takes no block; the block is ignored", n.kw())
	}
}

// needBlock reports whether n has a block, with an error if not.
func (p *parser) needBlock(n *node) bool {
	if !n.hasBlock {
		p.errorf(n.pos(), "'%s' needs a { } block", n.kw())
		return false
	}
	return true
}

// arg returns the i-th argument (1-based), or an error when missing.
func (p *parser) arg(n *node, i int) (string, bool) {
	p.noBlock(n)
	if len(n.words) <= i {
		p.errorf(n.pos(), "'%s' is missing its value", n.kw())
		return "", false
	}
	return n.words[i], true
}

// rest returns all arguments joined by spaces (script command lines).
func (p *parser) rest(n *node) (string, bool) {
	p.noBlock(n)
	if len(n.words) < 2 {
		p.errorf(n.pos(), "'%s' is missing its value", n.kw())
		return "", false
	}
	if len(n.words) == 2 {
		return n.words[1], true
	}
	return strings.Join(n.args(), " "), true
}

func (p *parser) intArg(n *node, lo, hi int) (int, bool) {
	s, ok := p.arg(n, 1)
	if !ok {
		return 0, false
	}
	return p.parseInt(n.pos(), n.kw(), s, lo, hi)
}

func (p *parser) parseInt(pos Pos, kw, s string, lo, hi int) (int, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.errorf(pos, "%s: bad number '%s'", kw, s)
		return 0, false
	}
	if v < int64(lo) || v > int64(hi) {
		p.errorf(pos, "%s: %d is out of range [%d, %d]", kw, v, lo, hi)
		return 0, false
	}
	return int(v), true
}

// secondsArg reads a time in (possibly fractional) seconds, within
// [lo, hi] seconds.
func (p *parser) secondsArg(n *node, lo, hi float64) (time.Duration, bool) {
	s, ok := p.arg(n, 1)
	if !ok {
		return 0, false
	}
	f, ok := p.parseSeconds(n.pos(), n.kw(), s, lo, hi)
	return time.Duration(math.Round(f * float64(time.Second))), ok
}

func (p *parser) parseSeconds(pos Pos, kw, s string, lo, hi float64) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(s, "xXpP_") {
		p.errorf(pos, "%s: bad number '%s'", kw, s)
		return 0, false
	}
	if f < lo || f > hi {
		p.errorf(pos, "%s: %s is out of range [%g, %g] seconds", kw, s, lo, hi)
		return 0, false
	}
	return f, true
}

// flag handles keywords without a value; an optional on/off/yes/no/true/
// false/0/1 argument is honoured.
func (p *parser) flag(n *node) bool {
	p.noBlock(n)
	if len(n.words) < 2 {
		return true
	}
	switch strings.ToLower(n.words[1]) {
	case "on", "yes", "true", "1":
		return true
	case "off", "no", "false", "0":
		return false
	}
	p.errorf(n.pos(), "%s: want on or off, got '%s'", n.kw(), n.words[1])
	return true
}

func (p *parser) addrArg(n *node, i int) (netip.Addr, bool) {
	s, ok := p.arg(n, i)
	if !ok {
		return netip.Addr{}, false
	}
	return p.parseAddr(n.pos(), n.kw(), s)
}

func (p *parser) parseAddr(pos Pos, kw, s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		p.errorf(pos, "%s: bad IP address '%s'", kw, s)
		return netip.Addr{}, false
	}
	return a, true
}

func (p *parser) portArg(pos Pos, kw, s string) (uint16, bool) {
	v, ok := p.parseInt(pos, kw, s, 0, 65535)
	return uint16(v), ok
}

// other records an accepted keyword the model has no field for.
func other(m *map[string]string, n *node) {
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[n.kw()] = strings.Join(n.args(), " ")
}

// --- top level ------------------------------------------------------------

var topTable table[*Config]

func init() {
	topTable = table[*Config]{
		"global_defs":          func(p *parser, n *node, c *Config) { p.globalDefs(n) },
		"vrrp_script":          func(p *parser, n *node, c *Config) { p.vrrpScript(n) },
		"vrrp_track_file":      func(p *parser, n *node, c *Config) { p.trackFileDef(n) },
		"vrrp_instance":        func(p *parser, n *node, c *Config) { p.vrrpInstance(n) },
		"vrrp_sync_group":      func(p *parser, n *node, c *Config) { p.syncGroup(n) },
		"virtual_server":       func(p *parser, n *node, c *Config) { p.virtualServer(n) },
		"virtual_server_group": func(p *parser, n *node, c *Config) { p.vsGroup(n) },
		"static_ipaddress": func(p *parser, n *node, c *Config) {
			if p.needBlock(n) {
				c.StaticAddresses = append(c.StaticAddresses, p.vipList(n.block, "static_ipaddress")...)
			}
		},
		"static_routes": func(p *parser, n *node, c *Config) {
			if p.needBlock(n) {
				c.StaticRoutes = append(c.StaticRoutes, p.routeList(n.block)...)
			}
		},
		"static_rules": func(p *parser, n *node, c *Config) {
			if p.needBlock(n) {
				c.StaticRules = append(c.StaticRules, p.ruleList(n.block)...)
			}
		},
		"cluster": func(p *parser, n *node, c *Config) { p.cluster(n) },
		// keepalived 2.2 reads SSL { } at the top level.
		"SSL": func(p *parser, n *node, c *Config) { globalTable["SSL"](p, n, &c.Global) },
		// Accepted top-level blocks hakeep has no use for (keepalived's
		// SNMP/BFD/linkbeat extras): a warning, never a silent drop.
		"bfd_instance":        acceptedBlock,
		"linkbeat_interfaces": acceptedBlock,
		"garp_group":          acceptedBlock,
		"vrrp_track_process":  acceptedBlock,
		"track_group":         acceptedBlock,
		"net_namespace":       acceptedSimple,
		"instance":            acceptedSimple,
		// keepalived 2.2 reads these outside global_defs too.
		"linkbeat_use_polling":     acceptedSimple,
		"use_pid_dir":              acceptedSimple,
		"child_wait_time":          acceptedSimple,
		"namespace_with_ipsets":    acceptedSimple,
		"net_namespace_ipvs":       acceptedSimple,
		"interface_up_down_delays": acceptedSimple,
	}
}

// acceptedBlock and acceptedSimple do nothing: dispatchOne has already
// warned (notImplemented).
func acceptedBlock(p *parser, n *node, _ *Config) {}

func acceptedSimple(p *parser, n *node, _ *Config) {}

func (p *parser) topNode(n *node) {
	p.tops++
	dispatchOne(p, n, topTable, p.cfg, "the top level")
}

// --- helpers used by several blocks ----------------------------------------

func hostnameDefault() string {
	h, _ := os.Hostname()
	if i := strings.IndexByte(h, '.'); i > 0 {
		h = h[:i]
	}
	return h
}

// slabs carve the objects a large file has one of per real server from
// 8 KB chunks: one allocation per 50-1,000 instead of one each. Everything carved is
// kept by the model (a chunk lives as long as any object in it).
type slabs struct {
	realServers  slab[RealServer]
	checkers     slab[Checker]
	checkerHTTP  slab[CheckerHTTP]
	urls         slab[URL]
	checkerPtrs  slab[*Checker]
	urlPtrs      slab[*URL]
	statusRanges slab[StatusRange]
	// A virtual server's checkers, their HTTP fields and urls as read,
	// before keepCheckers and keepHTTP keep the distinct ones: reused for
	// each virtual server.
	checkerScratch slab[Checker]
	httpScratch    slab[CheckerHTTP]
	urlPtrScratch  slab[*URL]
	urlScratch     slab[URL]
	statusScratch  slab[StatusRange]
}

type slab[T any] struct{ buf []T }

// httpFields is Checker.httpFields carving from the scratch (keepHTTP
// keeps it, or an alike one).
func (p *parser) httpFields(c *Checker) *CheckerHTTP {
	if c.CheckerHTTP == nil {
		c.CheckerHTTP = p.slabs.httpScratch.new()
	}
	return c.CheckerHTTP
}

// slabBytes is a chunk's size: as many objects as fit in 8 KB, less the
// 8-byte header the runtime puts before an object of over 512 bytes with
// pointers (a chunk of 64 112-byte real servers, 7,176 bytes with that
// header, took an 8 KB size class: 12% of it unused).
const slabBytes = 8192 - 8

// new returns a zero T from the current chunk.
func (s *slab[T]) new() *T {
	if len(s.buf) == cap(s.buf) {
		s.buf = make([]T, 0, max(1, slabBytes/int(unsafe.Sizeof(*new(T)))))
	}
	s.buf = s.buf[:len(s.buf)+1]
	return &s.buf[len(s.buf)-1]
}

// reset makes the current chunk's objects free for carving again: only
// when nothing points into it any more.
func (s *slab[T]) reset() {
	clear(s.buf) // no stale pointers for the collector to follow
	s.buf = s.buf[:0]
}

// slabList is a copy of list, its first element carved from the slab (as
// appendSlab does; nil for an empty list).
func slabList[T any](s *slab[T], list []T) []T {
	var out []T
	for _, v := range list {
		out = appendSlab(s, out, v)
	}
	return out
}

// appendSlab is append(list, v), but a list's first element is carved from
// the slab (as a slice of capacity 1: a second element reallocates, as
// append would).
func appendSlab[T any](s *slab[T], list []T, v T) []T {
	if list != nil {
		return append(list, v)
	}
	*s.new() = v
	return s.buf[len(s.buf)-1 : len(s.buf) : len(s.buf)]
}
