// Package proxy is Outrigger's data plane: it matches a request to a route,
// maps the route to its service and the service to an upstream, picks a
// target and forwards the request, streaming both ways.
//
// Contract:
//   - The routing table is an immutable *Table swapped atomically (SetTable);
//     a request uses the table it started with from start to finish, and
//     resolves everything against that table's generation: its route and
//     service, its canary percent (Table.Percents) and the snapshot of its
//     upstream (upstream.SnapshotAt(Table.Generation)). Only a pick whose
//     target has left meanwhile is made again on the current snapshot.
//   - Retries go to another target, up to the service's retries, on what the
//     upstream's retry policy names (upstream.RetryPolicy: failure classes,
//     statuses, gRPC statuses; retry.go): a request whose connection was
//     never established may always be retried; otherwise only idempotent
//     requests without a body are, and a status only for those. A request
//     body already read is never sent twice. Each attempt has the policy's
//     per-try cap and the whole its overall cap, both up to the response
//     head; retries wait its backoff (jitter from Options.Rand).
//   - Over max_connections, a request of the engine waits for a connection
//     as one of max_pending_requests, else is answered the overloaded 503.
//   - Errors are answered with a JSON body {"message": ...}: 404 when no
//     route matches, 413 for a body over the limit, 502 when the upstream
//     fails, 503 when it has no healthy target, 504 on a timeout. A gRPC
//     request gets the gRPC error instead (grpc.go).
//   - A route whose protocols are grpc/grpcs answers a non-gRPC request
//     415 and a gRPC request over HTTP/1.x 426, as Kong; a gRPC request
//     over HTTP/1.x to a grpc or grpcs service is answered 426 too.
//   - A panic while serving a request follows internal/guard's rule:
//     logged at error level with its stack, counted in Options.Panics,
//     answered 500 when nothing was written yet (else the connection is
//     aborted); the request is still counted and logged, and the proxy
//     keeps serving. http.ErrAbortHandler aborts silently.
//   - Every finished request gets one access-log line (successes sampled
//     by Options.AccessLogSuccessDrop; with the ids of its trace when
//     traced) and is counted in Metrics; outcomes go back to the upstream
//     (health, balancer stats).
//   - With Options.Tracer, every request has a server span and every
//     upstream attempt a client span (trace.go); without, nothing of
//     tracing runs on either request path.
//   - A request holds the upstream.Member of its target from the pick to
//     the end of its bookkeeping, so a target removed meanwhile keeps its
//     metric series until the request is counted. The series children of
//     a target are resolved once per target (Metrics), never per request.
//   - Bodies stream without buffering: server-sent events and other
//     responses of unknown length are flushed as they arrive; WebSocket and
//     other upgrades are tunnelled.
//   - A route's plugins (Route.Plugins, package proxy/plugins) run on both
//     request paths once the route is matched (pluginhook.go); a route
//     without plugins has a nil chain and takes no step of theirs.
//   - HTTP/2 clients of the engine (h2c and ALPN h2) are served by one
//     http2.Server per engine Server with the limits of H2Options; their
//     request trailers reach the upstream. Shutdown sends them GOAWAY:
//     streams already opened finish, later ones are refused, and an idle
//     connection closes without waiting for the drain deadline. x/net
//     reads each connection through a frame filter (h2filter.go): a
//     SETTINGS frame repeating a setting is processed in order, and a
//     request carrying a connection-specific field or TE other than
//     "trailers" is reset (PROTOCOL_ERROR) before any handler runs. On an
//     h2c listener, a connection opening with neither the HTTP/2 preface
//     nor an HTTP/1.x request line gets SETTINGS and GOAWAY
//     (PROTOCOL_ERROR), not a 400.
package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/internal/guard"
	"github.com/outrigger-gw/outrigger/proxy/plugins"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/tracing"
	"github.com/outrigger-gw/outrigger/upstream"
)

// Service is where matched requests go.
type Service struct {
	Name string
	// Scheme is "http" or "https" (the URL scheme of Protocol).
	Scheme string
	// Protocol is one of ProtoHTTP, ProtoHTTPS, ProtoH2C, ProtoGRPC,
	// ProtoGRPCS ("" is ProtoHTTP); the Transport speaks it.
	Protocol string
	// GRPCIdempotent lists the gRPC methods that may be sent again after
	// a target answered UNAVAILABLE ("/pkg.Service/Method", or
	// "/pkg.Service/*"); see GRPCMethodMatch.
	GRPCIdempotent []string
	// Path is prepended to the (possibly stripped) request path as the
	// route's PathHandling says.
	Path string
	// Retries is how many more attempts a failed request may make.
	Retries int
	// Upstream picks targets. Services that name a real host get a
	// one-target upstream of their own.
	Upstream *upstream.Upstream
	// Transport holds the keep-alive pools and timeouts.
	Transport http.RoundTripper
	// Hash, when set, keys the balancer from the request (its upstream's
	// hash_on settings or sticky-session cookie).
	Hash *HashSpec
	// Canary, when set, sends part of the traffic to another upstream.
	Canary *Canary
	// Stats, when set, records the primary side's outcomes (rollouts
	// compare it with Canary.Stats).
	Stats *RoleStats
}

// NoServiceMessage is Kong's answer (503) to a request matching a route
// without a service.
const NoServiceMessage = "no Service found with those values"

// HTTPSLocation is where a plaintext request to an https-only route is
// redirected, as Kong: https, the request's host without its port, and
// the request's target as sent.
func HTTPSLocation(host, requestURI string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return "https://" + host + requestURI
}

// HTTPSOnlyMessage is Kong's answer (426, with Upgrade: TLS/1.2,
// HTTP/1.1) to a plaintext request matching a route whose protocols are
// https alone.
const HTTPSOnlyMessage = "Please use HTTPS protocol"

// Route is the payload of a router.Route (its Value).
type Route struct {
	Name string
	// Service is nil for a route without one: its requests are answered
	// 503 NoServiceMessage, as Kong's.
	Service *Service
	// HTTPSOnly: the route's protocols are https alone; a plaintext
	// request is answered HTTPSRedirect: 426 HTTPSOnlyMessage, or a
	// redirect to https (301, 302, 307, 308), as Kong's
	// https_redirect_status_code (0 is 426).
	HTTPSOnly     bool
	HTTPSRedirect int
	StripPath     bool
	PreserveHost  bool
	// PathHandling combines the service path with the request path.
	PathHandling PathHandling
	// Regexps are the route's regex paths, anchored; hash_on uri_capture
	// reads their named groups.
	Regexps []*regexp.Regexp
	// GRPC: the route's protocols are grpc and/or grpcs (Kong's
	// protocols); it serves gRPC requests over HTTP/2 only. GRPCSOnly:
	// only grpcs (gRPC over TLS).
	GRPC, GRPCSOnly bool
	// Plugins is the route's plugin chain; nil when none applies.
	Plugins *plugins.Chain
}

// Table is an immutable routing table: one configuration generation of
// everything a request resolves. A request loads it once and resolves its
// route, service, canary split (Percents) and upstream snapshot
// (upstream.SnapshotAt(Generation)) against it alone.
type Table struct {
	Router *router.Router
	// Generation identifies the configuration the table was built from;
	// upstreams' snapshots are chosen by it (upstream.SnapshotAt).
	Generation uint64
	// Percents are the canary shares of this generation (0..PercentScale,
	// see ScalePercent), indexed by Canary.Slot: a change of percent alone
	// is a new Table over the same Router.
	Percents []uint64
	// Unmatched is the global plugins' response phase for requests no
	// route matched (plugins.Set.Unmatched); nil when none.
	Unmatched *plugins.Chain
}

// Options configure a Proxy.
type Options struct {
	Log       zerolog.Logger
	AccessLog bool
	Metrics   *Metrics
	// MaxBodySize limits request bodies (bytes); 0 means no limit.
	MaxBodySize int64
	// Panics counts panics recovered while serving a request; nil counts
	// nothing.
	Panics prometheus.Counter
	// Rand is the jitter source of the retry backoff; nil means
	// math/rand/v2's.
	Rand func() uint64
	// Tracer, when set, traces every request (trace.go); nil is tracing
	// off.
	Tracer *tracing.Tracer
	// AccessLogSuccessDrop is the share (0..1) of successful requests
	// (status below 400, no error, gRPC OK) that get no access line;
	// failed ones always get theirs. 0 logs every request.
	AccessLogSuccessDrop float64
}

// Proxy is an http.Handler forwarding requests along the current Table.
// Immutable after New except table.
type Proxy struct {
	opts  Options
	log   zerolog.Logger
	table atomic.Pointer[Table]
	rp    *httputil.ReverseProxy
	guard guard.Guard
	// exchanges are the plugins' per-request state on the net/http path
	// (*plugins.Exchange), taken only for a route with plugins.
	exchanges sync.Pool
	// logSample: successful requests are sampled for the access log, kept
	// when their draw is below logBound (see logged).
	logSample bool
	logBound  uint64
	ports     portCache // X-Forwarded-Port's text
}

// New returns a Proxy with an empty table (every request gets 404).
func New(o Options) *Proxy {
	p := &Proxy{opts: o, log: o.Log}
	p.exchanges.New = func() any { return &plugins.Exchange{} }
	if d := o.AccessLogSuccessDrop; d > 0 {
		p.logSample, p.logBound = true, uint64((1-min(d, 1))*(1<<63))
	}
	p.guard = guard.Guard{Listener: "proxy", Log: o.Log, Panics: o.Panics,
		Answer: func(w http.ResponseWriter) {
			if rw, ok := w.(*respWriter); ok && rw.grpc {
				writeGRPCError(w, grpcInternal, "An unexpected error occurred")
				return
			}
			writeError(w, http.StatusInternalServerError, "An unexpected error occurred")
		}}
	p.table.Store(&Table{})
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      roundTripper{p},
		ErrorHandler:   p.errorHandler,
		ModifyResponse: p.modifyResponse,
		BufferPool:     newBufferPool(),
		ErrorLog:       log.New(zerologWriter{o.Log}, "", 0),
	}
	return p
}

// SetTable swaps the routing table.
func (p *Proxy) SetTable(t *Table) { p.table.Store(t) }

// Table returns the current routing table.
func (p *Proxy) Table() *Table { return p.table.Load() }

type stateKey struct{}

// reqState is the per-request bookkeeping shared by ServeHTTP, rewrite,
// RoundTrip and the error handler. It is owned by one request.
type reqState struct {
	// retrying: the request holds a retry in its upstream's breakers.
	retrying bool
	// overall is the retry policy's deadline for the response head (zero
	// for none).
	overall   time.Time
	route     *Route
	up        *upstream.Upstream // the upstream chosen (primary or canary)
	gen       uint64             // the table's generation: up's snapshot is chosen by it
	role      *RoleStats
	postfix   string // what the route's path left of the request path (strip_path)
	prefix    string
	br        balance.Request
	setCookie string
	attempts  int
	ep        *upstream.Endpoint
	err       error
	body      countingBody
	resp      respBody
	rw        respWriter
	grpc      grpcState
	spans     *spans // nil: not traced
	// fwd backs the X-Forwarded-* values of the upstream request
	// (setForwarded), so they cost no allocation of their own.
	fwd [6]string
	// parent is the client request's context: reqState is the context
	// of the request handed to ReverseProxy (the parent's, plus itself
	// under stateKey), which saves a context.WithValue per request.
	parent context.Context
}

// Deadline, Done, Err and Value make reqState the proxied request's
// context: its parent's, with the reqState itself under stateKey{}.
func (rs *reqState) Deadline() (time.Time, bool) { return rs.parent.Deadline() }
func (rs *reqState) Done() <-chan struct{}       { return rs.parent.Done() }
func (rs *reqState) Err() error                  { return rs.parent.Err() }
func (rs *reqState) Value(key any) any {
	if _, ok := key.(stateKey); ok {
		return rs
	}
	return rs.parent.Value(key)
}

// ServeHTTP proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rs := &reqState{}
	rs.rw.ResponseWriter = w
	if IsGRPC(r.Header.Get("Content-Type")) {
		rs.grpc.on, rs.rw.grpc, rs.grpc.status = true, true, -1
	}
	if tr := p.opts.Tracer; tr != nil {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		rs.spans = &spans{}
		if rs.spans.startServer(tr, propagation.HeaderCarrier(r.Header), start) {
			rs.spans.describe(r.Method, scheme, r.Host, r.URL.Path, hostOnly(r.RemoteAddr), strconv.Itoa(r.ProtoMajor)+"."+strconv.Itoa(r.ProtoMinor))
		}
	}
	defer p.done(r, rs, start)
	t := p.table.Load()
	if hw, ok := w.(*h1Writer); ok && hw.table != nil {
		t = hw.table // bridged by the engine: the table it routed by
	}
	p.serve(&rs.rw, r, rs, start, t)
}

// done ends a request: a panic is handled by the guard's rule, then a
// proxied request is counted and logged (with the 500 of a panic).
func (p *Proxy) done(r *http.Request, rs *reqState, start time.Time) {
	v := recover()
	defer p.releasePlugins(&rs.rw)
	if v == nil {
		if rs.route != nil {
			p.finish(r, rs, start)
		}
		return
	}
	if rs.resp.stats != nil {
		_ = rs.resp.Close() // ends the target's in-flight count (once)
	}
	abort := p.guard.Recovered(v, &rs.rw, r, rs.rw.status != 0 || rs.rw.hijacked)
	if rs.route != nil {
		p.finish(r, rs, start)
	} else {
		p.accessLine(r, rs, start, rs.rw.status)
	}
	if abort {
		panic(http.ErrAbortHandler)
	}
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, rs *reqState, start time.Time, t *Table) {
	if t.Router == nil {
		p.noRoute(w, r, rs, start, t)
		return
	}
	m, ok := t.Router.Match(r.Method, r.Host, r.URL.Path, r.Header)
	if !ok {
		p.noRoute(w, r, rs, start, t)
		return
	}
	rt := m.Route.Value.(*Route)
	if rt.HTTPSOnly && r.TLS == nil && rt.HTTPSRedirect != 0 && rt.HTTPSRedirect != http.StatusUpgradeRequired {
		w.Header().Set("Location", HTTPSLocation(r.Host, r.RequestURI))
		w.WriteHeader(rt.HTTPSRedirect)
		p.accessLine(r, rs, start, rt.HTTPSRedirect)
		return
	}
	if rt.HTTPSOnly && r.TLS == nil {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "TLS/1.2, HTTP/1.1")
		p.reject(w, r, rs, start, http.StatusUpgradeRequired, HTTPSOnlyMessage)
		return
	}
	if rt.Service == nil {
		p.reject(w, r, rs, start, http.StatusServiceUnavailable, NoServiceMessage)
		return
	}
	if ref := protocolRefusal(rt, rs.grpc.on, r.ProtoMajor >= 2, r.TLS != nil); ref.status != 0 {
		ref.write(w)
		p.accessLine(r, rs, start, ref.status)
		return
	}
	if rt.Plugins != nil {
		x := p.exchanges.Get().(*plugins.Exchange)
		rs.rw.plug = x // given back by done, after the last write
		if !runPlugins(rt, x, httpInbound{r}, r.TLS != nil, rs.grpc.on) {
			pluginAnswerHTTP(w, x, &rs.grpc)
			p.accessLine(r, rs, start, x.Status)
			return
		}
	}
	if max := p.opts.MaxBodySize; max > 0 {
		if r.ContentLength > max {
			p.reject(w, r, rs, start, http.StatusRequestEntityTooLarge, "Request size limit exceeded")
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
	}
	rs.postfix = m.Postfix
	if m.Prefix != "/" { // Kong sends no X-Forwarded-Prefix for a bare "/"
		rs.prefix = m.Prefix
	}
	rs.br.Now = start.UnixNano()
	svc, hash := rt.Service, rt.Service.Hash
	rs.up, rs.role, rs.gen = svc.Upstream, svc.Stats, t.Generation
	if c := svc.Canary; c != nil && c.choose(httpInbound{r}, t) {
		rs.up, rs.role, hash = c.Upstream, c.Stats, c.Hash
	}
	rs.setCookie = hash.key(r, rt, &rs.br)
	brk := rs.up.Breakers()
	if !brk.AcquireRequest() {
		if mt := p.opts.Metrics; mt != nil {
			mt.Overloaded.WithLabelValues(rs.up.Name(), "max_requests").Inc()
		}
		w.Header().Set(OverloadedHeader, "true")
		p.reject(w, r, rs, start, http.StatusServiceUnavailable, overloadedMessage)
		return
	}
	defer releaseBreakers(brk, &rs.retrying)
	brk.RecordRequest(start)
	if d := rs.up.RetryPolicy().Timeout; d > 0 {
		rs.overall = start.Add(d)
	}
	if mt := p.opts.Metrics; mt != nil {
		mt.InFlight.Inc()
	}
	rs.route = rt // from here on done counts the request (finish)
	if rs.grpc.on {
		if d, ok := parseGRPCTimeout(r.Header.Get("Grpc-Timeout")); ok {
			rs.grpc.deadline = start.Add(d)
		}
	}
	rs.parent = r.Context()
	p.rp.ServeHTTP(w, r.WithContext(rs))
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	rs := pr.In.Context().Value(stateKey{}).(*reqState)
	svc := rs.route.Service
	out := pr.Out
	out.URL.Scheme = svc.Scheme
	out.URL.Host = rs.up.Name() // replaced per attempt in RoundTrip
	out.URL.Path = upstreamPath(rs.route.PathHandling, rs.route.StripPath, svc.Path, pr.In.URL.Path, rs.postfix)
	out.URL.RawPath = ""
	setForwarded(pr, &p.ports, rs.prefix, rs.fwd[:0])
	if len(pr.In.Trailer) > 0 {
		// The server fills the client's trailer values into In.Trailer
		// when the body ends (in the goroutine reading the body, before
		// it sees EOF); Out holds a copy made before that, so it shares
		// the map instead, and the transport sends the values after the
		// body.
		out.Trailer = pr.In.Trailer
	}
	if rs.route.PreserveHost {
		out.Host = pr.In.Host
		if svc.Scheme == "https" {
			out = out.WithContext(withSNI(out.Context(), hostOnly(pr.In.Host)))
			pr.Out = out
		}
	} else {
		out.Host = ""
	}
	if rs.rw.plug != nil {
		applyUp(out, rs.rw.plug)
	}
}

type roundTripper struct{ p *Proxy }

// RoundTrip sends one proxied request, retrying on another target where
// that is safe.
func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	rs := req.Context().Value(stateKey{}).(*reqState)
	svc := rs.route.Service
	if rs.grpc.on {
		return t.roundTripGRPC(req, rs)
	}
	if req.Body != nil && req.Body != http.NoBody {
		rs.body.rc = req.Body
		req.Body = &rs.body
	}
	var tried [4]string // the last few targets that failed
	pol := rs.up.RetryPolicy()
	for {
		ep, err := nextTarget(rs.up, rs.gen, &rs.br, rs.ep, &tried)
		if err != nil {
			return nil, err
		}
		rs.beginAttempt(ep, &tried, req)
		areq := req
		if tr, ok := svc.Transport.(*Transport); ok && tr.h2 != nil {
			// HTTP/2 upstream: the timeouts are per stream.
			areq, rs.resp.st = attemptRequest(req, tr, time.Time{}, req.Body != nil && req.Body != http.NoBody, req.Body)
		}
		t0 := time.Now()
		areq, tc := capRequest(areq, attemptCap(pol, t0, rs.overall))
		resp, err := svc.Transport.RoundTrip(areq)
		if err != nil && rs.resp.st != nil && rs.resp.st.fired.Load() {
			err = errStreamIdle
		}
		if err == nil {
			tc.headed()
			now := time.Now()
			rs.attemptAnswered(resp.StatusCode)
			rs.up.Report(ep, upstream.Outcome{Status: resp.StatusCode, Duration: now.Sub(t0), At: now})
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// The tunnel needs the raw read-write body; it no longer
				// counts as an in-flight request. Its context lives on
				// (the client request's ends it).
				_ = rs.resp.Close()
				return resp, nil
			}
			rs.resp.cap = tc
			if pol.On.Status(resp.StatusCode) && req.Context().Err() == nil && rs.attempts <= svc.Retries && retryable(req, &rs.body, false) &&
				t.retryGate(req.Context(), rs, now, nil, false) == nil {
				_ = resp.Body.Close() // the answer is dropped unread
				_ = rs.resp.Close()
				rs.attemptEnded(resp.StatusCode, nil)
				continue
			}
			rs.resp.rc = resp.Body
			if rs.resp.st != nil {
				rs.resp.rc = rs.resp.st.wrap(resp.Body)
			}
			resp.Body = &rs.resp
			return resp, nil
		}
		err = tc.failed(err)
		_ = rs.resp.Close()
		rs.attemptEnded(0, err)
		var ce *ConnectError
		connectFailed := errors.As(err, &ce)
		now := time.Now()
		timeout := isTimeout(err)
		rs.up.Report(ep, upstream.Outcome{ConnectFailed: connectFailed, Timeout: timeout, Duration: now.Sub(t0), At: now})
		refused := refusedStream(err)
		if req.Context().Err() != nil || rs.attempts > svc.Retries || !retryable(req, &rs.body, connectFailed || refused) ||
			!retryOnFailure(&pol.On, connectFailed, refused, timeout) {
			return nil, err
		}
		if err := t.retryGate(req.Context(), rs, now, err, connectFailed); err != nil {
			return nil, err
		}
	}
}

// retryGate admits a retry (admitRetry: max_retries, the retry budget,
// the backoff and the overall deadline); otherwise it returns the error
// that ends the request: errOverloaded over max_retries, failed (the
// attempt's error) when the retry is denied.
func (t roundTripper) retryGate(ctx context.Context, rs *reqState, now time.Time, failed error, connectFailed bool) error {
	switch t.p.admitRetry(ctx, rs.up, rs.route.Service.Name, &rs.retrying, rs.attempts, now, rs.overall, connectFailed) {
	case retryOverloaded:
		if mt := t.p.opts.Metrics; mt != nil {
			mt.Overloaded.WithLabelValues(rs.up.Name(), "max_retries").Inc()
		}
		return errOverloaded
	case retryDenied:
		if failed == nil {
			return errRetryDenied
		}
		return failed
	}
	return nil
}

// errRetryDenied is retryGate's refusal when the attempt did not fail
// (a status retry_on names): its answer is relayed.
var errRetryDenied = errors.New("retry denied")

// maxStalePicks bounds the picks of one attempt that land on a target
// removed meanwhile (each one means a removal raced the pick).
const maxStalePicks = 8

// beginAttempt makes ep the target of the request's next attempt on the
// net/http path: counted, remembered among the tried, in flight. rs.resp
// ends the in-flight count: on Close of the response body, on a failure,
// or in done on a panic.
func (rs *reqState) beginAttempt(ep *upstream.Endpoint, tried *[4]string, req *http.Request) {
	rs.attempts++
	rs.ep = ep
	tried[(rs.attempts-1)%len(tried)] = ep.Addr
	req.URL.Host = ep.Addr
	ep.Stats.InFlight.Add(1)
	ep.Stats.Requests.Add(1)
	rs.resp = respBody{stats: ep.Stats}
	if rs.spans != nil {
		rs.spans.startAttempt(rs.up, ep, rs.attempts, func() string { return req.URL.Path }, time.Now())
		rs.spans.inject(req.Header)
	}
}

// attemptEnded records on the attempt's span (when traced) that it got
// status (0: no response) or failed with err.
func (rs *reqState) attemptEnded(status int, err error) {
	if rs.spans != nil {
		rs.spans.endAttempt(status, err)
	}
}

// attemptAnswered records the status of the response an attempt got
// (when traced); its span ends with the request.
func (rs *reqState) attemptAnswered(status int) {
	if rs.spans != nil {
		rs.spans.cstatus = status
	}
}

// nextTarget picks the target of a request's next attempt and holds its
// Member, releasing prev's (the failed attempt's target; nil before the
// first attempt), from up's snapshot of the request's table generation gen
// (upstream.SnapshotAt). The first attempt asks the balancer. A retry
// takes the endpoint after prev that tried does not list: a balancer pick
// would consume a round-robin slot and could land on the same dead target
// every other request. A pick from a snapshot that predates its target's
// removal (and the end of its last request) is made again on the current
// snapshot, up to maxStalePicks times: the target is gone, and the
// generation in force is the one that can still serve the request. On
// error prev stays held.
func nextTarget(up *upstream.Upstream, gen uint64, br *balance.Request, prev *upstream.Endpoint, tried *[4]string) (*upstream.Endpoint, error) {
	for stale := 1; ; stale++ {
		snap := up.Snapshot()
		if stale == 1 {
			snap = up.SnapshotAt(gen)
		}
		var ep *upstream.Endpoint
		var err error
		if prev == nil {
			ep, err = snap.Pick(br)
		} else {
			ep, err = snap.Next(prev.Addr, func(a string) bool { return slices.Contains(tried[:], a) })
		}
		if err != nil {
			return nil, err
		}
		if ep.Member.Hold() {
			if prev != nil {
				prev.Member.Done()
			}
			return ep, nil
		}
		if stale >= maxStalePicks {
			return nil, upstream.ErrNoTargets
		}
	}
}

// retryable reports whether a failed attempt may be sent again.
func retryable(req *http.Request, body *countingBody, connectFailed bool) bool {
	if body.n.Load() > 0 {
		return false // part of the body left: never send it twice
	}
	if connectFailed {
		return true
	}
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// modifyResponse adds what the proxy owes the client on a response (the
// cookie of a new hash or sticky session).
func (p *Proxy) modifyResponse(resp *http.Response) error {
	rs := resp.Request.Context().Value(stateKey{}).(*reqState)
	if rs.setCookie != "" {
		resp.Header.Add("Set-Cookie", rs.setCookie)
	}
	return nil
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	rs := r.Context().Value(stateKey{}).(*reqState)
	rs.err = err
	var mbe *http.MaxBytesError
	switch {
	case r.Context().Err() != nil:
		// The client went away: nobody to answer. Logged as 499, as nginx.
		rs.rw.status = 499
		rs.grpc.status = grpcCanceled
	case errors.Is(err, errOverloaded):
		w.Header().Set(OverloadedHeader, "true")
		rs.answer(w, http.StatusServiceUnavailable, overloadedMessage)
	case errors.Is(err, upstream.ErrNoTargets):
		rs.answer(w, http.StatusServiceUnavailable, "failure to get a peer from the ring-balancer")
	case errors.As(err, &mbe):
		rs.answer(w, http.StatusRequestEntityTooLarge, "Request size limit exceeded")
	case isTimeout(err), rs.grpc.pastDeadline(time.Now()):
		rs.answer(w, http.StatusGatewayTimeout, "The upstream server is timing out")
	default:
		rs.answer(w, http.StatusBadGateway, "An invalid response was received from the upstream server")
	}
}

// answer writes an error the proxy produces: JSON, or a gRPC error for a
// gRPC request.
func (rs *reqState) answer(w http.ResponseWriter, status int, msg string) {
	if !rs.grpc.on {
		writeError(w, status, msg)
		return
	}
	rs.grpc.status = grpcCodeOf(status)
	writeGRPCError(w, rs.grpc.status, msg)
}

func (p *Proxy) reject(w http.ResponseWriter, r *http.Request, rs *reqState, start time.Time, status int, msg string) {
	rs.answer(w, status, msg)
	p.accessLine(r, rs, start, status)
}

// accessLine ends a request that was answered before it had a route.
func (p *Proxy) accessLine(r *http.Request, rs *reqState, start time.Time, status int) {
	p.unrouted(r.Method, r.Host, r.URL.Path, status, time.Since(start), rs.spans)
}

// unrouted ends a request of either server answered by the proxy itself
// before it had an upstream (no route, a refusal, a plugin's answer): its
// span and its access line (always written: such an answer is a
// refusal).
func (p *Proxy) unrouted(method, host, path string, status int, d time.Duration, sp *spans) {
	var sc trace.SpanContext
	if sp != nil && sp.tr != nil {
		sc = sp.server.SpanContext()
		sp.endServer(&outcome{method: method, status: status})
	}
	if p.opts.AccessLog {
		ev := p.log.Info().Str("method", method).Str("host", host).Str("path", path).
			Int("status", status).Dur("duration", d)
		if sc.IsValid() {
			ev = traceIDs(ev, sc)
		}
		ev.Msg("access")
	}
}

// traceIDs adds a span context's ids to an access line (hex, as W3C
// traceparent writes them).
func traceIDs(ev *zerolog.Event, sc trace.SpanContext) *zerolog.Event {
	tid, sid := sc.TraceID(), sc.SpanID()
	return ev.Hex("trace_id", tid[:]).Hex("span_id", sid[:])
}

// logged reports whether a proxied request gets its access line: always
// when it failed, else as the success sample says. The draw is the trace
// id's, as the tracer's ratio sampler draws it (so with equal ratios the
// logged successes are the traced ones), or a random one untraced.
func (p *Proxy) logged(o *outcome, sc trace.SpanContext) bool {
	if !p.logSample || o.status >= 400 || o.status == 0 || o.err != nil || (o.grpc && o.grpcStatus != 0) {
		return true
	}
	var draw uint64
	if sc.IsValid() {
		tid := sc.TraceID()
		draw = binary.BigEndian.Uint64(tid[8:16]) >> 1
	} else {
		draw = rand.Uint64() >> 1
	}
	return draw < p.logBound
}

// finish records metrics and the access-log line of a proxied request.
func (p *Proxy) finish(r *http.Request, rs *reqState, start time.Time) {
	status := rs.rw.status
	if status == 0 && rs.rw.hijacked {
		status = http.StatusSwitchingProtocols
	}
	p.account(&outcome{
		method: r.Method, host: r.Host, path: r.URL.Path, client: r.RemoteAddr,
		route: rs.route, up: rs.up, role: rs.role, ep: rs.ep,
		status: status, attempts: rs.attempts, bytes: rs.rw.bytes, d: time.Since(start), err: rs.err,
		grpc: rs.grpc.on, grpcStatus: rs.grpc.status, spans: rs.spans,
	})
}

// outcome is what either server (the engine or net/http) knows of a
// proxied request when it ends.
type outcome struct {
	method, host, path, client string
	route                      *Route
	up                         *upstream.Upstream
	role                       *RoleStats
	ep                         *upstream.Endpoint // nil when no target was picked
	status, attempts           int
	bytes                      int64
	d                          time.Duration
	err                        error
	grpc                       bool
	grpcStatus                 int
	spans                      *spans // the request's tracing state (nil for none)
}

// account ends a proxied request: the rollout counters, the metrics, the
// target's hold (after the metrics, so a target removed meanwhile keeps its
// series until here) and the access-log line.
func (p *Proxy) account(o *outcome) {
	svc := o.route.Service
	upName := o.up.Name()
	failed := o.status >= 500 || o.status == 0
	if o.grpc {
		failed = failed || grpcServerError(o.grpcStatus)
	}
	if o.role != nil && o.status != 499 && !(o.grpc && o.grpcStatus == grpcCanceled) {
		o.role.Record(o.d, failed)
	}
	if mt := p.opts.Metrics; mt != nil {
		mt.InFlight.Dec()
		mt.record(o.route.Name, svc.Name, upName, o.ep, o.status, o.d)
		if o.grpc {
			mt.GRPC.WithLabelValues(o.route.Name, svc.Name, upName, grpcStatusLabel(o.grpcStatus)).Inc()
		}
	}
	var sc trace.SpanContext
	if sp := o.spans; sp != nil && sp.tr != nil {
		sc = sp.server.SpanContext()
		sp.endServer(o)
	}
	target := ""
	if o.ep != nil {
		target = o.ep.Addr
		o.ep.Member.Done()
	}
	if !p.opts.AccessLog || !p.logged(o, sc) {
		return
	}
	ev := p.log.Info().Str("method", o.method).Str("host", o.host).Str("path", o.path).
		Str("route", o.route.Name).Str("service", svc.Name).Str("upstream", upName).
		Str("target", target).Int("status", o.status).Int64("bytes", o.bytes).
		Dur("duration", o.d).Int("attempts", o.attempts).Str("client", o.client)
	if o.err != nil {
		ev = ev.Str("error", o.err.Error())
	}
	if o.grpc {
		ev = ev.Int("grpc_status", o.grpcStatus)
	}
	if sc.IsValid() {
		ev = traceIDs(ev, sc)
	}
	ev.Msg("access")
}

// writeError answers with Kong's JSON error shape.
func writeError(w http.ResponseWriter, status int, msg string) {
	body := `{"message":"` + msg + `"}` + "\n"
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// respWriter records status and bytes; Unwrap lets http.ResponseController
// reach the real writer's Flush and Hijack.
type respWriter struct {
	http.ResponseWriter
	status   int
	bytes    int64
	hijacked bool
	grpc     bool // the request is gRPC (errors are gRPC's)
	// plug, when the route has plugins, holds their response edits.
	plug *plugins.Exchange
}

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		if w.plug != nil {
			applyDown(w.Header(), w.plug)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		if w.plug != nil {
			applyDown(w.Header(), w.plug)
		}
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *respWriter) Unwrap() http.ResponseWriter {
	// Only the upgrade path asks for the raw writer without writing first.
	if w.status == 0 {
		w.hijacked = true
	}
	return w.ResponseWriter
}

// countingBody counts request-body bytes handed to the transport. Close is
// a no-op: the transport closes bodies on failed attempts, and a retry must
// still be able to read it; the server closes the real body.
type countingBody struct {
	rc io.ReadCloser
	n  atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return nil }

// respBody ends the target's in-flight count when the response is done
// (once); rc is nil until the transport answered.
type respBody struct {
	rc     io.ReadCloser
	stats  *balance.Stats
	closed bool
	// st, when set, is the attempt's stream timer, stopped on Close.
	st *streamTimer
	// cap, when set, is the attempt's retry-policy cap, released on Close.
	cap *tryCap
	// grpc, for a streamed gRPC response, is settled when the body ends
	// (reqState.grpcEnd); in is the client request's context.
	grpc *reqState
	in   context.Context
}

func (b *respBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && b.grpc != nil {
		b.grpc.grpcEnd(b.in, err)
	}
	return n, err
}

func (b *respBody) Close() error {
	if !b.closed {
		b.closed = true
		b.stats.InFlight.Add(-1)
		if rs := b.grpc; rs != nil {
			rs.grpcEnd(b.in, errBodyClosed)
		}
		if b.st != nil {
			b.st.stop()
		}
		b.cap.release()
	}
	if b.rc == nil {
		return nil
	}
	return b.rc.Close()
}

// zerologWriter adapts the standard logger ReverseProxy uses for copy
// errors to zerolog at debug level.
type zerologWriter struct{ l zerolog.Logger }

func (z zerologWriter) Write(b []byte) (int, error) {
	z.l.Debug().Msg(strings.TrimSpace(string(b)))
	return len(b), nil
}
