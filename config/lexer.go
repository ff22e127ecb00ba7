package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// token is one word of a logical line; braces are tokens of their own.
type token struct {
	text   string
	quoted bool
	pos    Pos
	line   int // sequence number of the logical line (unique across files)
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
	toks   []token
	lineNo int
	stack  []string // files being read, for cycle detection
	files  []string

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
	lx.stack = append(lx.stack, abs)
	lx.files = append(lx.files, path)
	lx.lexText(path, data, filepath.Dir(path))
	lx.stack = lx.stack[:len(lx.stack)-1]
}

// lexText lexes the text of one file; baseDir resolves relative includes.
func (lx *lexer) lexText(name string, data []byte, baseDir string) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		pos := Pos{File: name, Line: i + 1}
		line := lines[i]
		// @id / @^id: the line applies only to (or to all but) one config_id.
		line, ok := lx.conditional(line)
		if !ok {
			continue
		}
		trimmed := strings.TrimLeft(line, " \t")
		if name, value, isDef := paramDef(trimmed); isDef {
			// A definition ending in '\' continues on the next line(s).
			for strings.HasSuffix(value, "\\") && i+1 < len(lines) {
				i++
				next, ok := lx.conditional(lines[i])
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
			continue
		}
		if strings.HasPrefix(trimmed, "~SEQ(") {
			lx.seq(pos, trimmed, baseDir)
			continue
		}
		lx.logicalLine(pos, line, baseDir)
	}
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
	for _, l := range strings.Split(line, "\n") {
		words := lx.split(pos, l)
		if len(words) == 0 {
			continue
		}
		if words[0].text == "include" && !words[0].quoted {
			lx.include(pos, words[1:], baseDir)
			continue
		}
		lx.lineNo++
		if lx.lineNo > maxTotalLines {
			lx.tooBig = true
			lx.errorf(pos, "configuration is longer than %d lines; the rest is not read", maxTotalLines)
			return
		}
		for _, w := range words {
			w.line = lx.lineNo
			lx.toks = append(lx.toks, w)
		}
	}
}

// conditional applies an "@id " or "@^id " prefix: it returns the rest of
// the line and whether the line applies to this config_id.
func (lx *lexer) conditional(line string) (string, bool) {
	t := strings.TrimLeft(line, " \t")
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
func (lx *lexer) include(pos Pos, args []token, baseDir string) {
	if len(args) == 0 {
		lx.errorf(pos, "include: missing file name")
		return
	}
	if lx.opts.NoInclude {
		lx.errorf(pos, "include %s: includes are not allowed here", args[0].text)
		return
	}
	pattern := args[0].text
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(baseDir, pattern)
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		lx.errorf(pos, "include %s: %v", args[0].text, err)
		return
	}
	if len(matches) == 0 {
		// keepalived only warns when a glob matches nothing.
		lx.warnf(pos, "include %s: no file matches", args[0].text)
		return
	}
	sort.Strings(matches)
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.IsDir() {
			continue
		}
		lx.readFile(m, pos)
	}
}

// split breaks a line into words the way keepalived does: whitespace and
// non-ASCII bytes separate words, '!' or '#' at the start of a word starts
// a comment, "..." is one word (with \" \\ \n \t escapes), and '{' '}'
// are words of their own.
func (lx *lexer) split(pos Pos, line string) []token {
	var out []token
	i := 0
	for i < len(line) {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c >= 0x80:
			i++
		case c == '!' || c == '#':
			return out
		case c == '{' || c == '}':
			out = append(out, token{text: line[i : i+1], pos: pos})
			i++
		case c == '"':
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
			out = append(out, token{text: b.String(), quoted: true, pos: pos})
			i = j
		default:
			j := i
			for j < len(line) {
				d := line[j]
				if d == ' ' || d == '\t' || d == '\r' || d == '\v' || d == '\f' || d >= 0x80 || d == '{' || d == '}' || d == '"' {
					break
				}
				j++
			}
			out = append(out, token{text: line[i:j], pos: pos})
			i = j
		}
	}
	return out
}

// node is one statement: its words, and its block when it has one.
type node struct {
	pos      Pos
	words    []token // words[0] is the keyword
	hasBlock bool
	block    []*node
	closed   bool // block was closed by '}' (false: ran into end of input)
}

func (n *node) kw() string { return n.words[0].text }

// args returns the words after the keyword.
func (n *node) args() []string {
	out := make([]string, 0, len(n.words)-1)
	for _, w := range n.words[1:] {
		out = append(out, w.text)
	}
	return out
}

// buildTree turns tokens into statements with nested blocks. A '{' opens
// the block of the statement before it (on the same or an earlier line);
// words after a '{' or '}' on the same line start a new statement.
func buildTree(toks []token, diags *Diagnostics) []*node {
	b := treeBuilder{toks: toks, diags: diags}
	root := b.block(0, Pos{})
	return root
}

type treeBuilder struct {
	toks       []token
	i          int
	diags      *Diagnostics
	closedLast bool // the block just parsed ended with '}'
}

func (b *treeBuilder) block(depth int, open Pos) []*node {
	var out []*node
	var last *node
	for b.i < len(b.toks) {
		t := b.toks[b.i]
		switch {
		case t.text == "}" && !t.quoted:
			b.i++
			if depth > 0 {
				b.closedLast = true
				return out
			}
			addDiag(b.diags, Diagnostic{Pos: t.pos, Severity: Error, Msg: "unbalanced '}': no block is open"})
			last = nil
		case t.text == "{" && !t.quoted:
			b.i++
			if depth > 200 {
				addDiag(b.diags, Diagnostic{Pos: t.pos, Severity: Error, Msg: "blocks nested too deep"})
				b.skipRest()
				return out
			}
			if last == nil || last.hasBlock {
				addDiag(b.diags, Diagnostic{Pos: t.pos, Severity: Error, Msg: "'{' without a keyword before it"})
				b.block(depth+1, t.pos) // parse and drop
				continue
			}
			last.hasBlock = true
			last.block = b.block(depth+1, t.pos)
			last.closed = b.closedLast
		default:
			n := &node{pos: t.pos}
			line := t.line
			for b.i < len(b.toks) && b.toks[b.i].line == line {
				w := b.toks[b.i]
				if !w.quoted && (w.text == "{" || w.text == "}") {
					break
				}
				n.words = append(n.words, w)
				b.i++
			}
			out = append(out, n)
			last = n
		}
	}
	if depth > 0 {
		// keepalived only warns about a block left open at the end of the
		// configuration ("missing '}'"), and uses what it read; so do we,
		// so that pasted configs that lost their last line still work.
		addDiag(b.diags, Diagnostic{Pos: open, Severity: Warning, Msg: "block opened here is not closed: missing '}' at end of configuration"})
		b.closedLast = false
	}
	return out
}

func (b *treeBuilder) skipRest() { b.i = len(b.toks) }
