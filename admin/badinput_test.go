package admin

import (
	"net/http"
	"strings"
	"testing"
)

// TestBadInput: every class of bad input answers 400/404/409/413/415 with
// {"message", "fields"} and leaves the Doc exactly as it was.
func TestBadInput(t *testing.T) {
	// setup runs before each case: an API upstream, a discovered target,
	// an override holding a 60 % share, a canary.
	setup := func(e *env) {
		e.must(http.StatusCreated, http.MethodPost, "/upstreams", form{"name", "api_upstream"})
		e.must(http.StatusCreated, http.MethodPost, "/upstreams/example_upstream/overrides", map[string]any{"tags": []string{"v2"}, "share": 60})
		e.must(http.StatusCreated, http.MethodPut, "/services/example_service/canary", form{"upstream", "canary_upstream", "percent", "1"})
	}
	big := strings.Repeat("x", DefaultMaxBodyBytes+1)
	cases := []struct {
		desc   string
		method string
		path   string
		body   any
		status int
		msg    string            // message, or its start when it ends with "..."
		fields map[string]string // expected fields (reason prefix)
	}{
		// Weights.
		{desc: "negative weight (form)", method: http.MethodPost, path: "/upstreams/example_upstream/targets", body: form{"target", "10.0.0.3:80", "weight", "-1"},
			status: 400, msg: "schema violation (weight: value should be between 0 and 65535)", fields: map[string]string{"weight": "value should be between 0 and 65535"}},
		{desc: "weight above 65535 (JSON)", method: http.MethodPost, path: "/upstreams/example_upstream/targets", body: map[string]any{"target": "10.0.0.3:80", "weight": 65536},
			status: 400, fields: map[string]string{"weight": "value should be between 0 and 65535"}},
		{desc: "non-integer weight (JSON)", method: http.MethodPost, path: "/upstreams/example_upstream/targets", body: map[string]any{"target": "10.0.0.3:80", "weight": 1.5},
			status: 400, fields: map[string]string{"weight": "expected an integer"}},
		{desc: "non-integer weight (form)", method: http.MethodPost, path: "/upstreams/example_upstream/targets", body: form{"target", "10.0.0.3:80", "weight", "heavy"},
			status: 400, fields: map[string]string{"weight": "expected an integer"}},
		{desc: "weight as a JSON string", method: http.MethodPost, path: "/upstreams/example_upstream/targets", body: map[string]any{"target": "10.0.0.3:80", "weight": "100"},
			status: 400, fields: map[string]string{"weight": "expected an integer"}},
		{desc: "negative weight on PATCH of a discovered target", method: http.MethodPatch, path: "/upstreams/example_upstream/targets/10.0.0.9:8080", body: form{"weight", "-5"},
			status: 400, fields: map[string]string{"weight": "value should be between 0 and 65535"}},
		{desc: "bad target address", method: http.MethodPost, path: "/upstreams/example_upstream/targets", body: form{"target", "10.0.0.3:99999"},
			status: 400, fields: map[string]string{"target": "invalid target"}},
		{desc: "missing target", method: http.MethodPost, path: "/upstreams/example_upstream/targets", body: form{"weight", "5"},
			status: 400, fields: map[string]string{"target": "required field missing"}},
		{desc: "duplicate target", method: http.MethodPost, path: "/upstreams/example_upstream/targets", body: form{"target", "10.0.0.1:8080"},
			status: 409, msg: "UNIQUE violation detected on '{upstream={id=\"" + stableID(kindUpstream, "example_upstream") + "\"},target=\"10.0.0.1:8080\"}'"},

		// Upstreams.
		{desc: "unknown algorithm", method: http.MethodPost, path: "/upstreams", body: form{"name", "u2", "algorithm", "fastest"},
			status: 400, fields: map[string]string{"algorithm": "expected one of: round-robin, consistent-hashing, least-connections, latency, sticky-sessions, random"}},
		{desc: "unknown algorithm on PATCH of a file upstream", method: http.MethodPatch, path: "/upstreams/example_upstream", body: map[string]any{"algorithm": "fastest"},
			status: 400, fields: map[string]string{"algorithm": "expected one of"}},
		{desc: "slots out of range", method: http.MethodPatch, path: "/upstreams/api_upstream", body: form{"slots", "5"},
			status: 400, fields: map[string]string{"slots": "value should be between 10 and 65536"}},
		{desc: "hash_on header without a header", method: http.MethodPatch, path: "/upstreams/api_upstream", body: form{"algorithm", "consistent-hashing", "hash_on", "header"},
			status: 400, fields: map[string]string{"hash_on_header": "required when hash_on is header"}},
		{desc: "bad nested healthcheck value (form)", method: http.MethodPatch, path: "/upstreams/api_upstream", body: form{"healthchecks.active.healthy.interval", "-1", "healthchecks.active.http_path", "health"},
			status: 400, msg: "2 schema violations (healthchecks.active.healthy.interval: value should be between 0 and 65535; healthchecks.active.http_path: should start with: /)",
			fields: map[string]string{"healthchecks.active.healthy.interval": "value should be between", "healthchecks.active.http_path": "should start with: /"}},
		{desc: "unknown active check type", method: http.MethodPatch, path: "/upstreams/api_upstream", body: map[string]any{"healthchecks": map[string]any{"active": map[string]any{"type": "udp"}}},
			status: 400, fields: map[string]string{"healthchecks.active.type": "expected one of: http, https, tcp, grpc, grpcs"}},
		{desc: "grpc_service on an http check", method: http.MethodPatch, path: "/upstreams/api_upstream", body: map[string]any{"healthchecks": map[string]any{"active": map[string]any{"grpc_service": "pkg.Echo"}}},
			status: 400, fields: map[string]string{"healthchecks.active.grpc_service": "only used by checks of type grpc or grpcs (type is http)"}},
		{desc: "grpc_service with a space (form)", method: http.MethodPatch, path: "/upstreams/api_upstream", body: form{"healthchecks.active.type", "grpc", "healthchecks.active.grpc_service", "pkg Echo"},
			status: 400, fields: map[string]string{"healthchecks.active.grpc_service": `"pkg Echo": no spaces or control characters`}},
		{desc: "circuit breaker and retry budget out of range", method: http.MethodPatch, path: "/upstreams/api_upstream",
			body:   map[string]any{"circuit_breakers": map[string]any{"max_requests": -1, "max_widgets": 1}, "retry_budget": map[string]any{"retry_ratio": 1001, "ttl": 0.5}},
			status: 400, fields: map[string]string{"circuit_breakers.max_requests": "value should be between 0 and 2147483647",
				"circuit_breakers.max_widgets": "unknown field", "retry_budget.retry_ratio": "value should be between 0 and 1000",
				"retry_budget.ttl": "value should be between 1 and 600"}},
		{desc: "unknown JSON key", method: http.MethodPost, path: "/upstreams", body: map[string]any{"name": "u2", "colour": "x"},
			status: 400, msg: "schema violation (colour: unknown field)", fields: map[string]string{"colour": "unknown field"}},
		{desc: "a Kong field Outrigger lacks, set", method: http.MethodPost, path: "/upstreams", body: map[string]any{"name": "u2", "host_header": "x"},
			status: 400, fields: map[string]string{"host_header": "not supported by outrigger"}},
		{desc: "route https redirect Kong does not have", method: http.MethodPost, path: "/services/example_service/routes", body: form{"paths", "/z", "https_redirect_status_code", "303"},
			status: 400, fields: map[string]string{"https_redirect_status_code": "expected one of 426, 301, 302, 307, 308"}},
		{desc: "unknown nested JSON key", method: http.MethodPatch, path: "/upstreams/api_upstream", body: map[string]any{"healthchecks": map[string]any{"active": map[string]any{"bogus": 1}}},
			status: 400, fields: map[string]string{"healthchecks.active.bogus": "unknown field"}},
		{desc: "unknown form key", method: http.MethodPost, path: "/services", body: form{"name", "s2", "host", "h", "colour", "blue"},
			status: 400, fields: map[string]string{"colour": "unknown field"}},
		{desc: "duplicate JSON key", method: http.MethodPost, path: "/upstreams", body: raw{"application/json", `{"name": "u2", "algorithm": "random", "name": "u3"}`},
			status: 400, msg: `Cannot parse JSON body: duplicate key "name"`, fields: map[string]string{"name": "duplicate key"}},
		{desc: "duplicate nested JSON key", method: http.MethodPatch, path: "/upstreams/api_upstream",
			body:   raw{"application/json", `{"healthchecks": {"active": {"http_path": "/a", "http_path": "/b"}}}`},
			status: 400, fields: map[string]string{"healthchecks.active.http_path": "duplicate key"}},
		{desc: "duplicate JSON key in a list item", method: http.MethodPost, path: "/services", body: raw{"application/json", `{"name": "s2", "host": "h", "tags": [{"a": 1, "a": 2}]}`},
			status: 400, fields: map[string]string{"tags.a": "duplicate key"}},
		{desc: "upstream named with a UUID", method: http.MethodPost, path: "/upstreams", body: form{"name", stableID(kindUpstream, "example_upstream")},
			status: 400, fields: map[string]string{"name": `"` + stableID(kindUpstream, "example_upstream") + `" is not a valid name: it has the form of a UUID`}},
		{desc: "service named with a UUID", method: http.MethodPost, path: "/services", body: map[string]any{"name": "0E8A3B1C-1111-4222-8333-444455556666", "host": "h"},
			status: 400, fields: map[string]string{"name": "\"0E8A3B1C-1111-4222-8333-444455556666\" is not a valid name: it has the form of a UUID"}},
		{desc: "route named with a UUID", method: http.MethodPost, path: "/services/example_service/routes", body: form{"name", "00000000-0000-0000-0000-000000000000", "paths", "/u"},
			status: 400, fields: map[string]string{"name": "\"00000000-0000-0000-0000-000000000000\" is not a valid name: it has the form of a UUID"}},
		{desc: "rename an upstream to a UUID", method: http.MethodPatch, path: "/upstreams/api_upstream", body: form{"name", "7a1c5d1e-0b8f-4c3e-9f2d-6f7574726967"},
			status: 400, fields: map[string]string{"name": "\"7a1c5d1e-0b8f-4c3e-9f2d-6f7574726967\" is not a valid name"}},
		{desc: "name conflict", method: http.MethodPost, path: "/upstreams", body: form{"name", "example_upstream"},
			status: 409, msg: `UNIQUE violation detected on '{name="example_upstream"}'`, fields: map[string]string{"name": "example_upstream"}},
		{desc: "name and id both taken: the name is reported", method: http.MethodPost, path: "/upstreams", body: form{"name", "example_upstream", "id", stableID(kindUpstream, "canary_upstream")},
			status: 409, msg: `UNIQUE violation detected on '{name="example_upstream"}'`, fields: map[string]string{"name": "example_upstream"}},
		{desc: "rename onto a taken name", method: http.MethodPatch, path: "/upstreams/api_upstream", body: form{"name", "canary_upstream"},
			status: 409, msg: `UNIQUE violation detected on '{name="canary_upstream"}'`},
		{desc: "missing name", method: http.MethodPost, path: "/upstreams", body: form{"algorithm", "random"},
			status: 400, fields: map[string]string{"name": "required field missing"}},
		{desc: "delete an upstream a service uses", method: http.MethodDelete, path: "/upstreams/example_upstream",
			status: 400, msg: "an existing 'services' entity references this 'upstreams' entity (example_service)", fields: map[string]string{"@referenced_by": "services"}},
		{desc: "delete an upstream a canary uses", method: http.MethodDelete, path: "/upstreams/canary_upstream",
			status: 400, fields: map[string]string{"@referenced_by": "services"}},

		// Unknown entities.
		{desc: "unknown upstream", method: http.MethodGet, path: "/upstreams/nope", status: 404, msg: "Not found"},
		{desc: "unknown upstream id", method: http.MethodPatch, path: "/upstreams/" + newID(), body: form{"slots", "100"}, status: 404, msg: "Not found"},
		{desc: "target of unknown upstream", method: http.MethodPost, path: "/upstreams/nope/targets", body: form{"target", "a:1"}, status: 404, msg: "Not found"},
		{desc: "unknown target", method: http.MethodPatch, path: "/upstreams/example_upstream/targets/10.9.9.9:80", body: form{"weight", "1"}, status: 404, msg: "Not found"},
		{desc: "mark an unknown target", method: http.MethodPut, path: "/upstreams/example_upstream/targets/10.9.9.9:80/healthy", status: 404, msg: "Not found"},
		{desc: "unknown service", method: http.MethodPatch, path: "/services/nope", body: form{"retries", "1"}, status: 404, msg: "Not found"},
		{desc: "unknown path", method: http.MethodGet, path: "/acls", status: 404, msg: "Not found"},

		// Overrides.
		{desc: "share above 100", method: http.MethodPost, path: "/upstreams/example_upstream/overrides", body: form{"target", "10.0.0.1:8080", "share", "150"},
			status: 400, fields: map[string]string{"share": "value should be between 0 and 100"}},
		{desc: "shares summing above 100", method: http.MethodPost, path: "/upstreams/example_upstream/overrides", body: form{"meta.version", "v3", "share", "50"},
			status: 400, msg: "schema violation (share: the shares of upstream 'example_upstream' would sum to 110% (at most 100))", fields: map[string]string{"share": "the shares of upstream 'example_upstream' would sum to 110%"}},
		{desc: "weight and share", method: http.MethodPost, path: "/upstreams/example_upstream/overrides", body: form{"target", "10.0.0.1:8080", "share", "5", "weight", "5"},
			status: 400, fields: map[string]string{"@entity": "weight and share are exclusive"}},
		{desc: "no selector", method: http.MethodPost, path: "/upstreams/example_upstream/overrides", body: form{"weight", "5"},
			status: 400, fields: map[string]string{"@entity": "one of target, tags or meta is required"}},

		// Services and routes.
		{desc: "TLS fields on a plaintext service", method: http.MethodPost, path: "/services", body: map[string]any{"name": "s2", "host": "h", "tls_verify": true},
			status: 400, fields: map[string]string{"tls_verify": "only allowed when protocol is https or grpcs"}},
		{desc: "a CA file that does not exist", method: http.MethodPost, path: "/services", body: map[string]any{"name": "s2", "host": "h", "protocol": "grpcs", "ca_certificates": []string{"/nonexistent/ca.pem"}},
			status: 400, fields: map[string]string{"ca_certificates": "open /nonexistent/ca.pem"}},
		{desc: "client_certificate without key_file", method: http.MethodPost, path: "/services", body: map[string]any{"name": "s2", "host": "h", "protocol": "https", "client_certificate": map[string]any{"cert_file": "/x"}},
			status: 400, fields: map[string]string{"client_certificate": "cert_file and key_file are both required"}},
		{desc: "bad gRPC method", method: http.MethodPost, path: "/services", body: map[string]any{"name": "s2", "host": "h", "protocol": "grpc", "grpc_idempotent_methods": []string{"Say"}},
			status: 400, fields: map[string]string{"grpc_idempotent_methods": "item 1: \"Say\": expected /package.Service/Method"}},
		{desc: "route protocols mixing http and grpc", method: http.MethodPost, path: "/services/example_service/routes", body: map[string]any{"paths": []string{"/g"}, "protocols": []string{"grpc", "http"}},
			status: 400, fields: map[string]string{"protocols": "http/https and grpc/grpcs are mutually exclusive"}},
		{desc: "bad protocol", method: http.MethodPost, path: "/services", body: form{"name", "s2", "host", "h", "protocol", "tcp"},
			status: 400, fields: map[string]string{"protocol": "expected one of: http, https, grpc, grpcs, h2c"}},
		{desc: "retries out of range", method: http.MethodPatch, path: "/services/example_service", body: map[string]any{"retries": 40000},
			status: 400, fields: map[string]string{"retries": "value should be between 0 and 32767"}},
		{desc: "timeout zero", method: http.MethodPatch, path: "/services/example_service", body: form{"connect_timeout", "0"},
			status: 400, fields: map[string]string{"connect_timeout": "value should be between 1 and 2147483646"}},
		{desc: "url and host", method: http.MethodPost, path: "/services", body: form{"name", "s2", "url", "http://a.example/x", "host", "b"},
			status: 400, fields: map[string]string{"host": "conflicts with url"}},
		{desc: "bad url", method: http.MethodPost, path: "/services", body: form{"name", "s2", "url", "ftp://a.example"},
			status: 400, fields: map[string]string{"url": "scheme must be one of http, https, grpc, grpcs, h2c"}},
		{desc: "url that is no URL", method: http.MethodPost, path: "/services", body: form{"name", "s2", "url", "http://[::1"},
			status: 400, fields: map[string]string{"url": `invalid URL "http://[::1"`}},
		{desc: "service without host", method: http.MethodPost, path: "/services", body: form{"name", "s2"},
			status: 400, fields: map[string]string{"host": "required field missing"}},
		{desc: "service host onto its canary upstream", method: http.MethodPatch, path: "/services/example_service", body: form{"host", "canary_upstream"},
			status: 400, fields: map[string]string{"host": "'canary_upstream' is the canary upstream"}},
		{desc: "delete a service with routes", method: http.MethodDelete, path: "/services/example_service",
			status: 400, fields: map[string]string{"@referenced_by": "routes"}},
		{desc: "route path_handling not v0 or v1 (form)", method: http.MethodPost, path: "/services/example_service/routes", body: form{"paths", "/z", "path_handling", "v2"},
			status: 400, msg: "schema violation (path_handling: expected one of: v0, v1)", fields: map[string]string{"path_handling": "expected one of: v0, v1"}},
		{desc: "route path_handling not a string (JSON)", method: http.MethodPatch, path: "/routes/example_route", body: map[string]any{"path_handling": 1},
			status: 400, fields: map[string]string{"path_handling": "expected a string"}},
		{desc: "route without a matcher", method: http.MethodPost, path: "/routes", body: form{"name", "r2", "service.name", "example_service"},
			status: 400, fields: map[string]string{"@entity": "must set one of 'methods', 'hosts', 'headers', 'paths'"}},
		{desc: "route to an unknown service", method: http.MethodPost, path: "/routes", body: form{"paths[]", "/x", "service.name", "nope"},
			status: 400, fields: map[string]string{"service": "the foreign key '{name=\"nope\"}' does not reference an existing 'services' entity."}},
		{desc: "route with an unknown service", method: http.MethodPost, path: "/routes", body: form{"paths[]", "/x", "service.name", "nope"},
			status: 400, fields: map[string]string{"service": "the foreign key"}},
		{desc: "bad regex path", method: http.MethodPost, path: "/services/example_service/routes", body: map[string]any{"paths": []string{"~/a(("}},
			status: 400, fields: map[string]string{"paths": "item 1: invalid regex"}},
		{desc: "paths as a JSON string", method: http.MethodPost, path: "/services/example_service/routes", body: map[string]any{"paths": "/a"},
			status: 400, fields: map[string]string{"paths": "expected an array"}},
		{desc: "duplicate route name", method: http.MethodPost, path: "/services/example_service/routes", body: form{"name", "example_route", "paths", "/b"},
			status: 409, msg: `UNIQUE violation detected on '{name="example_route"}'`},

		// Canary and rollout.
		{desc: "percent above 100", method: http.MethodPatch, path: "/services/example_service/canary", body: form{"percent", "100.5"},
			status: 400, fields: map[string]string{"percent": "value should be between 0 and 100"}},
		{desc: "negative percent", method: http.MethodPut, path: "/services/example_service/canary", body: map[string]any{"upstream": "canary_upstream", "percent": -1},
			status: 400, fields: map[string]string{"percent": "value should be between 0 and 100"}},
		{desc: "canary on the primary", method: http.MethodPut, path: "/services/example_service/canary", body: form{"upstream", "example_upstream"},
			status: 400, fields: map[string]string{"upstream": "must differ from the service's primary upstream"}},
		{desc: "canary on an unknown upstream", method: http.MethodPatch, path: "/services/example_service/canary", body: form{"upstream", "ghost"},
			status: 400, fields: map[string]string{"upstream": "upstream 'ghost' does not exist"}},
		{desc: "bad force rule", method: http.MethodPatch, path: "/services/example_service/canary", body: form{"force", "body:x:1"},
			status: 400, fields: map[string]string{"force": "item 1: kind \"body\""}},
		{desc: "bad sticky_by", method: http.MethodPatch, path: "/services/example_service/canary", body: form{"sticky_by", "user"},
			status: 400, fields: map[string]string{"sticky_by": "expected ip, header:NAME or cookie:NAME"}},
		{desc: "rollout steps not increasing", method: http.MethodPost, path: "/services/example_service/rollout", body: map[string]any{"steps": []any{1, 5, 5, 100}, "interval": "30s"},
			status: 400, fields: map[string]string{"steps": "must be strictly increasing"}},
		{desc: "rollout step above 100", method: http.MethodPost, path: "/services/example_service/rollout", body: form{"steps", "1,50,150", "interval", "30"},
			status: 400, fields: map[string]string{"steps": "item 3: value should be between 0 and 100"}},
		{desc: "rollout bad interval", method: http.MethodPost, path: "/services/example_service/rollout", body: form{"steps[]", "1", "steps[]", "100", "interval", "soon"},
			status: 400, fields: map[string]string{"interval": "expected a duration"}},
		{desc: "rollout without a canary", method: http.MethodPost, path: "/services/" + "other_service" + "/rollout", body: form{"steps", "1,100", "interval", "30s"},
			status: 404, msg: "Not found"},
		{desc: "pause without a rollout", method: http.MethodPost, path: "/services/example_service/rollout/pause", status: 404, msg: "Not found"},

		// Bodies.
		{desc: "malformed JSON", method: http.MethodPost, path: "/upstreams", body: raw{"application/json", `{"name": "u2",`},
			status: 400, msg: "Cannot parse JSON body"},
		{desc: "JSON array body", method: http.MethodPost, path: "/upstreams", body: raw{"application/json", `["u2"]`},
			status: 400, msg: "Cannot parse JSON body..."},
		{desc: "trailing JSON", method: http.MethodPost, path: "/upstreams", body: raw{"application/json", `{"name":"u2"} {}`},
			status: 400, msg: "Cannot parse JSON body"},
		{desc: "malformed form", method: http.MethodPost, path: "/upstreams", body: raw{"application/x-www-form-urlencoded", "name=%zz"},
			status: 400, msg: "Cannot parse form body..."},
		{desc: "form value and nested keys", method: http.MethodPatch, path: "/upstreams/api_upstream", body: form{"healthchecks", "x", "healthchecks.active.type", "tcp"},
			status: 400, msg: "Cannot parse form body...", fields: map[string]string{"healthchecks.active.type": "conflicting form keys"}},
		{desc: "unsupported content type", method: http.MethodPost, path: "/upstreams", body: raw{"text/plain", "name=u2"},
			status: 415, msg: "Unsupported Content-Type..."},
		{desc: "body too large", method: http.MethodPost, path: "/upstreams", body: raw{"application/x-www-form-urlencoded", "name=" + big},
			status: 413, msg: "request body too large..."},
		{desc: "method not allowed", method: http.MethodDelete, path: "/upstreams", status: 405, msg: "Method not allowed"},
		{desc: "bad page size", method: http.MethodGet, path: "/upstreams?size=0", status: 400, msg: "size must be an integer between 1 and 1000"},
		{desc: "bad offset", method: http.MethodGet, path: "/upstreams?offset=@@@", status: 400, msg: "'@@@' is not a valid offset"},
		{desc: "bad query string", method: http.MethodGet, path: "/upstreams?offset=%zz", status: 400, msg: "invalid query string..."},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			e := newEnv(t, fileRich)
			e.fk.discover("example_upstream", "consul:web", upstreamTarget("10.0.0.9:8080", 10))
			setup(e)
			before, n := e.fk.docJSON(), e.fk.mutates
			r := e.do(c.method, c.path, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d\n%s", r.status, c.status, r.raw)
			}
			msg := r.str("message")
			switch {
			case c.msg == "":
			case strings.HasPrefix(c.msg, "..."):
				if !strings.HasSuffix(msg, strings.TrimPrefix(c.msg, "...")) {
					t.Fatalf("message %q, want ...%q", msg, c.msg)
				}
			case strings.HasSuffix(c.msg, "..."):
				if !strings.HasPrefix(msg, strings.TrimSuffix(c.msg, "...")) {
					t.Fatalf("message %q, want %q", msg, c.msg)
				}
			case msg != c.msg:
				t.Fatalf("message %q, want %q", msg, c.msg)
			}
			if msg == "" {
				t.Fatalf("no message: %s", r.raw)
			}
			got := r.fields()
			for k, want := range c.fields {
				reason, _ := got[k].(string)
				if !strings.HasPrefix(reason, want) {
					t.Fatalf("fields[%q] = %q, want %q...\n%s", k, reason, want, r.raw)
				}
			}
			if len(c.fields) > 0 && len(got) != len(c.fields) {
				t.Fatalf("fields %v, want only %v", got, c.fields)
			}
			if after := e.fk.docJSON(); after != before || e.fk.mutates != n {
				t.Fatalf("the Doc changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}
