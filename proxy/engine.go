package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/proxy/h1"
	"github.com/outrigger-gw/outrigger/tracing"
	"github.com/outrigger-gw/outrigger/upstream"
)

// The engine: Outrigger's own HTTP/1.1 server and client for the proxy
// listener, on the framing of package h1.
//
// One goroutine serves one client connection: it reads a request head
// into the connection's pooled buffer, parses it in place, routes it with
// the Table current at that moment, picks a target, takes a pooled
// upstream connection (or dials one), writes the upstream head in one
// write, streams the request body, reads the response head with h1 and
// streams the response back as it arrives. Requests on one connection are
// served in sequence (pipelined requests wait in the buffer). On plaintext
// TCP neither side is read before it can have something to say: a client
// after its response and an upstream after its request are waited on
// first (clientraw_unix.go, upraw_unix.go), as nginx does, so a proxied
// request costs two reads and two writes. A WebSocket
// or other upgrade answered 101 becomes a two-way byte tunnel (one more
// goroutine). What the engine refuses while framing a request is answered
// with the *h1.Error status, the JSON error body and a closed connection.
//
// The request is forwarded as received except for what a proxy must
// change: the target (rewritten per path_handling only when the route
// changes the path; otherwise byte for byte, percent-encodings and ';'
// included), hop-by-hop fields (Connection and what it nominates,
// Keep-Alive, Proxy-Connection, TE but "TE: trailers", Trailer unless the
// body passes chunked, Transfer-Encoding unless the body passes chunked,
// Upgrade and HTTP2-Settings unless the upgrade is tunnelled, and h2c is
// never), Host (the target's address unless preserve_host), and the
// X-Forwarded-* and X-Real-Ip fields, set as the net/http handler does.

// ServerOptions configure the engine's client side.
type ServerOptions struct {
	// IdleTimeout closes a keep-alive connection that sends no new
	// request for that long (0: never).
	IdleTimeout time.Duration
	// HeaderTimeout bounds reading a request head; a client that sent
	// part of one when it expires is answered 408 (0: no bound).
	HeaderTimeout time.Duration
	// MaxConnections caps the client connections served at once (0:
	// unlimited); beyond it connections wait in the accept backlog.
	MaxConnections int
	// H2C serves HTTP/2 with prior knowledge on plaintext connections
	// that start with the HTTP/2 preface (with the net/http handler).
	// "Upgrade: h2c" is never honoured.
	H2C bool
	// ClientSubjectHeader, when set, names the request field that carries
	// a TLS client's verified certificate subject upstream; a field of
	// that name sent by any client is removed.
	ClientSubjectHeader string
	// H2 are the HTTP/2 limits (h2c and ALPN h2).
	H2 H2Options
	// ErrorLog receives what the HTTP/2 server reports about a
	// connection (nil: the log package's standard logger).
	ErrorLog *log.Logger
}

// Server serves a Proxy's HTTP/1.1 clients with the engine.
//
// Concurrency: Serve, Shutdown and Close may be called from any
// goroutine. mu guards lns and conns; closing and the client states are
// atomics; clients is a sync.Pool.
type Server struct {
	p       *Proxy
	o       ServerOptions
	sem     chan struct{} // one token per served connection; nil: unlimited
	h2      *h2Server
	clients sync.Pool // *client
	bufs    bufPool
	clk     monoClock
	date    dateField
	closing atomic.Bool
	done    chan struct{} // closed when closing is set
	once    sync.Once

	mu    sync.Mutex
	lns   map[net.Listener]struct{}
	conns map[*client]struct{}

	serials atomic.Uint64 // the last connection's serial
}

// NewServer returns an engine server for p.
func (p *Proxy) NewServer(o ServerOptions) *Server {
	s := &Server{p: p, o: o, clk: newMonoClock(), done: make(chan struct{}), lns: map[net.Listener]struct{}{}, conns: map[*client]struct{}{}}
	if o.MaxConnections > 0 {
		s.sem = make(chan struct{}, o.MaxConnections)
	}
	s.h2 = newH2Server(s.h2Handler(), o)
	return s
}

// Serve accepts connections on ln until Shutdown or Close; it then
// returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	return s.ServeListener(ln, ListenerOptions{H2C: s.o.H2C})
}

// ServeListener is Serve with lo's settings for ln's connections.
func (s *Server) ServeListener(ln net.Listener, lo ListenerOptions) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		if s.sem != nil {
			select {
			case s.sem <- struct{}{}:
			case <-s.done:
				return http.ErrServerClosed
			}
		}
		nc, err := ln.Accept()
		if err != nil {
			s.release()
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		go s.serveConn(nc, &lo)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) release() {
	if s.sem != nil {
		<-s.sem
	}
}

// Shutdown stops accepting, closes idle connections, sends GOAWAY to
// HTTP/2 ones, lets the others finish their requests and close, and waits for them until ctx ends (then
// it returns ctx's error; Close ends the rest).
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		h2 := false
		for c := range s.conns {
			if c.state.CompareAndSwap(stateIdle, stateClosed) {
				c.abort()
			}
			h2 = h2 || c.state.Load() == stateH2
		}
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		if h2 {
			s.h2.goAway()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.abort()
	}
	return nil
}

func (s *Server) stop() {
	s.once.Do(func() {
		s.closing.Store(true)
		close(s.done)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.lns {
		_ = ln.Close()
	}
}

// Client connection states, for the drain.
const (
	stateActive int32 = iota // reading or serving a request
	stateIdle                // waiting for a request, nothing received
	stateClosed              // closed by Shutdown or Close
	stateH2                  // served by the HTTP/2 server until it closes
)

// maxHeadBuf holds the largest head h1 accepts with the default limits.
const maxHeadBuf = h1.DefaultMaxRequestLine + h1.DefaultMaxHeaderBytes + 1024

// client is one client connection and the state of its current request.
// It belongs to the goroutine serving the connection (state is also read
// by Shutdown).
type client struct {
	s     *Server
	nc    net.Conn
	rd    deadline // nc's read deadline
	state atomic.Int32
	bufp  *[]byte // pooled read buffer
	buf   []byte  // *bufp, or a larger one for a large head
	w     int     // buf[:w] holds data; a request head starts at buf[0]
	next  int     // where the bytes after the current request start
	reqs  int     // requests read on this connection
	ip    string  // client IP, and the local port as a string
	port  string
	raddr string // the remote address for the access log, once asked
	req   h1.Request
	in    h1Inbound
	out   []byte // heads and small writes
	lim   h1.Limits
	scanQ h1.ChunkedScanner // request body
	scanR h1.ChunkedScanner // response body
	dec   []byte            // a decoded response chunk (HTTP/1.0 client)
	ex    exchange
	tsp   spans // the traced request's spans (ex.spans), reset per traced request

	// tls: the connection is TLS; subject is its verified client
	// certificate's subject (with ClientSubjectHeader set; "" when none).
	tls     bool
	subject string
	// h2c: the listener serves h2c with prior knowledge too (a first
	// line that is no HTTP/1.x request line is a failed HTTP/2 preface).
	h2c bool

	// serial numbers the connection; plug is the plugins' scratch
	// (pluginhook.go).
	serial uint64
	plug   pluginState

	// hs is the head being read, kept across the waits of serveRaw;
	// raw, rawFn, fd, drained, rawRes and rawN are serveRaw's state
	// (clientraw_unix.go).
	hs      headState
	raw     syscall.RawConn
	rawFn   func(fd uintptr) bool
	fd      uintptr
	drained bool
	rawRes  int
	rawN    int
}

// headState is the reading of one request head.
type headState struct {
	begun     bool  // the clocks are set for this head
	started   bool  // the header clock runs
	headerDue int64 // when the header clock started and the deadline is not set yet
}

// readHeadStep's results.
const (
	headOK   = iota // a whole head
	headFail        // the connection ends (answered when it should be)
	headWait        // raw: nothing to read; wait for readiness
)

// exchange is the bookkeeping of one proxied request.
type exchange struct {
	route     *Route
	up        *upstream.Upstream // the upstream chosen (primary or canary)
	gen       uint64             // the table's generation: up's snapshot is chosen by it
	role      *RoleStats
	postfix   string // what the route's path left of the request path
	prefix    string // X-Forwarded-Prefix to send ("" for none)
	br        balance.Request
	setCookie string
	attempts  int
	ep        *upstream.Endpoint
	err       error
	bytes     int64 // response body bytes written to the client
	start     time.Time
	end       time.Time // the response was relayed whole (zero otherwise)
	status    int
	bodySent  int64  // request body bytes written upstream
	bodyDone  bool   // the request body was read whole from the client
	clientErr bool   // the client failed (gone, bad body)
	finished  bool   // counted and logged (finish ran)
	spans     *spans // tracing: &client.tsp when traced, nil when off
	plugged   bool   // the route's plugins ran (c.plug holds their edits)
}

func (s *Server) getClient(nc net.Conn) *client {
	c, _ := s.clients.Get().(*client)
	if c == nil {
		c = &client{s: s, out: make([]byte, 0, 4096), lim: upLimits()}
		c.rawFn = c.rawServe
		c.bufp = s.bufs.get()
		c.buf = *c.bufp
	}
	c.nc = nc
	c.serial = s.serials.Add(1)
	c.state.Store(stateActive)
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.ip = a.IP.String()
	} else if h, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
		c.ip = h
	}
	if a, ok := nc.LocalAddr().(*net.TCPAddr); ok {
		c.port = strconv.Itoa(a.Port)
	}
	return c
}

func (s *Server) putClient(c *client) {
	c.nc = nil
	c.rd = deadline{}
	c.buf = *c.bufp
	c.w, c.next, c.reqs = 0, 0, 0
	c.ip, c.port, c.raddr = "", "", ""
	c.tls, c.subject, c.h2c = false, "", false
	c.hs, c.raw, c.drained = headState{}, nil, false
	c.req.Reset()
	c.in = h1Inbound{}
	c.ex = exchange{}
	if c.tsp.tr != nil {
		c.tsp = spans{} // no span kept alive by the pool
	}
	if cap(c.out) > 64<<10 {
		c.out = make([]byte, 0, 4096)
	}
	s.clients.Put(c)
}

func (s *Server) serveConn(nc net.Conn, lo *ListenerOptions) {
	defer s.release()
	c := s.getClient(nc)
	if lo.TLS == nil {
		c.raw = rawConnOf(nc) // set before Shutdown and Close can see c
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		_ = nc.Close()
		s.putClient(c)
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		_ = nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.putClient(c)
	}()
	if lo.TLS != nil {
		if !c.serveTLS(lo.TLS) {
			return
		}
	} else if lo.H2C {
		if c.h2cPreface() {
			s.serveH2(c, nc, c.buf[:c.w])
			return
		}
		c.h2c = true
	}
	if c.raw != nil {
		c.serveRaw()
		return
	}
	for c.serveOne() && !s.closing.Load() {
	}
}

// h2cPreface is the start of an HTTP/2 connection with prior knowledge.
const h2cPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2cPreface reads until the buffer holds the HTTP/2 preface or bytes
// that cannot start it; the bytes stay in the buffer.
func (c *client) h2cPreface() bool {
	if to := c.s.o.HeaderTimeout; to > 0 {
		c.rd.exact(c.nc.SetReadDeadline, c.s.clk, c.s.clk.now()+int64(to))
	}
	for {
		k := min(c.w, len(h2cPreface))
		if string(c.buf[:k]) != h2cPreface[:k] {
			return false
		}
		if k == len(h2cPreface) {
			c.rd.clear(c.nc.SetReadDeadline)
			return true
		}
		idle := c.w == 0
		if idle {
			// Nothing received yet: Shutdown may close it as idle.
			c.state.Store(stateIdle)
		}
		m, err := c.nc.Read(c.buf[c.w:])
		c.w += m
		if err != nil && m == 0 {
			return false
		}
		if idle && !c.state.CompareAndSwap(stateIdle, stateActive) {
			return false // closed by Shutdown meanwhile
		}
	}
}

// replayConn gives the bytes already read back before reading on.
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// shiftPipelined moves the bytes the client sent after the last request
// (pipelined, from buf[next:w]) to the front of buf.
func (c *client) shiftPipelined() {
	if c.next > 0 {
		c.w = copy(c.buf, c.buf[c.next:c.w])
		c.next = 0
	}
}

// serveOne serves one request; it reports whether the connection may
// carry another.
func (c *client) serveOne() bool {
	c.shiftPipelined()
	n, ok := c.readHead()
	if !ok {
		return false
	}
	c.reqs++
	c.next = n
	return c.handleGuarded(n)
}

// handleGuarded is handle under internal/guard's rule: a panic is logged
// with its stack and counted; the client gets the JSON 500 when nothing of
// the response was written yet, else the connection is closed; the request
// is still counted and logged. The connection never carries another
// request after a panic.
func (c *client) handleGuarded(n int) (keep bool) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		ex := &c.ex
		started := ex.status != 0 || ex.bytes > 0
		if v != http.ErrAbortHandler {
			c.s.p.guard.Report(v, bstr(c.req.Method), bstr(c.req.Host), c.in.dpath, c.remoteAddr(), started)
			if !started {
				c.answerErr(http.StatusInternalServerError, "An unexpected error occurred", true)
			}
		}
		if ex.status == 0 {
			ex.status = http.StatusInternalServerError
		}
		if ex.route != nil && ex.up != nil {
			c.finish(bstr(c.req.Method), bstr(c.req.Host), c.in.dpath)
		}
		keep = false
	}()
	return c.handle(n)
}

// readHead reads until buf holds a whole request head and returns its
// length. It answers framing refusals and a head timeout itself.
//
// The header clock starts at accept for the first request and with the
// first byte of a later one; before that byte the idle clock runs (a
// rolling deadline: see deadline.go). The header deadline is only set
// when the head did not come whole with its first read.
func (c *client) readHead() (int, bool) {
	n, st := c.readHeadStep(false)
	return n, st == headOK
}

// beginHead starts the clocks of the next head (c.hs); false: the
// connection ends.
func (c *client) beginHead() bool {
	s := c.s
	set := c.nc.SetReadDeadline
	c.hs = headState{begun: true, started: c.w > 0 || c.reqs == 0}
	if c.w == 0 {
		c.state.Store(stateIdle)
		if s.closing.Load() {
			c.hs.begun = false
			return false
		}
	}
	switch {
	case c.hs.started && s.o.HeaderTimeout > 0:
		c.rd.exact(set, s.clk, s.clk.now()+int64(s.o.HeaderTimeout))
	case !c.hs.started && s.o.IdleTimeout > 0:
		c.rd.roll(set, s.clk, s.clk.now(), s.o.IdleTimeout)
	case c.reqs > 0:
		c.rd.clear(set)
	}
	return true
}

// readHeadStep is readHead, resumable: with raw (inside serveRaw) it
// reads without blocking and returns headWait when it must wait.
func (c *client) readHeadStep(raw bool) (int, int) {
	s := c.s
	hs := &c.hs
	if !hs.begun && !c.beginHead() {
		return 0, headFail
	}
	for {
		if c.w > 0 {
			n, err := h1.ParseRequest(c.buf[:c.w], &c.req, nil)
			if err == nil {
				hs.begun = false
				return n, headOK
			}
			if err != h1.ErrIncomplete {
				hs.begun = false
				var he *h1.Error
				switch {
				case !errors.As(err, &he):
				case c.h2c && c.reqs == 0 && !h1RequestLine(c.buf[:c.w]):
					c.refuseH2Preface()
				default:
					c.refuse(he.Status)
				}
				return 0, headFail
			}
			if c.w == len(c.buf) {
				if len(c.buf) >= maxHeadBuf {
					hs.begun = false
					c.refuse(http.StatusRequestHeaderFieldsTooLarge)
					return 0, headFail
				}
				nb := make([]byte, maxHeadBuf)
				copy(nb, c.buf[:c.w])
				c.buf = nb
			}
		}
		if hs.headerDue != 0 {
			c.rd.exact(c.nc.SetReadDeadline, s.clk, hs.headerDue)
			hs.headerDue = 0
		}
		var m int
		var err error
		if raw {
			if m, err = c.rawRead(c.buf[c.w:]); err == errWouldBlock {
				return 0, headWait
			}
		} else {
			m, err = c.nc.Read(c.buf[c.w:])
		}
		if m > 0 {
			if c.w == 0 {
				if !c.state.CompareAndSwap(stateIdle, stateActive) && c.state.Load() == stateClosed {
					hs.begun = false
					return 0, headFail
				}
				if !hs.started && s.o.HeaderTimeout > 0 {
					hs.headerDue = s.clk.now() + int64(s.o.HeaderTimeout)
				}
				hs.started = true
			}
			c.w += m
			continue
		}
		if err != nil {
			hs.begun = false
			if c.w > 0 && isTimeout(err) {
				c.refuse(http.StatusRequestTimeout)
			}
			return 0, headFail
		}
	}
}

// refuse answers a request that cannot be served with status and the
// JSON error body; the connection closes.
func (c *client) refuse(status int) {
	msg := refusalMessage(status)
	c.out = appendError(c.out[:0], c.s.date.at(time.Now()), status, msg, true, false)
	_, _ = c.nc.Write(c.out)
}

// h2PrefaceRefusal is what an h2c listener answers a connection that
// starts with neither the HTTP/2 preface nor an HTTP/1.x request line: a
// failed HTTP/2 preface, a connection error PROTOCOL_ERROR (RFC 9113 3.4),
// so the server preface (an empty SETTINGS frame) and GOAWAY naming no
// stream, before the close.
const h2PrefaceRefusal = "\x00\x00\x00\x04\x00\x00\x00\x00\x00" + // SETTINGS, length 0
	"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + // GOAWAY, length 8
	"\x00\x00\x00\x00" + // last stream 0
	"\x00\x00\x00\x01" // PROTOCOL_ERROR

func (c *client) refuseH2Preface() {
	c.out = append(c.out[:0], h2PrefaceRefusal...)
	_, _ = c.nc.Write(c.out)
}

// h1RequestLine reports whether b, the first bytes of a connection, can be
// the start of an HTTP/1.x request: a method token and a space, then, once
// the line is complete, a target and " HTTP/1." and a digit before the
// CRLF (empty lines before it are skipped, as the parser does). A line not
// complete yet counts when its bytes so far are printable, so a request
// line over the limit is still answered 414.
func h1RequestLine(b []byte) bool {
	for len(b) >= 2 && b[0] == '\r' && b[1] == '\n' {
		b = b[2:]
	}
	line := b
	complete := false
	if i := bytes.Index(b, []byte("\r\n")); i >= 0 {
		line, complete = b[:i], true
	}
	m := bytes.IndexByte(line, ' ')
	if m <= 0 {
		return false
	}
	for _, ch := range line[:m] {
		if !isTokenByte(ch) {
			return false
		}
	}
	for _, ch := range line[m:] {
		if ch < ' ' || ch >= 0x7f {
			return false
		}
	}
	if !complete {
		return true
	}
	v := bytes.LastIndexByte(line, ' ')
	return v > m+1 && len(line)-v == 9 && string(line[v+1:v+8]) == "HTTP/1." &&
		line[v+8] >= '0' && line[v+8] <= '9'
}

// isTokenByte reports whether ch is a tchar (RFC 9110 5.6.2).
func isTokenByte(ch byte) bool {
	switch {
	case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		return true
	}
	switch ch {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func refusalMessage(status int) string {
	switch status {
	case http.StatusRequestTimeout:
		return "Request timeout"
	case http.StatusRequestEntityTooLarge:
		return "Request size limit exceeded"
	case http.StatusRequestURITooLong:
		return "Request-URI too long"
	case http.StatusRequestHeaderFieldsTooLarge:
		return "Request header fields too large"
	case http.StatusNotImplemented:
		return "Not implemented"
	case http.StatusHTTPVersionNotSupported:
		return "HTTP version not supported"
	case http.StatusMethodNotAllowed:
		return "Method not allowed"
	}
	return "Bad request"
}

// appendError appends a whole error response in Kong's JSON shape (no
// body for HEAD), with date its Date field line.
func appendError(dst, date []byte, status int, msg string, closing, head bool) []byte {
	return appendErrorField(dst, date, status, msg, "", closing, head)
}

// appendErrorField is appendError with one more field line (with its
// CRLF), or none for "".
func appendErrorField(dst, date []byte, status int, msg, field string, closing, head bool) []byte {
	dst = h1.AppendStatusLine(dst, status, []byte(http.StatusText(status)))
	dst = append(dst, date...)
	dst = append(dst, field...)
	dst = append(dst, "Content-Type: application/json; charset=utf-8\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(`{"message":""}`)+len(msg)+1), 10)
	dst = append(dst, '\r', '\n')
	if closing {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = h1.EndHead(dst)
	if !head {
		dst = append(dst, `{"message":"`...)
		dst = append(dst, msg...)
		dst = append(dst, "\"}\n"...)
	}
	return dst
}

// handle serves the request whose head is buf[:n].
func (c *client) handle(n int) bool {
	p := c.s.p
	req := &c.req
	ex := &c.ex
	*ex = exchange{start: time.Now()}
	c.in = h1Inbound{req: req, ip: c.ip}
	method := bstr(req.Method)
	host := req.Host
	var raw []byte
	switch req.Form {
	case h1.FormOrigin:
		raw = req.Target
	case h1.FormAbsolute:
		host, raw = req.Authority, req.Path
		if len(raw) == 0 || raw[0] == '?' {
			raw = append([]byte("/"), raw...)
		}
	case h1.FormAsterisk:
		raw = []byte("*")
	default: // CONNECT
		return c.reject(http.StatusMethodNotAllowed, "Method not allowed", true)
	}
	var query []byte
	hasQuery := false
	if i := bytes.IndexByte(raw, '?'); i >= 0 {
		raw, query, hasQuery = raw[:i], raw[i+1:], true
	}
	dpath := bstr(raw)
	if bytes.IndexByte(raw, '%') >= 0 {
		d, err := url.PathUnescape(dpath)
		if err != nil {
			return c.reject(http.StatusBadRequest, "Bad request", true)
		}
		// Kong's normalisation: percent-encoded unreserved characters are
		// decoded, every other escape (%2F, ...) goes upstream as it came.
		raw = decodeUnreserved(raw)
		dpath = d
	}
	c.in = h1Inbound{req: req, query: query, dpath: dpath, ip: c.ip}
	hostStr := bstr(host)

	t := p.table.Load()
	if t.Router == nil {
		return c.noRoute(t)
	}
	m, ok := t.Router.MatchHeaders(method, hostStr, dpath, &c.in)
	if !ok {
		return c.noRoute(t)
	}
	rt := m.Route.Value.(*Route)
	if rt.HTTPSOnly && !c.tls {
		if rt.HTTPSRedirect != 0 && rt.HTTPSRedirect != http.StatusUpgradeRequired {
			target := req.Target
			if req.Form == h1.FormAbsolute {
				target = req.Path
			}
			return c.redirect(rt.HTTPSRedirect, HTTPSLocation(bstr(host), bstr(target)), req.Body != h1.BodyNone)
		}
		return c.rejectField(http.StatusUpgradeRequired, HTTPSOnlyMessage, httpsUpgradeFields, req.Body != h1.BodyNone)
	}
	if rt.Service == nil {
		return c.reject(http.StatusServiceUnavailable, NoServiceMessage, req.Body != h1.BodyNone)
	}
	if rt.GRPC || NeedsHTTP2(rt.Service.Protocol) {
		return c.bridge(t, rt) // HTTP/2 upstreams: the net/http path (h1bridge.go)
	}
	if max := p.opts.MaxBodySize; max > 0 && req.ContentLength > max {
		return c.reject(http.StatusRequestEntityTooLarge, "Request size limit exceeded", true)
	}
	if tr := p.opts.Tracer; tr != nil {
		c.traceStart(tr)
	}
	if rt.Plugins != nil {
		ex.plugged = true
		if !runPlugins(rt, &c.plug.x, (*h1Request)(c), c.tls, false) {
			return c.pluginAnswer()
		}
		if len(c.plug.x.Query) > 0 {
			c.plug.query = c.plug.x.EditQuery(c.plug.query[:0], bstr(query))
			query = c.plug.query
			hasQuery = len(query) > 0
		}
	}
	ex.route, ex.postfix = rt, m.Postfix
	if m.Prefix != "/" {
		ex.prefix = m.Prefix
	}
	ex.br.Now = ex.start.UnixNano()
	svc, hash := rt.Service, rt.Service.Hash
	ex.up, ex.role, ex.gen = svc.Upstream, svc.Stats, t.Generation
	if cn := svc.Canary; cn != nil && cn.choose(&c.in, t) {
		ex.up, ex.role, hash = cn.Upstream, cn.Stats, cn.Hash
	}
	ex.setCookie = hash.keyOf(&c.in, rt, &ex.br)

	// The upstream target: byte for byte unless the route changes the path.
	var upath []byte
	if !rt.StripPath && (svc.Path == "" || svc.Path == "/") && len(raw) > 0 && raw[0] == '/' {
		upath = raw
	} else {
		postfix := ex.postfix
		if rt.StripPath {
			postfix = bstr(rawSuffix(raw, dpath, len(ex.postfix)))
		}
		upath = []byte(upstreamPath(rt.PathHandling, rt.StripPath, svc.Path, bstr(raw), postfix))
	}

	if mt := p.opts.Metrics; mt != nil {
		mt.InFlight.Inc()
	}
	keep := c.proxy(svc, upath, query, hasQuery, host)
	c.finish(method, hostStr, dpath)
	return keep
}

// decodeUnreserved decodes the escapes of unreserved characters (RFC 3986
// §2.3: ALPHA DIGIT - . _ ~) and keeps the others; raw itself comes back
// when there are none.
func decodeUnreserved(raw []byte) []byte {
	var out []byte
	for i := 0; i < len(raw); i++ {
		if raw[i] == '%' && i+2 < len(raw) {
			hi, lo := unhexByte(raw[i+1]), unhexByte(raw[i+2])
			if hi >= 0 && lo >= 0 {
				if b := byte(hi<<4 | lo); isUnreserved(b) {
					if out == nil {
						out = append(make([]byte, 0, len(raw)), raw[:i]...)
					}
					out = append(out, b)
					i += 2
					continue
				}
			}
		}
		if out != nil {
			out = append(out, raw[i])
		}
	}
	if out == nil {
		return raw
	}
	return out
}

func unhexByte(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isUnreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '.' || b == '_' || b == '~'
}

// rawSuffix returns the suffix of raw (percent-encoded) that decodes to
// the last k bytes of dec (raw decoded).
func rawSuffix(raw []byte, dec string, k int) []byte {
	if len(raw) == len(dec) {
		return raw[len(raw)-k:]
	}
	skip := len(dec) - k // decoded bytes before the suffix
	i := 0
	for ; i < len(raw) && skip > 0; skip-- {
		if raw[i] == '%' && i+2 < len(raw) {
			i += 3
		} else {
			i++
		}
	}
	return raw[i:]
}

// reject answers with an error before any upstream was involved.
func (c *client) reject(status int, msg string, closing bool) bool {
	return c.rejectField(status, msg, "", closing)
}

// redirect answers status (a 3xx) with Location and no body.
func (c *client) redirect(status int, location string, closing bool) bool {
	closing = closing || c.req.Close || c.s.closing.Load()
	c.out = h1.AppendStatusLine(c.out[:0], status, []byte(http.StatusText(status)))
	c.out = append(c.out, c.s.date.at(time.Now())...)
	c.out = append(c.out, "Location: "...)
	c.out = append(c.out, location...)
	c.out = append(c.out, "\r\nContent-Length: 0\r\n"...)
	if closing {
		c.out = append(c.out, "Connection: close\r\n"...)
	}
	c.out = h1.EndHead(c.out)
	if _, err := c.nc.Write(c.out); err != nil {
		closing = true
	}
	if c.s.p.opts.AccessLog {
		c.s.p.log.Info().Str("method", bstr(c.req.Method)).Str("host", bstr(c.req.Host)).Str("path", c.in.dpath).
			Int("status", status).Dur("duration", time.Since(c.ex.start)).Msg("access")
	}
	return !closing
}

// httpsUpgradeFields are Kong's hints on a 426 to an https-only route.
const httpsUpgradeFields = "Upgrade: TLS/1.2, HTTP/1.1\r\n"

// rejectField is reject with one more field line (with its CRLF); a
// field naming Upgrade also lists it in Connection, as Kong's 426.
func (c *client) rejectField(status int, msg, field string, closing bool) bool {
	closing = closing || c.req.Close || c.s.closing.Load()
	if field == httpsUpgradeFields && !closing {
		field = "Connection: Upgrade\r\n" + field
	}
	c.out = appendErrorField(c.out[:0], c.s.date.at(time.Now()), status, msg, field, closing, string(c.req.Method) == "HEAD")
	if _, err := c.nc.Write(c.out); err != nil {
		closing = true
	}
	c.unrouted(status)
	return !closing
}

// failure is why an attempt failed, and where.
type failure struct {
	err           error
	connectFailed bool
	client        bool // the client's side failed: nobody to answer or a bad body
	status        int  // for a client-side failure that is answered (400, 413)
	gotBytes      bool // some response bytes arrived
}

// proxy forwards the routed request and its response; it reports whether
// the client connection may carry another request.
func (c *client) proxy(svc *Service, upath, query []byte, hasQuery bool, host []byte) bool {
	p := c.s.p
	req, ex := &c.req, &c.ex
	tr, _ := svc.Transport.(*Transport)
	if tr == nil || tr.err != nil {
		ex.err = errors.New("service transport is not the engine's")
		if tr != nil {
			ex.err = tr.err
		}
		return c.answerErr(http.StatusBadGateway, "An invalid response was received from the upstream server", false)
	}
	// The body bytes that came with the head.
	n := c.next
	var prefix []byte
	switch req.Body {
	case h1.BodyNone:
		ex.bodyDone = true
	case h1.BodyLength:
		k := min(int64(c.w-n), req.ContentLength)
		prefix = c.buf[n : n+int(k)]
		if k == req.ContentLength {
			ex.bodyDone, c.next = true, n+int(k)
		}
	case h1.BodyChunked:
		c.scanQ.Reset(nil)
		k, err := c.scanQ.Scan(c.buf[n:c.w])
		if err != nil {
			return c.answerErr(http.StatusBadRequest, "Bad request", true)
		}
		if max := p.opts.MaxBodySize; max > 0 && c.scanQ.DataLen() > max {
			return c.answerErr(http.StatusRequestEntityTooLarge, "Request size limit exceeded", true)
		}
		prefix = c.buf[n : n+k]
		if c.scanQ.Done() {
			ex.bodyDone, c.next = true, n+k
		}
	}
	upgrade := req.Upgrade != nil && !hasToken(req.Upgrade, "h2c")
	useTLS := svc.Scheme == "https"
	sni := ""
	if useTLS && c.ex.route.PreserveHost {
		sni = hostOnly(bstr(host))
	}

	brk := ex.up.Breakers()
	if !brk.AcquireRequest() {
		return c.overloaded(svc, "max_requests")
	}
	retrying := false
	defer releaseBreakers(brk, &retrying)
	brk.RecordRequest(ex.start)
	pol := ex.up.RetryPolicy()
	var overall time.Time // the retry policy's timeout, zero for none
	if pol.Timeout > 0 {
		overall = ex.start.Add(pol.Timeout)
	}

	var tried [4]string
	var uc *upConn
	var f failure
	for {
		ep, err := nextTarget(ex.up, ex.gen, &ex.br, ex.ep, &tried)
		if err != nil {
			ex.err = err
			return c.answerErr(http.StatusServiceUnavailable, "failure to get a peer from the ring-balancer", !ex.bodyDone)
		}
		ex.attempts++
		ex.ep = ep
		tried[(ex.attempts-1)%len(tried)] = ep.Addr
		ep.Stats.InFlight.Add(1)
		ep.Stats.Requests.Add(1)
		hp := tr.pools.host(ep.Addr, useTLS, sni)
		t0 := ex.start // the first attempt starts with the request
		if ex.attempts > 1 {
			t0 = time.Now()
		}
		if ex.spans != nil {
			ex.spans.startAttempt(ex.up, ep, ex.attempts, func() string { return string(upath) }, t0)
		}
		limit := attemptCap(pol, t0, overall)
		for fresh := false; ; fresh = true {
			uc, f = c.attempt(hp, fresh, t0, limit, upath, query, hasQuery, host, ep.Addr, prefix, upgrade)
			if f.err == nil {
				break
			}
			if uc != nil {
				reused := uc.reused
				uc.close()
				uc = nil
				// A reused connection the upstream had closed: try a new
				// one, as net/http does, when nothing can be lost.
				if reused && !fresh && !f.gotBytes && !f.client && ex.bodySent == 0 && req.Body == h1.BodyNone && replayable(req.Method) {
					continue
				}
			}
			break
		}
		var now time.Time
		if f.err == nil {
			// retry_on a status: only idempotent requests with nothing of
			// a body sent, and never an upgrade.
			st := uc.resp.Status
			if !pol.On.Status(st) || upgrade || ex.attempts > svc.Retries || !retryableH1(req, ex.bodySent, false) {
				uc.setCap(time.Time{})
				break
			}
			now = time.Now()
			ex.up.Report(ep, upstream.Outcome{Status: st, Duration: now.Sub(t0), At: now})
			if c.s.p.admitRetry(context.Background(), ex.up, svc.Name, &retrying, ex.attempts, now, overall, false) != retryGranted {
				uc.setCap(time.Time{}) // relayed: the last answer stands
				break
			}
			ep.Stats.InFlight.Add(-1)
			if ex.spans != nil {
				ex.spans.endAttempt(st, nil)
			}
			uc.close() // the answer is dropped unread
			uc = nil
			continue
		}
		ep.Stats.InFlight.Add(-1)
		if ex.spans != nil {
			ex.spans.endAttempt(0, f.err)
		}
		switch f.err {
		case errConnectionLimit:
			return c.overloaded(svc, "max_connections")
		case errPendingLimit:
			return c.overloaded(svc, "max_pending_requests")
		}
		ex.err = f.err
		if f.client {
			if f.status != 0 {
				return c.answerErr(f.status, refusalMessage(f.status), true)
			}
			ex.status = 499
			return false
		}
		now = time.Now()
		timeout := isTimeout(f.err)
		ex.up.Report(ep, upstream.Outcome{ConnectFailed: f.connectFailed, Timeout: timeout, Duration: now.Sub(t0), At: now})
		retry := ex.attempts <= svc.Retries && retryableH1(req, ex.bodySent, f.connectFailed) && retryOnFailure(&pol.On, f.connectFailed, false, timeout)
		grant := retryDenied
		if retry {
			grant = c.s.p.admitRetry(context.Background(), ex.up, svc.Name, &retrying, ex.attempts, now, overall, f.connectFailed)
		}
		if grant == retryOverloaded {
			return c.overloaded(svc, "max_retries")
		}
		if grant != retryGranted {
			if timeout {
				return c.answerErr(http.StatusGatewayTimeout, "The upstream server is timing out", !ex.bodyDone)
			}
			return c.answerErr(http.StatusBadGateway, "An invalid response was received from the upstream server", !ex.bodyDone)
		}
	}
	if ex.spans != nil {
		ex.spans.cstatus = uc.resp.Status
	}
	return c.respond(uc, upgrade)
}

// OverloadedHeader marks a 503 a circuit breaker answered.
const OverloadedHeader = "X-Outrigger-Overloaded"

// overloadedMessage is the message of the overloaded 503.
const overloadedMessage = "The upstream is overloaded"

// errOverloaded is the error of a request a circuit breaker turned away.
var errOverloaded = errors.New("upstream overloaded")

// releaseBreakers ends the request's counts in the upstream's circuit
// breakers: the request, and the retry stage if it reached one.
func releaseBreakers(b *upstream.Breakers, retrying *bool) {
	b.ReleaseRequest()
	if *retrying {
		b.ReleaseRetry()
	}
}

// overloaded answers 503 at once because the upstream's limit is reached.
func (c *client) overloaded(svc *Service, limit string) bool {
	if mt := c.s.p.opts.Metrics; mt != nil {
		mt.Overloaded.WithLabelValues(c.ex.up.Name(), limit).Inc()
	}
	c.ex.status = http.StatusServiceUnavailable
	c.ex.err = errOverloaded
	closing := !c.ex.bodyDone || c.req.Close || c.s.closing.Load()
	c.out = appendErrorField(c.out[:0], c.s.date.at(time.Now()), http.StatusServiceUnavailable, overloadedMessage, OverloadedHeader+": true\r\n", closing, string(c.req.Method) == "HEAD")
	if _, err := c.nc.Write(c.out); err != nil {
		c.ex.status = 499
		return false
	}
	return !closing
}

// replayable is net/http's rule for resending a request on a new
// connection after a reused one failed.
func replayable(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// retryableH1 is retryable for an engine request.
func retryableH1(req *h1.Request, sent int64, connectFailed bool) bool {
	if sent > 0 {
		return false
	}
	if connectFailed {
		return true
	}
	if req.Body != h1.BodyNone {
		return false
	}
	switch string(req.Method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// hasToken reports whether the comma-separated list v holds tok (ASCII
// case-insensitive).
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var e []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			e, v = v[:i], v[i+1:]
		} else {
			e, v = v, nil
		}
		if foldEq(bytes.TrimSpace(e), tok) {
			return true
		}
	}
	return false
}

// expectWait is how long the engine waits for a 100 Continue before it
// sends the body anyway (net/http's ExpectContinueTimeout).
const expectWait = time.Second

// errExpectWait is the expiry of expectWait.
var errExpectWait = errors.New("no interim response")

// attempt sends the request on one connection (pooled unless fresh) and
// reads the response head; on success uc.resp holds it at uc.buf[uc.r:].
func (c *client) attempt(hp *hostPool, fresh bool, now, limit time.Time, upath, query []byte, hasQuery bool, host []byte, addr string, prefix []byte, upgrade bool) (*upConn, failure) {
	req, ex := &c.req, &c.ex
	var uc *upConn
	if !fresh {
		uc = hp.get(now)
	}
	if uc == nil {
		var err error
		brk := ex.up.Breakers()
		uc, err = hp.dial(brk)
		if err == errConnectionLimit && brk.Limits().MaxPendingRequests > 0 {
			uc, err = hp.waitConn(brk, pendingUntil(hp, now, limit))
		}
		if err != nil {
			var ce *ConnectError
			return nil, failure{err: err, connectFailed: errors.As(err, &ce)}
		}
	}
	if !limit.IsZero() {
		uc.setCap(limit)
	}
	c.out = c.appendUpstreamHead(c.out[:0], upath, query, hasQuery, host, addr, upgrade)
	// The 100-continue dance applies when the body is still to come.
	expect := req.Expect100 && !ex.bodyDone && len(prefix) == 0
	if !expect {
		c.out = append(c.out, prefix...)
	}
	if !expect && ex.bodyDone && uc.w == uc.r && (!uc.reused || now.Sub(uc.idleAt) < rawIdleMax) {
		// The whole request in one write, and the answer awaited
		// without a read that would find nothing yet.
		m, wrote, err := uc.writeRead(c.out, uc.buf[uc.w:])
		if !wrote {
			return uc, failure{err: err}
		}
		ex.bodySent += int64(len(prefix))
		uc.w += m
		if m == 0 && err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return uc, failure{err: err, gotBytes: uc.w > 0}
		}
		if _, f := c.readResp(uc, false, 0); f.err != nil {
			return uc, f
		}
		return uc, failure{}
	}
	if _, err := uc.Write(c.out); err != nil {
		return uc, failure{err: err}
	}
	if !expect {
		ex.bodySent += int64(len(prefix))
	}
	if expect {
		interim, f := c.readResp(uc, true, expectWait)
		switch {
		case f.err == errExpectWait:
		case f.err != nil:
			return uc, f
		case !interim:
			return uc, failure{} // a final answer: the body is not sent
		}
	}
	if !ex.bodyDone {
		if f := c.streamBody(uc); f.err != nil {
			return uc, f
		}
	}
	if _, f := c.readResp(uc, false, 0); f.err != nil {
		return uc, f
	}
	return uc, failure{}
}

// streamBody copies the rest of the request body from the client to uc.
func (c *client) streamBody(uc *upConn) failure {
	req, ex := &c.req, &c.ex
	max := c.s.p.opts.MaxBodySize
	n := c.next // the head; the body is read into buf[n:]
	c.rd.clear(c.nc.SetReadDeadline)
	remain := int64(0)
	if req.Body == h1.BodyLength {
		remain = req.ContentLength - ex.bodySent
	}
	for !ex.bodyDone {
		m, err := c.nc.Read(c.buf[n:])
		if m > 0 {
			data := c.buf[n : n+m]
			var take int
			if req.Body == h1.BodyLength {
				take = int(min(int64(m), remain))
				remain -= int64(take)
				if remain == 0 {
					ex.bodyDone = true
				}
			} else {
				k, serr := c.scanQ.Scan(data)
				if serr != nil {
					return failure{err: serr, client: true, status: http.StatusBadRequest}
				}
				if max > 0 && c.scanQ.DataLen() > max {
					return failure{err: errors.New("request body over the limit"), client: true, status: http.StatusRequestEntityTooLarge}
				}
				take = k
				ex.bodyDone = c.scanQ.Done()
			}
			if ex.bodyDone {
				c.next, c.w = n+take, n+m
			}
			if _, werr := uc.Write(data[:take]); werr != nil {
				ex.bodySent += 1 // unknown how much left: never resend
				return failure{err: werr}
			}
			ex.bodySent += int64(take)
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return failure{err: err, client: true}
		}
	}
	return failure{}
}

// readResp reads a response head into uc. Interim responses other than
// 101 are relayed to an HTTP/1.1 client and skipped, except that a 100
// returns interim=true when stopAt100. wait > 0 bounds the wait for the
// first byte (errExpectWait when nothing came).
func (c *client) readResp(uc *upConn, stopAt100 bool, wait time.Duration) (interim bool, f failure) {
	method := c.req.Method
	for {
		if uc.w > uc.r {
			n, err := h1.ParseResponse(uc.buf[uc.r:uc.w], &uc.resp, method, &c.lim)
			if err == nil {
				st := uc.resp.Status
				if st >= 200 || st == 101 {
					uc.hn = n
					return false, failure{}
				}
				if c.req.Minor > 0 {
					c.out = uc.resp.AppendHead(c.out[:0], uc.resp.Hop)
					c.out = h1.EndHead(c.out)
					if _, werr := c.nc.Write(c.out); werr != nil {
						return false, failure{err: werr, client: true, gotBytes: true}
					}
				}
				uc.r += n
				if uc.r == uc.w {
					uc.r, uc.w = 0, 0
				}
				if st == 100 && stopAt100 {
					return true, failure{}
				}
				continue
			}
			if err != h1.ErrIncomplete {
				return false, failure{err: err, gotBytes: true}
			}
			if uc.w == len(uc.buf) {
				if uc.r == 0 {
					return false, failure{err: &h1.Error{Status: 502, Reason: "response head too large"}, gotBytes: true}
				}
				uc.w = copy(uc.buf, uc.buf[uc.r:uc.w])
				uc.r = 0
			}
		}
		var m int
		var err error
		if wait > 0 && uc.w == uc.r {
			clk := uc.pool.ps.clk
			uc.rd.exact(uc.c.SetReadDeadline, clk, clk.now()+int64(wait))
			m, err = uc.c.Read(uc.buf[uc.w:])
			if uc.rt <= 0 {
				uc.rd.clear(uc.c.SetReadDeadline) // uc.Read moves it otherwise
			}
			if m == 0 && isTimeout(err) {
				return false, failure{err: errExpectWait}
			}
		} else {
			m, err = uc.Read(uc.buf[uc.w:])
		}
		uc.w += m
		if m == 0 && err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return false, failure{err: err, gotBytes: uc.w > 0}
		}
	}
}

// appendUpstreamHead appends the request head for the upstream.
func (c *client) appendUpstreamHead(dst, upath, query []byte, hasQuery bool, host []byte, addr string, upgrade bool) []byte {
	req, ex := &c.req, &c.ex
	start := len(dst)
	dst = append(dst, req.Method...)
	dst = append(dst, ' ')
	dst = append(dst, upath...)
	if hasQuery {
		dst = append(dst, '?')
		dst = append(dst, query...)
	}
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	if ex.route.PreserveHost && len(host) > 0 {
		dst = append(dst, host...)
	} else {
		dst = append(dst, addr...)
	}
	dst = append(dst, '\r', '\n')
	passChunked := req.Chunked
	teTrailers := false
	xff := false
	var tr *tracing.Tracer // traced: the propagation fields are the proxy's
	if ex.spans != nil {
		tr = ex.spans.tr
	}
	for i := range req.Fields {
		fl := &req.Fields[i]
		name := fl.Name
		if h := c.s.o.ClientSubjectHeader; h != "" && foldEq(name, h) {
			continue
		}
		if tr != nil && isTraceField(tr, name) {
			continue
		}
		if req.Hop.Has(i) {
			switch {
			case passChunked && req.TransferEncoding.Has(i):
			case passChunked && foldEq(name, "trailer"):
			case len(name) == 2: // TE
				if hasToken(fl.Value, "trailers") {
					teTrailers = true
				}
				continue
			default:
				continue
			}
		}
		switch len(name) {
		case 4:
			if foldEq(name, "host") {
				continue
			}
		case 9:
			if foldEq(name, "x-real-ip") {
				continue
			}
		case 15:
			if foldEq(name, "x-forwarded-for") {
				xff = true
				continue
			}
		case 16:
			if foldEq(name, "x-forwarded-host") || foldEq(name, "x-forwarded-port") {
				continue
			}
		case 17:
			if foldEq(name, "x-forwarded-proto") {
				continue
			}
		case 18:
			if ex.prefix != "" && foldEq(name, "x-forwarded-prefix") {
				continue
			}
		case 19:
			if foldEq(name, "proxy-authorization") {
				continue
			}
		}
		dst = h1.AppendField(dst, name, fl.Value)
	}
	if upgrade {
		dst = append(dst, "Connection: Upgrade\r\nUpgrade: "...)
		dst = append(dst, req.Upgrade...)
		dst = append(dst, '\r', '\n')
	}
	if teTrailers {
		dst = append(dst, "Te: trailers\r\n"...)
	}
	if c.ip != "" {
		dst = append(dst, "X-Forwarded-For: "...)
		if xff {
			for i := range req.Fields {
				if foldEq(req.Fields[i].Name, "x-forwarded-for") {
					dst = append(dst, req.Fields[i].Value...)
					dst = append(dst, ", "...)
				}
			}
		}
		dst = append(dst, c.ip...)
		dst = append(dst, '\r', '\n')
	}
	dst = append(dst, "X-Forwarded-Host: "...)
	dst = append(dst, host...)
	if c.tls {
		dst = append(dst, "\r\nX-Forwarded-Proto: https\r\n"...)
	} else {
		dst = append(dst, "\r\nX-Forwarded-Proto: http\r\n"...)
	}
	if c.port != "" {
		dst = h1.AppendField(dst, "X-Forwarded-Port", c.port)
	}
	if c.ip != "" {
		dst = h1.AppendField(dst, "X-Real-Ip", c.ip)
	}
	if ex.prefix != "" {
		dst = h1.AppendField(dst, "X-Forwarded-Prefix", ex.prefix)
	}
	if c.subject != "" {
		dst = h1.AppendField(dst, c.s.o.ClientSubjectHeader, c.subject)
	}
	if tr != nil {
		hc := headCarrier{dst: dst}
		tr.Inject(ex.spans.cctx, &hc)
		dst = hc.dst
	}
	if ex.plugged && len(c.plug.x.Up) > 0 {
		return c.plug.editHead(dst, start, c.plug.x.Up)
	}
	return h1.EndHead(dst)
}

// answerErr answers a failed exchange with the JSON error; it reports
// whether the connection may carry another request.
func (c *client) answerErr(status int, msg string, closing bool) bool {
	c.ex.status = status
	closing = closing || c.req.Close || c.s.closing.Load()
	c.out = appendError(c.out[:0], c.s.date.at(time.Now()), status, msg, closing, string(c.req.Method) == "HEAD")
	if c.ex.plugged && len(c.plug.x.Down) > 0 {
		c.out = c.plug.editAnswer(c.out)
	}
	if _, err := c.nc.Write(c.out); err != nil {
		c.ex.status = 499
		return false
	}
	return !closing
}

// respond relays the response whose head is in uc and its body.
func (c *client) respond(uc *upConn, upgrade bool) bool {
	req, ex := &c.req, &c.ex
	resp := &uc.resp
	ep := ex.ep
	now := time.Now()
	ex.up.Report(ep, upstream.Outcome{Status: resp.Status, Duration: now.Sub(ex.start), At: now})
	hn := uc.hn
	ex.status = resp.Status
	if resp.Status == 101 {
		ep.Stats.InFlight.Add(-1)
		if !upgrade || resp.Upgrade == nil {
			uc.close()
			ex.err = errors.New("unexpected 101 Switching Protocols")
			return c.answerErr(http.StatusBadGateway, "An invalid response was received from the upstream server", true)
		}
		c.tunnel(uc, uc.r+hn)
		return false
	}
	defer ep.Stats.InFlight.Add(-1)
	kind := resp.Body
	old := req.Minor == 0
	decode := kind == h1.BodyChunked && old
	closing := req.Close || !ex.bodyDone || kind == h1.BodyUntilClose || decode || c.s.closing.Load()

	out := h1.AppendStatusLine(c.out[:0], resp.Status, resp.Reason)
	pass := kind == h1.BodyChunked && !decode
	dated := false
	for i := range resp.Fields {
		fl := &resp.Fields[i]
		if resp.Hop.Has(i) && !(pass && (resp.TransferEncoding.Has(i) || foldEq(fl.Name, "trailer"))) {
			continue
		}
		if len(fl.Name) == 18 && foldEq(fl.Name, "proxy-authenticate") {
			continue
		}
		dated = dated || len(fl.Name) == 4 && foldEq(fl.Name, "date")
		out = h1.AppendField(out, fl.Name, fl.Value)
	}
	if !dated {
		out = append(out, c.s.date.at(now)...)
	}
	if ex.setCookie != "" {
		out = h1.AppendField(out, "Set-Cookie", ex.setCookie)
	}
	if closing {
		out = append(out, "Connection: close\r\n"...)
	} else if old {
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	if ex.plugged && len(c.plug.x.Down) > 0 {
		out = c.plug.editHead(out, 0, c.plug.x.Down)
	} else {
		out = h1.EndHead(out)
	}

	// What of the body came with the head.
	body := uc.buf[uc.r+hn : uc.w]
	upOK := !resp.Close && ex.bodyDone
	done := false
	remain := resp.ContentLength
	c.scanR.Reset(nil)
	take := func(data []byte) ([]byte, error) {
		switch kind {
		case h1.BodyLength:
			k := min(int64(len(data)), remain)
			remain -= k
			if int(k) < len(data) {
				upOK = false // bytes after the body
			}
			done = remain == 0
			return data[:k], nil
		case h1.BodyChunked:
			var k int
			var err error
			if decode {
				c.dec, k, err = c.scanR.Decode(c.dec[:0], data)
			} else {
				k, err = c.scanR.Scan(data)
			}
			if err != nil {
				return nil, err
			}
			if k < len(data) {
				upOK = false
			}
			done = c.scanR.Done()
			if decode {
				return c.dec, nil
			}
			return data[:k], nil
		}
		return data, nil // until close
	}
	if kind == h1.BodyNone || kind == h1.BodyTunnel {
		done = true
		if len(body) > 0 {
			upOK = false
		}
		body = nil
	}
	var err error
	if len(body) > 0 {
		body, err = take(body)
		if err != nil {
			ex.err = err
			uc.close()
			return false
		}
	}
	c.out = out
	first := true
	for {
		var wbuf []byte
		if first {
			c.out = append(c.out, body...)
			wbuf = c.out
		} else {
			wbuf = body
		}
		if len(wbuf) > 0 {
			if _, werr := c.nc.Write(wbuf); werr != nil {
				if first {
					ex.status = 499
				}
				ex.err = werr
				uc.close()
				return false
			}
			ex.bytes += int64(len(body))
		}
		first = false
		if done {
			break
		}
		m, rerr := uc.Read(uc.buf)
		if m > 0 {
			body, err = take(uc.buf[:m])
			if err != nil {
				ex.err = err
				uc.close()
				return false
			}
			continue
		}
		if rerr != nil {
			if kind == h1.BodyUntilClose && rerr == io.EOF {
				break
			}
			ex.err = rerr
			uc.close()
			return false
		}
		body = nil
	}
	ex.end = time.Now()
	if upOK && kind != h1.BodyUntilClose {
		uc.pool.put(uc, ex.end)
	} else {
		uc.close()
	}
	return !closing
}

// tunnel copies bytes both ways between the client and uc until either
// side ends; the 101 head and what followed it start at uc.buf[from:].
func (c *client) tunnel(uc *upConn, from int) {
	ex := &c.ex
	out := h1.AppendStatusLine(c.out[:0], 101, uc.resp.Reason)
	out = uc.resp.AppendFields(out, uc.resp.Hop)
	if ex.setCookie != "" {
		out = h1.AppendField(out, "Set-Cookie", ex.setCookie)
	}
	out = append(out, "Connection: Upgrade\r\nUpgrade: "...)
	out = append(out, uc.resp.Upgrade...)
	out = h1.EndHead(append(out, '\r', '\n'))
	out = append(out, uc.buf[from:uc.w]...)
	c.out = out
	c.rd.clear(c.nc.SetReadDeadline)
	if _, err := c.nc.Write(out); err != nil {
		ex.status, ex.err = 499, err
		uc.close()
		return
	}
	up := c.buf[c.next:c.w] // what the client sent after the request head
	done := make(chan struct{})
	go func() {
		defer close(done)
		if len(up) > 0 {
			if _, err := uc.Write(up); err != nil {
				return
			}
		}
		copyConn(uc, c.nc, c.buf[c.next:])
		_ = uc.c.Close()
		_ = c.nc.Close()
	}()
	copyConn(c.nc, uc, uc.buf)
	_ = uc.c.Close()
	_ = c.nc.Close()
	<-done
	c.w, c.next = 0, 0
	uc.close()
}

// copyConn copies src to dst through buf until either fails.
func copyConn(dst io.Writer, src io.Reader, buf []byte) {
	for {
		m, err := src.Read(buf)
		if m > 0 {
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (c *client) remoteAddr() string {
	if c.raddr == "" {
		c.raddr = c.nc.RemoteAddr().String()
	}
	return c.raddr
}

// finish records metrics and the access-log line of a proxied request.
func (c *client) finish(method, host, path string) {
	p := c.s.p
	ex := &c.ex
	if ex.finished {
		return // a panic in the bookkeeping below: counted once
	}
	ex.finished = true
	var d time.Duration
	if ex.end.IsZero() {
		d = time.Since(ex.start)
	} else {
		d = ex.end.Sub(ex.start)
	}
	client := ""
	if p.opts.AccessLog {
		client = c.remoteAddr()
	}
	p.account(&outcome{
		method: method, host: host, path: path, client: client,
		route: ex.route, up: ex.up, role: ex.role, ep: ex.ep,
		status: ex.status, attempts: ex.attempts, bytes: ex.bytes, d: d, err: ex.err, spans: ex.spans,
	})
}
