package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/net/http2"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/upstream"
)

// serveEngine serves p with the engine on a kernel-chosen loopback port
// and returns its URL; the server closes with the test.
func serveEngine(tb testing.TB, p *Proxy, o ServerOptions) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := p.NewServer(o)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	tb.Cleanup(func() { _ = s.Close(); <-done })
	return "http://" + ln.Addr().String()
}

// rawOrigin is an upstream the test drives by hand: each connection the
// proxy opens is handed to the test, which reads what the proxy sent and
// writes the response bytes itself.
type rawOrigin struct {
	ln    net.Listener
	conns chan net.Conn
}

func newRawOrigin(t *testing.T) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{ln: ln, conns: make(chan net.Conn, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(o.conns)
				return
			}
			o.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range o.conns {
			c.Close()
		}
	})
	return o
}

// originConn is one proxy-to-origin connection seen from the origin.
type originConn struct {
	net.Conn
	br *bufio.Reader
}

// accept waits for the proxy's next connection.
func (o *rawOrigin) accept(t *testing.T) *originConn {
	t.Helper()
	select {
	case c, ok := <-o.conns:
		if !ok {
			t.Fatal("origin closed")
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return &originConn{Conn: c, br: bufio.NewReader(c)}
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not connect to the origin")
	}
	return nil
}

// readHead reads one request or response head, CRLFs included, exactly
// as it arrived.
func readHead(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			t.Fatalf("reading a head: %v after %q", err, b.String())
		}
		if line == "\r\n" {
			return b.String()
		}
	}
}

func readN(t *testing.T, br *bufio.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		t.Fatalf("reading %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// engineFixture is a proxy served by the engine with one route "/" to a
// raw origin, and a raw client connection to it.
type engineFixture struct {
	p      *Proxy
	addr   string
	origin *rawOrigin
	svc    *Service
}

func newEngineFixture(t *testing.T, o ServerOptions, opts Options) *engineFixture {
	t.Helper()
	origin := newRawOrigin(t)
	u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: origin.ln.Addr().String(), Weight: 1}})
	svc := &Service{Name: "s", Scheme: "http", Upstream: u,
		Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute})}
	rt, err := router.New([]router.Route{{Name: "r", Paths: []string{"/"}, Value: &Route{Name: "r", Service: svc}}})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	opts.Log = zerolog.Nop()
	p := New(opts)
	p.SetTable(&Table{Router: rt})
	url := serveEngine(t, p, o)
	return &engineFixture{p: p, addr: strings.TrimPrefix(url, "http://"), origin: origin, svc: svc}
}

// clientConn is a raw client connection to the engine.
type clientConn struct {
	net.Conn
	br *bufio.Reader
}

func (f *engineFixture) dial(t *testing.T) *clientConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &clientConn{Conn: c, br: bufio.NewReader(c)}
}

// firstExchange sends "GET target" on c, the client connection's first
// request, answers it 200 with no body on the origin connection it opens,
// requires the client to see the 200, and returns that origin connection.
func (f *engineFixture) firstExchange(t *testing.T, c *clientConn, target string) *originConn {
	t.Helper()
	c.send(t, "GET "+target+" HTTP/1.1\r\nHost: a\r\n\r\n")
	oc := f.origin.accept(t)
	readHead(t, oc.br)
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	if resp, _ := c.response(t, "GET"); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	return oc
}

func (c *clientConn) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// response reads one response (the request's method decides the body).
func (c *clientConn) response(t *testing.T, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	resp.Body.Close()
	return resp, string(b)
}

// expectClosed checks that the proxy closes the connection (nothing more
// is read before EOF).
func (c *clientConn) expectClosed(t *testing.T) {
	t.Helper()
	b, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatalf("want the connection closed, got %v after %q", err, b)
	}
	if len(b) > 0 {
		t.Fatalf("want the connection closed, got %q more", b)
	}
}

// headerLines returns the field lines of a head, lower-cased names.
func fieldNames(head string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(head, "\r\n")[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func requestLine(head string) string { l, _, _ := strings.Cut(head, "\r\n"); return l }

// The target goes upstream byte for byte: an encoded slash stays encoded,
// a ';' in the query stays.
func TestEngineTargetByteExact(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "GET /a%2Fb?g=x;y&h=%41 HTTP/1.1\r\nHost: a.test\r\n\r\n")
	oc := f.origin.accept(t)
	head := readHead(t, oc.br)
	if got := requestLine(head); got != "GET /a%2Fb?g=x;y&h=%41 HTTP/1.1" {
		t.Fatalf("origin received %q", got)
	}
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	if resp, body := c.response(t, "GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

// Framing the engine refuses: answered with the status and closed, the
// origin never asked.
func TestEngineRefusesAmbiguousFraming(t *testing.T) {
	for _, tc := range []struct {
		desc, req string
		status    int
	}{
		{"Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
		{"HTTP/2 preface without h2c", h2cPreface, 505},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newEngineFixture(t, ServerOptions{}, Options{})
			c := f.dial(t)
			c.send(t, tc.req)
			resp, body := c.response(t, "POST")
			if resp.StatusCode != tc.status || !resp.Close || !strings.HasPrefix(body, `{"message":`) {
				t.Fatalf("%d close=%v %q", resp.StatusCode, resp.Close, body)
			}
			c.expectClosed(t)
			select {
			case <-f.origin.conns:
				t.Fatal("the origin was asked")
			default:
			}
		})
	}
}

// Hop-by-hop fields, the ones Connection nominates and the h2c upgrade
// never reach the origin; the others do, in order.
func TestEngineHopByHopRemoved(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings, X-Drop\r\nUpgrade: h2c\r\n"+
		"HTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\nX-Keep: 1\r\nX-Keep2: 2\r\n\r\n")
	oc := f.origin.accept(t)
	head := readHead(t, oc.br)
	got := fieldNames(head)
	for _, name := range []string{"connection", "upgrade", "http2-settings", "x-drop", "keep-alive", "proxy-connection", "te"} {
		if v, ok := got[name]; ok {
			t.Errorf("%s: %s reached the origin:\n%s", name, v, head)
		}
	}
	if got["x-keep"] != "1" || got["x-keep2"] != "2" || got["host"] != f.origin.ln.Addr().String() {
		t.Errorf("origin received:\n%s", head)
	}
	if !strings.Contains(head, "X-Keep: 1\r\nX-Keep2: 2\r\n") {
		t.Errorf("end-to-end fields not kept in order:\n%s", head)
	}
	for _, name := range []string{"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip"} {
		if got[name] == "" {
			t.Errorf("%s missing:\n%s", name, head)
		}
	}
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=1\r\nContent-Length: 0\r\n\r\n")
	resp, _ := c.response(t, "GET")
	if resp.Header.Get("X-Secret") != "" || resp.Header.Get("Keep-Alive") != "" || resp.StatusCode != 200 {
		t.Fatalf("response to the client: %d %v", resp.StatusCode, resp.Header)
	}
}

// Pipelined requests are served in order on one client connection.
func TestEnginePipelining(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
	oc := f.origin.accept(t)
	for i, want := range []string{"GET /1 HTTP/1.1", "POST /2 HTTP/1.1", "GET /3 HTTP/1.1"} {
		head := readHead(t, oc.br)
		if got := requestLine(head); got != want {
			t.Fatalf("request %d: origin received %q, want %q", i, got, want)
		}
		if i == 1 {
			if b := readN(t, oc.br, 3); b != "abc" {
				t.Fatalf("body %q", b)
			}
		}
		io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"+strconv.Itoa(i+1))
		if resp, body := c.response(t, "GET"); resp.StatusCode != 200 || body != strconv.Itoa(i+1) {
			t.Fatalf("response %d: %d %q", i, resp.StatusCode, body)
		}
	}
}

// An HTTP/1.0 client is closed after its response unless it asked for
// keep-alive, which it is then told.
func TestEngineHTTP10(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	oc := f.origin.accept(t)
	if got := requestLine(readHead(t, oc.br)); got != "GET /ka HTTP/1.1" {
		t.Fatalf("origin received %q", got)
	}
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
	resp, body := c.response(t, "GET")
	if resp.StatusCode != 200 || body != "a" || resp.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	c.send(t, "GET /close HTTP/1.0\r\n\r\n")
	readHead(t, oc.br)
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	raw, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatal(err)
	}
	// A chunked response reaches an HTTP/1.0 client decoded, ended by the close.
	if s := string(raw); !strings.HasPrefix(s, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(s, "\r\n\r\nabc") ||
		strings.Contains(strings.ToLower(s), "transfer-encoding") {
		t.Fatalf("client received %q", s)
	}
}

// Expect: 100-continue goes to the origin, its 100 comes back to the
// client, then the body flows.
func TestEngineExpectContinue(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	oc := f.origin.accept(t)
	head := readHead(t, oc.br)
	if fieldNames(head)["expect"] != "100-continue" {
		t.Fatalf("origin received:\n%s", head)
	}
	io.WriteString(oc, "HTTP/1.1 100 Continue\r\n\r\n")
	if h := readHead(t, c.br); !strings.HasPrefix(h, "HTTP/1.1 100 Continue\r\n") {
		t.Fatalf("client received %q", h)
	}
	c.send(t, "hello")
	if b := readN(t, oc.br, 5); b != "hello" {
		t.Fatalf("origin body %q", b)
	}
	io.WriteString(oc, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
	if resp, _ := c.response(t, "PUT"); resp.StatusCode != 201 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// Responses without a body (HEAD, 204, 304) end at their head even when
// they announce a length; the connection goes on.
func TestEngineBodylessResponses(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	var oc *originConn
	for _, tc := range []struct{ method, resp string }{
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"},
		{"GET", "HTTP/1.1 204 No Content\r\n\r\n"},
		{"GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast"},
	} {
		c.send(t, tc.method+" / HTTP/1.1\r\nHost: a\r\n\r\n")
		if oc == nil {
			oc = f.origin.accept(t) // then kept alive by the pool
		}
		readHead(t, oc.br)
		io.WriteString(oc, tc.resp)
		resp, body := c.response(t, tc.method)
		if wantBody := strings.SplitN(tc.resp, "\r\n\r\n", 2)[1]; body != wantBody {
			t.Fatalf("%s %d: body %q", tc.method, resp.StatusCode, body)
		}
	}
}

// A chunked body with trailers crosses the proxy byte for byte, both ways.
func TestEngineChunkedTrailersByteExact(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	reqBody := "4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Checksum: abc\r\n\r\n"
	c.send(t, "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"+reqBody[:10])
	oc := f.origin.accept(t)
	head := readHead(t, oc.br)
	if fn := fieldNames(head); fn["transfer-encoding"] != "chunked" || fn["trailer"] != "X-Checksum" || fn["content-length"] != "" {
		t.Fatalf("origin received:\n%s", head)
	}
	c.send(t, reqBody[10:])
	if b := readN(t, oc.br, len(reqBody)); b != reqBody {
		t.Fatalf("origin body %q, want %q", b, reqBody)
	}
	respBody := "3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n"
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, X-Other\r\n\r\n"+respBody)
	h := readHead(t, c.br)
	if fn := fieldNames(h); fn["transfer-encoding"] != "chunked" || fn["trailer"] != "X-Sum, X-Other" {
		t.Fatalf("client received:\n%s", h)
	}
	if b := readN(t, c.br, len(respBody)); b != respBody {
		t.Fatalf("client body %q, want %q", b, respBody)
	}
}

// A 101 answer to an Upgrade turns the connection into a tunnel.
func TestEngineWebSocketTunnel(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	oc := f.origin.accept(t)
	head := readHead(t, oc.br)
	if fn := fieldNames(head); fn["upgrade"] != "websocket" || !strings.EqualFold(fn["connection"], "upgrade") ||
		fn["sec-websocket-key"] != "dGhlIHNhbXBsZSBub25jZQ==" {
		t.Fatalf("origin received:\n%s", head)
	}
	io.WriteString(oc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nfrom-origin")
	h := readHead(t, c.br)
	if fn := fieldNames(h); !strings.HasPrefix(h, "HTTP/1.1 101 ") || fn["upgrade"] != "websocket" ||
		fn["sec-websocket-accept"] != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("client received:\n%s", h)
	}
	if b := readN(t, c.br, len("from-origin")); b != "from-origin" {
		t.Fatalf("client got %q", b)
	}
	for i := 0; i < 3; i++ {
		msg := "ping" + strconv.Itoa(i)
		c.send(t, msg)
		if b := readN(t, oc.br, len(msg)); b != msg {
			t.Fatalf("origin got %q", b)
		}
		io.WriteString(oc, "pong"+strconv.Itoa(i))
		if b := readN(t, c.br, len(msg)); b != "pong"+strconv.Itoa(i) {
			t.Fatalf("client got %q", b)
		}
	}
	oc.Close()
	c.expectClosed(t)
}

// Server-sent events reach the client as the origin writes them: the
// origin writes the second event only after the client has read the
// first.
func TestEngineSSEFlush(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "GET /events HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n\r\n")
	oc := f.origin.accept(t)
	readHead(t, oc.br)
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
	readHead(t, c.br)
	for i := 1; i <= 3; i++ {
		ev := "data: " + strconv.Itoa(i) + "\n\n"
		chunk := strconv.FormatInt(int64(len(ev)), 16) + "\r\n" + ev + "\r\n"
		io.WriteString(oc, chunk)
		if b := readN(t, c.br, len(chunk)); b != chunk {
			t.Fatalf("event %d: client got %q", i, b)
		}
	}
	io.WriteString(oc, "0\r\n\r\n")
	if b := readN(t, c.br, 5); b != "0\r\n\r\n" {
		t.Fatalf("end of stream: %q", b)
	}
}

// A response the engine cannot frame is a 502 for the client.
func TestEngineMalformedUpstreamStatus(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	oc := f.origin.accept(t)
	readHead(t, oc.br)
	io.WriteString(oc, "HTTP/1.1 2x0 Bad\r\n\r\n")
	resp, body := c.response(t, "GET")
	if resp.StatusCode != 502 || body != `{"message":"An invalid response was received from the upstream server"}`+"\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

// A client sending its head too slowly gets 408 once header_timeout
// passes, and is disconnected.
func TestEngineSlowlorisAnswered408(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{HeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute}, Options{})
	c := f.dial(t)
	c.send(t, "GET / HTTP/1.1\r\nHost: a\r\n")
	start := time.Now()
	resp, body := c.response(t, "GET")
	if resp.StatusCode != 408 || !resp.Close || body != `{"message":"Request timeout"}`+"\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("408 after %v", d)
	}
	c.expectClosed(t)
}

// On a keep-alive connection the header clock of a later request starts
// with its first byte: a head that stops halfway is answered 408 once
// header_timeout passes, long before idle_timeout would.
func TestEngineSlowSecondHeadAnswered408(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{HeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute}, Options{})
	c := f.dial(t)
	f.firstExchange(t, c, "/")
	c.send(t, "GET / HTTP/1.1\r\nHost: a\r\n")
	start := time.Now()
	resp, body := c.response(t, "GET")
	if resp.StatusCode != 408 || !resp.Close || body != `{"message":"Request timeout"}`+"\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Fatalf("408 after %v, want header_timeout (200ms) and well before idle_timeout", d)
	}
	c.expectClosed(t)
}

// countingListener counts the read deadlines set on the connections it
// accepted.
type countingListener struct {
	net.Listener
	sets atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, sets: &l.sets}, nil
}

type countingConn struct {
	net.Conn
	sets *atomic.Int64
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.sets.Add(1)
	return c.Conn.SetReadDeadline(t)
}

// A busy keep-alive connection does not move its read deadline for every
// request: idle_timeout is a rolling deadline set again about once per
// 1/64 of it, and the header deadline is only set for a head that does
// not come whole with its first read.
func TestEngineKeepAliveDeadlinesAmortised(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	const idle = time.Minute
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	s := f.p.NewServer(ServerOptions{IdleTimeout: idle, HeaderTimeout: 10 * time.Second})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(cl) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	f.addr = ln.Addr().String()

	c := f.dial(t)
	var oc *originConn
	const n = 50
	start := time.Now()
	for i := range n {
		c.send(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if i == 0 {
			oc = f.origin.accept(t)
		}
		readHead(t, oc.br)
		io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if resp, body := c.response(t, "GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	// The first head's deadline, then one idle deadline per slack the
	// requests took (and one more for where the run started in it).
	slack := idle / 64
	limit := 2 + 2*int64(time.Since(start)/slack+1)
	if got := cl.sets.Load(); got > limit {
		t.Fatalf("%d read deadlines set for %d keep-alive requests, want at most %d", got, n, limit)
	}
}

// read_timeout bounds the wait for the upstream's answer on a pooled
// connection too, and never fires before it is due: an origin that answers
// the first request and then goes silent is a 504 after read_timeout.
func TestEngineReadTimeout(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	const rt = 300 * time.Millisecond
	f.svc.Transport = NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, ReadTimeout: rt, MaxIdleConnsPerHost: 4})
	c := f.dial(t)
	oc := f.firstExchange(t, c, "/")
	c.send(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	start := time.Now()
	readHead(t, oc.br) // the pooled connection carries it; no answer
	resp, _ := c.response(t, "GET")
	d := time.Since(start)
	if resp.StatusCode != 504 {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if d < rt || d > 5*time.Second {
		t.Fatalf("504 after %v, want read_timeout (%v)", d, rt)
	}
}

// A keep-alive connection with nothing more to send is closed after
// idle_timeout, silently.
func TestEngineIdleKeepAliveClosed(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{IdleTimeout: 200 * time.Millisecond, HeaderTimeout: time.Minute}, Options{})
	c := f.dial(t)
	f.firstExchange(t, c, "/")
	c.expectClosed(t)
}

// With h2c on, a connection starting with the HTTP/2 preface is served
// as HTTP/2 by the net/http handler; HTTP/1.1 still works beside it.
func TestEngineH2CPriorKnowledge(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto+" "+r.URL.Path)
	}))
	t.Cleanup(origin.Close)
	u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: strings.TrimPrefix(origin.URL, "http://"), Weight: 1}})
	svc := &Service{Name: "s", Scheme: "http", Upstream: u, Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second})}
	rt, err := router.New([]router.Route{{Name: "r", Paths: []string{"/"}, Value: &Route{Name: "r", Service: svc}}})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Log: zerolog.Nop(), Metrics: NewMetrics(prometheus.NewRegistry())})
	p.SetTable(&Table{Router: rt})
	url := serveEngine(t, p, ServerOptions{H2C: true})
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	for _, c := range []*http.Client{h2, {Timeout: 10 * time.Second}} {
		resp, err := c.Get(url + "/h")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "HTTP/1.1 /h" {
			t.Fatalf("%s: %d %q", resp.Proto, resp.StatusCode, b)
		}
		if c == h2 && resp.ProtoMajor != 2 {
			t.Fatalf("served as %s", resp.Proto)
		}
	}
}

// A forwarded response without a Date field gets one (RFC 9110 section
// 6.6.1); one that has it keeps it as sent, once; the engine's own
// answers carry one.
func TestEngineDateField(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "GET /a HTTP/1.1\r\nHost: a.test\r\n\r\n")
	oc := f.origin.accept(t)
	readHead(t, oc.br)
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	resp, _ := c.response(t, "GET")
	if d, err := http.ParseTime(resp.Header.Get("Date")); err != nil || len(resp.Header.Values("Date")) != 1 {
		t.Fatalf("a response without Date was forwarded with %q (%v)", resp.Header.Values("Date"), err)
	} else if d.Location() != time.UTC {
		t.Fatalf("Date %v is not GMT", d)
	}

	c.send(t, "GET /b HTTP/1.1\r\nHost: a.test\r\n\r\n")
	readHead(t, oc.br)
	const sent = "Tue, 15 Nov 1994 08:12:31 GMT"
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nDate: "+sent+"\r\nContent-Length: 2\r\n\r\nok")
	if resp, _ := c.response(t, "GET"); len(resp.Header.Values("Date")) != 1 || resp.Header.Get("Date") != sent {
		t.Fatalf("the origin's Date became %q", resp.Header.Values("Date"))
	}

	c.send(t, "GET /c HTTP/1.1\r\nHost: a.test\r\nContent-Length: x\r\n\r\n")
	resp, _ = c.response(t, "GET")
	if _, err := http.ParseTime(resp.Header.Get("Date")); resp.StatusCode != 400 || err != nil {
		t.Fatalf("the engine's own %d answer has Date %q", resp.StatusCode, resp.Header.Get("Date"))
	}
}

// A pooled connection the origin closed while it idled is found out when
// the next request is written to it, and the request goes on a new
// connection (nothing of it can have been served).
func TestEngineClosedPooledConnRetried(t *testing.T) {
	pooledConnRetried(t, func(oc *originConn) { oc.Close() })
}

// A pooled connection the origin half-closed while it idled (FIN sent,
// still reading, as a lingering close) is not waited on: the request goes
// on a new connection at once, however long the read timeout.
func TestEngineHalfClosedPooledConnRetried(t *testing.T) {
	pooledConnRetried(t, func(oc *originConn) {
		if err := oc.Conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		// The connection must have idled as long as upstreams idle
		// before closing: only then is the close looked for before the
		// write.
		time.Sleep(2 * rawIdleMax)
	})
}

// pooledConnRetried serves a request, lets closeIdle end the origin's
// side of the pooled connection, and checks that the next request reaches
// the origin on a new connection and is answered.
func pooledConnRetried(t *testing.T, closeIdle func(oc *originConn)) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	oc := f.firstExchange(t, c, "/a")
	closeIdle(oc)
	c.send(t, "GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
	oc2 := f.origin.accept(t)
	if head := readHead(t, oc2.br); !strings.HasPrefix(head, "GET /b ") {
		t.Fatalf("the new connection carried %q", head)
	}
	io.WriteString(oc2, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	if resp, body := c.response(t, "GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatal(resp.StatusCode, body)
	}
}

// A request pipelined while the previous one is still with the origin,
// and one sent in two parts after it, are served: bytes that arrive during
// an exchange are never left unread in the socket.
func TestEnginePipelinedDuringExchange(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
	oc := f.origin.accept(t)
	if got := requestLine(readHead(t, oc.br)); got != "GET /1 HTTP/1.1" {
		t.Fatal(got)
	}
	c.send(t, "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n") // the proxy waits for the origin meanwhile
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
	if resp, body := c.response(t, "GET"); resp.StatusCode != 200 || body != "1" {
		t.Fatal(resp.StatusCode, body)
	}
	if got := requestLine(readHead(t, oc.br)); got != "GET /2 HTTP/1.1" {
		t.Fatal(got)
	}
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
	if resp, body := c.response(t, "GET"); resp.StatusCode != 200 || body != "2" {
		t.Fatal(resp.StatusCode, body)
	}
	c.send(t, "GET /3 HTTP/1.1\r\nHo")
	c.send(t, "st: a\r\n\r\n")
	if got := requestLine(readHead(t, oc.br)); got != "GET /3 HTTP/1.1" {
		t.Fatal(got)
	}
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3")
	if resp, body := c.response(t, "GET"); resp.StatusCode != 200 || body != "3" {
		t.Fatal(resp.StatusCode, body)
	}
}

// Close ends a connection whose request is still with the origin at once:
// the client sees the close without waiting for the origin, and Close
// does not wait for it either.
func TestEngineCloseDuringExchange(t *testing.T) {
	origin := newRawOrigin(t)
	u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: origin.ln.Addr().String(), Weight: 1}})
	svc := &Service{Name: "s", Scheme: "http", Upstream: u, Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second})}
	rt, err := router.New([]router.Route{{Name: "r", Paths: []string{"/"}, Value: &Route{Name: "r", Service: svc}}})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Log: zerolog.Nop(), Metrics: NewMetrics(prometheus.NewRegistry())})
	p.SetTable(&Table{Router: rt})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := p.NewServer(ServerOptions{})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	f := &engineFixture{p: p, addr: ln.Addr().String(), origin: origin, svc: svc}
	c := f.dial(t)
	c.send(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	oc := origin.accept(t)
	readHead(t, oc.br) // the request is with the origin, which does not answer
	closed := make(chan struct{})
	go func() { defer close(closed); _ = s.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the exchange")
	}
	c.expectClosed(t)
	oc.Close() // the exchange ends; the serving goroutine goes
	<-done
}

// A connection carries a request whose body comes after its head, then
// a chunked one, then plain ones: each is forwarded whole and answered.
func TestEngineStreamedBodiesThenKeepAlive(t *testing.T) {
	f := newEngineFixture(t, ServerOptions{}, Options{})
	c := f.dial(t)
	c.send(t, "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n")
	oc := f.origin.accept(t)
	if got := requestLine(readHead(t, oc.br)); got != "POST /1 HTTP/1.1" {
		t.Fatal(got)
	}
	c.send(t, "abc")
	if b := readN(t, oc.br, 3); b != "abc" {
		t.Fatalf("body %q", b)
	}
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
	if resp, body := c.response(t, "POST"); resp.StatusCode != 200 || body != "1" {
		t.Fatal(resp.StatusCode, body)
	}
	c.send(t, "POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n")
	if got := requestLine(readHead(t, oc.br)); got != "POST /2 HTTP/1.1" {
		t.Fatal(got)
	}
	if b := readN(t, oc.br, len("3\r\nxyz\r\n0\r\n\r\n")); b != "3\r\nxyz\r\n0\r\n\r\n" {
		t.Fatalf("chunked body %q", b)
	}
	io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
	if resp, body := c.response(t, "POST"); resp.StatusCode != 200 || body != "2" {
		t.Fatal(resp.StatusCode, body)
	}
	for i := 3; i <= 4; i++ {
		c.send(t, "GET /"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: a\r\n\r\n")
		if got := requestLine(readHead(t, oc.br)); got != "GET /"+strconv.Itoa(i)+" HTTP/1.1" {
			t.Fatal(got)
		}
		io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"+strconv.Itoa(i))
		if resp, body := c.response(t, "GET"); resp.StatusCode != 200 || body != strconv.Itoa(i) {
			t.Fatal(resp.StatusCode, body)
		}
	}
}
