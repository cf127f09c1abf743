package admin

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/internal/certtest"
)

// TestConfigRoundTrip: GET /config exports the effective entities (the
// file's and the API's, with the ids the API shows), POSTing the export
// back changes nothing (byte-stable), and check_hash answers 304.
func TestConfigRoundTrip(t *testing.T) {
	e := newEnv(t, fileRich)
	e.must(http.StatusCreated, http.MethodPost, "/upstreams/example_upstream/targets", map[string]any{"target": "10.0.0.9:80", "weight": 7, "tags": []any{"t"}})
	e.must(http.StatusCreated, http.MethodPost, "/routes", map[string]any{"name": "orphan", "paths": []any{"/o"}, "service": map[string]any{"name": "example_service"}})
	before := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config")
	for _, want := range []string{`_format_version: "3.0"`, "10.0.0.9:80", "name: orphan", "id: " + stableID(kindService, "example_service")} {
		if !strings.Contains(before, want) {
			t.Fatalf("export lacks %q:\n%s", want, before)
		}
	}
	svcBefore := e.must(http.StatusOK, http.MethodGet, "/services/example_service", nil).str("id")

	e.must(http.StatusCreated, http.MethodPost, "/config", raw{data: before, ctype: "application/yaml"})
	after := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config")
	if after != before {
		t.Fatalf("export changed after POST of itself:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if id := e.must(http.StatusOK, http.MethodGet, "/services/example_service", nil).str("id"); id != svcBefore {
		t.Fatalf("service id %s after the round trip, was %s", id, svcBefore)
	}
	if e.fk.doc.Config == nil || len(e.fk.doc.Services) != 0 {
		t.Fatalf("the layer is not the posted document: %+v", e.fk.doc)
	}
	n := e.fk.mutates
	r := e.do(http.MethodPost, "/config?check_hash=1", map[string]any{"config": before})
	if r.status != http.StatusNotModified || e.fk.mutates != n {
		t.Fatalf("check_hash of the same document: status %d, %d commits (want 304, none)", r.status, e.fk.mutates-n)
	}
	edited := strings.Replace(before, "weight: 7", "weight: 8", 1)
	e.must(http.StatusCreated, http.MethodPost, "/config?check_hash=1", raw{data: edited, ctype: "text/yaml"})
	if got := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config"); got != edited {
		t.Fatalf("export after an edit:\n%s\nwant:\n%s", got, edited)
	}
	hash := e.must(http.StatusOK, http.MethodGet, "/status", nil).str("configuration_hash")
	if len(hash) != 32 || hash != configHash([]byte(edited)) {
		t.Fatalf("configuration_hash %q, want the MD5 of the export", hash)
	}
}

// TestConfigRefusedWhole: an invalid document is Kong's code 14 with each
// error at its line and column, and the layer stays as it was.
func TestConfigRefusedWhole(t *testing.T) {
	e := newEnv(t, fileRich)
	before := e.fk.docJSON()
	doc := `_format_version: "3.0"
services:
  - name: s
    host: example_upstream
    enabled: false
    routes:
      - name: r
        paths: [/r]
        https_redirect_status_code: 303
`
	r := e.do(http.MethodPost, "/config", raw{data: doc, ctype: "application/yaml"})
	if r.status != http.StatusBadRequest || r.body["code"] != float64(codeDeclarativeConfig) || r.str("name") != "invalid declarative configuration" {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	f := r.fields()
	if why, _ := f["config:5:14"].(string); !strings.HasPrefix(why, "enabled: not supported by outrigger (only true)") {
		t.Fatalf("fields %v", f)
	}
	if why, _ := f["config:9:37"].(string); !strings.HasPrefix(why, "https_redirect_status_code: expected one of 426, 301, 302, 307, 308, got 303") {
		t.Fatalf("fields %v", f)
	}
	if after := e.fk.docJSON(); after != before {
		t.Fatalf("the layer changed:\n%s\n%s", before, after)
	}
	for _, tc := range []struct {
		desc, body, ctype string
		status            int
	}{
		{"no document", ``, "application/json", http.StatusBadRequest},
		{"process section", "_format_version: \"3.0\"\nadmin: {listen: 127.0.0.1:1}\n", "application/yaml", http.StatusBadRequest},
		{"unknown format", "_format_version: \"9.9\"\n", "application/yaml", http.StatusBadRequest},
		{"form without config", "x=1", "application/x-www-form-urlencoded", http.StatusBadRequest},
	} {
		if r := e.do(http.MethodPost, "/config", raw{data: tc.body, ctype: tc.ctype}); r.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.desc, r.status, tc.status, r.raw)
		}
	}
	if r := e.do(http.MethodPost, "/config?bogus=1", map[string]any{"_format_version": "3.0"}); r.status != http.StatusBadRequest || r.fields()["bogus"] == nil {
		t.Fatalf("unknown query parameter: status %d: %s", r.status, r.raw)
	}
	if after := e.fk.docJSON(); after != before {
		t.Fatalf("the layer changed:\n%s\n%s", before, after)
	}
}

// TestNestedFieldErrors: a nested field's error is nested in fields, as
// Kong answers it.
func TestNestedFieldErrors(t *testing.T) {
	e := newEnv(t, fileRich)
	r := e.do(http.MethodPatch, "/upstreams/example_upstream", map[string]any{"healthchecks": map[string]any{"active": map[string]any{"http_path": "nope"}}})
	hc, _ := r.body["fields"].(map[string]any)["healthchecks"].(map[string]any)
	active, _ := hc["active"].(map[string]any)
	if r.status != http.StatusBadRequest || active["http_path"] == nil {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
}

// TestRouteWithoutService: a route may have no service, as in Kong
// (created so, or its service set to null), and shows service null.
func TestRouteWithoutService(t *testing.T) {
	e := newEnv(t, fileRich)
	r := e.must(http.StatusCreated, http.MethodPost, "/routes", form{"name", "lonely", "paths[]", "/x"})
	if v, ok := r.body["service"]; !ok || v != nil {
		t.Fatalf("service %v: %s", v, r.raw)
	}
	e.must(http.StatusOK, http.MethodPatch, "/routes/example_route", map[string]any{"service": nil})
	if r := e.must(http.StatusOK, http.MethodGet, "/routes/example_route", nil); r.body["service"] != nil {
		t.Fatalf("service after PATCH null: %s", r.raw)
	}
	e.must(http.StatusNotFound, http.MethodGet, "/routes/lonely/service", nil)
	e.must(http.StatusOK, http.MethodPut, "/routes/lonely", map[string]any{"paths": []any{"/y"}})
	// Exported at the top level, without a service; and read back so.
	text := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config")
	e.must(http.StatusCreated, http.MethodPost, "/config", map[string]any{"config": text})
	if r := e.must(http.StatusOK, http.MethodGet, "/routes/lonely", nil); r.body["service"] != nil || r.str("name") != "lonely" {
		t.Fatalf("after the round trip: %s", r.raw)
	}
}

// TestBalancerHealth: ?balancer_health=1 answers the balancer's health as
// a whole in Kong's shape; a bad value or another parameter is a 400.
func TestBalancerHealth(t *testing.T) {
	e := newEnv(t, fileRich)
	r := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/health?balancer_health=1", nil)
	data, _ := r.body["data"].(map[string]any)
	details, _ := data["details"].(map[string]any)
	weight, _ := details["weight"].(map[string]any)
	hosts, _ := details["hosts"].([]any)
	if data["id"] != stableID(kindUpstream, "example_upstream") || data["health"] != "HEALTHY" || weight["total"] != float64(200) ||
		weight["available"] != float64(200) || len(hosts) != 2 || r.str("node_id") == "" {
		t.Fatalf("%s", r.raw)
	}
	if r := e.must(http.StatusOK, http.MethodGet, "/upstreams/canary_upstream/health?balancer_health=1", nil); r.body["data"].(map[string]any)["health"] != "HEALTHCHECKS_OFF" {
		t.Fatalf("%s", r.raw)
	}
	e.must(http.StatusNoContent, http.MethodPut, "/upstreams/example_upstream/targets/10.0.0.1:8080/unhealthy", nil)
	r = e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/health?balancer_health=1", nil)
	weight = r.body["data"].(map[string]any)["details"].(map[string]any)["weight"].(map[string]any)
	if weight["available"] != float64(100) || weight["unavailable"] != float64(100) {
		t.Fatalf("after marking one unhealthy: %s", r.raw)
	}
	if r := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/health?balancer_health=0", nil); r.data() == nil || r.body["total"] != float64(2) {
		t.Fatalf("balancer_health=0 lists targets: %s", r.raw)
	}
	e.must(http.StatusBadRequest, http.MethodGet, "/upstreams/example_upstream/health?balancer_health=yes", nil)
	e.must(http.StatusBadRequest, http.MethodGet, "/upstreams/example_upstream/health?balancer_health=1&size=2", nil)
	e.must(http.StatusNotFound, http.MethodGet, "/upstreams/nope/health?balancer_health=1", nil)
}

// TestConfigLayerKeys: a document's canaries, rollouts and overrides (the
// admin layer's own entities) are decoded by the admin API's rules,
// applied with the entities, exported back byte for byte, and refused
// at their position when bad.
func TestConfigLayerKeys(t *testing.T) {
	e := newEnv(t, fileRich)
	base := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config")
	doc := base + `canaries:
  - service: example_service
    upstream: canary_upstream
    percent: 5
    force: [{kind: header, name: X-Canary, value: "1"}]
    sticky_by: cookie:session
rollouts:
  - service: example_service
    steps: [5, 25, 100]
    interval: 30s
    step: 0
overrides:
  - id: 0b0e6c0a-4a57-4f43-9b2c-2f6a3c1d9e01
    upstream: example_upstream
    target: 10.0.0.1:8080
    weight: 7
  - upstream: example_upstream
    tags: [canary]
    share: 10
`
	e.must(http.StatusCreated, http.MethodPost, "/config", raw{data: doc, ctype: "application/yaml"})
	if r := e.must(http.StatusOK, http.MethodGet, "/services/example_service/canary", nil); r.body["percent"] != float64(5) || r.str("upstream") != "canary_upstream" {
		t.Fatalf("canary: %s", r.raw)
	}
	if r := e.must(http.StatusOK, http.MethodGet, "/services/example_service/rollout", nil); r.str("state") != "running" {
		t.Fatalf("rollout: %s", r.raw)
	}
	if got := len(e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/overrides", nil).data()); got != 2 {
		t.Fatalf("%d overrides, want 2", got)
	}
	first := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config")
	for _, want := range []string{"canaries:", "sticky_by: cookie:session", "rollouts:", "interval: 30s", "id: 0b0e6c0a-4a57-4f43-9b2c-2f6a3c1d9e01"} {
		if !strings.Contains(first, want) {
			t.Fatalf("export lacks %q:\n%s", want, first)
		}
	}
	e.must(http.StatusCreated, http.MethodPost, "/config", raw{data: first, ctype: "application/yaml"})
	second := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config")
	// The second override got a random id the first time; from then on
	// the export carries it.
	e.must(http.StatusCreated, http.MethodPost, "/config", raw{data: second, ctype: "application/yaml"})
	if third := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config"); third != second {
		t.Fatalf("export not stable:\n%s\n---\n%s", second, third)
	}

	before := e.fk.docJSON()
	bad := base + `canaries:
  - service: example_service
    upstream: nope
overrides:
  - upstream: example_upstream
    target: 10.0.0.1:8080
    weight: 70000
`
	r := e.do(http.MethodPost, "/config", raw{data: bad, ctype: "application/yaml"})
	if r.status != http.StatusBadRequest || r.body["code"] != float64(codeDeclarativeConfig) {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	lines := strings.Count(base, "\n")
	f := r.fields()
	if why, _ := f[fmt.Sprintf("config:%d:5", lines+2)].(string); !strings.Contains(why, "canaries: upstream: upstream 'nope' does not exist") {
		t.Fatalf("fields %v", f)
	}
	if why, _ := f[fmt.Sprintf("config:%d:5", lines+5)].(string); !strings.Contains(why, "overrides: weight: value should be between 0 and 65535") {
		t.Fatalf("fields %v", f)
	}
	if after := e.fk.docJSON(); after != before {
		t.Fatal("a refused document changed the layer")
	}
}

// TestUpstreamStickyFields: the sticky-sessions cookie's name and
// lifetime, which the file takes, are taken by the API too, by the same
// rules.
func TestUpstreamStickyFields(t *testing.T) {
	e := newEnv(t, fileRich)
	r := e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream", map[string]any{"algorithm": "sticky-sessions", "sticky_sessions_cookie": "sid", "sticky_sessions_cookie_ttl": "30m"})
	if r.str("sticky_sessions_cookie") != "sid" || r.str("sticky_sessions_cookie_ttl") != "30m0s" {
		t.Fatalf("%s", r.raw)
	}
	if u, _ := e.fk.doc.Upstreams["example_upstream"]; u == nil || u.StickyCookie != "sid" {
		t.Fatalf("layer: %+v", u)
	}
	e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream", form{"sticky_sessions_cookie_ttl", "0"})
	for _, bad := range []map[string]any{{"sticky_sessions_cookie": "a b"}, {"sticky_sessions_cookie_ttl": "-1s"}, {"sticky_sessions_cookie_ttl": 30}} {
		e.must(http.StatusBadRequest, http.MethodPatch, "/upstreams/example_upstream", bad)
	}
}

// TestUpstreamSlowStartPanic: slow_start and panic, which the file takes,
// are taken by the API too, by the same rules; a partial block merges
// into the upstream's own.
func TestUpstreamSlowStartPanic(t *testing.T) {
	e := newEnv(t, fileRich)
	r := e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream", map[string]any{"slow_start": map[string]any{"window": "30s"}, "panic": map[string]any{"min_healthy_percent": 50}})
	ss, _ := r.body["slow_start"].(map[string]any)
	pa, _ := r.body["panic"].(map[string]any)
	if ss["window"] != "30s" || ss["aggression"] != float64(1) || pa["min_healthy_percent"] != float64(50) || pa["mode"] != "fail-open" {
		t.Fatalf("%s", r.raw)
	}
	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream", map[string]any{"slow_start": map[string]any{"aggression": 2}})
	if ss, _ := r.body["slow_start"].(map[string]any); ss["window"] != "30s" || ss["aggression"] != float64(2) {
		t.Fatalf("merge: %s", r.raw)
	}
	if r := e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream", map[string]any{"slow_start": nil}); r.body["slow_start"] != nil {
		t.Fatalf("null: %s", r.raw)
	}
	for _, bad := range []map[string]any{
		{"slow_start": map[string]any{"aggression": 2}}, // no window to merge into
		{"slow_start": map[string]any{"window": "30s", "aggression": 0}},
		{"slow_start": map[string]any{"window": "0"}},
		{"panic": map[string]any{"mode": "sometimes"}},
		{"panic": map[string]any{"min_healthy_percent": 101}},
	} {
		e.must(http.StatusBadRequest, http.MethodPatch, "/upstreams/blue_upstream", bad)
	}
	// A PATCH that names neither leaves the file's in force.
	e.must(http.StatusOK, http.MethodPatch, "/upstreams/canary_upstream", map[string]any{"slots": 100})
	if u := e.fk.doc.Upstreams["canary_upstream"]; u.SlowStart != nil || u.Panic != nil {
		t.Fatalf("seeded blocks kept: %+v %+v", u.SlowStart, u.Panic)
	}
}

// TestKongFieldsSameRules: the admin API applies the configuration file's
// table of Kong-only fields (config.KongFields): the default, null and []
// are accepted, any other value is refused with the same reason the file
// gives.
func TestKongFieldsSameRules(t *testing.T) {
	e := newEnv(t, fileRich)
	paths := map[string]string{
		config.KindUpstream: "/upstreams/example_upstream", config.KindService: "/services/example_service",
		config.KindRoute: "/routes/example_route", config.KindTarget: "/upstreams/example_upstream/targets/10.0.0.1:8080",
	}
	n := 0
	for kind, path := range paths {
		for _, kf := range config.KongFields(kind) {
			n++
			var bad, good any = "bogus", nil
			switch kf.Default {
			case "true":
				bad, good = false, true
			case "false":
				bad, good = true, false
			case "426":
				bad, good = 301, 426
			case "/":
				good = "/"
			}
			r := e.do(http.MethodPatch, path, map[string]any{kf.Name: bad})
			if why, _ := r.fields()[kf.Name].(string); r.status != http.StatusBadRequest || why != kf.Refusal() {
				t.Errorf("%s %s=%v: %d %s, want %q", kind, kf.Name, bad, r.status, r.raw, kf.Refusal())
			}
			for _, ok := range []any{good, []any{}} {
				if r := e.do(http.MethodPatch, path, map[string]any{kf.Name: ok}); r.status != http.StatusOK {
					t.Errorf("%s %s=%v: %d %s", kind, kf.Name, ok, r.status, r.raw)
				}
			}
		}
		for _, k := range config.MetaFields(kind) {
			if k == "ws_id" {
				e.must(http.StatusBadRequest, http.MethodPatch, path, map[string]any{k: "x"})
				e.must(http.StatusOK, http.MethodPatch, path, map[string]any{k: "5b1a9c2e-7d3f-4e8a-9c1b-2f6e8d4a7c10"})
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d fields", n)
	}
}

// TestConfigPluginsAndConsumers: plugins and consumers (and their keys)
// made through the API are exported, and a POST of the export keeps them
// with their ids.
func TestConfigPluginsAndConsumers(t *testing.T) {
	e := newEnv(t, fileRich)
	pid := e.must(http.StatusCreated, http.MethodPost, "/services/example_service/plugins", map[string]any{"name": "cors"}).str("id")
	e.must(http.StatusCreated, http.MethodPost, "/consumers", map[string]any{"username": "alice"})
	kid := e.must(http.StatusCreated, http.MethodPost, "/consumers/alice/key-auth", map[string]any{"key": "secret-1"}).str("id")
	export := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config")
	for _, want := range []string{"plugins:", "name: cors", "service: example_service", "consumers:", "username: alice", "key: secret-1"} {
		if !strings.Contains(export, want) {
			t.Fatalf("export lacks %q:\n%s", want, export)
		}
	}
	r := e.must(http.StatusCreated, http.MethodPost, "/config", raw{data: export, ctype: "application/yaml"})
	if ps, _ := r.body["plugins"].(map[string]any); ps[pid] == nil {
		t.Fatalf("answer lacks plugin %s: %s", pid, r.raw)
	}
	if got := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config"); got != export {
		t.Fatalf("export changed:\n%s\n---\n%s", export, got)
	}
	e.must(http.StatusOK, http.MethodGet, "/plugins/"+pid, nil)
	if r := e.must(http.StatusOK, http.MethodGet, "/consumers/alice/key-auth/"+kid, nil); r.str("key") != "secret-1" {
		t.Fatalf("key-auth after the round trip: %s", r.raw)
	}
}

// TestConfigRoundTripSNIs: SNIs made through /snis keep their ids and tags
// through GET /config and POST /config of the export (byte-stable).
func TestConfigRoundTripSNIs(t *testing.T) {
	e := newEnv(t, fileRich)
	leaf := certtest.NewCA(t, "admin test CA").Server(t, "a.test")
	cert := e.must(http.StatusCreated, http.MethodPost, "/certificates", map[string]any{"cert": string(leaf.CertPEM), "key": string(leaf.KeyPEM), "snis": []string{"a.test"}}).str("id")
	const sniID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	e.must(http.StatusCreated, http.MethodPost, "/snis", map[string]any{"id": sniID, "name": "www.a.test", "certificate": map[string]any{"id": cert}, "tags": []string{"edge"}})
	before := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config")
	for _, want := range []string{"id: " + sniID, "- edge"} {
		if !strings.Contains(before, want) {
			t.Fatalf("export lacks %q:\n%s", want, before)
		}
	}
	e.must(http.StatusCreated, http.MethodPost, "/config", raw{data: before, ctype: "application/yaml"})
	if after := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config"); after != before {
		t.Fatalf("export changed after POST of itself:\n--- before\n%s\n--- after\n%s", before, after)
	}
	r := e.must(http.StatusOK, http.MethodGet, "/snis/www.a.test", nil)
	eq(t, "id", r.str("id"), sniID)
	eq(t, "tags", r.body["tags"], []any{"edge"})
	eq(t, "certificate", r.body["certificate"], map[string]any{"id": cert})
}

// TestConfigErrorsPerEntity: beside the positions, POST /config places
// each error at its entity as Kong 3 does: fields nested by kind and
// index (null for the valid items before it), flattened errors naming the
// entity, line and column kept in the messages.
func TestConfigErrorsPerEntity(t *testing.T) {
	e := newEnv(t, fileRich)
	doc := `_format_version: "3.0"
services:
  - name: ok
    host: example_upstream
  - name: s
    id: 5a0c3e1f-2b4d-4c6e-8f0a-1b2c3d4e5f60
    host: example_upstream
    enabled: false
    routes:
      - name: r
        paths: [/r]
        https_redirect_status_code: 303
`
	r := e.do(http.MethodPost, "/config", raw{data: doc, ctype: "application/yaml"})
	if r.status != http.StatusBadRequest {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	f := r.fields()
	if _, ok := f["config:8:14"]; !ok {
		t.Fatalf("the positions are gone: %v", f)
	}
	svcs, _ := f["services"].([]any)
	if len(svcs) != 2 || svcs[0] != nil {
		t.Fatalf("fields.services %v", f["services"])
	}
	s, _ := svcs[1].(map[string]any)
	if why, _ := s["enabled"].(string); !strings.HasPrefix(why, "config:8:14: not supported by outrigger") {
		t.Fatalf("fields.services[1] %v", s)
	}
	route, _ := s["routes"].([]any)[0].(map[string]any)
	if why, _ := route["https_redirect_status_code"].(string); !strings.HasPrefix(why, "config:12:37: expected one of 426") {
		t.Fatalf("fields.services[1].routes[0] %v", route)
	}
	flat, _ := r.body["flattened_errors"].([]any)
	if len(flat) != 2 {
		t.Fatalf("flattened_errors %v", r.body["flattened_errors"])
	}
	want := []map[string]any{
		{"entity_type": "service", "entity_name": "s", "entity_id": "5a0c3e1f-2b4d-4c6e-8f0a-1b2c3d4e5f60", "field": "enabled"},
		{"entity_type": "route", "entity_name": "r", "field": "https_redirect_status_code"},
	}
	for i, w := range want {
		got, _ := flat[i].(map[string]any)
		errs, _ := got["errors"].([]any)
		if len(errs) != 1 || got["entity_type"] != w["entity_type"] || got["entity_name"] != w["entity_name"] || got["entity_id"] != w["entity_id"] ||
			errs[0].(map[string]any)["field"] != w["field"] || errs[0].(map[string]any)["type"] != "field" {
			t.Fatalf("flattened_errors[%d] = %v", i, got)
		}
	}
}

// GET /status computes configuration_hash once per configuration
// generation (each call exported every entity, about 1 MiB of garbage a
// call with the portal asking every second), and a change gives the new
// hash at once.
func TestStatusHashOncePerGeneration(t *testing.T) {
	e := newEnv(t, fileRich)
	first := e.must(http.StatusOK, http.MethodGet, "/status", nil).str("configuration_hash")
	e.fk.mu.Lock()
	reads := e.fk.fileReads
	e.fk.mu.Unlock()
	for range 5 {
		if h := e.must(http.StatusOK, http.MethodGet, "/status", nil).str("configuration_hash"); h != first {
			t.Fatalf("hash moved without a change: %s then %s", first, h)
		}
	}
	e.fk.mu.Lock()
	again := e.fk.fileReads - reads
	e.fk.mu.Unlock()
	if again != 0 {
		t.Fatalf("5 GET /status with no change viewed the configuration %d times, want 0", again)
	}
	e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream", map[string]any{"slots": 20000})
	changed := e.must(http.StatusOK, http.MethodGet, "/status", nil).str("configuration_hash")
	export := e.must(http.StatusOK, http.MethodGet, "/config", nil).str("config")
	if changed == first || changed != configHash([]byte(export)) {
		t.Fatalf("after a change the hash is %s (was %s), want the export's %s", changed, first, configHash([]byte(export)))
	}
}
