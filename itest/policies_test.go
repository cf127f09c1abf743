package itest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Traffic policies through the binary: per-try timeouts, retry_on
// statuses, success-rate ejection and max_pending_requests.

// do sends one request with method and returns status, X-Backend and the
// overloaded header.
func do(t testing.TB, c *http.Client, method, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend"), resp.Header.Get("X-Outrigger-Overloaded")
}

// A slow first target and a fast second one: with per_try_timeout the
// request leaves the slow one (its request is cancelled) and succeeds on
// the fast one; read_timeout (30 s) would have held it far longer.
func TestPolicyPerTryTimeout(t *testing.T) {
	var abandoned atomic.Int64
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			abandoned.Add(1)
		case <-release:
		}
	}))
	fast := startBackend(t, "fast", nil)
	const perTry = 300 * time.Millisecond
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    targets: [{target: %s}, {target: %s}]
    retry_policy: {per_try_timeout: %s}
services:
  - {name: s, host: u, retries: 1, read_timeout: 30000, routes: [{name: r, paths: [/]}]}
`, slow.Addr, fast.Addr, perTry))
	c := newClient()
	const n = 6
	var viaSlow []time.Duration
	for i := range n {
		before := slow.Hits()
		start := time.Now()
		status, who, _ := do(t, c, http.MethodGet, g.url("/x"))
		d := time.Since(start)
		if status != http.StatusOK || who != "fast" {
			t.Fatalf("request %d: %d from %q, want 200 from fast", i, status, who)
		}
		if slow.Hits() > before {
			viaSlow = append(viaSlow, d)
		}
	}
	if len(viaSlow) != n/2 {
		t.Fatalf("%d of %d requests tried the slow target first, want %d (round robin)", len(viaSlow), n, n/2)
	}
	waitFor(t, 10*time.Second, "the slow attempts cancelled", func() bool { return abandoned.Load() == int64(n/2) })
	for _, d := range viaSlow {
		t.Logf("a request through the slow target took %.2f × per_try_timeout (read_timeout is 100 ×)", float64(d)/float64(perTry))
	}
}

// retry_on 503: a GET meeting a 503 goes to the other target; a POST is
// never retried on a status (the 503 reaches the client).
func TestPolicyRetryOn503(t *testing.T) {
	bad := startBackend(t, "bad", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "bad")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	good := startBackend(t, "good", nil)
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    targets: [{target: %s}, {target: %s}]
    retry_policy: {retry_on: [503], retry_backoff: {base_interval: 1ms}}
services:
  - {name: s, host: u, retries: 2, routes: [{name: r, paths: [/]}]}
`, bad.Addr, good.Addr))
	c := newClient()
	const n = 20
	count := func(method string) (ok, unavailable int) {
		for i := range n {
			switch status, _, _ := do(t, c, method, g.url("/x")); status {
			case http.StatusOK:
				ok++
			case http.StatusServiceUnavailable:
				unavailable++
			default:
				t.Fatalf("%s %d: %d", method, i, status)
			}
		}
		return ok, unavailable
	}
	badBefore := bad.Hits()
	if ok, un := count(http.MethodGet); ok != n || un != 0 {
		t.Fatalf("GET: %d ok, %d 503 of %d; want every one retried to 200", ok, un, n)
	}
	getRetried := bad.Hits() - badBefore
	badBefore = bad.Hits()
	ok, un := count(http.MethodPost)
	if ok != n/2 || un != n/2 || bad.Hits()-badBefore != n/2 {
		t.Fatalf("POST: %d ok, %d 503 of %d, bad hit %d; want half the 503s relayed, none retried", ok, un, n, bad.Hits()-badBefore)
	}
	t.Logf("GET: %d/%d answered 200 (%d met the 503 target first and were retried); POST: %d/%d relayed 503, 0 retried", n, n, getRetried, un, n)
	if v := metricValue(t, g, `outrigger_retries_total{service="s",upstream="u"}`); v != float64(getRetried) {
		t.Fatalf("retries_total = %v, want %d", v, getRetried)
	}
}

// Success-rate ejection: one target answering 30 % 500s among 5 healthy
// ones is ejected at the end of an interval, shown in the health API with
// its rate and the cause, counted, gets no traffic while ejected, and
// comes back after base_ejection_time.
func TestPolicySuccessRateEjection(t *testing.T) {
	var flip atomic.Int64
	bad := startBackend(t, "bad", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "bad")
		if flip.Add(1)%10 < 3 { // 30 % 500s, evenly spread
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	targets := []string{"{target: " + bad.Addr + "}"}
	var goods []*backend
	for i := range 5 {
		b := startBackend(t, fmt.Sprintf("good%d", i), nil)
		goods = append(goods, b)
		targets = append(targets, "{target: "+b.Addr+"}")
	}
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    targets: [%s]
    healthchecks:
      passive:
        unhealthy: {http_failures: 0, http_statuses: [500]}
        base_ejection_time: 2s
        success_rate: {minimum_hosts: 5, request_volume: 20, stdev_factor: 1900, interval: 1s}
services:
  - {name: s, host: u, retries: 0, routes: [{name: r, paths: [/]}]}
`, strings.Join(targets, ", ")))
	c := newClient()
	type hdata struct {
		Target string `json:"target"`
		Health string `json:"health"`
		Data   struct {
			Cause       string `json:"cause"`
			Ejected     bool   `json:"ejected"`
			SuccessRate *struct {
				Rate      float64 `json:"rate"`
				Requests  int     `json:"requests"`
				Threshold float64 `json:"threshold"`
			} `json:"success_rate"`
		} `json:"data"`
	}
	badState := func() hdata {
		var out struct {
			Data []hdata `json:"data"`
		}
		getJSON(t, "http://"+g.AdminAddr+"/upstreams/u/health", &out)
		for _, h := range out.Data {
			if h.Target == bad.Addr {
				return h
			}
		}
		t.Fatalf("no health for %s", bad.Addr)
		return hdata{}
	}
	sent, fives := 0, 0
	deadline := time.Now().Add(20 * time.Second)
	for !badState().Data.Ejected {
		if sent >= 20000 || time.Now().After(deadline) {
			t.Fatalf("no success-rate ejection after %d requests (%d 500s): %+v", sent, fives, badState())
		}
		for range 30 {
			if status, _, _ := do(t, c, http.MethodGet, g.url("/x")); status == http.StatusInternalServerError {
				fives++
			}
			sent++
		}
	}
	st := badState()
	if st.Data.Cause != "success-rate" || st.Health != "UNHEALTHY" || st.Data.SuccessRate == nil {
		t.Fatalf("ejected target %+v, want cause success-rate with a sample", st)
	}
	sr := st.Data.SuccessRate
	if sr.Rate < 60 || sr.Rate > 80 || sr.Threshold <= sr.Rate {
		t.Fatalf("sample %+v, want a rate near 70 %% under the threshold", sr)
	}
	t.Logf("ejected after %d requests (%d 500s); rate %.1f %% over %d requests, threshold %.1f %%", sent, fives, sr.Rate, sr.Requests, sr.Threshold)
	for _, gd := range goods {
		if h := healthOf(t, g, gd.Addr); h != "HEALTHY" {
			t.Fatalf("healthy target %s is %s", gd.Addr, h)
		}
	}
	if v := metricValue(t, g, hcSeries("outrigger_health_changes_total", "upstream", "u", "cause", "success-rate", "state", "unhealthy")); v < 1 {
		t.Fatalf("health_changes_total{success-rate} = %v", v)
	}
	hits := bad.Hits()
	for i := range 30 {
		if status, who, _ := do(t, c, http.MethodGet, g.url("/x")); status != http.StatusOK || who == "bad" {
			t.Fatalf("request %d during the ejection: %d from %q", i, status, who)
		}
	}
	if bad.Hits() != hits {
		t.Fatalf("the ejected target got %d of 30 requests", bad.Hits()-hits)
	}
	waitFor(t, 15*time.Second, "the target back after base_ejection_time", func() bool { return healthOf(t, g, bad.Addr) == "HEALTHY" })
}

// healthOf is target's health in GET /upstreams/u/health.
func healthOf(t testing.TB, g *gateway, target string) string {
	t.Helper()
	var out struct {
		Data []struct {
			Target string `json:"target"`
			Health string `json:"health"`
		} `json:"data"`
	}
	getJSON(t, "http://"+g.AdminAddr+"/upstreams/u/health", &out)
	for _, h := range out.Data {
		if h.Target == target {
			return h.Health
		}
	}
	return ""
}

// max_connections 2, max_pending_requests 3, a held origin and a burst of
// 10: 2 requests hold the connections, 3 wait for them, 5 are answered
// the overloaded 503 at once; released, the 5 admitted all succeed.
func TestPolicyMaxPendingRequests(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int64
	held := startBackend(t, "held", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
		w.Header().Set("X-Backend", "held")
	}))
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    targets: [{target: %s}]
    circuit_breakers: {max_connections: 2, max_pending_requests: 3}
services:
  - {name: s, host: u, retries: 0, routes: [{name: r, paths: [/]}]}
`, held.Addr))
	const burst = 10
	type answer struct {
		status     int
		overloaded string
	}
	answers := make(chan answer, burst)
	for range burst {
		go func() {
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			defer c.CloseIdleConnections()
			req, _ := http.NewRequest(http.MethodGet, g.url("/x"), nil)
			resp, err := c.Do(req)
			if err != nil {
				answers <- answer{}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("X-Outrigger-Overloaded")}
		}()
	}
	var early []answer
	for range burst / 2 {
		select {
		case a := <-answers:
			early = append(early, a)
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d early answers: %+v", len(early), early)
		}
	}
	for i, a := range early {
		if a.status != http.StatusServiceUnavailable || a.overloaded != "true" {
			t.Fatalf("early answer %d: %+v, want the overloaded 503", i, a)
		}
	}
	waitFor(t, 10*time.Second, "3 pending requests", func() bool {
		return hcMetrics(t, g)[hcSeries("outrigger_upstream_capacity_remaining", "upstream", "u", "limit", "max_pending_requests")] == 0
	})
	if n := arrived.Load(); n != 2 {
		t.Fatalf("%d requests reached the origin, want 2 (max_connections)", n)
	}
	if v := metricValue(t, g, hcSeries("outrigger_overloaded_total", "upstream", "u", "limit", "max_pending_requests")); v != burst/2 {
		t.Fatalf("overloaded_total{max_pending_requests} = %v, want %d", v, burst/2)
	}
	once.Do(func() { close(release) })
	ok := 0
	for range burst / 2 {
		select {
		case a := <-answers:
			if a.status == http.StatusOK {
				ok++
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the admitted requests did not finish")
		}
	}
	if ok != burst/2 || arrived.Load() != burst/2 {
		t.Fatalf("%d of the %d admitted requests succeeded, %d reached the origin", ok, burst/2, arrived.Load())
	}
	t.Logf("burst of %d: %d overloaded 503s at once (%d/%d = max_connections+max_pending_requests admitted), %d/%d admitted succeeded",
		burst, len(early), burst-len(early), burst, ok, burst/2)
}
