package admin

import (
	"net/http"
	"testing"
)

// circuit_breakers and retry_budget: an upstream shows the defaults, a
// PATCH merges into them, and the effective configuration carries them.
func TestUpstreamBreakers(t *testing.T) {
	e := newEnv(t, "")
	r := e.must(http.StatusCreated, http.MethodPost, "/upstreams", map[string]any{"name": "u"})
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 0.0, "max_retries": 0.0, "max_connections": 0.0, "max_pending_requests": 0.0})
	eq(t, "retry_budget", r.body["retry_budget"], map[string]any{"retry_ratio": 0.2, "min_retries_per_second": 10.0, "ttl": 10.0})

	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{
		"circuit_breakers": map[string]any{"max_requests": 50.0}, "retry_budget": map[string]any{"ttl": 30.0}})
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 50.0, "max_retries": 0.0, "max_connections": 0.0, "max_pending_requests": 0.0})
	eq(t, "retry_budget", r.body["retry_budget"], map[string]any{"retry_ratio": 0.2, "min_retries_per_second": 10.0, "ttl": 30.0})
	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", form{"circuit_breakers.max_retries", "3"})
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 50.0, "max_retries": 3.0, "max_connections": 0.0, "max_pending_requests": 0.0})
	r = e.must(http.StatusOK, http.MethodGet, "/upstreams/u", nil)
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 50.0, "max_retries": 3.0, "max_connections": 0.0, "max_pending_requests": 0.0})

	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{"circuit_breakers": nil})
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 0.0, "max_retries": 0.0, "max_connections": 0.0, "max_pending_requests": 0.0})
}

// retry_policy: null until set; a block merges into the defaults, bad
// entries are 400s naming the field, null drops it. success_rate in
// passive healthchecks likewise.
func TestUpstreamRetryPolicyAndSuccessRate(t *testing.T) {
	e := newEnv(t, "")
	r := e.must(http.StatusCreated, http.MethodPost, "/upstreams", map[string]any{"name": "u",
		"circuit_breakers": map[string]any{"max_connections": 4.0, "max_pending_requests": 16.0}})
	eq(t, "retry_policy", r.body["retry_policy"], nil)
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 0.0, "max_retries": 0.0, "max_connections": 4.0, "max_pending_requests": 16.0})

	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{"retry_policy": map[string]any{
		"retry_on": []any{"503", "connect-failure"}, "per_try_timeout": 0.5, "retry_backoff": map[string]any{"base_interval": 0.01}}})
	eq(t, "retry_policy", r.body["retry_policy"], map[string]any{"retry_on": []any{"503", "connect-failure"}, "per_try_timeout": 0.5,
		"timeout": 0.0, "retry_backoff": map[string]any{"base_interval": 0.01, "max_interval": 0.1}})
	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{"retry_policy": map[string]any{"timeout": 3.0}})
	eq(t, "retry_policy", r.body["retry_policy"], map[string]any{"retry_on": []any{"503", "connect-failure"}, "per_try_timeout": 0.5,
		"timeout": 3.0, "retry_backoff": map[string]any{"base_interval": 0.01, "max_interval": 0.1}})

	bad := e.do(http.MethodPatch, "/upstreams/u", map[string]any{"retry_policy": map[string]any{
		"retry_on": []any{"bogus"}, "retry_backoff": map[string]any{"base_interval": 1.0, "max_interval": 0.5}}})
	if bad.status != http.StatusBadRequest {
		t.Fatalf("bad retry_policy: %d %v", bad.status, bad.body)
	}
	fields := bad.fields() // nested in the answer, dotted here
	if fields["retry_policy.retry_on"] == nil || fields["retry_policy.retry_backoff.max_interval"] == nil {
		t.Fatalf("bad retry_policy fields %v", bad.body)
	}
	r = e.must(http.StatusOK, http.MethodGet, "/upstreams/u", nil)
	eq(t, "retry_policy after a refused PATCH", r.body["retry_policy"].(map[string]any)["timeout"], 3.0)

	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{"healthchecks": map[string]any{
		"passive": map[string]any{"success_rate": map[string]any{"stdev_factor": 1000.0}}}})
	hc := r.body["healthchecks"].(map[string]any)["passive"].(map[string]any)
	eq(t, "success_rate", hc["success_rate"], map[string]any{"minimum_hosts": 5.0, "request_volume": 100.0, "stdev_factor": 1000.0, "interval": 10.0})
	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{"retry_policy": nil})
	eq(t, "retry_policy", r.body["retry_policy"], nil)
}

// A null for an upstream's optional block (retry_budget, panic,
// healthchecks.active, healthchecks.passive.success_rate) drops what a
// PATCH set: the upstream shows what one never given the block shows.
func TestUpstreamBlockNullDropsIt(t *testing.T) {
	e := newEnv(t, "")
	fresh := e.must(http.StatusCreated, http.MethodPost, "/upstreams", map[string]any{"name": "fresh"})
	e.must(http.StatusCreated, http.MethodPost, "/upstreams", map[string]any{"name": "u"})
	r := e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{
		"retry_budget": map[string]any{"ttl": 30.0},
		"panic":        map[string]any{"min_healthy_percent": 40.0},
		"healthchecks": map[string]any{
			"active":  map[string]any{"http_path": "/up"},
			"passive": map[string]any{"success_rate": map[string]any{"stdev_factor": 1000.0}}}})
	eq(t, "retry_budget set", r.body["retry_budget"].(map[string]any)["ttl"], 30.0)
	eq(t, "panic set", r.body["panic"].(map[string]any)["min_healthy_percent"], 40.0)

	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{
		"retry_budget": nil, "panic": nil,
		"healthchecks": map[string]any{"active": nil, "passive": map[string]any{"success_rate": nil}}})
	for _, k := range []string{"retry_budget", "panic", "healthchecks"} {
		eq(t, k, r.body[k], fresh.body[k])
	}
}
