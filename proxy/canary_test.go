package proxy

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/upstream"
)

// newCanaryProxy serves route "/" through a service whose primary and
// canary upstreams each have one real backend naming itself ("primary" or
// "canary") in X-Backend; the table gives the canary percent.
func newCanaryProxy(t *testing.T, c Canary, percent float64) (url string) {
	t.Helper()
	upstreamTo := func(name string) *upstream.Upstream {
		be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			io.WriteString(w, name)
		}))
		t.Cleanup(be.Close)
		u := upstream.New(upstream.Options{Name: name, Balancer: balance.NewRoundRobin()})
		u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: strings.TrimPrefix(be.URL, "http://"), Weight: 1}})
		return u
	}
	c.Upstream = upstreamTo("canary")
	svc := &Service{Name: "s", Scheme: "http", Upstream: upstreamTo("primary"), Canary: &c,
		Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute})}
	rt, err := router.New([]router.Route{{Name: "r", Paths: []string{"/"}, Value: &Route{Name: "r", Service: svc}}})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Log: zerolog.Nop(), Metrics: NewMetrics(prometheus.NewRegistry())})
	p.SetTable(&Table{Router: rt, Percents: []uint64{ScalePercent(percent)}})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Every sticky_by and force mode, with and without its input, through a
// real proxy: a request without the input is never an error. Sticky
// requests with the input all land on the side the hash of the input
// picks; requests without it follow the exact counter split (10 % of 10
// requests: exactly one to the canary); a matching force rule sends
// every request to the canary, a missing or different value does not.
func TestCanaryInputs(t *testing.T) {
	const n = 10
	onHash := func(key string) int {
		if balance.HashKey(key)%PercentScale < PercentScale/10 {
			return n
		}
		return 0
	}
	withHeader := func(k, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(k, v) } }
	withCookie := func(k, v string) func(*http.Request) {
		return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: k, Value: v}) }
	}
	withQuery := func(q string) func(*http.Request) { return func(r *http.Request) { r.URL.RawQuery = q } }
	for _, tc := range []struct {
		desc    string
		sticky  string
		force   []ForceRule
		percent float64
		req     func(*http.Request)
		canary  int // of n requests
	}{
		{desc: "no sticky_by", percent: 10, canary: 1},
		{desc: "sticky ip", sticky: "ip", percent: 10, canary: onHash("127.0.0.1")},
		{desc: "sticky header present", sticky: "header:X-User", percent: 10, req: withHeader("X-User", "ann"), canary: onHash("ann")},
		{desc: "sticky header absent", sticky: "header:X-User", percent: 10, canary: 1},
		{desc: "sticky header empty", sticky: "header:X-User", percent: 10, req: withHeader("X-User", ""), canary: 1},
		{desc: "sticky cookie present", sticky: "cookie:session", percent: 10, req: withCookie("session", "s-42"), canary: onHash("s-42")},
		{desc: "sticky cookie absent", sticky: "cookie:session", percent: 10, canary: 1},
		{desc: "sticky cookie absent, another cookie present", sticky: "cookie:session", percent: 10, req: withCookie("other", "x"), canary: 1},
		{desc: "sticky cookie empty", sticky: "cookie:session", percent: 10, req: withHeader("Cookie", "session="), canary: 1},
		{desc: "force header matches", force: []ForceRule{{Kind: ForceHeader, Name: "X-Canary", Value: "1"}}, req: withHeader("X-Canary", "1"), canary: n},
		{desc: "force header absent", force: []ForceRule{{Kind: ForceHeader, Name: "X-Canary", Value: "1"}}, canary: 0},
		{desc: "force header differs", force: []ForceRule{{Kind: ForceHeader, Name: "X-Canary", Value: "1"}}, req: withHeader("X-Canary", "0"), canary: 0},
		{desc: "force cookie matches", force: []ForceRule{{Kind: ForceCookie, Name: "beta", Value: "yes"}}, req: withCookie("beta", "yes"), canary: n},
		{desc: "force cookie absent", force: []ForceRule{{Kind: ForceCookie, Name: "beta", Value: "yes"}}, canary: 0},
		{desc: "force cookie differs", force: []ForceRule{{Kind: ForceCookie, Name: "beta", Value: "yes"}}, req: withCookie("beta", "no"), canary: 0},
		{desc: "force query matches", force: []ForceRule{{Kind: ForceQuery, Name: "canary", Value: "on"}}, req: withQuery("canary=on"), canary: n},
		{desc: "force query absent", force: []ForceRule{{Kind: ForceQuery, Name: "canary", Value: "on"}}, canary: 0},
		{desc: "force query differs", force: []ForceRule{{Kind: ForceQuery, Name: "canary", Value: "on"}}, req: withQuery("canary=off"), canary: 0},
		{desc: "force absent, sticky cookie absent", sticky: "cookie:session", percent: 10,
			force: []ForceRule{{Kind: ForceCookie, Name: "beta", Value: "yes"}}, canary: 1},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			url := newCanaryProxy(t, Canary{Split: &Splitter{}, StickyBy: tc.sticky, Force: tc.force}, tc.percent)
			c := &http.Client{Timeout: 10 * time.Second}
			got := 0
			for i := range n {
				req, err := http.NewRequest(http.MethodGet, url+"/x", nil)
				if err != nil {
					t.Fatal(err)
				}
				if tc.req != nil {
					tc.req(req)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
				if resp.Header.Get("X-Backend") == "canary" {
					got++
				}
			}
			if got != tc.canary {
				t.Fatalf("%d of %d requests went to the canary, want %d", got, n, tc.canary)
			}
		})
	}
}

// latencyBucket is floor(4·log2(µs)) as math.Log2 computes it, on both
// sides of every bucket boundary and along a sweep.
func TestLatencyBucketMatchesLog2(t *testing.T) {
	want := func(d time.Duration) int {
		us := float64(d) / float64(time.Microsecond)
		if us <= 1 {
			return 0
		}
		return min(int(math.Log2(us)*4), histBuckets-1)
	}
	check := func(d time.Duration) {
		if got, w := latencyBucket(d), want(d); got != w {
			t.Fatalf("latencyBucket(%d ns) = %d, want %d", int64(d), got, w)
		}
	}
	for k := 0; k <= histBuckets; k++ {
		edge := time.Duration(math.Ceil(math.Pow(2, float64(k)/4) * float64(time.Microsecond)))
		for _, d := range []time.Duration{edge - 2, edge - 1, edge, edge + 1, edge + 2} {
			check(d)
		}
	}
	for d := time.Duration(0); d < 10*time.Millisecond; d += 997 {
		check(d)
	}
	check(-time.Second)
	check(time.Duration(math.MaxInt64))
}
