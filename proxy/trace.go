package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-gw/outrigger/proxy/h1"
	"github.com/outrigger-gw/outrigger/tracing"
	"github.com/outrigger-gw/outrigger/upstream"
)

// Tracing (Options.Tracer): one server span per request and one client
// span per upstream attempt, on both request paths. With no tracer every
// hook below is behind one nil check of the request's state, so tracing
// off costs nothing: no header is looked at, nothing is allocated.
//
// The server span starts when the request was routed (the engine) or
// read (net/http), with the trace context the configured propagators find
// in the request; it ends when the request is counted (account), with the
// route, service, upstream, target, status, attempts and canary side. A
// request answered before it had a route gets a server span too (reject).
// Each attempt's client span is a child of the server span; its trace
// context replaces the client's propagation fields on the way upstream.
// Attribute names are OpenTelemetry's HTTP semantic conventions, and
// outrigger.* for the proxy's own.

// Outrigger's span attributes.
const (
	attrRoute    = attribute.Key("outrigger.route")
	attrService  = attribute.Key("outrigger.service")
	attrUpstream = attribute.Key("outrigger.upstream")
	attrTarget   = attribute.Key("outrigger.target")
	attrAttempts = attribute.Key("outrigger.attempts")
	attrAttempt  = attribute.Key("outrigger.attempt")
	attrCanary   = attribute.Key("outrigger.canary.side")
)

// spans is a request's tracing state; zero when the request is not
// traced (tracing off).
type spans struct {
	tr     *tracing.Tracer // nil: not traced
	method string          // the request's (its own copy)
	// req are the server span's request attributes, set when it ends.
	req    [6]attribute.KeyValue
	ctx    context.Context // holds server
	server trace.Span
	// cctx holds client, the current attempt's span until it ends;
	// cstatus is the status its response head brought (0 until then).
	cctx    context.Context
	client  trace.Span
	cstatus int
}

// startServer starts the request's server span; it reports whether the
// span records (was sampled): only then does it need describe.
func (s *spans) startServer(tr *tracing.Tracer, carrier propagation.TextMapCarrier, start time.Time) bool {
	s.tr = tr
	s.ctx, s.server = tr.StartServer(carrier, "HTTP", start)
	return s.server.IsRecording()
}

// describe names a recording server span and sets its request
// attributes; the strings must be the span's own (not aliasing a buffer).
func (s *spans) describe(method, scheme, host, path, client, proto string) {
	s.method = method
	s.server.SetName(method)
	s.req = [...]attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("url.scheme", scheme),
		attribute.String("url.path", path),
		attribute.String("server.address", hostOnly(host)),
		attribute.String("client.address", client),
		attribute.String("network.protocol.version", proto),
	}
}

// startAttempt starts the client span of attempt n (1 for the first) to
// ep; path is called for the upstream path only when the span records.
func (s *spans) startAttempt(up *upstream.Upstream, ep *upstream.Endpoint, n int, path func() string, start time.Time) {
	s.cctx, s.client, s.cstatus = nil, nil, 0
	if !s.server.IsRecording() {
		// Parent-based: the attempt is not sampled either; its span only
		// carries the context upstream.
		s.cctx, s.client = s.tr.StartClient(s.ctx, "HTTP", start)
		return
	}
	method := s.method
	host, port, _ := net.SplitHostPort(ep.Addr)
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("server.address", host),
		attribute.String("network.peer.address", host),
		attribute.String("url.path", path()),
		attrUpstream.String(up.Name()),
		attrTarget.String(ep.Addr),
		attrAttempt.Int(n),
	}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, attribute.Int("server.port", p), attribute.Int("network.peer.port", p))
	}
	if n > 1 {
		attrs = append(attrs, attribute.Int("http.request.resend_count", n-1))
	}
	s.cctx, s.client = s.tr.StartClient(s.ctx, method, start, attrs...)
}

// endAttempt ends the current attempt's span with the response status
// (0 when none came) or the attempt's error.
func (s *spans) endAttempt(status int, err error) {
	sp := s.client
	if sp == nil {
		return
	}
	s.client, s.cctx = nil, nil
	if !sp.IsRecording() {
		sp.End()
		return
	}
	if status > 0 {
		sp.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	switch {
	case err != nil:
		sp.SetAttributes(attribute.String("error.type", errorType(err)))
		sp.SetStatus(codes.Error, err.Error())
	case status >= 400:
		sp.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
		sp.SetStatus(codes.Error, "")
	}
	sp.End()
}

// errorType is the low-cardinality class of an attempt's error
// (error.type).
func errorType(err error) string {
	var ce *ConnectError
	switch {
	case errors.As(err, &ce):
		return "connect_error"
	case isTimeout(err):
		return "timeout"
	}
	return "_OTHER"
}

// endServer ends the server span of a counted request (o's route may be
// nil for a request answered before routing).
func (s *spans) endServer(o *outcome) {
	sp := s.server
	s.server = nil
	if sp == nil {
		return
	}
	s.endAttempt(s.cstatus, nil) // the attempt that answered ends with the request
	if !sp.IsRecording() {
		sp.End()
		return
	}
	// One SetAttributes with the request's and the outcome's: the SDK
	// grows and dedupes the span's attributes once.
	attrs := make([]attribute.KeyValue, 0, len(s.req)+12)
	attrs = append(attrs, s.req[:]...)
	if o.status > 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", o.status))
	}
	if rt := o.route; rt != nil {
		svc := rt.Service
		side := "primary"
		if svc.Canary != nil && o.up == svc.Canary.Upstream {
			side = "canary"
		}
		sp.SetName(o.method + " " + rt.Name)
		attrs = append(attrs, attrRoute.String(rt.Name), attrService.String(svc.Name), attrUpstream.String(o.up.Name()),
			attrAttempts.Int(o.attempts), attrCanary.String(side))
		if o.ep != nil {
			attrs = append(attrs, attrTarget.String(o.ep.Addr))
		}
	}
	if o.grpc {
		attrs = append(attrs, attribute.String("rpc.system", "grpc"), attribute.Int("rpc.grpc.status_code", o.grpcStatus))
	}
	failed := o.status >= 500 || o.status == 0
	if failed {
		et := "_OTHER"
		if o.err != nil {
			et = errorType(o.err)
		} else if o.status > 0 {
			et = strconv.Itoa(o.status)
		}
		attrs = append(attrs, attribute.String("error.type", et))
	}
	sp.SetAttributes(attrs...)
	if failed {
		msg := ""
		if o.err != nil {
			msg = o.err.Error()
		}
		sp.SetStatus(codes.Error, msg)
	}
	sp.End()
}

// inject replaces the propagation fields of h with the current attempt's
// trace context.
func (s *spans) inject(h http.Header) {
	for _, f := range s.tr.Fields() {
		h.Del(f)
	}
	s.tr.Inject(s.cctx, propagation.HeaderCarrier(h))
}

// h1Carrier reads an engine request's fields for trace extraction. The
// values are copied: a tracestate kept in the span must not alias the
// connection's buffer.
type h1Carrier struct{ in *h1Inbound }

func (h h1Carrier) Get(key string) string {
	v, _ := h.in.Value(key, 0)
	return strings.Clone(v)
}

func (h h1Carrier) Set(string, string) {}

func (h h1Carrier) Keys() []string {
	keys := make([]string, 0, len(h.in.req.Fields))
	for _, f := range h.in.req.Fields {
		keys = append(keys, strings.ToLower(string(f.Name)))
	}
	return keys
}

// headCarrier appends injected fields to an upstream head.
type headCarrier struct{ dst []byte }

func (h *headCarrier) Get(string) string { return "" }

func (h *headCarrier) Set(key, value string) { h.dst = h1.AppendField(h.dst, key, value) }

func (h *headCarrier) Keys() []string { return nil }

// isTraceField reports whether the request field name is one tr's
// propagators own (dropped on the way upstream: the proxy writes its own).
func isTraceField(tr *tracing.Tracer, name []byte) bool {
	for _, f := range tr.Fields() {
		if foldEq(name, f) {
			return true
		}
	}
	return false
}

// traceStart starts an engine request's server span (tracing on). The
// strings are copied: the span outlives the connection's buffer.
func (c *client) traceStart(tr *tracing.Tracer) {
	scheme := "http"
	if c.tls {
		scheme = "https"
	}
	host := c.req.Host
	if c.req.Form == h1.FormAbsolute {
		host = c.req.Authority
	}
	c.tsp = spans{}
	c.ex.spans = &c.tsp
	if c.ex.spans.startServer(tr, h1Carrier{&c.in}, c.ex.start) {
		c.ex.spans.describe(string(c.req.Method), scheme, string(host), strings.Clone(c.in.dpath), c.ip, "1."+strconv.Itoa(int(c.req.Minor)))
	}
}

// unrouted ends an engine request answered before it had a route (see
// Proxy.unrouted); it gets a server span when tracing is on.
func (c *client) unrouted(status int) {
	p := c.s.p
	if tr := p.opts.Tracer; tr != nil && c.ex.spans == nil {
		c.traceStart(tr)
	}
	if p.opts.AccessLog || c.ex.spans != nil {
		p.unrouted(bstr(c.req.Method), bstr(c.req.Host), c.in.dpath, status, time.Since(c.ex.start), c.ex.spans)
	}
}
