package config

import (
	"hash/maphash"
	"reflect"
	"strings"
	"sync"
	"unsafe"
)

// Incremental reload (issue 13): a SIGHUP usually changes a few blocks of
// a large file, yet reading it again parsed every virtual_server. A load
// records, for each top-level virtual_server block whose meaning depends
// on its text alone, a hash of that text and what parsing it produced;
// a later load given Options.Reuse takes the virtual server of an
// unchanged block from there instead of lexing and parsing it again.
//
// A block's meaning depends on its text alone when no line of it is
// touched by the lexer's context: no $ (parameters), no @id / @^id prefix,
// no ~SEQ, no include, no quoted string (so braces and comments are found
// by a plain scan of the raw text), and it starts at the top level with
// nothing pending before it. The parse of a virtual_server reads nothing
// of the parser's state (global_defs and the other blocks are applied in
// finalize and validate, which run on the whole model as always); the one
// exception, the SMTP checker's helo_name default from global_defs, is
// excluded below. Everything else (other blocks, blocks with parameters,
// includes, conditionals) is read as before, so the result is the model a
// full load gives, positions and diagnostics included
// (TestIncrementalEqualsFull, FuzzIncremental).
//
// Nothing of the text is kept: only two 64-bit hashes per block.

// incCache is what a load recorded for the next one.
type incCache struct {
	configID string
	// blocks are the recorded blocks by their first line: a later load
	// checks a candidate by hashing as many bytes as it had, so the text
	// of an unchanged block is hashed, not scanned.
	blocks map[firstLine][]*cachedBlock
	// from maps a reused virtual server that had to be copied (its lines
	// moved) to the one it copies, so that planning can tell it is
	// unchanged (ReusedFrom).
	from map[*VirtualServer]*VirtualServer
	// reused counts the blocks this load took from the earlier one.
	reused int
}

// firstLine identifies a block's first line in a file.
type firstLine struct {
	h    uint64
	file string
}

// cachedBlock is one block's text (hashed) and what parsing it produced.
type cachedBlock struct {
	h1, h2  uint64         // of the first line, '\n' and the next restLen bytes
	restLen int            // bytes after the first line's end
	lines   int            // raw lines it spans
	line    int            // its first line
	emits   int            // logical lines it emitted (the lexer's count)
	vs      *VirtualServer // nil: the block added none (its errors say why)
	diags   []Diagnostic
	dup     bool // the same text twice in the file: not reused
}

// The seeds of the hashes (here and textHash's) live as long as the
// process, so caches of different loads compare.
var incSeed0 = maphash.MakeSeed()

func blockHashes(first, rest string) (uint64, uint64) {
	h := newTextHash()
	h.write(first)
	h.write(rest)
	return h.a, h.b
}

// incLoad is one load's reuse state.
type incLoad struct {
	prev *incCache // nil: nothing to reuse
	next *incCache
	p    *parser
	tb   *treeBuilder
}

func newIncLoad(opts Options, p *parser, tb *treeBuilder) *incLoad {
	in := &incLoad{p: p, tb: tb, next: &incCache{configID: opts.ConfigID}}
	size := 0
	if r := opts.Reuse; r != nil && r.inc != nil {
		size = len(r.inc.blocks)
		if r.inc.configID == opts.ConfigID {
			in.prev = r.inc
		}
	}
	in.next.blocks = make(map[firstLine][]*cachedBlock, size)
	return in
}

// ReusedFrom returns, for a virtual server of c, the virtual server of an
// earlier load whose block had the same text (with only its lines moved),
// when c's load took it from there as a copy; otherwise nil. A virtual
// server reused as is is the same pointer in both configurations.
func (c *Config) ReusedFrom(vs *VirtualServer) *VirtualServer {
	if c == nil || c.inc == nil {
		return nil
	}
	return c.inc.from[vs]
}

// Reused is how many virtual_server blocks c's load took from the
// configuration it was given to reuse (Options.Reuse) instead of parsing
// them.
func (c *Config) Reused() int {
	if c == nil || c.inc == nil {
		return 0
	}
	return c.inc.reused
}

// block handles the lines starting at the current one when they are a
// virtual_server block that can be reused or recorded: from the cache when
// an earlier load had the same text, else read as usual and recorded. It
// reports whether it consumed the lines (false: the caller reads the line
// as usual).
func (in *incLoad) block(lx *lexer, lines *lineReader, name, baseDir string) bool {
	if lx.tooBig || !in.tb.idle() {
		return false
	}
	first := lines.line
	t := trimBlank(first)
	if !strings.HasPrefix(t, "virtual_server") || len(t) == len("virtual_server") || (t[len("virtual_server")] != ' ' && t[len("virtual_server")] != '\t') {
		return false
	}
	fk := firstLine{h: maphash.String(incSeed0, first), file: name}
	rest := lines.text
	startLine := lines.n
	if c := in.prev.lookup(fk, first, rest); c != nil && lx.lineNo+c.emits <= maxTotalLines && in.reuse(lx, c, fk, startLine) {
		lines.text = rest[c.restLen:]
		lines.n += c.lines - 1
		return true
	}
	end, extra, ok := scanBlock(first, rest)
	if !ok {
		return false
	}
	// Read it as usual, and record what it gave when it was one
	// self-contained top-level statement.
	nd, nvs, ntop, nl := len(*in.p.diags), len(in.p.cfg.VirtualServers), in.p.tops, lx.lineNo
	lx.lexLine(lines, name, baseDir)
	for range extra {
		if !lines.next() {
			return true
		}
		lx.lexLine(lines, name, baseDir)
	}
	if lines.n != startLine+extra || len(lines.text) != len(rest)-end || in.p.tops != ntop+1 || !in.tb.idle() || lx.tooBig {
		return true
	}
	added := len(in.p.cfg.VirtualServers) - nvs
	diags := (*in.p.diags)[nd:]
	if added > 1 || len(*in.p.diags) >= maxDiags {
		return true
	}
	for _, d := range diags {
		if d.Pos.File != name || strings.Contains(d.Msg, name+":") {
			return true // a message naming another position: not shifted by a copy
		}
	}
	c := &cachedBlock{restLen: end, line: startLine, lines: extra + 1, emits: lx.lineNo - nl, diags: append([]Diagnostic(nil), diags...)}
	c.h1, c.h2 = blockHashes(first, rest[:end])
	if added == 1 {
		c.vs = in.p.cfg.VirtualServers[nvs]
		if usesGlobal(c.vs) {
			return true
		}
	}
	in.next.add(fk, c)
	return true
}

// lookup finds the recorded block with this first line whose text is the
// same as what follows it in rest, ending on a line's end as it did.
func (ic *incCache) lookup(fk firstLine, first, rest string) *cachedBlock {
	if ic == nil {
		return nil
	}
	for _, c := range ic.blocks[fk] {
		if c.dup || c.restLen > len(rest) {
			continue
		}
		if c.restLen > 0 && rest[c.restLen-1] != '\n' && c.restLen != len(rest) {
			continue // it ended the file without a newline; here the line goes on
		}
		if h1, h2 := blockHashes(first, rest[:c.restLen]); h1 == c.h1 && h2 == c.h2 {
			return c
		}
	}
	return nil
}

// add records a block; the same text twice in a file is not reused (each
// must be its own object).
func (ic *incCache) add(fk firstLine, c *cachedBlock) {
	for _, o := range ic.blocks[fk] {
		if o.h1 == c.h1 && o.h2 == c.h2 && o.restLen == c.restLen {
			o.dup = true
			return
		}
	}
	ic.blocks[fk] = append(ic.blocks[fk], c)
}

// reuse applies a cached block at startLine: its virtual server (copied
// with its positions moved when its lines moved), its diagnostics, and the
// lexer's and tree builder's state after it. false: it cannot (the caller
// reads the block as usual).
func (in *incLoad) reuse(lx *lexer, c *cachedBlock, fk firstLine, startLine int) bool {
	delta := startLine - c.line
	nc := *c
	nc.line = startLine
	if delta != 0 {
		if c.vs != nil {
			vs, ok := shiftedCopy(c.vs, delta)
			if !ok {
				return false
			}
			nc.vs = vs
		}
		nc.diags = make([]Diagnostic, len(c.diags))
		for i, d := range c.diags {
			d.Pos.Line += delta
			nc.diags[i] = d
		}
		if c.vs != nil {
			if in.next.from == nil {
				in.next.from = map[*VirtualServer]*VirtualServer{}
			}
			in.next.from[nc.vs] = c.vs
		}
	}
	for _, d := range nc.diags {
		addDiag(in.p.diags, d)
	}
	if nc.vs != nil {
		in.p.cfg.VirtualServers = append(in.p.cfg.VirtualServers, nc.vs)
	}
	in.p.tops++
	in.next.reused++
	lx.lineNo += c.emits
	in.tb.stack[0].last = emitted
	in.next.add(fk, &nc)
	return true
}

// usesGlobal reports whether a virtual server holds something finalize
// fills from global_defs (an SMTP checker's helo_name), which would make
// its meaning depend on more than its text.
func usesGlobal(v *VirtualServer) bool {
	for _, r := range v.RealServers {
		for _, c := range r.Checkers {
			if c.Kind == CheckSMTP {
				return true
			}
		}
	}
	return false
}

// scanBlock finds the end of a block that starts on line first and goes
// on in rest: it returns the offset in rest just after its last line, how
// many lines of rest it spans, and ok when the block closes on a line with
// nothing after the closing brace and no line has anything the lexer
// treats by context ($, @, ~, quotes, include).
func scanBlock(first, rest string) (end, extra int, ok bool) {
	var b blockScan
	e, ok := b.feed(first)
	if !ok {
		return 0, 0, false
	}
	if e < 0 {
		if e, ok = b.feed(rest); !ok || e < 0 {
			return 0, 0, false
		}
		end = e
		extra = strings.Count(rest[:end], "\n")
		if end > 0 && rest[end-1] != '\n' {
			extra++ // the last line of the file, without a newline
		}
	}
	if strings.Contains(first, "include") || strings.Contains(rest[:end], "include") {
		return 0, 0, false
	}
	return end, extra, true
}

// blockScan follows braces through raw text the way split finds them.
type blockScan struct {
	depth  int
	opened bool
}

// scanSpecial marks the bytes blockScan stops at.
var scanSpecial = func() (t [256]bool) {
	for _, c := range "\n{}$\"!#@~" {
		t[c] = true
	}
	return t
}()

// feed scans s, whole lines (the end of s ends a line too). It returns the
// offset just after the line on which the block closed, or -1 when it is
// still open at the end of s; ok is false for text it cannot vouch for.
func (b *blockScan) feed(s string) (end int, ok bool) {
	lineStart := 0
	for i := 0; ; i++ {
		for i < len(s) && !scanSpecial[s[i]] {
			i++
		}
		if i == len(s) {
			return -1, true
		}
		switch c := s[i]; c {
		case '\n':
			lineStart = i + 1
		case '$', '"':
			return 0, false
		case '@', '~':
			if len(trimBlank(s[lineStart:i])) == 0 {
				return 0, false // a conditional or ~SEQ line
			}
		case '!', '#':
			if i == lineStart || byteClass[s[i-1]] == classBlank || byteClass[s[i-1]] == classBrace {
				// A comment to the end of the line.
				j := strings.IndexByte(s[i:], '\n')
				if j < 0 {
					return -1, true
				}
				i += j - 1
			}
		case '{', '}':
			if c == '{' {
				if b.depth++; b.depth > 100 {
					return 0, false
				}
				b.opened = true
				continue
			}
			if b.depth--; b.depth < 0 {
				return 0, false
			}
			if b.depth > 0 || !b.opened {
				continue
			}
			// Closed: only blanks or a comment may follow on the line.
			tail := s[i+1:]
			end := len(s)
			if j := strings.IndexByte(tail, '\n'); j >= 0 {
				tail, end = tail[:j], i+1+j+1
			}
			k := 0
			for k < len(tail) && byteClass[tail[k]] == classBlank {
				k++
			}
			if k < len(tail) && tail[k] != '!' && tail[k] != '#' {
				return 0, false
			}
			return end, true
		}
	}
}

// shiftedCopy copies v with every position moved by delta lines. Parts
// without positions are shared (the model is not changed after a load).
// ok is false for a model it cannot copy (an interface value in it).
func shiftedCopy(v *VirtualServer, delta int) (_ *VirtualServer, ok bool) {
	out := reflect.New(reflect.TypeFor[VirtualServer]())
	out.Elem().Set(reflect.ValueOf(v).Elem())
	s := shifter{delta: delta, seen: map[unsafe.Pointer]reflect.Value{}}
	s.fix(out.Elem())
	if s.failed {
		return nil, false
	}
	return out.Interface().(*VirtualServer), true
}

type shifter struct {
	delta  int
	seen   map[unsafe.Pointer]reflect.Value // copies made, by original
	failed bool
}

var posType = reflect.TypeFor[Pos]()

// hasPosCache: whether a type holds a Pos anywhere (by value or pointer).
var (
	hasPosMu    sync.Mutex
	hasPosCache = map[reflect.Type]bool{}
)

func hasPos(t reflect.Type) bool {
	hasPosMu.Lock()
	defer hasPosMu.Unlock()
	return hasPosLocked(t)
}

func hasPosLocked(t reflect.Type) bool {
	if v, ok := hasPosCache[t]; ok {
		return v
	}
	hasPosCache[t] = true // in a cycle: assume so (a copy too many is harmless)
	r := false
	switch t.Kind() {
	case reflect.Struct:
		if t == posType {
			r = true
			break
		}
		for i := range t.NumField() {
			r = r || hasPosLocked(t.Field(i).Type)
		}
	case reflect.Pointer, reflect.Slice, reflect.Array:
		r = hasPosLocked(t.Elem())
	case reflect.Map:
		r = hasPosLocked(t.Key()) || hasPosLocked(t.Elem())
	case reflect.Interface:
		r = true // unknown: refused by fix when set
	}
	hasPosCache[t] = r
	return r
}

// fix makes v (settable, already a shallow copy) a copy with positions
// moved: what holds a position is copied, the rest shared.
func (s *shifter) fix(v reflect.Value) {
	t := v.Type()
	if !hasPos(t) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == posType {
			if l := v.Field(1); l.Int() != 0 {
				l.SetInt(l.Int() + int64(s.delta))
			}
			return
		}
		for i := range t.NumField() {
			f := v.Field(i)
			if !f.CanSet() {
				f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
			}
			s.fix(f)
		}
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		if c, ok := s.seen[v.UnsafePointer()]; ok {
			v.Set(c)
			return
		}
		c := reflect.New(t.Elem())
		c.Elem().Set(v.Elem())
		s.seen[v.UnsafePointer()] = c
		s.fix(c.Elem())
		v.Set(c)
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		c := reflect.MakeSlice(t, v.Len(), v.Len())
		reflect.Copy(c, v)
		for i := range c.Len() {
			s.fix(c.Index(i))
		}
		v.Set(c)
	case reflect.Array:
		for i := range v.Len() {
			s.fix(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		c := reflect.MakeMapWithSize(t, v.Len())
		it := v.MapRange()
		for it.Next() {
			k := reflect.New(t.Key()).Elem()
			k.Set(it.Key())
			s.fix(k)
			e := reflect.New(t.Elem()).Elem()
			e.Set(it.Value())
			s.fix(e)
			c.SetMapIndex(k, e)
		}
		v.Set(c)
	case reflect.Interface:
		if !v.IsNil() {
			s.failed = true // no such field in the model today: the block is read again
		}
	}
}
