package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// A logical line is its words plus where unquoted braces stand between
// them (a quoted "{" is a plain word), so the parser never sees braces.
type braceAt struct {
	before int  // index in words of the word after the brace
	open   bool // '{' (else '}')
}

// maxIncludeDepth bounds include nesting (keepalived has no limit, but a
// cycle is reported before this is reached; this guards glob fan-out).
const maxIncludeDepth = 32

// Bounds on expansion, so that a small hostile file can not make the
// reader run for ever or exhaust memory (the real configs we know of,
// 40,000 real servers, are about 500,000 lines).
const (
	maxSeqLines   = 100000  // lines one ~SEQ may produce
	maxTotalLines = 5000000 // logical lines in the whole configuration
	maxSeqTotal   = 200000  // lines all ~SEQs together may produce
	maxLineLen    = 1 << 20 // bytes of one line after $PARAM substitution
)

// lexer turns files into tokens: it handles comments, quoting, include,
// @id / @^id lines, $NAME=value parameters and ~SEQ lines, in the order
// keepalived does (a line's conditional prefix first, then definitions,
// then substitution, then include).
type lexer struct {
	opts   Options
	diags  *Diagnostics
	params map[string]string
	// emit receives each logical line's words and braces (the tree
	// builder); words is the line's own, braces only valid during the call.
	emit func(pos Pos, file *string, words []string, braces []braceAt)
	// idle reports whether every line emitted so far has been parsed and
	// dropped (the tree builder holds nothing), so the word arena can be
	// reused from its start.
	idle   func() bool
	intern interner
	arena  []string
	braces []braceAt
	file   *string // name of the file being read, shared by its nodes
	lineNo int
	stack  []string // files being read, for cycle detection
	files  []string

	inc *incLoad // reuse of unchanged blocks (nil: none)

	seqLines int  // lines produced by ~SEQ so far
	tooBig   bool // maxTotalLines was reached (reported once)
	tooLong  bool // a substitution hit maxLineLen
}

func (lx *lexer) errorf(pos Pos, format string, args ...any) {
	addDiag(lx.diags, Diagnostic{Pos: pos, Severity: Error, Msg: fmt.Sprintf(format, args...)})
}

func (lx *lexer) warnf(pos Pos, format string, args ...any) {
	addDiag(lx.diags, Diagnostic{Pos: pos, Severity: Warning, Msg: fmt.Sprintf(format, args...)})
}

// readHook, when set (tests), sees each file's bytes as read.
var readHook func(data []byte)

// readFile lexes one file from disk (the main file or an include).
func (lx *lexer) readFile(path string, from Pos) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	for _, f := range lx.stack {
		if f == abs {
			lx.errorf(from, "include cycle: %s includes itself (via %s)", path, strings.Join(lx.stack, " -> "))
			return
		}
	}
	if len(lx.stack) >= maxIncludeDepth {
		lx.errorf(from, "includes nested deeper than %d at %s", maxIncludeDepth, path)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if from.File == "" {
			lx.errorf(Pos{File: path}, "read configuration: %v", err)
		} else {
			lx.errorf(from, "include %s: %v", path, err)
		}
		return
	}
	if readHook != nil {
		readHook(data)
	}
	lx.stack = append(lx.stack, abs)
	lx.files = append(lx.files, path)
	// The bytes are ours and never written again, so the lines can share
	// them instead of copying a possibly large file; the words do not (they
	// are interned copies), so the file is garbage once it is read.
	lx.lexText(path, unsafe.String(unsafe.SliceData(data), len(data)), filepath.Dir(path))
	lx.stack = lx.stack[:len(lx.stack)-1]
}

// lexText lexes the text of one file; baseDir resolves relative includes.
func (lx *lexer) lexText(name string, text string, baseDir string) {
	lines := lineReader{text: text}
	prev := lx.file
	lx.file = &name
	defer func() { lx.file = prev }()
	for lines.next() {
		if lx.inc != nil && lx.inc.block(lx, &lines, name, baseDir) {
			continue // a virtual_server block, reused or recorded (incremental.go)
		}
		lx.lexLine(&lines, name, baseDir)
	}
}

// lexLine lexes the current line of lines (and the lines a definition
// continues on).
func (lx *lexer) lexLine(lines *lineReader, name, baseDir string) {
	pos := Pos{File: name, Line: lines.n}
	line := lines.line
	// @id / @^id: the line applies only to (or to all but) one config_id.
	line, ok := lx.conditional(line)
	if !ok {
		return
	}
	trimmed := trimBlank(line)
	if name, value, isDef := paramDef(trimmed); isDef {
		// A definition ending in '\' continues on the next line(s).
		for strings.HasSuffix(value, "\\") && lines.next() {
			next, ok := lx.conditional(lines.line)
			value = strings.TrimRight(strings.TrimSuffix(value, "\\"), " \t")
			if ok {
				value += "\n" + strings.TrimSpace(next)
			}
		}
		value = strings.TrimSuffix(value, "\\")
		if lx.params == nil {
			lx.params = map[string]string{}
		}
		lx.params[name] = lx.substitute(strings.TrimSpace(value), 0)
		if lx.tooLong {
			lx.tooLong = false
			lx.params[name] = ""
			lx.errorf(pos, "$%s is longer than %d bytes after substitution", name, maxLineLen)
		}
		return
	}
	if strings.HasPrefix(trimmed, "~SEQ(") {
		lx.seq(pos, trimmed, baseDir)
		return
	}
	lx.logicalLine(pos, line, baseDir)
}

// logicalLine substitutes parameters in one line (which may then become
// several lines, for multi-line parameters) and lexes the result.
func (lx *lexer) logicalLine(pos Pos, line, baseDir string) {
	if lx.tooBig {
		return
	}
	if strings.Contains(line, "$") {
		line = lx.substitute(line, 0)
		if lx.tooLong {
			lx.tooLong = false
			lx.errorf(pos, "line is longer than %d bytes after $parameter substitution", maxLineLen)
			return
		}
	}
	for {
		l, rest, more := strings.Cut(line, "\n")
		line = rest
		if lx.idle != nil && lx.idle() {
			lx.arena = lx.arena[:0]
		}
		words, braces, isInclude := lx.split(pos, l)
		if len(words) > 0 || len(braces) > 0 {
			if isInclude {
				lx.include(pos, words[1:], baseDir)
			} else {
				lx.lineNo++
				if lx.lineNo > maxTotalLines {
					lx.tooBig = true
					lx.errorf(pos, "configuration is longer than %d lines; the rest is not read", maxTotalLines)
					return
				}
				lx.emit(pos, lx.file, words, braces)
			}
		}
		if !more {
			return
		}
	}
}

// lineReader walks text line by line without splitting it up front.
type lineReader struct {
	text string
	line string
	n    int // 1-based number of line
}

func (r *lineReader) next() bool {
	if r.text == "" {
		return false
	}
	i := strings.IndexByte(r.text, '\n')
	if i < 0 {
		r.line, r.text = r.text, ""
	} else {
		r.line, r.text = r.text[:i], r.text[i+1:]
	}
	r.line = strings.TrimSuffix(r.line, "\r")
	r.n++
	return true
}

// conditional applies an "@id " or "@^id " prefix: it returns the rest of
// the line and whether the line applies to this config_id.
func (lx *lexer) conditional(line string) (string, bool) {
	t := trimBlank(line)
	if !strings.HasPrefix(t, "@") {
		return line, true
	}
	t = t[1:]
	neg := false
	if strings.HasPrefix(t, "^") {
		neg, t = true, t[1:]
	}
	end := strings.IndexAny(t, " \t")
	id, rest := t, ""
	if end >= 0 {
		id, rest = t[:end], t[end:]
	}
	match := id == lx.opts.ConfigID
	if match == neg {
		return "", false
	}
	return rest, true
}

// paramDef recognises "$NAME=value".
func paramDef(t string) (name, value string, ok bool) {
	if !strings.HasPrefix(t, "$") {
		return "", "", false
	}
	eq := strings.IndexByte(t, '=')
	if eq < 2 {
		return "", "", false
	}
	name = t[1:eq]
	if !validParamName(name) {
		return "", "", false
	}
	return name, t[eq+1:], true
}

func validParamName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// substitute replaces $NAME and ${NAME} with defined parameters; unknown
// names are left as written (so "$1" in a script survives), as keepalived
// does. depth bounds parameters that refer to themselves.
func (lx *lexer) substitute(s string, depth int) string {
	if len(lx.params) == 0 || depth > 8 || !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		var name string
		var end int
		if s[i+1] == '{' {
			close := strings.IndexByte(s[i+2:], '}')
			if close < 0 {
				b.WriteByte(s[i])
				continue
			}
			name, end = s[i+2:i+2+close], i+2+close+1
		} else {
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			name, end = s[i+1:j], j
		}
		v, ok := lx.params[name]
		if !ok {
			b.WriteByte(s[i])
			continue
		}
		b.WriteString(v)
		changed = true
		i = end - 1
		if b.Len() > maxLineLen {
			lx.tooLong = true
			return ""
		}
	}
	if !changed {
		return s
	}
	return lx.substitute(b.String(), depth+1)
}

// seq expands "~SEQ(VAR, [START, [STEP,]] END) text": text once per value,
// with $VAR set to it.
func (lx *lexer) seq(pos Pos, t, baseDir string) {
	close := strings.IndexByte(t, ')')
	if close < 0 {
		lx.errorf(pos, "~SEQ: missing ')'")
		return
	}
	parts := strings.Split(t[len("~SEQ("):close], ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(lx.substitute(strings.TrimSpace(parts[i]), 0))
	}
	rest := t[close+1:]
	if len(parts) < 2 || len(parts) > 4 || !validParamName(parts[0]) {
		lx.errorf(pos, "~SEQ: want ~SEQ(NAME, [START, [STEP,]] END), got %q", t[:close+1])
		return
	}
	nums := make([]int64, 0, 3)
	for _, p := range parts[1:] {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			lx.errorf(pos, "~SEQ: bad number '%s'", p)
			return
		}
		nums = append(nums, n)
	}
	start, step, end := int64(1), int64(1), nums[len(nums)-1]
	switch len(nums) {
	case 2:
		start = nums[0]
	case 3:
		start, step = nums[0], nums[1]
	}
	if step == 0 || (end-start)/step > maxSeqLines || (end-start)/step < 0 && (start-end)/-step > maxSeqLines {
		lx.errorf(pos, "~SEQ: step %d from %d to %d is not a bounded sequence", step, start, end)
		return
	}
	old, had := lx.params[parts[0]]
	if lx.params == nil {
		lx.params = map[string]string{}
	}
	for v := start; (step > 0 && v <= end) || (step < 0 && v >= end); v += step {
		if lx.seqLines++; lx.seqLines > maxSeqTotal {
			lx.errorf(pos, "~SEQ: more than %d lines in all; the rest is not expanded", maxSeqTotal)
			break
		}
		lx.params[parts[0]] = strconv.FormatInt(v, 10)
		lx.logicalLine(pos, rest, baseDir)
	}
	if had {
		lx.params[parts[0]] = old
	} else {
		delete(lx.params, parts[0])
	}
}

// include reads the files named by a glob, relative to the including file.
func (lx *lexer) include(pos Pos, args []string, baseDir string) {
	if len(args) == 0 {
		lx.errorf(pos, "include: missing file name")
		return
	}
	if lx.opts.NoInclude {
		lx.errorf(pos, "include %s: includes are not allowed here", args[0])
		return
	}
	// args is in the word arena, which the included files' lines reuse:
	// keep the name itself.
	name := args[0]
	pattern := name
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(baseDir, pattern)
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		lx.errorf(pos, "include %s: %v", name, err)
		return
	}
	if len(matches) == 0 {
		// keepalived only warns when a glob matches nothing.
		lx.warnf(pos, "include %s: no file matches", name)
		return
	}
	sort.Strings(matches)
	isGlob := strings.ContainsAny(name, "*?[")
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.IsDir() {
			continue
		}
		if abs, err := filepath.Abs(m); err == nil && isGlob && contains(lx.stack, abs) {
			// "include *.conf" next to the main file matches the file
			// itself: skip it rather than call it a cycle.
			lx.warnf(pos, "include %s: skipping %s, which is being read already", name, m)
			continue
		}
		lx.readFile(m, pos)
	}
}

// split breaks a line into words the way keepalived does: whitespace and
// non-ASCII bytes separate words, '!' or '#' at the start of a word starts
// a comment, "..." is one word (with \" \\ \n \t escapes), and '{' '}'
// stand apart from words. It reports whether the line is an include
// (an unquoted "include" first).
func (lx *lexer) split(pos Pos, line string) ([]string, []braceAt, bool) {
	// Words are carved straight out of a shared arena: a large file has
	// one line per statement, and an allocation per line shows.
	k := len(lx.arena)
	braces := lx.braces[:0]
	include := false
	add := func(w string) {
		if len(lx.arena) == cap(lx.arena) {
			// Full: this line's words so far move to a new chunk (the
			// old one stays with the lines that use it).
			fresh := make([]string, 0, max(1024, 2*(len(lx.arena)-k)))
			lx.arena = append(fresh, lx.arena[k:]...)
			k = 0
		}
		lx.arena = append(lx.arena, w)
	}
	i := 0
scan:
	for i < len(line) {
		switch byteClass[line[i]] {
		case classBlank:
			i++
		case classComment:
			break scan
		case classBrace:
			braces = append(braces, braceAt{before: len(lx.arena) - k, open: line[i] == '{'})
			i++
		case classQuote:
			var b strings.Builder
			j := i + 1
			closed := false
			for j < len(line) {
				if line[j] == '\\' && j+1 < len(line) {
					switch line[j+1] {
					case '"', '\\':
						b.WriteByte(line[j+1])
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					default:
						b.WriteByte('\\')
						b.WriteByte(line[j+1])
					}
					j += 2
					continue
				}
				if line[j] == '"' {
					closed = true
					j++
					break
				}
				b.WriteByte(line[j])
				j++
			}
			if !closed {
				lx.errorf(pos, "unterminated quoted string")
			}
			add(lx.intern.get(b.String()))
			i = j
		default:
			j := i + 1
			for j < len(line) && byteClass[line[j]] <= classComment {
				j++
			}
			w := line[i:j]
			if len(lx.arena) == k && len(braces) == 0 && w == "include" {
				include = true
			}
			add(lx.intern.get(w))
			i = j
		}
	}
	lx.braces = braces[:0]
	if len(lx.arena) == k {
		return nil, braces, include
	}
	return lx.arena[k:len(lx.arena):len(lx.arena)], braces, include
}

// Byte classes for split: whitespace and non-ASCII bytes separate words,
// '!' or '#' at the start of a word starts a comment (inside a word it is
// part of it), braces and quotes stand apart.
const (
	classWord    = iota
	classComment // after a word's first byte, part of the word
	classBlank
	classBrace
	classQuote
)

var byteClass = func() (t [256]uint8) {
	for c := 0x80; c < 0x100; c++ {
		t[c] = classBlank
	}
	for _, c := range " \t\r\v\f" {
		t[c] = classBlank
	}
	t['!'], t['#'] = classComment, classComment
	t['{'], t['}'] = classBrace, classBrace
	t['"'] = classQuote
	return t
}()

// interner copies words out of the file's text, so that what the model
// keeps (a path, a name) does not keep the whole file alive, and shares
// the copies of repeated words ("/health" once, not 40,000 times). It is a
// direct-mapped cache: a word whose slot holds another word is copied
// again, so its size is fixed whatever the file.
type interner struct {
	slots []string
	bytes []byte // the copies are carved from it
}

const internSlots = 1 << 12

func (in *interner) get(s string) string {
	if s == "" {
		return ""
	}
	if in.slots == nil {
		in.slots = make([]string, internSlots)
	}
	// FNV-1a over at most the last 16 bytes (addresses differ at the end).
	h := uint32(2166136261)
	for i := max(0, len(s)-16); i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	h ^= uint32(len(s))
	slot := &in.slots[h&(internSlots-1)]
	if *slot == s {
		return *slot
	}
	// Copied into a shared chunk rather than allocated one by one (most
	// copies are addresses, parsed and dropped). A kept word keeps its
	// chunk: at most the bytes copied, and only distinct words are.
	if len(s) > cap(in.bytes)-len(in.bytes) {
		if len(s) > internChunk/4 {
			c := strings.Clone(s)
			*slot = c
			return c
		}
		in.bytes = make([]byte, 0, internChunk)
	}
	k := len(in.bytes)
	in.bytes = append(in.bytes, s...)
	c := unsafe.String(&in.bytes[k], len(s))
	*slot = c
	return c
}

const internChunk = 8 << 10

// node is one statement: its words, and its block when it has one. It is
// kept small: a large configuration has one per line.
type node struct {
	words    []string // words[0] is the keyword
	block    []*node
	file     *string
	line     int32
	hasBlock bool
}

func (n *node) pos() Pos { return Pos{File: *n.file, Line: int(n.line)} }

func (n *node) kw() string { return n.words[0] }

// args returns the words after the keyword.
func (n *node) args() []string { return n.words[1:] }

// treeBuilder turns lines of words into statements with nested blocks,
// as they arrive. A '{' opens the block of the statement before it (on the
// same or an earlier line); words after a '{' or '}' on the same line
// start a new statement. Each complete top-level statement goes to onTop
// at once, so the whole tree of a large file is never held in memory.
type treeBuilder struct {
	diags *Diagnostics
	onTop func(*node)
	nodes []node  // arena the nodes are carved from
	ptrs  []*node // arena the blocks' child lists are carved from
	// scratch[d] collects the children of the open block at depth d,
	// reused from block to block.
	scratch [][]*node
	stack   []frame // stack[0] is the top level; values, reused
}

type frame struct {
	owner    *node // nil for the top level and for dropped blocks
	open     Pos
	children []*node
	last     *node
}

func newTreeBuilder(diags *Diagnostics, onTop func(*node)) *treeBuilder {
	return &treeBuilder{diags: diags, onTop: onTop, stack: make([]frame, 1, 16)}
}

const maxDepth = 200

func (b *treeBuilder) line(pos Pos, file *string, words []string, braces []braceAt) {
	wi := 0
	for bi := 0; bi <= len(braces); bi++ {
		end := len(words)
		if bi < len(braces) {
			end = braces[bi].before
		}
		if end > wi {
			b.statement(pos, file, words[wi:end:end])
			wi = end
		}
		if bi < len(braces) {
			b.brace(pos, braces[bi].open)
		}
	}
}

func (b *treeBuilder) statement(pos Pos, file *string, words []string) {
	top := &b.stack[len(b.stack)-1]
	if len(b.stack) == 1 {
		// Before the new node is carved: emitting the previous one may
		// let the arenas be reused.
		b.flushTop()
	}
	if len(b.nodes) == cap(b.nodes) {
		b.nodes = make([]node, 0, 512)
	}
	b.nodes = append(b.nodes, node{words: words, file: file, line: int32(pos.Line)})
	n := &b.nodes[len(b.nodes)-1]
	if len(b.stack) == 1 {
		top.last = n
		return
	}
	top.children = append(top.children, n)
	top.last = n
}

func (b *treeBuilder) brace(pos Pos, open bool) {
	top := &b.stack[len(b.stack)-1]
	if !open {
		if len(b.stack) == 1 {
			addDiag(b.diags, Diagnostic{Pos: pos, Severity: Error, Msg: "unbalanced '}': no block is open"})
			b.flushTop()
			top.last = nil
			return
		}
		b.pop()
		return
	}
	if len(b.stack) > maxDepth {
		addDiag(b.diags, Diagnostic{Pos: pos, Severity: Error, Msg: "blocks nested too deep"})
		b.stack = append(b.stack, frame{open: pos}) // dropped
		return
	}
	if top.last == nil || top.last.hasBlock {
		addDiag(b.diags, Diagnostic{Pos: pos, Severity: Error, Msg: "'{' without a keyword before it"})
		b.stack = append(b.stack, frame{open: pos}) // parsed and dropped
		return
	}
	top.last.hasBlock = true
	d := len(b.stack)
	for len(b.scratch) <= d {
		b.scratch = append(b.scratch, nil)
	}
	b.stack = append(b.stack, frame{owner: top.last, open: pos, children: b.scratch[d][:0]})
}

// flushTop hands a finished top-level statement without a block to onTop
// (it had to wait: its '{' could have come on the next line).
func (b *treeBuilder) flushTop() {
	root := &b.stack[0]
	if root.last != nil && !root.last.hasBlock {
		n := root.last
		root.last = emitted
		b.onTop(n)
		b.recycle()
	}
}

// emitted stands for a top-level statement already handed to onTop: a '{'
// now has no owner. Never written (brace only marks a node without a block).
var emitted = &node{hasBlock: true}

// recycle reuses the arenas once a top-level statement has been parsed:
// the parser keeps no node and no words slice (it copies what it keeps),
// so a large file needs the arenas of its largest block, not of the whole
// file.
func (b *treeBuilder) recycle() {
	b.nodes = b.nodes[:0]
	b.ptrs = b.ptrs[:0]
}

// idle reports whether no statement is held: every line so far has been
// handed to onTop.
func (b *treeBuilder) idle() bool {
	return len(b.stack) == 1 && (b.stack[0].last == nil || b.stack[0].last == emitted)
}

func (b *treeBuilder) pop() {
	f := b.stack[len(b.stack)-1]
	b.stack[len(b.stack)-1] = frame{} // drop references
	b.stack = b.stack[:len(b.stack)-1]
	if f.owner == nil {
		return
	}
	b.scratch[len(b.stack)] = f.children[:0]
	if n := len(f.children); n > 0 {
		if n > cap(b.ptrs)-len(b.ptrs) {
			b.ptrs = make([]*node, 0, max(4096, n))
		}
		k := len(b.ptrs)
		b.ptrs = append(b.ptrs, f.children...)
		f.owner.block = b.ptrs[k:len(b.ptrs):len(b.ptrs)]
	}
	if len(b.stack) == 1 {
		b.stack[0].last = emitted
		b.onTop(f.owner)
		b.recycle()
	}
}

// msgUnclosed ends the error for a block left open at the end of the
// input (tests match on it).
const msgUnclosed = "block opened here is not closed: missing '}' at end of configuration (is the file cut off?)"

// blockName names a block's owner in messages: its keyword and arguments
// ("vrrp_instance http"), cut short when they are long.
func blockName(n *node) string {
	const maxWords, maxLen = 4, 60
	words := n.words
	more := len(words) > maxWords
	if more {
		words = words[:maxWords]
	}
	s := strings.Join(words, " ")
	if len(s) > maxLen {
		i := maxLen
		for i > 0 && !utf8.RuneStart(s[i]) {
			i-- // never cut a character in two
		}
		s, more = s[:i], true
	}
	if more {
		s += " ..."
	}
	return s
}

// finish closes what is still open at the end of the input.
func (b *treeBuilder) finish() {
	for len(b.stack) > 1 {
		f := &b.stack[len(b.stack)-1]
		// keepalived only warns here ("missing '}'") and uses what it
		// read; we refuse the file: a block still open at the end is what
		// a truncated file (a cut-off copy or push) looks like, and
		// applying half a configuration must never happen. The block is
		// still built, so the rest of the file is checked as well.
		if f.owner != nil {
			addDiag(b.diags, Diagnostic{Pos: f.open, Severity: Error, Msg: blockName(f.owner) + ": " + msgUnclosed})
		}
		b.pop()
	}
	b.flushTop()
}

// trimBlank drops leading spaces and tabs (strings.TrimLeft with a cutset
// costs a tenth of the time on large files).
func trimBlank(s string) string {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return s[i:]
}
