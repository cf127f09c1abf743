package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/outrigger-gw/outrigger/upstream"
)

// counterValue reads one counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// capacity reads outrigger_upstream_capacity_remaining for one upstream
// and limit from reg; ok is false when the series is absent.
func capacity(t *testing.T, reg *prometheus.Registry, up, limit string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "outrigger_upstream_capacity_remaining" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["upstream"] == up && l["limit"] == limit {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// With max_requests N, N slow requests in progress make the next one a
// 503 with the overloaded header at once, without reaching the origin;
// once they finish requests pass again.
func TestEngineMaxRequestsBreaker(t *testing.T) {
	reg := prometheus.NewRegistry()
	mt := NewMetrics(reg)
	f := newEngineFixture(t, ServerOptions{}, Options{Metrics: mt})
	f.svc.Upstream.Breakers().SetLimits(upstream.Limits{MaxRequests: 2})
	mt.TrackUpstream(f.svc.Upstream)
	if v, ok := capacity(t, reg, "u", "max_requests"); !ok || v != 2 {
		t.Fatalf("capacity before: %v %v, want 2", v, ok)
	}

	const get = "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"
	var clients [2]*clientConn
	var origins [2]*originConn
	for i := range clients {
		clients[i] = f.dial(t)
		clients[i].send(t, get)
		origins[i] = f.origin.accept(t)
		readHead(t, origins[i].br)
	}
	if v, _ := capacity(t, reg, "u", "max_requests"); v != 0 {
		t.Fatalf("capacity with 2 in progress: %v, want 0", v)
	}

	third := f.dial(t)
	third.send(t, get)
	resp, body := third.response(t, "GET")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(OverloadedHeader) != "true" {
		t.Fatalf("third request: %d %q %s, want 503 with %s: true", resp.StatusCode, resp.Header.Get(OverloadedHeader), body, OverloadedHeader)
	}
	select {
	case c := <-f.origin.conns:
		c.Close()
		t.Fatal("the overloaded request reached the origin")
	default:
	}
	if n := counterValue(t, mt.Overloaded.WithLabelValues("u", "max_requests")); n != 1 {
		t.Fatalf("overloaded_total{max_requests} = %v, want 1", n)
	}

	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
	for i := range origins {
		if _, err := io.WriteString(origins[i], ok); err != nil {
			t.Fatal(err)
		}
		if resp, body := clients[i].response(t, "GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("slow request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	// The count drops when the engine has written the response: poll.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, _ := capacity(t, reg, "u", "max_requests"); v == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("capacity did not come back to 2")
		}
		time.Sleep(time.Millisecond)
	}
	third.send(t, get)
	oc := f.origin.accept(t)
	readHead(t, oc.br)
	if _, err := io.WriteString(oc, ok); err != nil {
		t.Fatal(err)
	}
	if resp, body := third.response(t, "GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("after the slow ones: %d %q", resp.StatusCode, body)
	}
}

// refusedAddr is a loopback address nothing listens on.
// hangUpAddr is a loopback listener that closes every connection it
// accepts before answering.
func hangUpAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// A request that would retry while max_retries retries are in progress
// gets the overloaded 503; with a slot free it retries as configured.
func TestEngineMaxRetriesBreaker(t *testing.T) {
	reg := prometheus.NewRegistry()
	mt := NewMetrics(reg)
	f := newEngineFixture(t, ServerOptions{}, Options{Metrics: mt})
	u := f.svc.Upstream
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: refusedAddr(t), Weight: 1}})
	f.svc.Retries = 2
	u.Breakers().SetLimits(upstream.Limits{MaxRetries: 1})
	mt.TrackUpstream(u)
	// Take the only retry slot, as a request in its retry stage would.
	if !u.Breakers().AcquireRetry() {
		t.Fatal("the first retry slot was refused")
	}
	c := f.dial(t)
	c.send(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, _ := c.response(t, "GET")
	if resp.StatusCode != 503 || resp.Header.Get(OverloadedHeader) != "true" {
		t.Fatalf("got %d %q, want the overloaded 503", resp.StatusCode, resp.Header.Get(OverloadedHeader))
	}
	if n := counterValue(t, mt.Overloaded.WithLabelValues("u", "max_retries")); n != 1 {
		t.Fatalf("overloaded_total{max_retries} = %v", n)
	}
	if v, ok := capacity(t, reg, "u", "max_retries"); !ok || v != 0 {
		t.Fatalf("max_retries capacity %v %v, want 0", v, ok)
	}
	u.Breakers().ReleaseRetry()
	c.send(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, _ = c.response(t, "GET")
	if resp.StatusCode != 502 || resp.Header.Get(OverloadedHeader) != "" {
		t.Fatalf("with the slot free: %d %q, want a plain 502 after the retries", resp.StatusCode, resp.Header.Get(OverloadedHeader))
	}
	if n := counterValue(t, mt.Retries.WithLabelValues("s", "u")); n != 2 {
		t.Fatalf("retries_total = %v, want 2", n)
	}
}

// A failure storm (every attempt refused, retries: 5) retries no more than
// the budget allows, while a lone failure under the default budget is
// still retried.
func TestEngineRetryBudget(t *testing.T) {
	reg := prometheus.NewRegistry()
	mt := NewMetrics(reg)
	f := newEngineFixture(t, ServerOptions{}, Options{Metrics: mt})
	u := f.svc.Upstream
	// Targets that accept and hang up: each attempt reached an upstream,
	// so its retries are budgeted (a failed connect's are not).
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: hangUpAddr(t), Weight: 1}, {Addr: hangUpAddr(t), Weight: 1}})
	f.svc.Retries = 5
	const ratio, minPerSecond = 0.2, 1.0
	u.Breakers().SetBudget(upstream.Budget{Ratio: ratio, MinPerSecond: minPerSecond, TTL: time.Second})

	c := f.dial(t)
	const n = 100
	start := time.Now()
	for i := 0; i < n; i++ {
		c.send(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := c.response(t, "GET"); resp.StatusCode != 502 {
			t.Fatalf("request %d: %d, want 502", i, resp.StatusCode)
		}
	}
	elapsed := time.Since(start)
	retries := counterValue(t, mt.Retries.WithLabelValues("s", "u"))
	// Each second's window admits ratio of its requests plus minPerSecond.
	limit := ratio*n + minPerSecond*(elapsed.Seconds()+2)
	t.Logf("%d requests, %v retries in %v (limit %.1f; without a budget %d)", n, retries, elapsed, limit, n*f.svc.Retries)
	if retries > limit {
		t.Fatalf("%v retries for %d requests, budget allows %.1f", retries, n, limit)
	}
	if retries < 1 {
		t.Fatal("the budget allowed no retry at all")
	}
	if counterValue(t, mt.Overloaded.WithLabelValues("u", "retry_budget")) < 1 {
		t.Fatal("no refused retry counted")
	}

	// A lone failure under the default budget: a refused target and a
	// good one; the request lands on the good one after a retry.
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(good.Close)
	u.Breakers().SetBudget(upstream.Budget{Ratio: 0.2, MinPerSecond: 10, TTL: 10 * time.Second})
	bad := refusedAddr(t)
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: bad, Weight: 1}, {Addr: good.Listener.Addr().String(), Weight: 1}})
	before := counterValue(t, mt.Retries.WithLabelValues("s", "u"))
	for i := 0; i < 2; i++ { // round robin: one of two lands on the refused target first
		c.send(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, body := c.response(t, "GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q, want the retry's 200", i, resp.StatusCode, body)
		}
	}
	if got := counterValue(t, mt.Retries.WithLabelValues("s", "u")) - before; got != 1 {
		t.Fatalf("%v retries, want 1", got)
	}
}

// The net/http path (HTTP/2 and gRPC clients take it) enforces
// max_requests the same way.
func TestHandlerMaxRequestsBreaker(t *testing.T) {
	arrived, release := make(chan struct{}, 4), make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "ok")
	}))
	t.Cleanup(origin.Close)
	p, _ := newTestProxy(t, 0, origin.Listener.Addr().String())
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	tbl := p.table.Load()
	m, ok := tbl.Router.Match("GET", "a", "/", http.Header{})
	if !ok {
		t.Fatal("no route")
	}
	brk := m.Route.Value.(*Route).Service.Upstream.Breakers()
	brk.SetLimits(upstream.Limits{MaxRequests: 1})

	get := func() (*http.Response, string) {
		resp, err := http.Get(srv.URL + "/x")
		if err != nil {
			t.Error(err)
			return nil, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	first := make(chan int, 1)
	go func() {
		resp, _ := get()
		if resp == nil {
			first <- 0
			return
		}
		first <- resp.StatusCode
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request did not reach the origin")
	}
	resp, body := get()
	if resp == nil || resp.StatusCode != 503 || resp.Header.Get(OverloadedHeader) != "true" {
		t.Fatalf("second request: %v %q, want the overloaded 503", resp, body)
	}
	close(release)
	if code := <-first; code != 200 {
		t.Fatalf("first request: %d", code)
	}
	// The handler ends its count after the response is written: poll.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if n, _ := brk.InProgress(); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first request is still counted")
		}
	}
	if resp, body := get(); resp == nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("after the first: %v %q", resp, body)
	}
}

// max_connections bounds the open upstream connections of the engine's
// pools: with one open (busy) the next request that needs a new one gets
// the overloaded 503; closed, the count goes back and requests pass.
func TestEngineMaxConnectionsBreaker(t *testing.T) {
	reg := prometheus.NewRegistry()
	mt := NewMetrics(reg)
	f := newEngineFixture(t, ServerOptions{}, Options{Metrics: mt})
	brk := f.svc.Upstream.Breakers()
	brk.SetLimits(upstream.Limits{MaxConnections: 1})
	mt.TrackUpstream(f.svc.Upstream)
	const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	first := f.dial(t)
	first.send(t, get)
	oc := f.origin.accept(t)
	readHead(t, oc.br)
	if v, ok := capacity(t, reg, "u", "max_connections"); !ok || v != 0 {
		t.Fatalf("max_connections capacity %v %v, want 0", v, ok)
	}
	second := f.dial(t)
	second.send(t, get)
	resp, _ := second.response(t, "GET")
	if resp.StatusCode != 503 || resp.Header.Get(OverloadedHeader) != "true" {
		t.Fatalf("second: %d %q, want the overloaded 503", resp.StatusCode, resp.Header.Get(OverloadedHeader))
	}
	if n := counterValue(t, mt.Overloaded.WithLabelValues("u", "max_connections")); n != 1 {
		t.Fatalf("overloaded_total{max_connections} = %v", n)
	}
	if _, err := io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"); err != nil {
		t.Fatal(err)
	}
	if resp, body := first.response(t, "GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	for deadline := time.Now().Add(5 * time.Second); brk.Connections() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still counted", brk.Connections())
		}
	}
	second.send(t, get)
	oc = f.origin.accept(t)
	readHead(t, oc.br)
	if _, err := io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
		t.Fatal(err)
	}
	if resp, body := second.response(t, "GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("after the close: %d %q", resp.StatusCode, body)
	}
}
