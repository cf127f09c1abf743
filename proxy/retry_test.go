package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-gw/outrigger/upstream"
)

// origin is a test target counting its requests.
type origin struct {
	*httptest.Server
	hits atomic.Int64
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) addr() string { return o.Listener.Addr().String() }

// bothPaths runs f against the engine and against the net/http handler
// serving the same proxy.
func bothPaths(t *testing.T, retries int, targets []string, f func(t *testing.T, p *Proxy, url string)) {
	for _, path := range []string{"engine", "net/http"} {
		t.Run(path, func(t *testing.T) {
			p, url := newTestProxy(t, retries, targets...)
			if path == "net/http" {
				srv := httptest.NewServer(p)
				t.Cleanup(srv.Close)
				url = srv.URL
			}
			f(t, p, url)
		})
	}
}

func upstreamOf(t *testing.T, p *Proxy) *upstream.Upstream {
	t.Helper()
	m, ok := p.table.Load().Router.Match("GET", "a", "/", http.Header{})
	if !ok {
		t.Fatal("no route")
	}
	return m.Route.Value.(*Route).Service.Upstream
}

func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustRetryOn(t *testing.T, names ...string) upstream.RetryOn {
	t.Helper()
	on, err := upstream.ParseRetryOn(names)
	if err != nil {
		t.Fatal(err)
	}
	return on
}

// retry_on 503: a GET that meets a 503 goes to the other target; a POST
// never does (the 503 is relayed). The default policy retries no status.
func TestRetryOnStatus(t *testing.T) {
	bad := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	good := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	bothPaths(t, 2, []string{bad.addr(), good.addr()}, func(t *testing.T, p *Proxy, url string) {
		bad.hits.Store(0)
		u := upstreamOf(t, p)
		statuses := func(method string) (ok, unavailable int) {
			for range 4 { // round robin: half land on the 503 target first
				switch st, _ := do(t, method, url+"/x"); st {
				case 200:
					ok++
				case 503:
					unavailable++
				default:
					t.Fatalf("%s: %d", method, st)
				}
			}
			return ok, unavailable
		}
		if ok, un := statuses("GET"); ok != 2 || un != 2 {
			t.Fatalf("default policy: GET %d ok / %d 503, want the 503s relayed (2/2)", ok, un)
		}
		u.SetRetryPolicy(&upstream.RetryPolicy{On: mustRetryOn(t, "503")})
		if ok, un := statuses("GET"); ok != 4 || un != 0 {
			t.Fatalf("retry_on 503: GET %d ok / %d 503, want 4/0", ok, un)
		}
		if ok, un := statuses("POST"); ok != 2 || un != 2 {
			t.Fatalf("retry_on 503: POST %d ok / %d 503, want 2/2 (never retried)", ok, un)
		}
		if n := bad.hits.Load(); n != 6 {
			t.Fatalf("503 target hit %d times, want 6 (2+2 GETs, 2 POSTs)", n)
		}
	})
}

// per_try_timeout moves a slow attempt to the other target; the overall
// timeout bounds the whole (504 when every target is slow).
func TestPerTryTimeout(t *testing.T) {
	stop := make(chan struct{})
	slow := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	fast := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fast") })
	t.Cleanup(func() { close(stop) })
	bothPaths(t, 1, []string{slow.addr(), fast.addr()}, func(t *testing.T, p *Proxy, url string) {
		u := upstreamOf(t, p)
		u.SetRetryPolicy(&upstream.RetryPolicy{On: upstream.DefaultRetryOn(), PerTryTimeout: 100 * time.Millisecond})
		slow.hits.Store(0)
		for i := range 2 {
			if st, body := do(t, "GET", url+"/x"); st != 200 || body != "fast" {
				t.Fatalf("request %d: %d %q, want the fast target's answer", i, st, body)
			}
		}
		if n := slow.hits.Load(); n != 1 {
			t.Fatalf("slow target tried %d times, want 1", n)
		}
		u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: slow.addr(), Weight: 1}})
		u.SetRetryPolicy(&upstream.RetryPolicy{On: upstream.DefaultRetryOn(), PerTryTimeout: 100 * time.Millisecond, Timeout: 150 * time.Millisecond})
		if st, _ := do(t, "GET", url+"/x"); st != 504 {
			t.Fatalf("every target slow: %d, want 504", st)
		}
	})
}

// With max_connections 1 and max_pending_requests 1, one request holds
// the connection, one waits for it (and is served once it is free) and
// the third is answered the overloaded 503 at once.
func TestEngineMaxPendingRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	mt := NewMetrics(reg)
	f := newEngineFixture(t, ServerOptions{}, Options{Metrics: mt})
	brk := f.svc.Upstream.Breakers()
	brk.SetLimits(upstream.Limits{MaxConnections: 1, MaxPendingRequests: 1})
	mt.TrackUpstream(f.svc.Upstream)
	const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	first := f.dial(t)
	first.send(t, get)
	oc := f.origin.accept(t)
	readHead(t, oc.br)
	if v, ok := capacity(t, reg, "u", "max_pending_requests"); !ok || v != 1 {
		t.Fatalf("max_pending_requests capacity %v %v, want 1", v, ok)
	}
	second := f.dial(t)
	second.send(t, get)
	waitUntil(t, func() bool { return brk.Pending() == 1 })
	if v, _ := capacity(t, reg, "u", "max_pending_requests"); v != 0 {
		t.Fatalf("max_pending_requests capacity %v, want 0", v)
	}
	third := f.dial(t)
	third.send(t, get)
	resp, _ := third.response(t, "GET")
	if resp.StatusCode != 503 || resp.Header.Get(OverloadedHeader) != "true" {
		t.Fatalf("third: %d %q, want the overloaded 503", resp.StatusCode, resp.Header.Get(OverloadedHeader))
	}
	if n := counterValue(t, mt.Overloaded.WithLabelValues("u", "max_pending_requests")); n != 1 {
		t.Fatalf("overloaded_total{max_pending_requests} = %v", n)
	}
	// The first answer frees the (kept-alive) connection: the waiting
	// request takes it.
	if _, err := io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"); err != nil {
		t.Fatal(err)
	}
	if resp, body := first.response(t, "GET"); resp.StatusCode != 200 || body != "a" {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	readHead(t, oc.br)
	if _, err := io.WriteString(oc, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"); err != nil {
		t.Fatal(err)
	}
	if resp, body := second.response(t, "GET"); resp.StatusCode != 200 || body != "b" {
		t.Fatalf("second: %d %q", resp.StatusCode, body)
	}
	if brk.Pending() != 0 || brk.Connections() != 1 {
		t.Fatalf("pending %d, connections %d after; want 0 and 1", brk.Pending(), brk.Connections())
	}
}

// The backoff's jitter comes from Options.Rand: a proxy whose source
// always answers the maximum waits the full ceiling, and admitRetry
// denies a retry whose wait would pass the overall deadline.
func TestAdmitRetryBackoffDeadline(t *testing.T) {
	p := New(Options{Rand: func() uint64 { return ^uint64(0) }})
	u := upstream.New(upstream.Options{Name: "u"})
	u.SetRetryPolicy(&upstream.RetryPolicy{On: upstream.DefaultRetryOn(), BackoffBase: time.Hour, BackoffMax: time.Hour})
	retrying := false
	now := time.Now()
	if g := p.admitRetry(t.Context(), u, "s", &retrying, 1, now, now.Add(time.Minute), true); g != retryDenied {
		t.Fatalf("a backoff past the deadline: %v, want denied", g)
	}
	u.SetRetryPolicy(&upstream.RetryPolicy{On: upstream.DefaultRetryOn(), BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
	if g := p.admitRetry(t.Context(), u, "s", &retrying, 1, now, time.Time{}, true); g != retryGranted {
		t.Fatalf("a short backoff: %v, want granted", g)
	}
	u.Breakers().ReleaseRetry()
}

func TestRetryOnFailureClasses(t *testing.T) {
	def := upstream.DefaultRetryOn()
	gw := mustRetryOn(t, "gateway-error")
	cf := mustRetryOn(t, "connect-failure")
	for _, tc := range []struct {
		on                        *upstream.RetryOn
		connect, refused, timeout bool
		want                      bool
	}{
		{&def, true, false, false, true}, {&def, false, true, false, true}, {&def, false, false, false, true}, {&def, false, false, true, true},
		{&gw, true, false, false, false}, {&gw, false, false, true, true}, {&gw, false, false, false, false},
		{&cf, true, false, false, true}, {&cf, false, false, false, false}, {&cf, false, false, true, false},
	} {
		if got := retryOnFailure(tc.on, tc.connect, tc.refused, tc.timeout); got != tc.want {
			t.Errorf("retryOnFailure(%+v, connect %v, refused %v, timeout %v) = %v", *tc.on, tc.connect, tc.refused, tc.timeout, got)
		}
	}
	if !strings.Contains(errTryTimeout.Error(), "timed out") || !isTimeout(errTryTimeout) {
		t.Fatal("errTryTimeout is not a timeout")
	}
}

// A waiting request whose connection does not come within its bound
// (here connect_timeout, 1 s) is answered the overloaded 503, counted on
// max_connections.
func TestEnginePendingWaitEnds(t *testing.T) {
	reg := prometheus.NewRegistry()
	mt := NewMetrics(reg)
	f := newEngineFixture(t, ServerOptions{}, Options{Metrics: mt})
	brk := f.svc.Upstream.Breakers()
	brk.SetLimits(upstream.Limits{MaxConnections: 1, MaxPendingRequests: 1})
	const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	first := f.dial(t)
	first.send(t, get)
	oc := f.origin.accept(t)
	readHead(t, oc.br)
	second := f.dial(t)
	second.send(t, get)
	resp, _ := second.response(t, "GET")
	if resp.StatusCode != 503 || resp.Header.Get(OverloadedHeader) != "true" {
		t.Fatalf("second: %d %q, want the overloaded 503", resp.StatusCode, resp.Header.Get(OverloadedHeader))
	}
	if n := counterValue(t, mt.Overloaded.WithLabelValues("u", "max_connections")); n != 1 {
		t.Fatalf("overloaded_total{max_connections} = %v, want 1", n)
	}
	if brk.Pending() != 0 {
		t.Fatalf("pending %d after the wait", brk.Pending())
	}
}

// An idle connection of the upstream to one target does not starve a
// request to another: the waiting request closes it and dials.
func TestEnginePendingEvictsIdle(t *testing.T) {
	a := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") })
	b := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") })
	p, url := newTestProxy(t, 0, a.addr(), b.addr())
	brk := upstreamOf(t, p).Breakers()
	brk.SetLimits(upstream.Limits{MaxConnections: 1, MaxPendingRequests: 1})
	c := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	seen := map[string]int{}
	for i := range 4 {
		resp, err := c.Get(url + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
		seen[string(body)]++
	}
	if seen["a"] != 2 || seen["b"] != 2 || brk.Connections() != 1 {
		t.Fatalf("answers %v, connections %d; want 2 each over one connection at a time", seen, brk.Connections())
	}
}
