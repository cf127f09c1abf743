package admin

import (
	"net/http"
	"testing"
)

// TestUpstreamProblems: the problems between an upstream's settings
// (config.Upstream.Validate) answer 400 with the messages the API has
// always given, judged within the body (a block's) or once it decoded
// (hashing, slow start), with the Doc unchanged.
func TestUpstreamProblems(t *testing.T) {
	cases := []struct {
		desc   string
		method string
		path   string
		body   any
		msg    string
	}{
		{"slow_start without a window (create)", http.MethodPost, "/upstreams", map[string]any{"name": "u9", "slow_start": map[string]any{"aggression": 2}},
			"schema violation (slow_start.window: required field missing)"},
		{"slow_start without a window (PATCH)", http.MethodPatch, "/upstreams/api_upstream", map[string]any{"slow_start": map[string]any{"min_weight_percent": 5}},
			"schema violation (slow_start.window: required field missing)"},
		{"slow_start without a window and a bad hash (create)", http.MethodPost, "/upstreams",
			map[string]any{"name": "u9", "slow_start": map[string]any{"aggression": 2}, "hash_on": "header"}, "schema violation (hash_on_header: required when hash_on is header)"},
		{"slow_start without a window and a bad hash (PATCH)", http.MethodPatch, "/upstreams/api_upstream",
			map[string]any{"slow_start": map[string]any{"aggression": 2}, "hash_on": "header"}, "schema violation (slow_start.window: required field missing)"},
		{"backoff max under base", http.MethodPatch, "/upstreams/api_upstream",
			map[string]any{"retry_policy": map[string]any{"retry_backoff": map[string]any{"base_interval": 1, "max_interval": 0.5}}}, "schema violation (retry_policy.retry_backoff.max_interval: 0.5 is less than base_interval 1)"},
		{"backoff max under base with a bad retry_on", http.MethodPatch, "/upstreams/api_upstream",
			map[string]any{"retry_policy": map[string]any{"retry_on": []any{"sometimes"}, "retry_backoff": map[string]any{"base_interval": 1, "max_interval": 0.5}}}, "2 schema violations (retry_policy.retry_backoff.max_interval: 0.5 is less than base_interval 1; retry_policy.retry_on: item 1: unknown condition \"sometimes\" (expected one of connect-failure, refused-stream, reset, 5xx, gateway-error, retriable-4xx, an HTTP status 100-599, or one of cancelled, deadline-exceeded, internal, resource-exhausted, unavailable))"},
		{"a refused fallback and the inputs", http.MethodPost, "/upstreams",
			map[string]any{"name": "u9", "algorithm": "consistent-hashing", "hash_on": "cookie", "hash_fallback": "header"}, "3 schema violations (hash_fallback: must be none when hash_on is cookie; hash_on_cookie: required when hash_on is cookie; hash_on_header: required when hash_fallback is header)"},
		{"hashing is judged once the body decoded", http.MethodPatch, "/upstreams/api_upstream", map[string]any{"hash_on": "header", "slots": 5},
			"schema violation (slots: value should be between 10 and 65536)"},
		{"grpc_service and another bad active field", http.MethodPatch, "/upstreams/api_upstream",
			map[string]any{"healthchecks": map[string]any{"active": map[string]any{"grpc_service": "pkg.Echo", "concurrency": 0}}}, "2 schema violations (healthchecks.active.concurrency: value should be between 1 and 2147483647; healthchecks.active.grpc_service: only used by checks of type grpc or grpcs (type is http))"},
		{"aggression 0", http.MethodPost, "/upstreams", map[string]any{"name": "u9", "slow_start": map[string]any{"window": "10s", "aggression": 0}},
			"schema violation (slow_start.aggression: must be greater than 0)"},
		{"aggression 0 and a bad min_weight_percent", http.MethodPatch, "/upstreams/api_upstream",
			map[string]any{"slow_start": map[string]any{"window": "10s", "aggression": 0, "min_weight_percent": 101}}, "2 schema violations (slow_start.aggression: must be greater than 0; slow_start.min_weight_percent: value should be between 0 and 100)"},
		{"grpc_service kept, type changed", http.MethodPatch, "/upstreams/grpc_upstream",
			map[string]any{"healthchecks": map[string]any{"active": map[string]any{"type": "tcp"}}}, "schema violation (healthchecks.active.grpc_service: only used by checks of type grpc or grpcs (type is tcp))"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			e := newEnv(t, fileRich)
			e.must(http.StatusCreated, http.MethodPost, "/upstreams", form{"name", "api_upstream"})
			e.must(http.StatusCreated, http.MethodPost, "/upstreams", map[string]any{"name": "grpc_upstream",
				"healthchecks": map[string]any{"active": map[string]any{"type": "grpc", "grpc_service": "pkg.Echo"}}})
			before, n := e.fk.docJSON(), e.fk.mutates
			r := e.do(c.method, c.path, c.body)
			if r.status != http.StatusBadRequest || r.str("message") != c.msg {
				t.Errorf("%d %q, want 400 %q\n%s", r.status, r.str("message"), c.msg, r.raw)
			}
			if after := e.fk.docJSON(); after != before || e.fk.mutates != n {
				t.Fatalf("the Doc changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestPatchKeepsFileTargetSettings: changing a file upstream through the
// API moves its targets into the admin layer with their priority, backup
// and zone, which were lost.
func TestPatchKeepsFileTargetSettings(t *testing.T) {
	e := newEnv(t, `
upstreams:
  - name: u
    targets:
      - {target: 10.0.0.1:80, priority: 2, zone: z1}
      - {target: 10.0.0.2:80, backup: true}
`)
	e.must(http.StatusOK, http.MethodPatch, "/upstreams/u", map[string]any{"slots": 100})
	_, eff := e.fk.View()
	u, ok := eff.Upstream("u")
	if !ok || len(u.Targets) != 2 {
		t.Fatalf("effective u = %+v", u)
	}
	if a, b := u.Targets[0], u.Targets[1]; a.Priority != 2 || a.Zone != "z1" || a.Backup || !b.Backup || b.Priority != 0 {
		t.Errorf("effective targets = %+v", u.Targets)
	}
}
