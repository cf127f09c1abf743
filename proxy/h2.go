package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"

	"golang.org/x/net/http2"
)

// HTTP/2 clients of the proxy listener.
//
// One http2.Server serves every HTTP/2 connection of an engine Server (its
// listener set), whatever brought the connection there: the h2c preface
// on a plaintext connection, or ALPN "h2" after a TLS handshake. Streams
// are served by Proxy.ServeHTTP, the net/http handler, with the limits of
// H2Options advertised in the server's SETTINGS. x/net reads each
// connection through an h2Filter (h2filter.go), which brings two of its
// answers in line with RFC 9113: a SETTINGS frame repeating a setting is
// processed instead of hung up on, and a request carrying a
// connection-specific header field (or TE other than "trailers") ends in
// RST_STREAM(PROTOCOL_ERROR) instead of a 400, the handler never called.
//
// Drain: Shutdown sends GOAWAY (NO_ERROR, naming the last stream
// received) to every HTTP/2 connection; streams up to that one finish,
// streams the client opens after it are refused (never served), and the
// connection closes once its last stream ends (x/net waits a second
// after the GOAWAY so the client can read it before the close). An idle
// connection therefore closes right after the GOAWAY, not at the drain
// deadline.

// H2Options are the HTTP/2 limits of the proxy listener.
type H2Options struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS (0:
	// DefaultH2MaxConcurrentStreams).
	MaxConcurrentStreams uint32
	// MaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE in bytes as
	// HTTP/2 counts them, each field's name and value plus 32 (0:
	// DefaultH2MaxHeaderListSize); a request over it is answered 431.
	MaxHeaderListSize uint32
}

// HTTP/2 defaults.
const (
	// DefaultH2MaxConcurrentStreams is nginx's http2_max_concurrent_streams.
	DefaultH2MaxConcurrentStreams = 128
	// DefaultH2MaxHeaderListSize is near Envoy's max_request_headers_kb.
	DefaultH2MaxHeaderListSize = 64 << 10
	// h2MaxReadFrameSize is the SETTINGS_MAX_FRAME_SIZE advertised: the
	// protocol's initial value, which bounds what one frame read takes
	// per connection (x/net's default would let a client send 1 MiB
	// frames).
	h2MaxReadFrameSize = 16 << 10
	// h2HeaderSlack is what x/net adds to http.Server.MaxHeaderBytes to
	// get SETTINGS_MAX_HEADER_LIST_SIZE (32 bytes for ten fields).
	h2HeaderSlack = 10 * 32
	// h2DecoderTableSize is SETTINGS_HEADER_TABLE_SIZE, the HPACK table
	// size of x/net's decoder and of the filter's (they must be equal).
	h2DecoderTableSize = 4096
)

// h2Server is the HTTP/2 side of an engine Server. Immutable after
// newH2Server; the http2 and http servers and the pool are safe for
// concurrent use.
type h2Server struct {
	srv *http2.Server
	// hs is the connections' BaseConfig: it carries the header list limit
	// and the error log, and http2.ConfigureServer registered on it the
	// hook that sends GOAWAY to every connection (run by hs.Shutdown).
	hs *http.Server
	h  http.Handler
	// bufs are the filters' buffers for a frame larger than their own
	// (*[]byte of h2BigBufLen(h2MaxReadFrameSize) bytes).
	bufs sync.Pool
}

func newH2Server(h http.Handler, o ServerOptions) *h2Server {
	streams := o.H2.MaxConcurrentStreams
	if streams == 0 {
		streams = DefaultH2MaxConcurrentStreams
	}
	headers := o.H2.MaxHeaderListSize
	if headers == 0 {
		headers = DefaultH2MaxHeaderListSize
	}
	hs := &http.Server{
		Handler:        h,
		MaxHeaderBytes: int(max(headers, 2*h2HeaderSlack) - h2HeaderSlack),
		IdleTimeout:    o.IdleTimeout,
		ErrorLog:       o.ErrorLog,
	}
	srv := &http2.Server{
		MaxConcurrentStreams: streams,
		MaxReadFrameSize:     h2MaxReadFrameSize,
		IdleTimeout:          o.IdleTimeout,
		// Set, not left to x/net's default: the filter's decoder has
		// the same.
		MaxDecoderHeaderTableSize: h2DecoderTableSize,
	}
	if err := http2.ConfigureServer(hs, srv); err != nil {
		// Only a TLS configuration without HTTP/2's cipher suites fails,
		// and hs has none.
		panic("proxy: configuring HTTP/2: " + err.Error())
	}
	s := &h2Server{srv: srv, hs: hs, h: h2StreamHandler{h}}
	s.bufs.New = func() any {
		b := make([]byte, h2BigBufLen(h2MaxReadFrameSize))
		return &b
	}
	return s
}

// serveH2 serves c as an HTTP/2 connection on nc until it closes:
// pending, the bytes the engine read to tell h2c apart, then nc yield the
// client preface first. c stays in the engine's connection set, marked
// as HTTP/2, so Shutdown sends it GOAWAY and Close closes it. x/net reads
// nc through an h2Filter, which takes a copy of pending (x/net's reading
// goroutine may outlive ServeConn, and c's buffer goes back to the pool).
func (s *Server) serveH2(c *client, nc net.Conn, pending []byte) {
	c.state.Store(stateH2)
	f := newH2Filter(nc, h2DecoderTableSize, h2MaxReadFrameSize, &s.h2.bufs)
	if !f.preload(pending) {
		f.src = &replayConn{Conn: nc, pending: bytes.Clone(pending)}
	}
	fc := h2FilterConn{Conn: nc, f: f}
	var conn net.Conn = &fc
	if tc, ok := nc.(*tls.Conn); ok {
		conn = &h2FilterTLSConn{h2FilterConn: fc, tc: tc}
	}
	s.h2.srv.ServeConn(conn, &http2.ServeConnOpts{Handler: s.h2.h, BaseConfig: s.h2.hs})
}

// goAway sends GOAWAY to every HTTP/2 connection being served (once per
// connection; a connection that has had it is not told again). Shutdown
// calls it until no HTTP/2 connection is left, which also reaches the
// ones handed over after its first call.
func (h *h2Server) goAway() {
	// hs serves no listener and no connection of its own: Shutdown only
	// runs the GOAWAY hook (in a goroutine) and returns.
	_ = h.hs.Shutdown(context.Background())
}

// h2StreamHandler serves a stream on the goroutine x/net starts for it.
// A new goroutine starts with a small stack, and proxying a request needs
// more: grown where the need arises, deep in ReverseProxy or the router,
// each growth copies and adjusts every frame below it, once or twice a
// request. preGrowStack grows it once, while the stack is still shallow,
// to the size a proxied request needs.
type h2StreamHandler struct{ h http.Handler }

func (s h2StreamHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	preGrowStack()
	s.h.ServeHTTP(w, r)
}

// h2StreamStack is preGrowStack's frame: with the few frames below it,
// it needs an 8 KiB stack, which holds a proxied request (measured:
// no stream grows its stack again; 8 KiB of frame would make it 16 KiB
// and cost more than it saves).
const h2StreamStack = 4 << 10

// preGrowStack's frame is h2StreamStack bytes: calling it grows the
// goroutine's stack to hold them (one copy of a shallow stack), and the
// stack stays that size when it returns.
//
//go:noinline
func preGrowStack() {
	var frame [h2StreamStack]byte
	stackSink(frame[:])
}

//go:noinline
func stackSink(b []byte) { _ = b }
