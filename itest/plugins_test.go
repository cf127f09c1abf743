package itest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Kong's bundled plugins through the binary, on both request paths (the
// engine and net/http): from the file and through the admin API.

// pluginOrigin answers every request with what reached it: its headers
// (lower-cased names) and its raw query, as JSON; it sets X-Origin and
// Server for the response transformer to work on.
func pluginOrigin(t *testing.T) *backend {
	return startBackend(t, "origin", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{}
		for k, v := range r.Header {
			h[strings.ToLower(k)] = strings.Join(v, ",")
		}
		w.Header().Set("X-Origin", "yes")
		w.Header().Set("Server", "origin/1")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"headers": h, "query": r.URL.RawQuery, "method": r.Method})
	}))
}

// seen is what the origin reported.
type seen struct {
	Headers map[string]string `json:"headers"`
	Query   string            `json:"query"`
	Method  string            `json:"method"`
}

// call sends one request; hdr are header name/value pairs.
func call(t *testing.T, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func originSaw(t *testing.T, body string) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("not the origin's answer: %q", body)
	}
	return s
}

const pluginConsumerID = "8f4e2b1a-3c5d-4e6f-9a0b-1c2d3e4f5a6b"

func pluginsConfig(origin string) string {
	return fmt.Sprintf(`services:
  - name: api
    url: http://%s
    routes:
      - name: keyed
        paths: [/keyed]
        plugins:
          - name: key-auth
            config: {hide_credentials: true}
      - name: limited
        paths: [/limited]
        plugins:
          - name: rate-limiting
            config: {hour: 2, limit_by: header, header_name: x-tenant}
      - name: cors
        paths: [/cors]
        plugins:
          - name: cors
            config:
              origins: [http://app.example, 'https://.*\.app\.example']
              methods: [GET, POST]
              headers: [x-token]
              exposed_headers: [x-origin]
              credentials: true
              max_age: 3600
      - name: tx
        paths: [/tx]
        plugins:
          - name: request-transformer
            config:
              remove: {headers: [x-secret], querystring: [debug]}
              add: {headers: ["x-added:yes"], querystring: ["source:gw"]}
              replace: {headers: ["x-version:v2"]}
          - name: response-transformer
            config:
              remove: {headers: [server]}
              add: {headers: ["x-served-by:outrigger"]}
              rename: {headers: ["x-origin:x-was-origin"]}
plugins:
  - name: correlation-id
    config: {echo_downstream: true, header_name: X-Request-ID}
consumers:
  - id: %s
    username: alice
    custom_id: a-1
    keyauth_credentials:
      - key: alice-secret
`, origin, pluginConsumerID)
}

func TestPluginsFromFile(t *testing.T) {
	origin := pluginOrigin(t)
	for _, engine := range []string{"h1", "net/http"} {
		t.Run(strings.ReplaceAll(engine, "/", ""), func(t *testing.T) {
			g := startGatewayOpts(t, gatewayOpts{Proxy: "  engine: " + engine + "\n"}, pluginsConfig(origin.Addr))
			t.Run("key-auth", func(t *testing.T) { checkKeyAuth(t, g) })
			t.Run("rate-limiting", func(t *testing.T) { checkRateLimit(t, g) })
			t.Run("cors", func(t *testing.T) { checkCORS(t, g, origin) })
			t.Run("transformers", func(t *testing.T) { checkTransformers(t, g) })
			t.Run("correlation-id", func(t *testing.T) { checkCorrelationID(t, g) })
		})
	}
}

func checkKeyAuth(t *testing.T, g *gateway) {
	resp, body := call(t, "GET", g.url("/keyed"))
	if resp.StatusCode != 401 || body != `{"message":"No API key found in request"}` || resp.Header.Get("WWW-Authenticate") != "Key" {
		t.Fatalf("no key: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = call(t, "GET", g.url("/keyed"), "apikey", "wrong")
	if resp.StatusCode != 401 || body != `{"message":"Invalid authentication credentials"}` {
		t.Fatalf("bad key: %d %s", resp.StatusCode, body)
	}
	// Kong: the name read carrying several values is a duplicate key; a
	// header shadows the query.
	for _, c := range []struct {
		url  string
		hdrs []string
		want int
	}{
		{"/keyed", []string{"apikey", "alice-secret", "apikey", "alice-secret"}, 401},
		{"/keyed?apikey=alice-secret&apikey=x", nil, 401},
		{"/keyed?apikey=a&apikey=b", []string{"apikey", "alice-secret"}, 200},
	} {
		resp, body = call(t, "GET", g.url(c.url), c.hdrs...)
		if resp.StatusCode != c.want || (c.want == 401 && body != `{"message":"Duplicate API key found"}`) {
			t.Fatalf("%s %v: %d %s", c.url, c.hdrs, resp.StatusCode, body)
		}
	}
	for _, c := range []struct{ url, hdr, val string }{
		{"/keyed", "apikey", "alice-secret"},
		{"/keyed?apikey=alice-secret&x=1", "x-ignored", "1"},
	} {
		resp, body = call(t, "GET", g.url(c.url), c.hdr, c.val, "X-Consumer-Username", "mallory")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.url, resp.StatusCode, body)
		}
		s := originSaw(t, body)
		if s.Headers["x-consumer-id"] != pluginConsumerID || s.Headers["x-consumer-username"] != "alice" ||
			s.Headers["x-consumer-custom-id"] != "a-1" || s.Headers["x-credential-identifier"] == "" {
			t.Fatalf("%s: consumer headers at the origin: %v", c.url, s.Headers)
		}
		if _, ok := s.Headers["apikey"]; ok || strings.Contains(s.Query, "apikey") {
			t.Fatalf("%s: the credential reached the origin: %v %q", c.url, s.Headers, s.Query)
		}
	}
}

// checkRateLimit sends three requests of one tenant inside one hour
// window: two pass with Kong's headers, the third is refused.
func checkRateLimit(t *testing.T, g *gateway) {
	for attempt := 0; attempt < 2; attempt++ {
		tenant := "t-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		resp, _ := call(t, "GET", g.url("/limited"), "x-tenant", tenant)
		reset, _ := strconv.Atoi(resp.Header.Get("RateLimit-Reset"))
		if reset <= 3 {
			// The hour ends now: the next requests would count in the next
			// window. Start again in it.
			end := time.Now().Add(time.Duration(reset+1) * time.Second)
			waitFor(t, 10*time.Second, "the next rate-limit window", func() bool { return time.Now().After(end) })
			continue
		}
		if resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Limit-Hour") != "2" || resp.Header.Get("X-RateLimit-Remaining-Hour") != "1" ||
			resp.Header.Get("RateLimit-Limit") != "2" || resp.Header.Get("RateLimit-Remaining") != "1" {
			t.Fatalf("first: %d %v", resp.StatusCode, resp.Header)
		}
		resp, _ = call(t, "GET", g.url("/limited"), "x-tenant", tenant)
		if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Remaining") != "0" {
			t.Fatalf("second: %d %v", resp.StatusCode, resp.Header)
		}
		resp, body := call(t, "GET", g.url("/limited"), "x-tenant", tenant)
		if resp.StatusCode != 429 || body != `{"message":"API rate limit exceeded"}` || resp.Header.Get("Retry-After") == "" ||
			resp.Header.Get("X-RateLimit-Remaining-Hour") != "0" || resp.Header.Get("RateLimit-Reset") == "" {
			t.Fatalf("third: %d %s %v", resp.StatusCode, body, resp.Header)
		}
		// Another tenant has its own budget.
		if resp, _ := call(t, "GET", g.url("/limited"), "x-tenant", tenant+"-other"); resp.StatusCode != 200 {
			t.Fatalf("other tenant: %d", resp.StatusCode)
		}
		return
	}
	t.Fatal("no rate-limit window long enough")
}

func checkCORS(t *testing.T, g *gateway, origin *backend) {
	before := origin.Hits()
	resp, body := call(t, "OPTIONS", g.url("/cors"), "Origin", "http://app.example", "Access-Control-Request-Method", "POST")
	want := map[string]string{"Access-Control-Allow-Origin": "http://app.example", "Access-Control-Allow-Methods": "GET,POST",
		"Access-Control-Allow-Headers": "x-token", "Access-Control-Allow-Credentials": "true", "Access-Control-Max-Age": "3600", "Vary": "Origin"}
	if resp.StatusCode != 200 || body != "" {
		t.Fatalf("preflight: %d %q", resp.StatusCode, body)
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("preflight %s: %q, want %q", k, got, v)
		}
	}
	if origin.Hits() != before {
		t.Fatal("the preflight reached the origin")
	}
	resp, _ = call(t, "GET", g.url("/cors"), "Origin", "http://app.example")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "http://app.example" ||
		resp.Header.Get("Access-Control-Expose-Headers") != "x-origin" {
		t.Fatalf("simple request: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = call(t, "GET", g.url("/cors"), "Origin", "https://api.app.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://api.app.example" {
		t.Fatalf("an origin matching the regex is not allowed: %v", resp.Header)
	}
	resp, _ = call(t, "GET", g.url("/cors"), "Origin", "http://evil.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a foreign origin is allowed: %v", resp.Header)
	}
}

func checkTransformers(t *testing.T, g *gateway) {
	resp, body := call(t, "GET", g.url("/tx?debug=1&keep=2"), "X-Secret", "s", "X-Version", "v1")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	s := originSaw(t, body)
	if _, ok := s.Headers["x-secret"]; ok || s.Headers["x-added"] != "yes" || s.Headers["x-version"] != "v2" {
		t.Fatalf("request headers at the origin: %v", s.Headers)
	}
	if s.Query != "keep=2&source=gw" {
		t.Fatalf("query at the origin: %q", s.Query)
	}
	if resp.Header.Get("Server") != "" || resp.Header.Get("X-Served-By") != "outrigger" ||
		resp.Header.Get("X-Origin") != "" || resp.Header.Get("X-Was-Origin") != "yes" {
		t.Fatalf("response headers: %v", resp.Header)
	}
}

func checkCorrelationID(t *testing.T, g *gateway) {
	resp, body := call(t, "GET", g.url("/tx"))
	id := resp.Header.Get("X-Request-ID")
	if base, n, ok := strings.Cut(id, "#"); !ok || len(base) != 36 || n == "" {
		t.Fatalf("echoed id %q", id)
	}
	if s := originSaw(t, body); s.Headers["x-request-id"] != id {
		t.Fatalf("id at the origin %q, echoed %q", s.Headers["x-request-id"], id)
	}
	resp, body = call(t, "GET", g.url("/tx"), "X-Request-ID", "given-1")
	if resp.Header.Get("X-Request-ID") != "given-1" || originSaw(t, body).Headers["x-request-id"] != "given-1" {
		t.Fatalf("a given id is not kept: %v", resp.Header)
	}
}

// TestPluginsAdminAPI: plugins, consumers and credentials created through
// the admin API apply to the proxy; bad input is refused in Kong's shape.
func TestPluginsAdminAPI(t *testing.T) {
	origin := pluginOrigin(t)
	g := startGateway(t, fmt.Sprintf("services:\n  - name: api\n    url: http://%s\n    routes:\n      - name: r\n        paths: [/r]\n", origin.Addr))
	a := adAdmin(g)

	// Refusals name what is wrong.
	r := a.json(t, 400, "POST", "/plugins", map[string]any{"name": "acl"})
	if msg := fmt.Sprint(r.fields()["name"]); !strings.Contains(msg, "rate-limiting") || !strings.Contains(msg, "key-auth") {
		t.Fatalf("unknown plugin: %s", r.raw)
	}
	r = a.json(t, 400, "POST", "/routes/r/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": "many", "bogus": 1}})
	if f := r.fields(); f["config.minute"] != "expected a number" || f["config.bogus"] != "unknown field" {
		t.Fatalf("bad config: %s", r.raw)
	}
	r = a.json(t, 400, "POST", "/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 5, "policy": "redis"}})
	if !strings.Contains(fmt.Sprint(r.fields()["config.policy"]), "local") {
		t.Fatalf("redis policy: %s", r.raw)
	}
	r = a.json(t, 400, "POST", "/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{}})
	if !strings.Contains(string(r.raw), "at least one of these fields must be non-empty") {
		t.Fatalf("no limit: %s", r.raw)
	}

	// A consumer with a key, key-auth on the route, a limit on the service.
	c := a.json(t, 201, "POST", "/consumers", map[string]any{"username": "bob"})
	a.json(t, 201, "POST", "/consumers/bob/key-auth", map[string]any{"key": "bob-key"})
	gen := a.json(t, 201, "POST", "/consumers/bob/key-auth", map[string]any{})
	if len(gen.str("key")) != 32 {
		t.Fatalf("generated key: %s", gen.raw)
	}
	ka := a.json(t, 201, "POST", "/routes/r/plugins", map[string]any{"name": "key-auth"})
	if ka.m["route"] == nil || ka.m["service"] != nil || ka.m["config"].(map[string]any)["key_names"].([]any)[0] != "apikey" ||
		ka.m["enabled"] != true || len(ka.m["protocols"].([]any)) != 4 {
		t.Fatalf("key-auth plugin: %s", ka.raw)
	}
	a.json(t, 409, "POST", "/routes/r/plugins", map[string]any{"name": "key-auth"})
	rl := a.json(t, 201, "POST", "/services/api/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"hour": 1000}})
	if rl.m["service"].(map[string]any)["id"] == nil {
		t.Fatalf("rate-limiting plugin: %s", rl.raw)
	}
	if l := a.all(t, "/services/api/plugins"); len(l) != 1 || l[0]["name"] != "rate-limiting" {
		t.Fatalf("service plugins: %v", l)
	}
	if l := a.all(t, "/plugins"); len(l) != 2 {
		t.Fatalf("plugins: %v", l)
	}

	waitFor(t, 10*time.Second, "key-auth in force", func() bool {
		resp, _ := call(t, "GET", g.url("/r"))
		return resp.StatusCode == 401
	})
	resp, body := call(t, "GET", g.url("/r"), "apikey", "bob-key")
	if resp.StatusCode != 200 || originSaw(t, body).Headers["x-consumer-id"] != c.str("id") || resp.Header.Get("X-RateLimit-Limit-Hour") != "1000" {
		t.Fatalf("with a key: %d %s %v", resp.StatusCode, body, resp.Header)
	}

	// Disabled, then deleted: the route is open again.
	a.json(t, 200, "PATCH", "/plugins/"+ka.str("id"), map[string]any{"enabled": false})
	waitFor(t, 10*time.Second, "key-auth disabled", func() bool {
		resp, _ := call(t, "GET", g.url("/r"))
		return resp.StatusCode == 200
	})
	a.do(t, 204, "DELETE", "/consumers/bob", "", "")
	if l := a.all(t, "/key-auths"); len(l) != 0 {
		t.Fatalf("credentials outlived their consumer: %v", l)
	}
}

// TestPluginsBadFile: a plugin config the schema refuses is reported at
// its FILE:LINE:COL, and the gateway does not start.
func TestPluginsBadFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ desc, body, want string }{
		{"not a number", "plugins:\n  - name: rate-limiting\n    config:\n      minute: lots\n", ":4:15: config.minute: expected a number"},
		{"unknown plugin", "plugins:\n  - name: acl\n", ":2:11: name: plugin 'acl' is not supported"},
		{"redis", "plugins:\n  - name: rate-limiting\n    config: {minute: 1, policy: redis}\n", ":3:33: config.policy: policy \"redis\" is not supported"},
		{"unknown field", "plugins:\n  - name: cors\n    config:\n      origin: [x]\n", ":4:7: config.origin: unknown field"},
		{"consumer scope", "consumers: [{username: a}]\nplugins:\n  - name: key-auth\n    consumer: a\n", ":4:15: consumer: the key-auth plugin cannot be scoped to a consumer"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.desc, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(binary, "validate", "--config", path).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("err %v, want exit 2\n%s", err, out)
			}
			if !strings.Contains(string(out), path+tc.want) {
				t.Fatalf("output %q does not contain %q", out, path+tc.want)
			}
		})
	}
}

// TestRateLimitSurvivesReload: a reload that leaves the plugin's periods
// alone keeps its counters (Kong's local counters outlive a config
// change too).
func TestRateLimitSurvivesReload(t *testing.T) {
	origin := pluginOrigin(t)
	cfg := pluginsConfig(origin.Addr)
	g := startGateway(t, cfg)
	for attempt := 0; attempt < 2; attempt++ {
		tenant := "reload-" + strconv.Itoa(attempt)
		resp, _ := call(t, "GET", g.url("/limited"), "x-tenant", tenant)
		if reset, _ := strconv.Atoi(resp.Header.Get("RateLimit-Reset")); reset <= 10 {
			end := time.Now().Add(time.Duration(reset+1) * time.Second)
			waitFor(t, 20*time.Second, "the next rate-limit window", func() bool { return time.Now().After(end) })
			continue
		}
		call(t, "GET", g.url("/limited"), "x-tenant", tenant)
		gen := g.generation()
		g.writeConfig(cfg + "upstreams:\n  - name: extra\n    targets: [{target: 127.0.0.1:1}]\n")
		g.signal(syscall.SIGHUP)
		waitFor(t, 10*time.Second, "the reload", func() bool { return g.generation() > gen })
		if resp, body := call(t, "GET", g.url("/limited"), "x-tenant", tenant); resp.StatusCode != 429 {
			t.Fatalf("after the reload: %d %s %v", resp.StatusCode, body, resp.Header)
		}
		return
	}
	t.Fatal("no rate-limit window long enough")
}

// TestPluginsUnmatched: on a request no route matched Kong runs no access
// phase, and its response phases fall back to the global plugins: a
// global response-transformer and cors edit the 404; key-auth, rate
// limiting and correlation-id (access phase) do nothing to it.
func TestPluginsUnmatched(t *testing.T) {
	origin := pluginOrigin(t)
	cfg := fmt.Sprintf(`services:
  - name: api
    url: http://%s
    routes:
      - name: r
        paths: [/r]
plugins:
  - name: correlation-id
    config: {echo_downstream: true, header_name: X-Request-ID}
  - name: key-auth
  - name: rate-limiting
    config: {hour: 1000, limit_by: ip}
  - name: cors
    config: {origins: [http://app.example]}
  - name: response-transformer
    config: {add: {headers: ["x-gw:outrigger"]}}
consumers:
  - username: alice
    keyauth_credentials:
      - key: alice-secret
`, origin.Addr)
	for _, engine := range []string{"h1", "net/http"} {
		t.Run(strings.ReplaceAll(engine, "/", ""), func(t *testing.T) {
			g := startGatewayOpts(t, gatewayOpts{Proxy: "  engine: " + engine + "\n"}, cfg)
			resp, body := call(t, "GET", g.url("/nope"), "Origin", "http://app.example")
			if resp.StatusCode != 404 || strings.TrimSpace(body) != `{"message":"no Route matched with those values"}` {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
			if resp.Header.Get("X-Gw") != "outrigger" || resp.Header.Get("Access-Control-Allow-Origin") != "http://app.example" {
				t.Fatalf("the global response phase did not run: %v", resp.Header)
			}
			for _, h := range []string{"X-Request-ID", "WWW-Authenticate", "X-RateLimit-Limit-Hour", "RateLimit-Limit"} {
				if v := resp.Header.Get(h); v != "" {
					t.Fatalf("%s: %q on an unmatched request", h, v)
				}
			}
			// A matched request still gets the access phase.
			if resp, _ := call(t, "GET", g.url("/r")); resp.StatusCode != 401 {
				t.Fatalf("/r: %d %v", resp.StatusCode, resp.Header)
			}
		})
	}
}
