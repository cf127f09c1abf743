package h1

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
)

// ErrIncomplete is returned when buf holds only the beginning of a head:
// read more and call again (see the package documentation). It is a
// sentinel, compared with ==; it never means the message is bad.
var ErrIncomplete = errors.New("h1: incomplete message head")

// Error is a refusal: the message cannot be framed or is not allowed.
// Status is the status to answer (for a response from an upstream, always
// 502); Reason is a short, fixed phrase for logs. The connection must be
// closed after answering.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return "h1: " + strconv.Itoa(e.Status) + " " + e.Reason }

// Limits bound what a head may cost. A zero field takes its default; a nil
// *Limits takes every default.
type Limits struct {
	// MaxRequestLine bounds the request line (or, for a response, the
	// status line), CRLF excluded. Over it: 414 (502 for a response).
	MaxRequestLine int
	// MaxHeaderBytes bounds the field section: every field line with its
	// CRLF and the final CRLF (the start line is bounded separately, so a
	// buffer of MaxRequestLine+2+MaxHeaderBytes+16 bytes always holds an
	// acceptable head). Over it: 431 (502).
	MaxHeaderBytes int
	// MaxFields bounds the number of field lines, at most MaxFieldsCap.
	// Over it: 431 (502).
	MaxFields int
}

// Defaults for a zero Limits field.
const (
	DefaultMaxRequestLine = 8 << 10
	DefaultMaxHeaderBytes = 32 << 10
	DefaultMaxFields      = 100
	// MaxFieldsCap is the most fields a FieldSet can index; a larger
	// Limits.MaxFields is lowered to it.
	MaxFieldsCap = 256
)

// maxEmptyLines is how many empty lines may precede a start line.
const maxEmptyLines = 8

type limits struct{ line, header, fields int }

func (l *Limits) resolve() limits {
	r := limits{DefaultMaxRequestLine, DefaultMaxHeaderBytes, DefaultMaxFields}
	if l != nil {
		if l.MaxRequestLine > 0 {
			r.line = l.MaxRequestLine
		}
		if l.MaxHeaderBytes > 0 {
			r.header = l.MaxHeaderBytes
		}
		if l.MaxFields > 0 {
			r.fields = min(l.MaxFields, MaxFieldsCap)
		}
	}
	return r
}

// Field is one field line: Name as received (case kept), Value without the
// surrounding OWS. Both are sub-slices of the parsed buffer.
type Field struct {
	Name, Value []byte
}

// FieldSet is a set of field indexes (positions in Header.Fields), used to
// say which fields a writer skips.
type FieldSet [MaxFieldsCap / 64]uint64

// Add puts field i in the set; i must be in [0, MaxFieldsCap).
func (s *FieldSet) Add(i int) { s[i>>6] |= 1 << (uint(i) & 63) }

// Has reports whether field i is in the set.
func (s *FieldSet) Has(i int) bool {
	return uint(i) < MaxFieldsCap && s[i>>6]&(1<<(uint(i)&63)) != 0
}

// Union returns the fields in s or in o.
func (s FieldSet) Union(o FieldSet) FieldSet {
	for i := range s {
		s[i] |= o[i]
	}
	return s
}

// Minus returns the fields in s and not in o.
func (s FieldSet) Minus(o FieldSet) FieldSet {
	for i := range s {
		s[i] &^= o[i]
	}
	return s
}

// BodyKind says how the body after a head is framed.
type BodyKind uint8

const (
	BodyNone       BodyKind = iota // no body: the next message starts at buf[n:]
	BodyLength                     // exactly ContentLength (> 0) bytes
	BodyChunked                    // chunked: run a ChunkedScanner over it
	BodyUntilClose                 // response only: everything until the upstream closes
	BodyTunnel                     // response only: 101 or 2xx to CONNECT; bytes both ways until close
)

var bodyKindNames = [...]string{"none", "length", "chunked", "until-close", "tunnel"}

func (k BodyKind) String() string {
	if int(k) < len(bodyKindNames) {
		return bodyKindNames[k]
	}
	return "BodyKind(" + strconv.Itoa(int(k)) + ")"
}

// Header is what requests and responses share: the field lines in order and
// the framing and connection facts derived from them while parsing.
type Header struct {
	// Fields holds the field lines in the order received. Its capacity is
	// kept across messages.
	Fields []Field
	// Hop is every hop-by-hop field: Connection, Keep-Alive,
	// Proxy-Connection, TE, Transfer-Encoding, Upgrade, HTTP2-Settings,
	// Trailer, and the fields Connection nominates (by case-insensitive
	// name; never Host, Content-Length or Transfer-Encoding).
	Hop FieldSet
	// TransferEncoding is the Transfer-Encoding fields (also in Hop). A
	// proxy that forwards a chunked body byte for byte keeps them:
	// skip = Hop.Minus(TransferEncoding).
	TransferEncoding FieldSet
	// ContentLength is the Content-Length value, -1 when absent.
	ContentLength int64
	// Chunked is set when Transfer-Encoding ends with chunked.
	Chunked bool
	// Close is set when the connection must close after this message: HTTP/1.0
	// without "Connection: keep-alive", any "Connection: close", and (for a
	// response) a body read until close.
	Close bool
	// Upgrade is the Upgrade field value of an HTTP/1.1 request that also
	// sends "Connection: upgrade", or of a 101 response; nil otherwise.
	Upgrade []byte
	// Body is how the body is framed.
	Body BodyKind
}

// KeepAlive reports whether the connection may carry another message.
func (h *Header) KeepAlive() bool { return !h.Close }

// Get returns the value of the first field named name (ASCII
// case-insensitive; name must be lower case), or nil.
func (h *Header) Get(name string) []byte {
	for i := range h.Fields {
		if equalFold(h.Fields[i].Name, name) {
			return h.Fields[i].Value
		}
	}
	return nil
}

// Index returns the set of fields named name (ASCII case-insensitive; name
// must be lower case).
func (h *Header) Index(name string) FieldSet {
	var s FieldSet
	for i := range h.Fields {
		if equalFold(h.Fields[i].Name, name) {
			s.Add(i)
		}
	}
	return s
}

func (h *Header) reset() {
	clear(h.Fields) // drop references into the old buffer
	*h = Header{Fields: h.Fields[:0], ContentLength: -1}
}

// TargetForm is the form of a request target (RFC 9112 §3.2).
type TargetForm uint8

const (
	FormOrigin    TargetForm = iota // "/path?query"
	FormAbsolute                    // "scheme://authority/path?query"
	FormAuthority                   // "host:port", CONNECT only
	FormAsterisk                    // "*", OPTIONS only
)

// Request is a parsed request head. Reuse one per connection: Reset keeps
// the capacity of Fields.
type Request struct {
	Method []byte
	// Target is the request target exactly as received.
	Target []byte
	// Major and Minor are the version numbers (1 and 0 or more).
	Major, Minor uint8
	Form         TargetForm
	// Scheme, Authority and Path split an absolute-form target (Path may
	// be empty or start with '?'); for origin-form Path is the Target, for
	// authority-form Authority is the Target.
	Scheme, Authority, Path []byte
	// Host is the Host field value: nil when absent, empty when sent empty.
	Host []byte
	// Expect100 is set for an HTTP/1.1 "Expect: 100-continue".
	Expect100 bool
	Header

	st scanState
}

// Reset forgets the previous message, including an interrupted parse.
func (r *Request) Reset() {
	h := r.Header
	*r = Request{Header: h}
	r.Header.reset()
}

// Response is a parsed response head. Reuse one per upstream connection.
type Response struct {
	Major, Minor uint8
	Status       int
	// Reason is the reason phrase as received (possibly empty).
	Reason []byte
	Header

	st scanState
}

// Reset forgets the previous message, including an interrupted parse.
func (r *Response) Reset() {
	h := r.Header
	*r = Response{Header: h}
	r.Header.reset()
}

// scanState is where an incomplete head stopped.
type scanState struct {
	active bool
	start  int // offset of the start line
	head   int // offset of the first field line; -1 while the start line is incomplete
	line   int // offset of the first incomplete line
	seen   int // buf[line:seen] holds no LF
	fields int // complete field lines before line
}

// facts collects, during one parse, what the fields say before the
// message-level checks.
type facts struct {
	clSeen, teSeen, chunked    bool
	chunkedCount               int
	connClose, connKA, connUpg bool
	connOther                  bool
	conn                       FieldSet
	hostCount                  int
	host, upgrade              []byte
	expect100                  bool
}

type parser struct {
	buf  []byte
	lim  limits
	resp bool
}

func (p *parser) fail(status int, reason string) error {
	if p.resp {
		status = 502
	}
	return &Error{Status: status, Reason: reason}
}

// ParseRequest parses the request head at the start of buf into r. It
// returns the length of the head, ErrIncomplete, or a *Error. On an error
// the contents of r are unspecified.
func ParseRequest(buf []byte, r *Request, lim *Limits) (int, error) {
	p := parser{buf: buf, lim: lim.resolve()}
	if r.st.active && r.st.seen <= len(buf) {
		if err := p.prescan(&r.st); err != nil {
			if err != ErrIncomplete {
				r.st = scanState{}
			}
			return 0, err
		}
	}
	r.Reset()
	n, err := p.request(r)
	if err != ErrIncomplete {
		r.st = scanState{}
	}
	return n, err
}

// ParseResponse parses the response head at the start of buf into r.
// method is the method of the request it answers (it decides whether a body
// follows: HEAD, and 2xx to CONNECT). It returns the length of the head,
// ErrIncomplete, or a *Error with status 502.
func ParseResponse(buf []byte, r *Response, method []byte, lim *Limits) (int, error) {
	p := parser{buf: buf, lim: lim.resolve(), resp: true}
	if r.st.active && r.st.seen <= len(buf) {
		if err := p.prescan(&r.st); err != nil {
			if err != ErrIncomplete {
				r.st = scanState{}
			}
			return 0, err
		}
	}
	r.Reset()
	n, err := p.response(r, method)
	if err != ErrIncomplete {
		r.st = scanState{}
	}
	return n, err
}

// prescan looks for the end of the head from where the last call stopped,
// applying the limits and the line-ending rule. It returns nil once the
// final CRLF is in buf.
func (p *parser) prescan(st *scanState) error {
	buf := p.buf
	for {
		i := bytes.IndexByte(buf[st.seen:], '\n')
		if i < 0 {
			st.seen = len(buf)
			if st.head < 0 {
				if len(buf)-st.start > p.lim.line+1 {
					return p.lineTooLong()
				}
			} else if len(buf)-st.head > p.lim.header {
				return p.fail(431, "header section too large")
			}
			return ErrIncomplete
		}
		lf := st.seen + i
		if lf == st.line || buf[lf-1] != '\r' {
			return p.fail(400, "bare LF")
		}
		if st.head < 0 {
			if lf-1-st.start > p.lim.line {
				return p.lineTooLong()
			}
			st.head = lf + 1
		} else {
			if lf+1-st.head > p.lim.header {
				return p.fail(431, "header section too large")
			}
			if lf-1 == st.line {
				return nil
			}
			st.fields++
			if st.fields > p.lim.fields {
				return p.fail(431, "too many header fields")
			}
		}
		st.line = lf + 1
		st.seen = st.line
	}
}

func (p *parser) lineTooLong() error {
	if p.resp {
		return p.fail(502, "status line too long")
	}
	return p.fail(414, "request line too long")
}

// skipEmptyLines returns the offset of the start line.
func (p *parser) skipEmptyLines() (int, error) {
	buf := p.buf
	i := 0
	for e := 0; ; e++ {
		if i >= len(buf) {
			return 0, ErrIncomplete
		}
		if c := buf[i]; c != '\r' && c != '\n' {
			return i, nil
		}
		if e == maxEmptyLines {
			return 0, p.fail(400, "too many empty lines before the start line")
		}
		if buf[i] == '\n' {
			return 0, p.fail(400, "bare LF")
		}
		if i+1 >= len(buf) {
			return 0, ErrIncomplete
		}
		if buf[i+1] != '\n' {
			return 0, p.fail(400, "CR not followed by LF")
		}
		i += 2
	}
}

// startLine finds the end of the start line beginning at start and returns
// the offset of its CR.
func (p *parser) startLine(start int) (int, error) {
	w := p.buf[start:]
	if len(w) > p.lim.line+2 {
		w = w[:p.lim.line+2]
	}
	i := bytes.IndexByte(w, '\n')
	if i < 0 {
		if len(p.buf)-start > p.lim.line+1 {
			return 0, p.lineTooLong()
		}
		return 0, ErrIncomplete
	}
	if i == 0 || w[i-1] != '\r' {
		return 0, p.fail(400, "bare LF")
	}
	if i-1 > p.lim.line {
		return 0, p.lineTooLong()
	}
	return start + i - 1, nil
}

func (p *parser) version(v []byte) (major, minor uint8, err error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' ||
		v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, 0, p.fail(400, "malformed HTTP version")
	}
	if v[5] != '1' {
		return 0, 0, p.fail(505, "HTTP version not supported")
	}
	return 1, v[7] - '0', nil
}

func (p *parser) request(r *Request) (int, error) {
	buf := p.buf
	start, err := p.skipEmptyLines()
	if err != nil {
		return 0, err
	}
	cr, err := p.startLine(start)
	if err == ErrIncomplete {
		// Refuse at once what cannot become a request line (a TLS
		// handshake, binary noise) instead of waiting for the limit.
		i := start
		for i < len(buf) && classes[buf[i]]&cToken != 0 {
			i++
		}
		if i < len(buf) && (buf[i] != ' ' || i == start) {
			return 0, p.fail(400, "invalid method")
		}
		r.st = scanState{active: true, start: start, head: -1, line: start, seen: len(buf)}
		return 0, err
	}
	if err != nil {
		return 0, err
	}
	line := buf[start:cr]

	m := 0
	for m < len(line) && classes[line[m]]&cToken != 0 {
		m++
	}
	if m == 0 || m == len(line) || line[m] != ' ' {
		return 0, p.fail(400, "invalid method")
	}
	r.Method = line[:m]
	t := m + 1
	j := t
	for j < len(line) && classes[line[j]]&cTarget != 0 {
		j++
	}
	if j == len(line) {
		return 0, p.fail(400, "malformed request line")
	}
	if line[j] != ' ' || j == t {
		return 0, p.fail(400, "invalid request target")
	}
	r.Target = line[t:j]
	if r.Major, r.Minor, err = p.version(line[j+1:]); err != nil {
		return 0, err
	}
	if err := p.target(r); err != nil {
		return 0, err
	}

	var f facts
	n, err := p.fields(&r.Header, cr+2, &f, &r.st)
	if err != nil {
		if err == ErrIncomplete {
			r.st.start = start
		}
		return 0, err
	}

	h := &r.Header
	if f.hostCount == 0 && r.Minor >= 1 {
		return 0, p.fail(400, "missing Host")
	}
	r.Host = f.host
	if f.teSeen {
		switch {
		case r.Minor == 0:
			return 0, p.fail(400, "Transfer-Encoding in HTTP/1.0")
		case f.clSeen:
			return 0, p.fail(400, "both Content-Length and Transfer-Encoding")
		case !f.chunked:
			return 0, p.fail(400, "chunked is not the last transfer coding")
		}
		h.Chunked = true
		h.Body = BodyChunked
	} else if h.ContentLength > 0 {
		h.Body = BodyLength
	}
	if r.Minor == 0 {
		h.Close = f.connClose || !f.connKA
	} else {
		h.Close = f.connClose
		if f.connUpg && f.upgrade != nil {
			h.Upgrade = f.upgrade
		}
		r.Expect100 = f.expect100
	}
	if f.connOther {
		nominate(h, &f.conn)
	}
	return n, nil
}

// target checks the request target against the method and splits it.
func (p *parser) target(r *Request) error {
	t := r.Target
	if string(r.Method) == "CONNECT" {
		c := bytes.LastIndexByte(t, ':')
		if c <= 0 || c == len(t)-1 || !validAuthority(t) {
			return p.fail(400, "CONNECT needs host:port")
		}
		for _, d := range t[c+1:] {
			if d < '0' || d > '9' {
				return p.fail(400, "CONNECT needs host:port")
			}
		}
		r.Form, r.Authority = FormAuthority, t
		return nil
	}
	switch {
	case t[0] == '/':
		r.Form, r.Path = FormOrigin, t
		return nil
	case len(t) == 1 && t[0] == '*':
		if string(r.Method) != "OPTIONS" {
			return p.fail(400, "asterisk-form target outside OPTIONS")
		}
		r.Form = FormAsterisk
		return nil
	}
	i := 0
	for i < len(t) && classes[t[i]]&cScheme != 0 {
		i++
	}
	if i == 0 || !('a' <= t[0]|0x20 && t[0]|0x20 <= 'z') || !bytes.HasPrefix(t[i:], []byte("://")) {
		return p.fail(400, "invalid request target")
	}
	a := i + 3
	e := a
	for e < len(t) && t[e] != '/' && t[e] != '?' {
		e++
	}
	if e == a || !validAuthority(t[a:e]) {
		return p.fail(400, "invalid authority in request target")
	}
	r.Form, r.Scheme, r.Authority, r.Path = FormAbsolute, t[:i], t[a:e], t[e:]
	return nil
}

func validAuthority(a []byte) bool {
	for _, c := range a {
		if classes[c]&cHost == 0 {
			return false // includes '@': userinfo is refused (RFC 9110 §4.2.4)
		}
	}
	return true
}

func (p *parser) response(r *Response, method []byte) (int, error) {
	buf := p.buf
	start, err := p.skipEmptyLines()
	if err != nil {
		return 0, err
	}
	cr, err := p.startLine(start)
	if err == ErrIncomplete {
		if w := buf[start:]; !bytes.HasPrefix([]byte("HTTP/"), w[:min(len(w), 5)]) {
			return 0, p.fail(502, "malformed status line")
		}
		r.st = scanState{active: true, start: start, head: -1, line: start, seen: len(buf)}
		return 0, err
	}
	if err != nil {
		return 0, err
	}
	line := buf[start:cr]
	if len(line) < 12 || line[8] != ' ' {
		return 0, p.fail(502, "malformed status line")
	}
	if r.Major, r.Minor, err = p.version(line[:8]); err != nil {
		return 0, err
	}
	code := 0
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, p.fail(502, "malformed status code")
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 {
		return 0, p.fail(502, "malformed status code")
	}
	r.Status = code
	switch {
	case len(line) == 12:
		r.Reason = line[12:]
	case line[12] != ' ':
		return 0, p.fail(502, "malformed status line")
	default:
		r.Reason = line[13:]
		for _, c := range r.Reason {
			if classes[c]&cValue == 0 {
				return 0, p.fail(502, "invalid byte in reason phrase")
			}
		}
	}

	var f facts
	n, err := p.fields(&r.Header, cr+2, &f, &r.st)
	if err != nil {
		if err == ErrIncomplete {
			r.st.start = start
		}
		return 0, err
	}

	h := &r.Header
	if f.teSeen {
		if r.Minor == 0 {
			return 0, p.fail(502, "Transfer-Encoding in HTTP/1.0")
		}
		if f.clSeen {
			return 0, p.fail(502, "both Content-Length and Transfer-Encoding")
		}
		h.Chunked = f.chunked
	}
	if r.Minor == 0 {
		h.Close = f.connClose || !f.connKA
	} else {
		h.Close = f.connClose
	}
	switch {
	case code == 101:
		h.Body = BodyTunnel
		h.Upgrade = f.upgrade
	case code < 200 || code == 204 || code == 304 || string(method) == "HEAD":
		h.Body = BodyNone
	case code < 300 && string(method) == "CONNECT":
		h.Body = BodyTunnel
	case f.teSeen && f.chunked:
		h.Body = BodyChunked
	case f.teSeen:
		h.Body = BodyUntilClose
	case f.clSeen:
		if h.ContentLength > 0 {
			h.Body = BodyLength
		}
	default:
		h.Body = BodyUntilClose
	}
	if h.Body == BodyUntilClose {
		h.Close = true
	}
	if f.connOther {
		nominate(h, &f.conn)
	}
	return n, nil
}

// fields parses field lines from buf[i:] up to and including the empty line
// and returns the offset just after it. On ErrIncomplete it records in st
// where the next call resumes.
func (p *parser) fields(h *Header, i int, f *facts, st *scanState) (int, error) {
	buf := p.buf
	head := i
	n := 0
	for {
		ls := i // start of this line
		if i >= len(buf) {
			return p.incomplete(st, head, ls, n)
		}
		if buf[i] == '\r' {
			if i+1 >= len(buf) {
				return p.incomplete(st, head, ls, n)
			}
			if buf[i+1] != '\n' {
				return 0, p.fail(400, "CR not followed by LF")
			}
			if i+2-head > p.lim.header {
				return 0, p.fail(431, "header section too large")
			}
			return i + 2, nil
		}
		for i < len(buf) && classes[buf[i]]&cToken != 0 {
			i++
		}
		if i >= len(buf) {
			return p.incomplete(st, head, ls, n)
		}
		if c := buf[i]; c != ':' || i == ls {
			switch {
			case c == '\n':
				return 0, p.fail(400, "bare LF")
			case i == ls && isOWS(c) && n == 0:
				return 0, p.fail(400, "whitespace before the first field line")
			case i == ls && isOWS(c):
				return 0, p.fail(400, "obsolete line folding")
			case i == ls && c == ':':
				return 0, p.fail(400, "empty field name")
			case isOWS(c):
				return 0, p.fail(400, "whitespace between field name and colon")
			case c == '\r':
				return 0, p.fail(400, "field line without colon")
			}
			return 0, p.fail(400, "invalid byte in field name")
		}
		name := buf[ls:i]
		i++
		for i < len(buf) && isOWS(buf[i]) {
			i++
		}
		vs := i
		i = scanValue(buf, i)
		if i >= len(buf) {
			return p.incomplete(st, head, ls, n)
		}
		if buf[i] != '\r' {
			if buf[i] == '\n' {
				return 0, p.fail(400, "bare LF")
			}
			return 0, p.fail(400, "invalid byte in field value")
		}
		if i+1 >= len(buf) {
			return p.incomplete(st, head, ls, n)
		}
		if buf[i+1] != '\n' {
			return 0, p.fail(400, "CR not followed by LF")
		}
		ve := i
		for ve > vs && isOWS(buf[ve-1]) {
			ve--
		}
		i += 2
		if i-head > p.lim.header {
			return 0, p.fail(431, "header section too large")
		}
		n++
		if n > p.lim.fields {
			return 0, p.fail(431, "too many header fields")
		}
		h.Fields = append(h.Fields, Field{Name: name, Value: buf[vs:ve]})
		if err := p.known(h, f, len(h.Fields)-1); err != nil {
			return 0, err
		}
	}
}

// scanValue returns the offset of the first byte at or after i that is not
// a field value byte (or len(b)). It checks eight bytes at a time while none
// of them is a control byte or DEL, the common case of a plain value, and
// looks at single bytes only in a word that has one (HTAB, CR, or an error).
func scanValue(b []byte, i int) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for {
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			y := x ^ (lo * 0x7f)
			// High bit set in a lane whose byte is < 0x20, or == 0x7f.
			if ((x-lo*0x20)&^x|(y-lo)&^y)&hi != 0 {
				break
			}
			i += 8
		}
		for end := min(i+8, len(b)); i < end; i++ {
			if classes[b[i]]&cValue == 0 {
				return i
			}
		}
		if i >= len(b) {
			return i
		}
	}
}

func (p *parser) incomplete(st *scanState, head, line, n int) (int, error) {
	if len(p.buf)-head > p.lim.header {
		return 0, p.fail(431, "header section too large")
	}
	*st = scanState{active: true, head: head, line: line, seen: len(p.buf), fields: n}
	return 0, ErrIncomplete
}

// known derives facts from field idx when its name is one that matters.
func (p *parser) known(h *Header, f *facts, idx int) error {
	name, v := h.Fields[idx].Name, h.Fields[idx].Value
	switch len(name) {
	case 2:
		if equalFold(name, "te") {
			h.Hop.Add(idx)
		}
	case 4:
		if !p.resp && equalFold(name, "host") {
			f.hostCount++
			if f.hostCount > 1 {
				return p.fail(400, "duplicate Host")
			}
			for _, c := range v {
				if classes[c]&cHost == 0 {
					return p.fail(400, "invalid Host")
				}
			}
			f.host = v
		}
	case 6:
		if equalFold(name, "expect") && equalFold(v, "100-continue") {
			f.expect100 = true
		}
	case 7:
		if equalFold(name, "upgrade") {
			h.Hop.Add(idx)
			if f.upgrade == nil {
				f.upgrade = v
			}
		} else if equalFold(name, "trailer") {
			h.Hop.Add(idx)
		}
	case 10:
		if equalFold(name, "connection") {
			h.Hop.Add(idx)
			f.conn.Add(idx)
			for e, rest, ok := nextListElement(v); ok; e, rest, ok = nextListElement(rest) {
				switch {
				case len(e) == 0:
				case !isToken(e):
					return p.fail(400, "invalid Connection option")
				case equalFold(e, "close"):
					f.connClose = true
				case equalFold(e, "keep-alive"):
					f.connKA = true
				case equalFold(e, "upgrade"):
					f.connUpg = true
				default:
					f.connOther = true
				}
			}
		} else if equalFold(name, "keep-alive") {
			h.Hop.Add(idx)
		}
	case 14:
		if equalFold(name, "content-length") {
			if f.clSeen {
				return p.fail(400, "duplicate Content-Length")
			}
			f.clSeen = true
			if len(v) == 0 {
				return p.fail(400, "invalid Content-Length")
			}
			var n int64
			for _, c := range v {
				if c < '0' || c > '9' {
					return p.fail(400, "invalid Content-Length")
				}
				d := int64(c - '0')
				if n > (math.MaxInt64-d)/10 {
					return p.fail(400, "Content-Length overflows")
				}
				n = n*10 + d
			}
			h.ContentLength = n
		} else if equalFold(name, "http2-settings") {
			h.Hop.Add(idx)
		}
	case 16:
		if equalFold(name, "proxy-connection") {
			h.Hop.Add(idx)
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			h.Hop.Add(idx)
			h.TransferEncoding.Add(idx)
			return p.codings(f, v)
		}
	}
	return nil
}

// codings checks one Transfer-Encoding value; the codings of all the
// Transfer-Encoding fields form one list.
func (p *parser) codings(f *facts, v []byte) error {
	f.teSeen = true
	if len(v) == 0 || v[0] == ',' || v[len(v)-1] == ',' {
		return p.fail(400, "empty transfer coding")
	}
	for e, rest, ok := nextListElement(v); ok; e, rest, ok = nextListElement(rest) {
		switch {
		case len(e) == 0:
			return p.fail(400, "empty transfer coding")
		case !isToken(e):
			return p.fail(400, "invalid transfer coding")
		case equalFold(e, "chunked"):
			f.chunkedCount++
			if f.chunkedCount > 1 {
				return p.fail(400, "chunked applied more than once")
			}
			f.chunked = true
			continue
		}
		if f.chunked && !p.resp {
			return p.fail(400, "chunked is not the last transfer coding")
		}
		f.chunked = false
		if !p.resp && !knownCoding(e) {
			return p.fail(501, "unsupported transfer coding")
		}
	}
	return nil
}

func knownCoding(e []byte) bool {
	return equalFold(e, "gzip") || equalFold(e, "deflate") || equalFold(e, "compress") ||
		equalFold(e, "x-gzip") || equalFold(e, "x-compress")
}

// nominate adds to Hop the fields named by Connection options.
func nominate(h *Header, conn *FieldSet) {
	for ci := range h.Fields {
		if !conn.Has(ci) {
			continue
		}
		v := h.Fields[ci].Value
		for e, rest, ok := nextListElement(v); ok; e, rest, ok = nextListElement(rest) {
			if len(e) == 0 || equalFold(e, "close") || equalFold(e, "keep-alive") || equalFold(e, "upgrade") ||
				equalFold(e, "host") || equalFold(e, "content-length") || equalFold(e, "transfer-encoding") {
				continue
			}
			for j := range h.Fields {
				if equalFoldBytes(h.Fields[j].Name, e) {
					h.Hop.Add(j)
				}
			}
		}
	}
}
