package gateway

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/upstream"
)

// The file's circuit_breakers and retry_budget reach the upstream's
// runtime and its capacity gauge; an admin change keeps the runtime (so the
// counts in progress) and swaps the limits.
func TestUpstreamBreakersApplied(t *testing.T) {
	g, _, au := testGateway(t, `
upstreams:
  - name: u
    targets: [{target: 127.0.0.1:1}]
    circuit_breakers: {max_requests: 7, max_connections: 9}
    retry_budget: {retry_ratio: 0.5, ttl: 30s}
services:
  - {name: s, host: u, routes: [{name: r, paths: [/]}]}
`)
	u := g.Upstream("u")
	if l := u.Breakers().Limits(); l != (upstream.Limits{MaxRequests: 7, MaxConnections: 9}) {
		t.Fatalf("limits = %+v", l)
	}
	if b := u.Breakers().Budget(); b != (upstream.Budget{Ratio: 0.5, MinPerSecond: 10, TTL: 30 * time.Second}) {
		t.Fatalf("budget = %+v", b)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	scrape := func() string {
		resp, err := c.Get(au + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if m := scrape(); !strings.Contains(m, `outrigger_upstream_capacity_remaining{limit="max_requests",upstream="u"} 7`) {
		t.Fatalf("no capacity gauge of 7 in:\n%s", m)
	}
	adminDo(t, c, http.MethodPatch, au+"/upstreams/u", url.Values{"circuit_breakers.max_requests": {"2"}, "circuit_breakers.max_retries": {"1"}}, http.StatusOK)
	if g.Upstream("u") != u {
		t.Fatal("a breaker change rebuilt the upstream (the counts would be lost)")
	}
	if l := u.Breakers().Limits(); l != (upstream.Limits{MaxRequests: 2, MaxRetries: 1, MaxConnections: 9}) {
		t.Fatalf("limits after PATCH = %+v", l)
	}
	m := scrape()
	for _, want := range []string{`outrigger_upstream_capacity_remaining{limit="max_requests",upstream="u"} 2`, `outrigger_upstream_capacity_remaining{limit="max_retries",upstream="u"} 1`} {
		if !strings.Contains(m, want) {
			t.Fatalf("no %s in:\n%s", want, m)
		}
	}
}

// The file's retry_policy and max_pending_requests reach the upstream; an
// admin PATCH merges into the file's policy, and null drops the admin's
// block (the file's shows through again).
func TestUpstreamRetryPolicyApplied(t *testing.T) {
	g, _, au := testGateway(t, `
upstreams:
  - name: u
    targets: [{target: 127.0.0.1:1}]
    circuit_breakers: {max_connections: 2, max_pending_requests: 5}
    retry_policy: {retry_on: [503, connect-failure], per_try_timeout: 250ms, retry_backoff: {base_interval: 10ms}}
services:
  - {name: s, host: u, routes: [{name: r, paths: [/]}]}
`)
	u := g.Upstream("u")
	if l := u.Breakers().Limits(); l.MaxPendingRequests != 5 || l.MaxConnections != 2 {
		t.Fatalf("limits = %+v", l)
	}
	p := u.RetryPolicy()
	if !p.On.Status(503) || p.On.Status(502) || !p.On.ConnectFailure() || p.On.Failure(false) ||
		p.PerTryTimeout != 250*time.Millisecond || p.BackoffBase != 10*time.Millisecond || p.BackoffMax != 100*time.Millisecond {
		t.Fatalf("retry policy = %+v", *p)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	adminDo(t, c, http.MethodPatch, au+"/upstreams/u", url.Values{"retry_policy.timeout": {"2"}}, http.StatusOK)
	if g.Upstream("u") != u {
		t.Fatal("a retry policy change rebuilt the upstream")
	}
	p = u.RetryPolicy()
	if !p.On.Status(503) || p.PerTryTimeout != 250*time.Millisecond || p.Timeout != 2*time.Second {
		t.Fatalf("retry policy after PATCH = %+v", *p)
	}
	adminDo(t, c, http.MethodPatch, au+"/upstreams/u", url.Values{"retry_policy": {""}}, http.StatusOK)
	if p = u.RetryPolicy(); p.Timeout != 0 || p.PerTryTimeout != 250*time.Millisecond {
		t.Fatalf("retry policy after null = %+v, want the file's", *p)
	}
}
