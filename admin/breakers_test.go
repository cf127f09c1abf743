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
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 0.0, "max_retries": 0.0, "max_connections": 0.0})
	eq(t, "retry_budget", r.body["retry_budget"], map[string]any{"retry_ratio": 0.2, "min_retries_per_second": 10.0, "ttl": 10.0})

	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{
		"circuit_breakers": map[string]any{"max_requests": 50.0}, "retry_budget": map[string]any{"ttl": 30.0}})
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 50.0, "max_retries": 0.0, "max_connections": 0.0})
	eq(t, "retry_budget", r.body["retry_budget"], map[string]any{"retry_ratio": 0.2, "min_retries_per_second": 10.0, "ttl": 30.0})
	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", form{"circuit_breakers.max_retries", "3"})
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 50.0, "max_retries": 3.0, "max_connections": 0.0})
	r = e.must(http.StatusOK, http.MethodGet, "/upstreams/u", nil)
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 50.0, "max_retries": 3.0, "max_connections": 0.0})

	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{"circuit_breakers": nil})
	eq(t, "circuit_breakers", r.body["circuit_breakers"], map[string]any{"max_requests": 0.0, "max_retries": 0.0, "max_connections": 0.0})
}
