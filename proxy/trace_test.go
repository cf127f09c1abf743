package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/tracing"
	"github.com/outrigger-gw/outrigger/upstream"
)

// tracedProxy returns a proxy with route "r" ("/") to the backends
// through a round-robin upstream, traced into a span recorder with the
// given ratio and propagators, and serving it with the engine and with
// net/http.
func tracedProxy(t *testing.T, o Options, ratio float64, props []string, retries int, backends ...string) (rec *tracetest.SpanRecorder, engineURL, netURL string) {
	t.Helper()
	rec, engineURL, netURL, _ = tracedProxyUp(t, o, ratio, props, retries, backends...)
	return rec, engineURL, netURL
}

// tracedProxyUp is tracedProxy that also returns the upstream.
func tracedProxyUp(t *testing.T, o Options, ratio float64, props []string, retries int, backends ...string) (rec *tracetest.SpanRecorder, engineURL, netURL string, u *upstream.Upstream) {
	t.Helper()
	rec = tracetest.NewSpanRecorder()
	tr, err := tracing.New(tracing.Config{SampleRatio: ratio, Propagators: props}, tracing.Options{Processor: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(t.Context()) })
	u = upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	var ts []upstream.Target
	for _, b := range backends {
		ts = append(ts, upstream.Target{Addr: b, Weight: 1})
	}
	u.SetTargets(upstream.StaticSource, ts)
	svc := &Service{Name: "s", Scheme: "http", Retries: retries, Upstream: u,
		Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute})}
	rt, err := router.New([]router.Route{{Name: "r", Paths: []string{"/"}, Value: &Route{Name: "r", Service: svc}}})
	if err != nil {
		t.Fatal(err)
	}
	o.Tracer = tr
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	p := New(o)
	p.SetTable(&Table{Router: rt})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return rec, serveEngine(t, p, ServerOptions{}), srv.URL, u
}

// headerOrigin answers 200 and sends the propagation fields of each
// request it got on seen.
func headerOrigin(t *testing.T) (addr string, seen chan http.Header) {
	seen = make(chan http.Header, 16)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(be.Close)
	return strings.TrimPrefix(be.URL, "http://"), seen
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func spanAttr(s sdktrace.ReadOnlySpan, k string) (attribute.Value, bool) {
	for _, a := range s.Attributes() {
		if string(a.Key) == k {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

func spansOf(rec *tracetest.SpanRecorder, tid trace.TraceID) (server sdktrace.ReadOnlySpan, clients []sdktrace.ReadOnlySpan) {
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != tid {
			continue
		}
		switch s.SpanKind() {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			clients = append(clients, s)
		}
	}
	return server, clients
}

// waitSpans polls until the trace has its server span (ended when the
// request was counted, just after the response was written).
func waitSpans(t *testing.T, rec *tracetest.SpanRecorder, tid trace.TraceID) (sdktrace.ReadOnlySpan, []sdktrace.ReadOnlySpan) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, c := spansOf(rec, tid)
		if s != nil {
			return s, c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server span of trace %s", tid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTracingRetriedRequest: a request with a W3C traceparent that is
// retried once (its first target refuses the connection) gives a server
// span whose parent is the caller's span, and two client spans, children
// of it, one per attempt with its target and attempt number; the origin
// gets a traceparent of the same trace whose parent is the second
// attempt's span. Both request paths.
func TestTracingRetriedRequest(t *testing.T) {
	origin, seen := headerOrigin(t)
	dead := deadAddr(t)
	rec, engineURL, netURL := tracedProxy(t, Options{Log: zerolog.Nop()}, 1, nil, 1, dead, origin)
	for _, tc := range []struct{ name, url string }{{"engine", engineURL}, {"net/http", netURL}} {
		t.Run(tc.name, func(t *testing.T) {
			// Round robin: within two requests one goes to the dead target first.
			for i := range 2 {
				tid := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, byte(len(tc.name)), byte(i)}
				parent := trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
				req, _ := http.NewRequest("GET", tc.url+"/x", nil)
				req.Header.Set("Traceparent", "00-"+tid.String()+"-"+parent.String()+"-01")
				req.Header.Set("Tracestate", "vendor=abc")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				h := <-seen
				srv, clients := waitSpans(t, rec, tid)
				if srv.Parent().SpanID() != parent || !srv.Parent().IsRemote() {
					t.Fatalf("server span parent %v, want remote %s", srv.Parent(), parent)
				}
				if ts := srv.SpanContext().TraceState().Get("vendor"); ts != "abc" {
					t.Errorf("tracestate vendor = %q, want abc", ts)
				}
				for k, want := range map[string]any{"http.request.method": "GET", "url.path": "/x", "http.response.status_code": int64(200),
					"outrigger.route": "r", "outrigger.service": "s", "outrigger.upstream": "u", "outrigger.target": origin, "outrigger.canary.side": "primary"} {
					if v, ok := spanAttr(srv, k); !ok || v.AsInterface() != want {
						t.Errorf("server span %s = %v, want %v", k, v.AsInterface(), want)
					}
				}
				if srv.Name() != "GET r" {
					t.Errorf("server span name %q", srv.Name())
				}
				attempts, _ := spanAttr(srv, "outrigger.attempts")
				if int(attempts.AsInt64()) != len(clients) {
					t.Fatalf("attempts %d, client spans %d", attempts.AsInt64(), len(clients))
				}
				last := clients[len(clients)-1]
				for _, c := range clients {
					if c.Parent().SpanID() != srv.SpanContext().SpanID() {
						t.Errorf("client span parent %s, want the server span %s", c.Parent().SpanID(), srv.SpanContext().SpanID())
					}
					if n, _ := spanAttr(c, "outrigger.attempt"); n.AsInt64() == int64(len(clients)) {
						last = c
					}
				}
				wantTP := "00-" + tid.String() + "-" + last.SpanContext().SpanID().String() + "-01"
				if got := h.Get("Traceparent"); got != wantTP {
					t.Errorf("origin got traceparent %q, want %q", got, wantTP)
				}
				if got := h.Get("Tracestate"); got != "vendor=abc" {
					t.Errorf("origin got tracestate %q", got)
				}
				if len(clients) == 1 {
					continue
				}
				if len(clients) != 2 {
					t.Fatalf("%d client spans", len(clients))
				}
				for _, c := range clients {
					n, _ := spanAttr(c, "outrigger.attempt")
					target, _ := spanAttr(c, "outrigger.target")
					switch n.AsInt64() {
					case 1:
						if target.AsString() != dead || c.Status().Code.String() != "Error" {
							t.Errorf("attempt 1: target %s status %v, want %s and an error", target.AsString(), c.Status(), dead)
						}
						if et, _ := spanAttr(c, "error.type"); et.AsString() != "connect_error" {
							t.Errorf("attempt 1 error.type %q", et.AsString())
						}
					case 2:
						st, _ := spanAttr(c, "http.response.status_code")
						rc, _ := spanAttr(c, "http.request.resend_count")
						if target.AsString() != origin || st.AsInt64() != 200 || rc.AsInt64() != 1 {
							t.Errorf("attempt 2: target %s status %d resend_count %d", target.AsString(), st.AsInt64(), rc.AsInt64())
						}
					default:
						t.Errorf("attempt %d", n.AsInt64())
					}
				}
				return // the retried request was seen
			}
			t.Fatal("no request was retried")
		})
	}
}

// TestTracingB3: with [tracecontext, b3multi] a request carrying only B3
// single-header context continues its trace, and the origin gets the
// context in W3C and in B3 multi-header form, never the client's own b3
// field.
func TestTracingB3(t *testing.T) {
	origin, seen := headerOrigin(t)
	rec, engineURL, netURL := tracedProxy(t, Options{Log: zerolog.Nop()}, 1, []string{"tracecontext", "b3multi"}, 0, origin)
	for i, url := range []string{engineURL, netURL} {
		tid := trace.TraceID{0x80, 0xf1, 0x98, 0xee, 0x56, 0x34, 0x3b, 0xa8, 0x64, 0xfe, 0x8b, 0x2a, 0x57, 0xd3, 0xef, byte(i)}
		req, _ := http.NewRequest("GET", url+"/b3", nil)
		req.Header.Set("B3", tid.String()+"-e457b5a2e4d86bd1-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := <-seen
		srv, clients := waitSpans(t, rec, tid)
		if srv.Parent().SpanID().String() != "e457b5a2e4d86bd1" || len(clients) != 1 {
			t.Fatalf("server parent %s, %d client spans", srv.Parent().SpanID(), len(clients))
		}
		sid := clients[0].SpanContext().SpanID().String()
		if got := h.Get("X-B3-Traceid"); got != tid.String() {
			t.Errorf("X-B3-TraceId %q", got)
		}
		if got := h.Get("X-B3-Spanid"); got != sid {
			t.Errorf("X-B3-SpanId %q, want %s", got, sid)
		}
		if got := h.Get("Traceparent"); !strings.Contains(got, tid.String()+"-"+sid) {
			t.Errorf("traceparent %q", got)
		}
		if got := h.Values("B3"); len(got) != 0 {
			t.Errorf("the client's b3 field went upstream: %q", got)
		}
	}
}

// TestTracingSampling: with ratio 0 a request without a parent is not
// recorded but still propagates its (unsampled) context; a sampled parent
// is followed anyway.
func TestTracingSampling(t *testing.T) {
	origin, seen := headerOrigin(t)
	rec, engineURL, _ := tracedProxy(t, Options{Log: zerolog.Nop()}, 0, nil, 0, origin)
	resp, err := http.Get(engineURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-seen
	if tp := h.Get("Traceparent"); !strings.HasSuffix(tp, "-00") || len(tp) != 55 {
		t.Errorf("unsampled traceparent %q", tp)
	}
	tid := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	req, _ := http.NewRequest("GET", engineURL+"/", nil)
	req.Header.Set("Traceparent", "00-"+tid.String()+"-0102030405060708-01")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-seen
	waitSpans(t, rec, tid)
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != tid {
			t.Errorf("an unsampled span was recorded: %v", s.SpanContext())
		}
	}
}

// TestAccessLogTraceIDs: the access line of a traced request names the
// trace and the proxy's server span; with a success ratio of 0, successes
// are not logged and failures (404, 502) always are.
func TestAccessLogTraceIDs(t *testing.T) {
	origin, seen := headerOrigin(t)
	var buf syncBuffer
	rec, engineURL, netURL := tracedProxy(t, Options{Log: zerolog.New(&buf), AccessLog: true}, 1, nil, 0, origin)
	for i, url := range []string{engineURL, netURL} {
		tid := trace.TraceID{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, byte(i)}
		req, _ := http.NewRequest("GET", url+"/logged", nil)
		req.Header.Set("Traceparent", "00-"+tid.String()+"-0102030405060708-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		<-seen
		srv, _ := waitSpans(t, rec, tid)
		var line map[string]any
		waitUntil(t, func() bool { // written just after the span ends
			for _, l := range buf.lines(t, "access") {
				if l["trace_id"] == tid.String() {
					line = l
				}
			}
			return line != nil
		})
		if line["span_id"] != srv.SpanContext().SpanID().String() || line["path"] != "/logged" {
			t.Fatalf("access line %v, want trace %s span %s", line, tid, srv.SpanContext().SpanID())
		}
	}

	// Success sampling: 0 logs failures only.
	var buf2 syncBuffer
	dead := deadAddr(t)
	_, engineURL, netURL = tracedProxy(t, Options{Log: zerolog.New(&buf2), AccessLog: true, AccessLogSuccessDrop: 1}, 1, nil, 0, origin)
	_, deadEngine, deadNet := tracedProxy(t, Options{Log: zerolog.New(&buf2), AccessLog: true, AccessLogSuccessDrop: 1}, 1, nil, 0, dead)
	for _, u := range []string{engineURL, netURL} {
		for range 3 {
			resp, err := http.Get(u + "/ok")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			<-seen
		}
	}
	for _, u := range []string{deadEngine, deadNet} {
		resp, err := http.Get(u + "/bad")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines := buf2.lines(t, "access")
		bad := 0
		for _, l := range lines {
			if l["path"] == "/ok" {
				t.Fatalf("a success was logged with ratio 0: %v", l)
			}
			if l["path"] == "/bad" && l["status"] == float64(502) {
				bad++
			}
		}
		if bad == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failures logged: %d of 2 (%v)", bad, lines)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAccessLogSuccessRatio: a ratio between 0 and 1 logs about that
// share of successes; the draw follows the trace id (a trace id whose
// draw is under the bound is logged, one over it is not).
func TestAccessLogSuccessRatio(t *testing.T) {
	p := New(Options{Log: zerolog.Nop(), AccessLog: true, AccessLogSuccessDrop: 0.5})
	ok := &outcome{status: 200}
	low := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 0, 0, 0, 0, 0, 0, 0, 0x10}, SpanID: trace.SpanID{1}})
	high := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 0, 0, 0, 0, 0, 0, 0, 0xf0}, SpanID: trace.SpanID{1}})
	if !p.logged(ok, low) || p.logged(ok, high) {
		t.Errorf("logged(low) %v logged(high) %v, want true false", p.logged(ok, low), p.logged(ok, high))
	}
	if !p.logged(&outcome{status: 503}, high) || !p.logged(&outcome{status: 200, grpc: true, grpcStatus: 14}, high) {
		t.Error("a failure was not logged")
	}
	n := 0
	for range 4000 {
		if p.logged(ok, trace.SpanContext{}) {
			n++
		}
	}
	if n < 1600 || n > 2400 { // 4000 draws at 0.5: σ ≈ 32
		t.Errorf("%d of 4000 successes logged at ratio 0.5", n)
	}
	if all := New(Options{Log: zerolog.Nop()}); !all.logged(ok, high) {
		t.Error("the default ratio does not log every request")
	}
}

// TestTracingUnrouted: a request answered before it had a route (404)
// gets a server span too, with its status and the caller's parent, and
// its access line names it; on both request paths.
func TestTracingUnrouted(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr, err := tracing.New(tracing.Config{SampleRatio: 1}, tracing.Options{Processor: rec})
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	p := New(Options{Log: zerolog.New(&buf), AccessLog: true, Tracer: tr, AccessLogSuccessDrop: 1})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	for i, url := range []string{serveEngine(t, p, ServerOptions{}), srv.URL} {
		tid := trace.TraceID{0xde, 0xad, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, byte(i)}
		req, _ := http.NewRequest("GET", url+"/nowhere", nil)
		req.Header.Set("Traceparent", "00-"+tid.String()+"-0102030405060708-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		s, clients := waitSpans(t, rec, tid)
		if st, _ := spanAttr(s, "http.response.status_code"); st.AsInt64() != 404 || len(clients) != 0 || s.Parent().SpanID().String() != "0102030405060708" {
			t.Errorf("404 span: status %d, %d client spans, parent %s", st.AsInt64(), len(clients), s.Parent().SpanID())
		}
		// The line is written just after the span ends.
		waitUntil(t, func() bool {
			for _, l := range buf.lines(t, "access") {
				if l["trace_id"] == tid.String() && l["span_id"] == s.SpanContext().SpanID().String() && l["status"] == float64(404) {
					return true
				}
			}
			return false
		})
	}
}

// TestTracingStatusRetry: an attempt answered with a status retry_on
// names ends its span with that status (an error), and the retry's span
// has the answer relayed.
func TestTracingStatusRetry(t *testing.T) {
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(busy.Close)
	origin, seen := headerOrigin(t)
	rec, engineURL, netURL, u := tracedProxyUp(t, Options{Log: zerolog.Nop()}, 1, nil, 1, strings.TrimPrefix(busy.URL, "http://"), origin)
	on, err := upstream.ParseRetryOn([]string{"503"})
	if err != nil {
		t.Fatal(err)
	}
	u.SetRetryPolicy(&upstream.RetryPolicy{On: on})
	for j, url := range []string{engineURL, netURL} {
		retried := false
		for i := range 2 {
			tid := trace.TraceID{0x50, 3, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, byte(j), byte(i)}
			req, _ := http.NewRequest("GET", url+"/s", nil)
			req.Header.Set("Traceparent", "00-"+tid.String()+"-0102030405060708-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			<-seen
			_, clients := waitSpans(t, rec, tid)
			if len(clients) == 1 {
				continue
			}
			retried = true
			for _, c := range clients {
				n, _ := spanAttr(c, "outrigger.attempt")
				st, _ := spanAttr(c, "http.response.status_code")
				if want := map[int64]int64{1: 503, 2: 200}[n.AsInt64()]; st.AsInt64() != want || (want == 503) != (c.Status().Code.String() == "Error") {
					t.Errorf("attempt %d: status %d (%v), want %d", n.AsInt64(), st.AsInt64(), c.Status(), want)
				}
			}
		}
		if !retried {
			t.Fatalf("%s: no request was retried", url)
		}
	}
}

// TestTracingPluginAnswer: a request a plugin answers (key-auth's 401)
// gets its server span with the status and no client span, and its
// access line names the trace; both request paths.
func TestTracingPluginAnswer(t *testing.T) {
	origin, _ := headerOrigin(t)
	rec := tracetest.NewSpanRecorder()
	tr, err := tracing.New(tracing.Config{SampleRatio: 1}, tracing.Options{Processor: rec})
	if err != nil {
		t.Fatal(err)
	}
	u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: origin, Weight: 1}})
	svc := &Service{Name: "s", Scheme: "http", Upstream: u,
		Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute})}
	rt, err := router.New([]router.Route{{Name: "r", Paths: []string{"/"},
		Value: &Route{Name: "r", Service: svc, Plugins: testChain(t, testPlugin(t, "key-auth", nil))}}})
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	p := New(Options{Log: zerolog.New(&buf), AccessLog: true, Tracer: tr})
	p.SetTable(&Table{Router: rt})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	for i, url := range []string{serveEngine(t, p, ServerOptions{}), srv.URL} {
		tid := trace.TraceID{0x91, 0x7, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, byte(i)}
		req, _ := http.NewRequest("GET", url+"/keyed", nil)
		req.Header.Set("Traceparent", "00-"+tid.String()+"-0102030405060708-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		s, clients := waitSpans(t, rec, tid)
		if st, _ := spanAttr(s, "http.response.status_code"); st.AsInt64() != 401 || len(clients) != 0 {
			t.Errorf("plugin answer span: status %d, %d client spans", st.AsInt64(), len(clients))
		}
		waitUntil(t, func() bool {
			for _, l := range buf.lines(t, "access") {
				if l["trace_id"] == tid.String() && l["status"] == float64(401) {
					return true
				}
			}
			return false
		})
	}
}
