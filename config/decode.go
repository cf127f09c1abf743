package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Limits that keep hostile input (alias bombs, recursive aliases) from
// making the decoder loop or blow up. A real configuration file is far
// below both.
const (
	// maxNodes is the number of nodes the document's aliases may expand
	// to.
	maxNodes = 1 << 20
	// maxDepth is how deeply nodes may nest, aliases expanded.
	maxDepth = 100
)

// Short YAML tags.
const (
	tagStr       = "!!str"
	tagInt       = "!!int"
	tagFloat     = "!!float"
	tagBool      = "!!bool"
	tagNull      = "!!null"
	tagTimestamp = "!!timestamp"
	tagMerge     = "!!merge"
	// tagExpanded marks text produced by variable expansion: it has no
	// YAML type and is read as whatever the field expects.
	tagExpanded = ""
)

// decoder walks a yaml.Node tree into a File, collecting errors.
type decoder struct {
	file   string
	lookup func(string) (string, bool)
	errs   []Error
	// entitiesOnly: a declarative document (ParseDeclarative), whose top
	// level holds entities and meta keys only.
	entitiesOnly bool
	// plugins and nested are the plugins decoded so far and the lists
	// nested in services and routes (pluginfile.go).
	plugins []pluginEntry
	nested  []nestedPlugins
}

func pos(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

func (d *decoder) errorAt(p Pos, format string, args ...any) {
	d.errs = append(d.errs, Error{File: d.file, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errorAt(pos(n), format, args...)
}

// err returns the collected errors as a sorted *ErrorList without
// duplicates (an aliased node is decoded once per use), or nil.
func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	l := &ErrorList{}
	seen := make(map[Error]bool, len(d.errs))
	for _, e := range d.errs {
		if !seen[e] {
			seen[e] = true
			l.Errors = append(l.Errors, e)
		}
	}
	return l.Err()
}

// parseYAML parses data and returns the root node of its single document,
// or nil when the document is empty or could not be parsed (errors are
// recorded).
func (d *decoder) parseYAML(data []byte) (root *yaml.Node) {
	if at, msg := badText(data); msg != "" {
		d.errorAt(at, "%s", msg)
		return nil
	}
	doc, next, err := decodeDocs(data)
	var crash libraryPanic
	switch {
	case errors.As(err, &crash):
		d.errorAt(Pos{Line: 1, Col: 1}, "cannot parse YAML: %v", crash.v)
		return nil
	case err != nil:
		d.yamlError(err, data)
	case next != nil:
		d.errorf(next, "a configuration file holds a single YAML document; found another one")
	}
	if doc == nil {
		return nil
	}
	root = doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	return root
}

// libraryPanic is a panic of the YAML library, turned into an error: a bug
// in it must not take the gateway down while it reloads its configuration.
type libraryPanic struct{ v any }

func (p libraryPanic) Error() string { return fmt.Sprint(p.v) }

// decodeDocs parses data's first document (nil when there is none) and
// returns the second one if there is one, or the first error.
func decodeDocs(data []byte) (doc, next *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, next, err = nil, nil, libraryPanic{r}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first yaml.Node
	if err := dec.Decode(&first); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	var second yaml.Node
	switch err := dec.Decode(&second); {
	case err == nil:
		return &first, &second, nil
	case !errors.Is(err, io.EOF):
		return &first, nil, err
	}
	return &first, nil, nil
}

// badText returns the position of the first byte or character that YAML
// does not allow in a file (invalid UTF-8, NUL, control characters) and
// why, or "" when the text is acceptable. The YAML library refuses them
// without saying where. A UTF-16 file (byte order mark) is left to the
// library.
func badText(data []byte) (Pos, string) {
	if bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) {
		return Pos{}, ""
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		var why string
		switch {
		case r == utf8.RuneError && size == 1:
			why = fmt.Sprintf("invalid UTF-8 (byte 0x%02x): the file must be UTF-8 text", data[i])
		case r == 0:
			why = "NUL byte (U+0000): the file must be text"
		case !yamlPrintable(r):
			why = fmt.Sprintf("control character U+%04X is not allowed in YAML", r)
		}
		if why != "" {
			return posAt(data, i), why
		}
		i += size
	}
	return Pos{}, ""
}

// yamlPrintable reports whether YAML allows r in a stream (YAML 1.1
// c-printable, as the library checks it).
func yamlPrintable(r rune) bool {
	return r == 0x09 || r == 0x0a || r == 0x0d || 0x20 <= r && r <= 0x7e || r == 0x85 ||
		0xa0 <= r && r <= 0xd7ff || 0xe000 <= r && r <= 0xfffd || 0x10000 <= r && r <= 0x10ffff
}

// posAt returns the line and column (in characters, as the YAML library
// counts them) of byte offset off of data.
func posAt(data []byte, off int) Pos {
	off = min(off, len(data))
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	return Pos{Line: bytes.Count(data[:start], []byte{'\n'}) + 1, Col: utf8.RuneCount(data[start:off]) + 1}
}

// yamlError records an error from the YAML library, which looks like
// "yaml: line 3: mapping values are not allowed in this context" (no line
// when the problem is on the first one), at the position of the character
// that makes the library fail (see syntaxErrorAt).
func (d *decoder) yamlError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	at := Pos{Line: 1}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, reason, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				at.Line, msg = n, reason
				if parserProblem(msg) {
					// The library reports the 0-based line of a parser
					// (as opposed to scanner) error: of the problem, or of
					// the start of the collection being parsed.
					at.Line++
				}
			}
		}
	}
	if name, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
		if p := findAlias(data, strings.TrimSuffix(name, "' referenced")); !p.IsZero() {
			d.errorAt(p, "YAML syntax error: %s", msg)
			return
		}
	}
	if p, ok := syntaxErrorAt(data, at.Line, err.Error()); ok {
		at = p
	} else {
		at.Col = firstColumn(data, at.Line)
	}
	d.errorAt(at, "YAML syntax error: %s", msg)
}

// syntaxErrorAt finds where the YAML library fails with error text
// target, whose line is line: the shortest prefix of the file, from that
// line on, that makes the library fail the same way ends at the character
// where it fails (for an unclosed quote or bracket, where it opens or just
// after). The search is a bisection: a few parses of the file.
func syntaxErrorAt(data []byte, line int, target string) (Pos, bool) {
	fails := func(n int) bool {
		_, _, err := decodeDocs(data[:n])
		return err != nil && err.Error() == target
	}
	lo := lineStart(data, line) // fails(lo) is taken as false
	hi := len(data)
	if lo >= hi || !fails(hi) {
		return Pos{}, false
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	// Step back over a multi-byte character's continuation bytes.
	off := hi - 1
	for off > 0 && !utf8.RuneStart(data[off]) {
		off--
	}
	return posAt(data, off), true
}

// lineStart returns the byte offset where 1-based line begins (len(data)
// past the end).
func lineStart(data []byte, line int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return len(data)
		}
		off += i + 1
	}
	return off
}

// firstColumn returns the column of the first non-blank character of line,
// or 1.
func firstColumn(data []byte, line int) int {
	start := lineStart(data, line)
	rest := data[start:]
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	if i := bytes.IndexFunc(rest, func(r rune) bool { return r != ' ' && r != '\t' }); i >= 0 {
		return utf8.RuneCount(rest[:i]) + 1
	}
	return 1
}

// parserProblem reports whether msg is one the YAML library's parser (not
// its scanner) reports.
func parserProblem(msg string) bool {
	switch msg {
	case "did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"did not find expected '-' indicator",
		"did not find expected key",
		"did not find expected node content",
		"did not find expected <document start>",
		"did not find expected <stream-start>",
		"found duplicate %YAML directive",
		"found duplicate %TAG directive",
		"found incompatible YAML document",
		"found undefined tag handle":
		return true
	}
	return false
}

// findAlias returns the position of the first "*name" alias in data, or
// the zero Pos.
func findAlias(data []byte, name string) Pos {
	ref := []byte("*" + name)
	line, start := 1, 0
	for i := 0; i < len(data); i++ {
		if data[i] == '\n' {
			line, start = line+1, i+1
			continue
		}
		if bytes.HasPrefix(data[i:], ref) {
			end := i + len(ref)
			if end == len(data) || strings.IndexByte(" \t\r\n,]}", data[end]) >= 0 {
				return Pos{Line: line, Col: len([]rune(string(data[start:i]))) + 1}
			}
		}
	}
	return Pos{}
}

// checkSize walks the tree with aliases expanded and reports whether it
// stays within maxDepth, has no recursive alias and its aliases expand to
// at most maxNodes nodes. The nodes written in the file are not limited:
// the library has already parsed them, and their number is bounded by the
// file's size.
func (d *decoder) checkSize(root *yaml.Node) bool {
	expanded := 0
	onPath := make(map[*yaml.Node]bool)
	// via is the outermost alias being expanded, where a blow-up is
	// reported.
	var walk func(n, via *yaml.Node, depth int) bool
	walk = func(n, via *yaml.Node, depth int) bool {
		if via != nil {
			expanded++
		}
		switch {
		case depth > maxDepth:
			d.errorf(n, "nesting deeper than %d levels", maxDepth)
			return false
		case expanded > maxNodes:
			d.errorf(via, "document too large: its aliases expand to more than %d nodes", maxNodes)
			return false
		case n.Kind == yaml.AliasNode && n.Alias != nil && onPath[n.Alias]:
			d.errorf(n, "recursive alias *%s (it is used inside its own anchor)", n.Value)
			return false
		case n.Kind == yaml.AliasNode:
			if via == nil {
				via = n
			}
			return n.Alias == nil || walk(n.Alias, via, depth+1)
		}
		onPath[n] = true
		defer delete(onPath, n)
		for _, c := range n.Content {
			if !walk(c, via, depth+1) {
				return false
			}
		}
		return true
	}
	return walk(root, nil, 0)
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == tagNull
}

// describe names what n is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case tagStr:
			return "string " + quote(n.Value)
		case tagInt:
			return "integer " + n.Value
		case tagFloat:
			return "float " + n.Value
		case tagBool:
			return "boolean " + n.Value
		case tagNull:
			return "null"
		case tagTimestamp:
			return "timestamp " + n.Value
		default:
			return tag + " " + quote(n.Value)
		}
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// quote quotes s for a message, shortening it when long.
func quote(s string) string {
	const max = 60
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// field is one known key of a mapping and how to decode its value.
type field struct {
	key string
	set func(v *yaml.Node)
}

// entry is a key present in a mapping.
type entry struct {
	key, val *yaml.Node
	// ok is false when decoding the value reported an error.
	ok bool
}

type pair struct{ key, val *yaml.Node }

// mapping decodes mapping n by calling the set func of each key's field.
// label names n in type errors, ctx names it in unknown-field errors. A
// null n counts as an empty mapping. It returns the keys present, or nil
// when n is not a mapping.
func (d *decoder) mapping(n *yaml.Node, label, ctx string, fields []field) map[string]entry {
	n = deref(n)
	seen := make(map[string]entry)
	if isNull(n) {
		return seen
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: expected a mapping, got %s", label, describe(n))
		return nil
	}
	for _, p := range d.pairs(n, 0) {
		f, ok := findField(fields, p.key.Value)
		if !ok {
			d.errorf(p.key, "unknown field %s in %s; expected one of: %s", quote(p.key.Value), ctx, fieldNames(fields))
			continue
		}
		if isNull(deref(p.val)) && slices.Contains(NullableFields(ctx), f.key) {
			continue // Kong's null: not set
		}
		before := len(d.errs)
		f.set(p.val)
		seen[f.key] = entry{key: p.key, val: p.val, ok: len(d.errs) == before}
	}
	return seen
}

func findField(fields []field, key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

func fieldNames(fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.key
	}
	return strings.Join(names, ", ")
}

// pairs returns the key/value pairs of mapping n in order, reporting
// non-scalar and duplicate keys. YAML merge keys ("<<: *anchor") are
// resolved: keys written in n win over merged ones, and earlier merged
// mappings win over later ones.
func (d *decoder) pairs(n *yaml.Node, depth int) []pair {
	var own, merged []pair
	first := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "mapping keys must be strings, got %s", describe(k))
			continue
		}
		if prev, dup := first[k.Value]; dup {
			d.errorf(k, "duplicate key %s (first at line %d)", quote(k.Value), prev.Line)
			continue
		}
		first[k.Value] = k
		if k.Value == "<<" && k.ShortTag() == tagMerge {
			merged = append(merged, d.mergeSource(v, depth)...)
			continue
		}
		own = append(own, pair{key: k, val: v})
	}
	for _, p := range merged {
		if _, dup := first[p.key.Value]; !dup {
			first[p.key.Value] = p.key
			own = append(own, p)
		}
	}
	return own
}

// mergeSource returns the pairs a merge key's value brings in.
func (d *decoder) mergeSource(v *yaml.Node, depth int) []pair {
	v = deref(v)
	if depth >= maxDepth {
		d.errorf(v, "merge keys nested too deeply")
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v, depth+1)
	case yaml.SequenceNode:
		var out []pair
		for _, item := range v.Content {
			item = deref(item)
			if item.Kind != yaml.MappingNode {
				d.errorf(item, "<<: expected a mapping to merge, got %s", describe(item))
				continue
			}
			out = append(out, d.pairs(item, depth+1)...)
		}
		return out
	}
	d.errorf(v, "<<: expected a mapping or a list of mappings to merge, got %s", describe(v))
	return nil
}

// list calls each for every item of sequence n. A null n is an empty list.
func (d *decoder) list(n *yaml.Node, label string, each func(item *yaml.Node)) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: expected a list, got %s", label, describe(n))
		return
	}
	for _, item := range n.Content {
		each(deref(item))
	}
}

// scalarValue is a scalar after variable expansion.
type scalarValue struct {
	node *yaml.Node
	text string
	// tag is the YAML short tag, or tagExpanded.
	tag string
}

func (v scalarValue) describe() string {
	if v.tag == tagExpanded {
		return quote(v.text) + " (after variable expansion)"
	}
	return describe(v.node)
}

// scalar checks that n is a scalar and expands variables in it. want
// ("an integer") is used in the error when n is not a scalar.
func (d *decoder) scalar(n *yaml.Node, label, want string) (scalarValue, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s: expected %s, got %s", label, want, describe(n))
		return scalarValue{}, false
	}
	tag := n.ShortTag()
	switch tag {
	case tagStr, tagInt, tagFloat, tagBool, tagNull, tagTimestamp:
	default:
		d.errorf(n, "%s: unsupported YAML tag %s", label, tag)
		return scalarValue{}, false
	}
	text, changed, err := expand(n.Value, d.lookup)
	if err != nil {
		d.errorf(n, "%s: %v", label, err)
		return scalarValue{}, false
	}
	if changed {
		tag = tagExpanded
	}
	return scalarValue{node: n, text: text, tag: tag}, true
}

// str decodes a string. Other YAML scalar types are refused: quote them.
func (d *decoder) str(n *yaml.Node, label string) (string, bool) {
	v, ok := d.scalar(n, label, "a string")
	if !ok {
		return "", false
	}
	if v.tag != tagStr && v.tag != tagExpanded {
		d.errorf(v.node, "%s: expected a string, got %s", label, v.describe())
		return "", false
	}
	return v.text, true
}

// text decodes free-form text: any scalar but null, numbers and booleans
// being taken as written.
func (d *decoder) text(n *yaml.Node, label string) (string, bool) {
	v, ok := d.scalar(n, label, "a string")
	if !ok {
		return "", false
	}
	if v.tag == tagNull {
		d.errorf(v.node, "%s: expected a string, got null", label)
		return "", false
	}
	return v.text, true
}

// enum decodes a string that must be one of allowed.
func (d *decoder) enum(n *yaml.Node, label string, allowed ...string) (string, bool) {
	s, ok := d.str(n, label)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	d.errorf(deref(n), "%s: %s is not valid; expected one of: %s", label, quote(s), strings.Join(allowed, ", "))
	return "", false
}

// parseInt parses a YAML integer literal: decimal (leading zeros allowed),
// or 0x, 0o, 0b prefixed, with optional '_' separators.
func parseInt(s string) (int64, error) {
	s = strings.ReplaceAll(s, "_", "")
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		i, err = strconv.ParseInt(s, 0, 64)
	}
	return i, err
}

// integer decodes an integer in min..max.
func (d *decoder) integer(n *yaml.Node, label string, min, max int64) (int64, bool) {
	v, ok := d.scalar(n, label, "an integer")
	if !ok {
		return 0, false
	}
	var i int64
	var err error
	switch v.tag {
	case tagInt:
		i, err = parseInt(v.text)
	case tagExpanded:
		i, err = strconv.ParseInt(v.text, 10, 64)
	default:
		d.errorf(v.node, "%s: expected an integer, got %s", label, v.describe())
		return 0, false
	}
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			d.errorf(v.node, "%s: must be between %d and %d, got %s", label, min, max, v.text)
		} else {
			d.errorf(v.node, "%s: expected an integer, got %s", label, v.describe())
		}
		return 0, false
	}
	if i < min || i > max {
		d.errorf(v.node, "%s: must be between %d and %d, got %d", label, min, max, i)
		return 0, false
	}
	return i, true
}

// intField decodes an integer in min..max into dst.
func (d *decoder) intField(dst *int, label string, min, max int64) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if i, ok := d.integer(n, label, min, max); ok {
			*dst = int(i)
		}
	}
}

// number decodes a finite number (integer or float) in min..max.
func (d *decoder) number(n *yaml.Node, label string, min, max float64) (float64, bool) {
	v, ok := d.scalar(n, label, "a number")
	if !ok {
		return 0, false
	}
	text := v.text
	switch v.tag {
	case tagInt:
		i, err := parseInt(text)
		if err == nil {
			text = strconv.FormatInt(i, 10)
		}
	case tagFloat:
		text = strings.ReplaceAll(text, "_", "")
	case tagExpanded:
	default:
		d.errorf(v.node, "%s: expected a number, got %s", label, v.describe())
		return 0, false
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.errorf(v.node, "%s: expected a finite number, got %s", label, v.describe())
		return 0, false
	}
	if f < min || f > max {
		d.errorf(v.node, "%s: must be between %s and %s, got %s", label, fmtFloat(min), fmtFloat(max), fmtFloat(f))
		return 0, false
	}
	return f, true
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// numberField decodes a number in min..max into dst.
func (d *decoder) numberField(dst *float64, label string, min, max float64) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if f, ok := d.number(n, label, min, max); ok {
			*dst = f
		}
	}
}

// boolean decodes true or false.
func (d *decoder) boolean(n *yaml.Node, label string) (bool, bool) {
	v, ok := d.scalar(n, label, "a boolean")
	if !ok {
		return false, false
	}
	if v.tag == tagBool || v.tag == tagExpanded {
		switch strings.ToLower(v.text) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	d.errorf(v.node, "%s: expected a boolean (true or false), got %s", label, v.describe())
	return false, false
}

// boolField decodes a boolean into dst.
func (d *decoder) boolField(dst *bool, label string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if b, ok := d.boolean(n, label); ok {
			*dst = b
		}
	}
}

// duration decodes a Go duration string ("30s", "1m30s"); a literal 0 is
// accepted too. The duration must be positive when positive is set, and
// not negative otherwise.
func (d *decoder) duration(n *yaml.Node, label string, positive bool) (time.Duration, bool) {
	v, ok := d.scalar(n, label, "a duration")
	if !ok {
		return 0, false
	}
	var dur time.Duration
	switch {
	case v.tag == tagStr || v.tag == tagExpanded:
		var err error
		if dur, err = time.ParseDuration(v.text); err != nil {
			d.errorf(v.node, "%s: invalid duration %s (expected a duration such as \"30s\" or \"1m30s\")", label, quote(v.text))
			return 0, false
		}
	case v.tag == tagInt && v.text == "0":
	default:
		d.errorf(v.node, "%s: expected a duration such as \"30s\", got %s", label, v.describe())
		return 0, false
	}
	switch {
	case positive && dur <= 0:
		d.errorf(v.node, "%s: must be positive, got %s", label, v.text)
		return 0, false
	case dur < 0:
		d.errorf(v.node, "%s: must not be negative, got %s", label, v.text)
		return 0, false
	}
	return dur, true
}

// durationField decodes a Go duration string into dst.
func (d *decoder) durationField(dst *time.Duration, label string, positive bool) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if dur, ok := d.duration(n, label, positive); ok {
			*dst = dur
		}
	}
}

// durationBetween decodes a positive duration in lo..hi into dst.
func (d *decoder) durationBetween(dst *time.Duration, label string, lo, hi time.Duration) func(*yaml.Node) {
	return func(v *yaml.Node) {
		if dur, ok := d.duration(v, label, true); ok {
			if dur < lo || dur > hi {
				d.errorf(deref(v), "%s: must be between %v and %v", label, lo, hi)
				return
			}
			*dst = dur
		}
	}
}

// idField decodes an entity's id: a UUID, lower-cased into dst.
func (d *decoder) idField(dst *string) func(*yaml.Node) {
	return func(v *yaml.Node) {
		if s, ok := d.str(v, "id"); ok {
			if !IsUUID(s) {
				d.errorf(deref(v), "id: expected a UUID, got %s", quote(s))
				return
			}
			*dst = strings.ToLower(s)
		}
	}
}

// secondsField decodes a number of seconds in lo..hi (nanoseconds; Kong's
// way of writing health-check durations) into dst; with positive, 0 is
// refused.
func (d *decoder) secondsField(dst *time.Duration, label string, positive bool, lo, hi int64) func(*yaml.Node) {
	return func(n *yaml.Node) {
		f, ok := d.number(n, label, time.Duration(lo).Seconds(), time.Duration(hi).Seconds())
		if !ok {
			return
		}
		if positive && f == 0 {
			d.errorf(deref(n), "%s: must be greater than 0", label)
			return
		}
		*dst = time.Duration(math.Round(f * float64(time.Second)))
	}
}

// millisecondsField decodes an integer number of milliseconds in min..max into
// dst.
func (d *decoder) millisecondsField(dst *Millis, label string, min, max int64) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if i, ok := d.integer(n, label, min, max); ok {
			*dst = Millis(time.Duration(i) * time.Millisecond)
		}
	}
}

// strField decodes a string into dst after checking it with check, whose
// error is reported at the value.
func (d *decoder) strField(dst *string, label string, check func(string) error) func(*yaml.Node) {
	return func(n *yaml.Node) {
		s, ok := d.str(n, label)
		if !ok {
			return
		}
		if check != nil {
			if err := check(s); err != nil {
				d.errorf(deref(n), "%s: %v", label, err)
				return
			}
		}
		*dst = s
	}
}

// enumField decodes one of allowed into dst.
func (d *decoder) enumField(dst *string, label string, allowed ...string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if s, ok := d.enum(n, label, allowed...); ok {
			*dst = s
		}
	}
}

// size decodes a byte size: a non-negative integer, or a string such as
// "512KB", "10MB", "1GB" (1024-based, case-insensitive; "B" and a bare
// number are bytes).
func (d *decoder) size(n *yaml.Node, label string) (int64, bool) {
	v, ok := d.scalar(n, label, "a size")
	if !ok {
		return 0, false
	}
	switch v.tag {
	case tagInt:
		i, err := parseInt(v.text)
		if err != nil || i < 0 {
			d.errorf(v.node, "%s: must be a non-negative number of bytes, got %s", label, v.text)
			return 0, false
		}
		return i, true
	case tagStr, tagExpanded:
		i, err := parseSize(v.text)
		if err != nil {
			d.errorf(v.node, "%s: %v", label, err)
			return 0, false
		}
		return i, true
	}
	d.errorf(v.node, "%s: expected a size such as 1048576 or \"10MB\", got %s", label, v.describe())
	return 0, false
}

// stringList decodes a list of strings; with single set, a lone string is
// accepted as a one-item list. Each item is passed to each with its node.
func (d *decoder) stringList(n *yaml.Node, label string, single bool, each func(s string, item *yaml.Node)) {
	n = deref(n)
	if single && n.Kind == yaml.ScalarNode && !isNull(n) {
		if s, ok := d.text(n, label); ok {
			each(s, n)
		}
		return
	}
	d.list(n, label, func(item *yaml.Node) {
		if s, ok := d.text(item, label); ok {
			each(s, item)
		}
	})
}

// intsField decodes a list of integers, each in lo..hi.
func (d *decoder) intsField(dst *[]int, label string, lo, hi int64) func(*yaml.Node) {
	return func(n *yaml.Node) {
		out := []int{}
		d.list(n, label, func(item *yaml.Node) {
			if i, ok := d.integer(item, label, lo, hi); ok {
				out = append(out, int(i))
			}
		})
		*dst = out
	}
}

// tags decodes a list of tags (CheckTag), each once.
func (d *decoder) tags(dst *[]string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		out := []string{}
		d.stringList(n, "tags", false, func(s string, item *yaml.Node) {
			if err := CheckTag(s); err != nil {
				d.errorf(item, "tags: %v", err)
				return
			}
			if slices.Contains(out, s) {
				d.errorf(item, "tags: duplicate tag %q", s)
				return
			}
			out = append(out, s)
		})
		*dst = out
	}
}
