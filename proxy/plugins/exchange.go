package plugins

import (
	"net/http"
	"net/url"
	"strings"
	"unsafe"
)

// Op is a header or query argument edit, with Kong's transformer
// semantics.
type Op uint8

// The edits.
const (
	// OpRemove removes every value of Name.
	OpRemove Op = iota
	// OpSet replaces every value of Name with Value.
	OpSet
	// OpReplace sets Value only when Name is present.
	OpReplace
	// OpAdd sets Value only when Name is absent.
	OpAdd
	// OpAppend adds Value as one more value of Name.
	OpAppend
	// OpRename moves Name's values to the name Value.
	OpRename
)

// Edit is one edit of a header (or query argument) set.
type Edit struct {
	Op          Op
	Name, Value string
}

// Exchange is the plugins' state of one request, reused by its owner
// (Reset between requests).
type Exchange struct {
	// Consumer and credential are who key-auth identified (nil: none).
	Consumer   *Consumer
	credential *credential
	// service is the name of the request's service.
	service string
	// Up and Query are the edits of the request's headers and query
	// arguments upstream; Down of the response's headers, in order.
	Up, Query, Down []Edit
	// Status, when not 0, is the answer a plugin gave instead of proxying
	// the request, with Body (JSON, "" for none) and the Down edits.
	Status int
	Body   string
	// Message is the answer's message (Body is {"message": Message}).
	Message string
	// scratch holds the generated values Up and Down refer to; pairs
	// are EditQuery's.
	scratch []byte
	pairs   []qpair
}

// scratchSize is the scratch buffer reserved per Exchange: a request's
// generated values (counters, ids) fit in it without growing it.
const scratchSize = 512

// Reset empties x for the next request, keeping its capacity.
func (x *Exchange) Reset() {
	*x = Exchange{Up: x.Up[:0], Query: x.Query[:0], Down: x.Down[:0], scratch: x.scratch[:0], pairs: x.pairs[:0]}
}

// Answered reports whether a plugin answered the request.
func (x *Exchange) Answered() bool { return x.Status != 0 }

// text appends write's output to the scratch buffer and returns it as a
// string valid until Reset. Growing the buffer leaves the strings handed
// out on the old array, which is never written again.
func (x *Exchange) text(write func(b []byte) []byte) string {
	if x.scratch == nil {
		x.scratch = make([]byte, 0, scratchSize)
	}
	start := len(x.scratch)
	x.scratch = write(x.scratch)
	b := x.scratch[start:]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// keep copies s, read from the request, into the scratch buffer: a
// response edit must not alias request buffers the proxy may reuse.
func (x *Exchange) keep(s string) string {
	return x.text(func(b []byte) []byte { return append(b, s...) })
}

// answer makes x an answer of status with a {"message": msg} body.
func (x *Exchange) answer(status int, msg string) {
	x.Status, x.Message = status, msg
	x.Body = x.text(func(b []byte) []byte {
		b = append(b, `{"message":`...)
		b = appendJSONString(b, msg)
		return append(b, '}')
	})
}

func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// Headers is a header set the edits apply to. Names are given in
// canonical form; implementations compare them case-insensitively.
type Headers interface {
	Get(name string) (string, bool)
	Del(name string)
	Set(name, value string)
	Add(name, value string)
}

// Apply applies edits to h, in order.
func Apply(h Headers, edits []Edit) {
	for _, e := range edits {
		switch e.Op {
		case OpRemove:
			h.Del(e.Name)
		case OpSet:
			h.Set(e.Name, e.Value)
		case OpReplace:
			if _, ok := h.Get(e.Name); ok {
				h.Set(e.Name, e.Value)
			}
		case OpAdd:
			if _, ok := h.Get(e.Name); !ok {
				h.Set(e.Name, e.Value)
			}
		case OpAppend:
			h.Add(e.Name, e.Value)
		case OpRename:
			if v, ok := h.Get(e.Name); ok {
				h.Del(e.Name)
				h.Set(e.Value, v)
			}
		}
	}
}

// HTTPHeader is an http.Header as Headers.
type HTTPHeader http.Header

// Get implements Headers.
func (h HTTPHeader) Get(name string) (string, bool) {
	v := h[canonicalFast(name)]
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// Del implements Headers.
func (h HTTPHeader) Del(name string) { delete(h, canonicalFast(name)) }

// Set implements Headers.
func (h HTTPHeader) Set(name, value string) { h[canonicalFast(name)] = []string{value} }

// Add implements Headers.
func (h HTTPHeader) Add(name, value string) {
	k := canonicalFast(name)
	h[k] = append(h[k], value)
}

// canonicalFast canonicalises a name unless it already is (the edits'
// names are).
func canonicalFast(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return http.CanonicalHeaderKey(name)
		}
		upper = c == '-'
	}
	return name
}

// Field is a header field.
type Field struct{ Name, Value string }

// Fields is a list of header fields as Headers (the engine's heads).
type Fields []Field

// Get implements Headers.
func (f *Fields) Get(name string) (string, bool) {
	for _, fl := range *f {
		if strings.EqualFold(fl.Name, name) {
			return fl.Value, true
		}
	}
	return "", false
}

// Del implements Headers.
func (f *Fields) Del(name string) {
	out := (*f)[:0]
	for _, fl := range *f {
		if !strings.EqualFold(fl.Name, name) {
			out = append(out, fl)
		}
	}
	*f = out
}

// Set implements Headers: the first field of name takes value in place,
// the others go.
func (f *Fields) Set(name, value string) {
	out, set := (*f)[:0], false
	for _, fl := range *f {
		if strings.EqualFold(fl.Name, name) {
			if set {
				continue
			}
			fl.Value, set = value, true
		}
		out = append(out, fl)
	}
	if !set {
		out = append(out, Field{name, value})
	}
	*f = out
}

// Add implements Headers.
func (f *Fields) Add(name, value string) { *f = append(*f, Field{name, value}) }

// EditQuery appends to dst the raw query q (without '?') with x's query
// edits applied: names are compared decoded, values given are escaped;
// the pairs left alone are kept as they came.
func (x *Exchange) EditQuery(dst []byte, q string) []byte {
	edits := x.Query
	if len(edits) == 0 {
		return append(dst, q...)
	}
	f := queryPairs{x.pairs[:0]}
	defer func() { x.pairs = f.p[:0] }()
	for len(q) > 0 {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" {
			continue
		}
		k, v, eq := strings.Cut(pair, "=")
		f.p = append(f.p, qpair{k, v, eq})
	}
	set := func(name, value string) {
		f.p = append(f.p, qpair{url.QueryEscape(name), url.QueryEscape(value), true})
	}
	for _, e := range edits {
		switch e.Op {
		case OpRemove:
			f.del(e.Name)
		case OpSet:
			f.del(e.Name)
			set(e.Name, e.Value)
		case OpReplace:
			if f.has(e.Name) {
				f.del(e.Name)
				set(e.Name, e.Value)
			}
		case OpAdd:
			if !f.has(e.Name) {
				set(e.Name, e.Value)
			}
		case OpAppend:
			set(e.Name, e.Value)
		case OpRename:
			nn := url.QueryEscape(e.Value)
			for i := range f.p {
				if queryName(f.p[i].name) == e.Name {
					f.p[i].name = nn
				}
			}
		}
	}
	for i, p := range f.p {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, p.name...)
		if p.eq {
			dst = append(dst, '=')
			dst = append(dst, p.value...)
		}
	}
	return dst
}

// qpair is a raw query pair.
type qpair struct {
	name, value string
	eq          bool // written with '='
}

type queryPairs struct{ p []qpair }

func queryName(raw string) string {
	if strings.ContainsAny(raw, "%+") {
		if d, err := url.QueryUnescape(raw); err == nil {
			return d
		}
	}
	return raw
}

func (f *queryPairs) has(name string) bool {
	for _, p := range f.p {
		if queryName(p.name) == name {
			return true
		}
	}
	return false
}

func (f *queryPairs) del(name string) {
	out := f.p[:0]
	for _, p := range f.p {
		if queryName(p.name) != name {
			out = append(out, p)
		}
	}
	f.p = out
}
