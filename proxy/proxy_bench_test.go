package proxy

import (
	"io"
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

// newTestProxy returns a proxy serving one route "/" to the given backends
// through a round-robin upstream, and the URL it listens on.
func newTestProxy(tb testing.TB, retries int, backends ...string) (*Proxy, string) {
	tb.Helper()
	u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	var ts []upstream.Target
	for _, b := range backends {
		ts = append(ts, upstream.Target{Addr: b, Weight: 1})
	}
	u.SetTargets(upstream.StaticSource, ts)
	svc := &Service{Name: "s", Scheme: "http", Retries: retries, Upstream: u,
		Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute})}
	rt, err := router.New([]router.Route{{Name: "r", Paths: []string{"/"}, Value: &Route{Name: "r", Service: svc}}})
	if err != nil {
		tb.Fatal(err)
	}
	p := New(Options{Log: zerolog.Nop(), Metrics: NewMetrics(prometheus.NewRegistry())})
	p.SetTable(&Table{Router: rt})
	return p, serveEngine(tb, p, ServerOptions{})
}

// BenchmarkProxyRoundTrip measures the whole proxy path on loopback (client,
// proxy and backend in one process; compare against BenchmarkDirect).
func BenchmarkProxyRoundTrip(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer be.Close()
	_, url := newTestProxy(b, 0, strings.TrimPrefix(be.URL, "http://"))
	benchGet(b, url+"/x")
}

func BenchmarkDirect(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer be.Close()
	benchGet(b, be.URL+"/x")
}

func benchGet(b *testing.B, url string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
