package itest

// Kong's declarative configuration end to end through the real binary: a
// decK-style file (meta keys, tags, ids, Kong fields at their defaults)
// loads and balances; GET /config → POST /config round-trips byte for
// byte, survives a restart, refuses a bad document whole and answers
// check_hash with 304; and Kong's shapes of the health, status and error
// answers.

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dkFile is a decK dump of two targets behind a service, with Kong's
// fields at their defaults, a top-level target and route, and a route
// without a service.
func dkFile(a, b string) string {
	return fmt.Sprintf(`_format_version: "3.0"
_transform: true
_info:
  select_tags: [deck]
services:
- connect_timeout: 60000
  enabled: true
  host: deck_up
  id: 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01
  name: deck_svc
  port: 80
  protocol: http
  read_timeout: 60000
  retries: 5
  write_timeout: 60000
  tags: [deck]
  tls_verify: null
  routes:
  - https_redirect_status_code: 426
    id: 7e2b4d6f-1a3c-4e5f-8a9b-0c1d2e3f4a5b
    name: deck_route
    path_handling: v0
    paths: [/deck]
    preserve_host: false
    protocols: [http, https]
    regex_priority: 0
    request_buffering: true
    response_buffering: true
    strip_path: true
    tags: [deck]
upstreams:
- algorithm: round-robin
  hash_fallback: none
  hash_on: none
  hash_on_cookie_path: /
  id: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d
  name: deck_up
  slots: 10000
  use_srv_name: false
  host_header: null
  tags: [deck]
  targets:
  - target: %s
    weight: 100
    id: 1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b
    tags: [deck]
targets:
- target: %s
  upstream: {id: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d}
  weight: 100
  tags: [deck]
routes:
- name: by_id
  paths: [/by-id]
  service: {id: 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01}
  created_at: 1700000000
  ws_id: 5b1a9c2e-7d3f-4e8a-9c1b-2f6e8d4a7c10
- name: no_service
  paths: [/none]
`, a, b)
}

// dkBalances sends n requests to path and fails unless both backends
// answered.
func dkBalances(t *testing.T, c *http.Client, url string, n int, a, b *backend) {
	t.Helper()
	ha, hb := a.Hits(), b.Hits()
	for i := 0; i < n; i++ {
		if code, _, body := get(t, c, url); code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", url, code, body)
		}
	}
	if a.Hits() == ha || b.Hits() == hb {
		t.Fatalf("GET %s ×%d: hits a=%d b=%d, want both", url, n, a.Hits()-ha, b.Hits()-hb)
	}
}

// TestDeckFileLoadsAndBalances: a decK dump is the configuration file as
// it is: it loads, balances over both targets, keeps its ids, and a route
// without a service answers Kong's 503.
func TestDeckFileLoadsAndBalances(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	g := startGateway(t, dkFile(a.Addr, b.Addr))
	c := newClient()
	dkBalances(t, c, g.url("/deck"), 20, a, b)
	dkBalances(t, c, g.url("/by-id"), 20, a, b)
	api := adAdmin(g)
	if r := api.get(t, http.StatusOK, "/services/0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01"); r.str("name") != "deck_svc" {
		t.Fatalf("service by its file id: %s", r.raw)
	}
	if r := api.get(t, http.StatusOK, "/routes/deck_route"); r.str("id") != "7e2b4d6f-1a3c-4e5f-8a9b-0c1d2e3f4a5b" {
		t.Fatalf("route id: %s", r.raw)
	}
	if r := api.get(t, http.StatusOK, "/upstreams/deck_up/targets/"+a.Addr); r.str("id") != "1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b" {
		t.Fatalf("target id: %s", r.raw)
	}
	if r := api.get(t, http.StatusOK, "/upstreams/deck_up/targets/"+b.Addr); r.str("id") == "" {
		t.Fatalf("top-level target: %s", r.raw)
	}
	code, _, body := get(t, c, g.url("/none"))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"no Service found with those values"`) {
		t.Fatalf("route without a service: %d %s", code, body)
	}
}

// TestDeckFileRefusesKongValues: a Kong field set to a value Outrigger
// cannot honour stops the binary with FILE:LINE:COL naming the field.
func TestDeckFileRefusesKongValues(t *testing.T) {
	cfg := strings.Replace(dkFile("127.0.0.1:1", "127.0.0.1:2"), "request_buffering: true", "request_buffering: false", 1)
	path := filepath.Join(t.TempDir(), "kong.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "validate", "--config", path).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted request_buffering: false:\n%s", out)
	}
	if want := path + ":27:24: request_buffering: not supported by outrigger (only true)"; !strings.Contains(string(out), want) {
		t.Fatalf("got:\n%s\nwant a line with %s", out, want)
	}
}

// TestConfigEndpoint: GET /config exports, POST /config of the export
// changes nothing, an edited export is applied (and exported back byte
// for byte), check_hash answers 304, a bad document changes nothing, and
// the posted layer survives a restart.
func TestConfigEndpoint(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	stateFile := filepath.Join(t.TempDir(), "admin-state.json")
	n := adNewNode(t, fmt.Sprintf("  state_file: %s\n", stateFile), dkFile(a.Addr, b.Addr))
	g := n.start()
	api := adAdmin(g)
	c := newClient()

	export := api.get(t, http.StatusOK, "/config").str("config")
	if !strings.HasPrefix(export, `_format_version: "3.0"`) || !strings.Contains(export, "id: 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01") {
		t.Fatalf("export:\n%s", export)
	}
	hashOf := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	if h := api.get(t, http.StatusOK, "/status").str("configuration_hash"); h != hashOf(export) {
		t.Fatalf("configuration_hash %s, want the MD5 of the export %s", h, hashOf(export))
	}
	// The export posted back: same bytes, 304 with check_hash.
	api.do(t, http.StatusCreated, http.MethodPost, "/config", "application/yaml", export)
	if again := api.get(t, http.StatusOK, "/config").str("config"); again != export {
		t.Fatalf("export changed by its own POST:\n--- before\n%s\n--- after\n%s", export, again)
	}
	api.json(t, http.StatusNotModified, http.MethodPost, "/config?check_hash=1", map[string]any{"config": export})

	// An edit: a new path, a drained target.
	edited := strings.Replace(export, "- /deck\n", "- /edited\n", 1)
	if edited == export {
		t.Fatalf("no /deck path in the export:\n%s", export)
	}
	r := api.do(t, http.StatusCreated, http.MethodPost, "/config?check_hash=1", "application/yaml", edited)
	if svcs, _ := r.m["services"].(map[string]any); svcs["0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01"] == nil {
		t.Fatalf("answer lacks the service: %s", r.raw)
	}
	dkBalances(t, c, g.url("/edited"), 20, a, b)
	if code, _, _ := get(t, c, g.url("/deck")); code != http.StatusNotFound {
		t.Fatalf("the old path answers %d after the edit", code)
	}
	if got := api.get(t, http.StatusOK, "/config").str("config"); got != edited {
		t.Fatalf("export after the edit:\n%s\nwant:\n%s", got, edited)
	}

	// A bad document: Kong's 400, every error placed, nothing applied.
	bad := strings.Replace(edited, "retries: 5", "retries: many", 1)
	bad = strings.Replace(bad, "algorithm: round-robin", "algorithm: fastest", 1)
	r = api.do(t, http.StatusBadRequest, http.MethodPost, "/config", "application/yaml", bad)
	positions := 0
	for k := range r.fields() {
		if strings.HasPrefix(k, "config:") {
			positions++
		}
	}
	if r.m["code"] != float64(14) || r.str("name") != "invalid declarative configuration" || positions != 2 {
		t.Fatalf("bad document: %s", r.raw)
	}
	// Kong 3's per-entity form beside the positions.
	ups, _ := r.fields()["upstreams"].([]any)
	if len(ups) != 1 || ups[0].(map[string]any)["algorithm"] == nil {
		t.Fatalf("fields.upstreams: %s", r.raw)
	}
	for _, want := range []string{"retries: expected an integer", `algorithm: "fastest" is not valid`} {
		if !strings.Contains(r.str("message"), want) {
			t.Fatalf("message lacks %q: %s", want, r.raw)
		}
	}
	if got := api.get(t, http.StatusOK, "/config").str("config"); got != edited {
		t.Fatalf("a refused document changed the export:\n%s", got)
	}
	dkBalances(t, c, g.url("/edited"), 4, a, b)

	// A restart keeps the posted layer.
	g.signal(syscall.SIGTERM)
	if code := g.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	g = n.start()
	api = adAdmin(g)
	if got := api.get(t, http.StatusOK, "/config").str("config"); got != edited {
		t.Fatalf("export after a restart:\n%s\nwant:\n%s", got, edited)
	}
	dkBalances(t, c, g.url("/edited"), 20, a, b)
}

// TestKongShapes: the answers Kong 3.x gives, call by call.
func TestKongShapes(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	g := startGateway(t, dkFile(a.Addr, b.Addr))
	api := adAdmin(g)
	c := newClient()
	// has reports whether the dotted path names a value of the answer.
	has := func(m map[string]any, path string) bool {
		var v any = m
		for _, p := range strings.Split(path, ".") {
			mm, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = mm[p]; !ok {
				return false
			}
		}
		return v != nil
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               []string // dotted paths present in the answer
	}{
		{http.MethodGet, "/upstreams/deck_up/health?balancer_health=1", "", http.StatusOK,
			[]string{"data.id", "data.health", "data.details.weight.total", "data.details.weight.available", "data.details.hosts", "node_id"}},
		{http.MethodGet, "/upstreams/deck_up/health", "", http.StatusOK, []string{"data", "total", "node_id"}},
		{http.MethodGet, "/upstreams/deck_up/health?balancer_health=maybe", "", http.StatusBadRequest, []string{"fields.balancer_health"}},
		{http.MethodGet, "/", "", http.StatusOK, []string{"tagline", "version", "node_id", "hostname", "pids.master", "plugins.available_on_server", "configuration.database"}},
		{http.MethodGet, "/status", "", http.StatusOK, []string{"configuration_hash", "server.total_requests", "memory.workers_lua_vms", "database.reachable", "admin_layer.state", "config_generation"}},
		{http.MethodPatch, "/upstreams/deck_up", `{"healthchecks": {"active": {"http_path": "no-slash"}}}`, http.StatusBadRequest,
			[]string{"fields.healthchecks.active.http_path"}},
		{http.MethodPost, "/routes", `{"name": "lonely", "paths": ["/lonely"]}`, http.StatusCreated, []string{"id", "paths"}},
		{http.MethodPatch, "/services/deck_svc", `{"enabled": false}`, http.StatusBadRequest, []string{"fields.enabled"}},
		{http.MethodPatch, "/services/deck_svc", `{"enabled": true, "ws_id": "5b1a9c2e-7d3f-4e8a-9c1b-2f6e8d4a7c10"}`, http.StatusOK, []string{"id"}},
		{http.MethodGet, "/config?format=json", "", http.StatusBadRequest, []string{"fields.format"}},
		{http.MethodPost, "/config", `{"nothing": 1}`, http.StatusBadRequest, []string{"fields"}},
	} {
		ctype := ""
		if tc.body != "" {
			ctype = "application/json"
		}
		r := api.do(t, tc.status, tc.method, tc.path, ctype, tc.body)
		for _, p := range tc.want {
			if !has(r.m, p) {
				t.Errorf("%s %s: answer lacks %s: %s", tc.method, tc.path, p, r.raw)
			}
		}
	}
	if h := api.get(t, http.StatusOK, "/status").str("configuration_hash"); len(h) != 32 {
		t.Fatalf("configuration_hash %q", h)
	}
	if r := api.get(t, http.StatusOK, "/routes/lonely"); r.m["service"] != nil {
		t.Fatalf("route without a service: %s", r.raw)
	}
	code, _, body := get(t, c, g.url("/lonely"))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no Service found with those values") {
		t.Fatalf("GET /lonely: %d %s", code, body)
	}
}

// TestConfigLayerKeys: a posted document's canary (Outrigger's own key,
// beside Kong's entities) steers traffic, and the export carries it.
func TestConfigLayerKeys(t *testing.T) {
	a, b, cn := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "canary", nil)
	g := startGateway(t, dkFile(a.Addr, b.Addr))
	api := adAdmin(g)
	c := newClient()
	// The canary upstream joins the exported upstreams; the canary
	// follows the entities.
	export := api.get(t, http.StatusOK, "/config").str("config")
	posted := strings.Replace(export, "services:\n", fmt.Sprintf("  - name: canary_up\n    targets:\n      - target: %s\nservices:\n", cn.Addr), 1) +
		"canaries:\n  - service: deck_svc\n    upstream: canary_up\n    percent: 100\n"
	api.do(t, http.StatusCreated, http.MethodPost, "/config", "application/yaml", posted)
	before := cn.Hits()
	for i := 0; i < 10; i++ {
		if code, who, body := get(t, c, g.url("/deck")); code != http.StatusOK || who != "canary" {
			t.Fatalf("GET /deck: %d from %q: %s", code, who, body)
		}
	}
	if cn.Hits()-before != 10 {
		t.Fatalf("canary got %d of 10", cn.Hits()-before)
	}
	if r := api.get(t, http.StatusOK, "/services/deck_svc/canary"); r.m["percent"] != float64(100) {
		t.Fatalf("canary: %s", r.raw)
	}
	if got := api.get(t, http.StatusOK, "/config").str("config"); !strings.Contains(got, "canaries:\n  - percent: 100\n    service: deck_svc\n    upstream: canary_up\n") {
		t.Fatalf("export lacks the canary:\n%s", got)
	}
}

// TestHTTPSOnlyRoute: a route whose protocols are [https] answers a
// plaintext request as Kong does (426 "Please use HTTPS protocol", with
// Upgrade: TLS/1.2, HTTP/1.1: its https_redirect_status_code default),
// or redirects it to https with another https_redirect_status_code, on
// both engines; it used to be proxied.
func TestHTTPSOnlyRoute(t *testing.T) {
	b := startBackend(t, "b", nil)
	cfg := fmt.Sprintf(`upstreams:
  - name: u
    targets: [{target: %s}]
services:
  - name: s
    host: u
    routes:
      - {name: tls_only, paths: [/secure], protocols: [https]}
      - {name: both, paths: [/open], protocols: [http, https]}
      - {name: moved, paths: [/moved], protocols: [https], https_redirect_status_code: 308}
`, b.Addr)
	for _, engine := range []string{"h1", "net/http"} {
		t.Run(strings.ReplaceAll(engine, "/", "_"), func(t *testing.T) {
			g := startGatewayOpts(t, gatewayOpts{Proxy: "  engine: " + engine + "\n"}, cfg)
			c := newClient()
			resp, err := c.Get(g.url("/secure"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(string(body), `"message":"Please use HTTPS protocol"`) ||
				resp.Header.Get("Upgrade") != "TLS/1.2, HTTP/1.1" {
				t.Fatalf("plaintext to an https route: %d %v %s", resp.StatusCode, resp.Header, body)
			}
			if code, who, _ := get(t, c, g.url("/open")); code != http.StatusOK || who != "b" {
				t.Fatalf("http route: %d %q", code, who)
			}
			nc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, _ := http.NewRequest(http.MethodGet, g.url("/moved/a?x=1"), nil)
			req.Host = "api.example.test:8000"
			resp, err = nc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://api.example.test/moved/a?x=1" {
				t.Fatalf("https_redirect_status_code 308: %d %v", resp.StatusCode, resp.Header)
			}
		})
	}
}
