package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// deckDump is what `deck gateway dump` writes for a small setup: Kong's
// meta keys, ids, and every Kong field at its default.
const deckDump = `_format_version: "3.0"
_transform: true
_comment: exported by deck
_info:
  select_tags: [team-a]
  defaults: {}
_workspace: default
services:
- connect_timeout: 60000
  enabled: true
  host: api_up
  id: 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01
  name: api
  port: 80
  protocol: http
  read_timeout: 60000
  retries: 5
  write_timeout: 60000
  tags: [team-a]
  ws_id: 5b1a9c2e-7d3f-4e8a-9c1b-2f6e8d4a7c10
  created_at: 1700000000
  updated_at: 1700000001
  ca_certificates: null
  client_certificate: null
  tls_verify: null
  routes:
  - https_redirect_status_code: 426
    id: 7e2b4d6f-1a3c-4e5f-8a9b-0c1d2e3f4a5b
    name: api-route
    path_handling: v0
    paths: [/api]
    preserve_host: false
    protocols: [http, https]
    regex_priority: 0
    request_buffering: true
    response_buffering: true
    strip_path: true
    snis: null
    sources: []
    destinations: null
    tags: [team-a]
upstreams:
- algorithm: round-robin
  hash_fallback: none
  hash_on: none
  hash_on_cookie_path: /
  healthchecks:
    active:
      concurrency: 10
      healthy:
        http_statuses: [200, 302]
        interval: 0
        successes: 0
      http_path: /
      https_verify_certificate: true
      timeout: 1
      type: http
      unhealthy:
        http_failures: 0
        http_statuses: [429, 404, 500, 501, 502, 503, 504, 505]
        interval: 0
        tcp_failures: 0
        timeouts: 0
    passive:
      healthy:
        http_statuses: [200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308]
        successes: 0
      type: http
      unhealthy:
        http_failures: 0
        http_statuses: [429, 500, 503]
        tcp_failures: 0
        timeouts: 0
    threshold: 0
  host_header: null
  id: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d
  name: api_up
  slots: 10000
  use_srv_name: false
  hash_fallback_header: null
  tags: [team-a]
targets:
- target: 127.0.0.1:9001
  upstream:
    id: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d
  weight: 100
  id: 1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b
  tags: [team-a]
- target: 127.0.0.1:9002
  upstream: api_up
  weight: 50
routes:
- name: by-id
  paths: [/by-id]
  service: {id: 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01}
- name: no-service
  paths: [/none]
  service: null
`

// TestDeckDumpLoads: a decK dump parses, ids are kept, top-level targets
// join their upstream, routes find their service by id or have none.
func TestDeckDumpLoads(t *testing.T) {
	f, err := Parse("kong.yaml", []byte(deckDump), nil)
	if err != nil {
		t.Fatal(err)
	}
	u := f.Upstreams[0]
	if u.ID != "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d" || len(u.Targets) != 2 || u.Targets[0].ID != "1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b" ||
		u.Targets[1].Weight != 50 || u.Targets[1].ID != "" {
		t.Fatalf("upstream %+v", u)
	}
	if s := f.Services[0]; s.ID != "0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01" || s.Name != "api" {
		t.Fatalf("service %+v", s)
	}
	want := map[string]string{"api-route": "api", "by-id": "api", "no-service": ""}
	for _, r := range f.Routes {
		if svc, ok := want[r.Name]; !ok || r.Service != svc {
			t.Errorf("route %s: service %q, want %q", r.Name, r.Service, svc)
		}
	}
	if f.Routes[0].ID != "7e2b4d6f-1a3c-4e5f-8a9b-0c1d2e3f4a5b" {
		t.Errorf("route id %q", f.Routes[0].ID)
	}
	// The same document through ParseDeclarative.
	if _, err := ParseDeclarative("config", []byte(deckDump)); err != nil {
		t.Fatal(err)
	}
}

// errAt reports whether err holds an error at line:col whose reason
// starts with msg.
func errAt(err error, line, col int, msg string) bool {
	var l *ErrorList
	if !errors.As(err, &l) {
		return false
	}
	for _, e := range l.Errors {
		if e.Line == line && e.Col == col && strings.HasPrefix(e.Msg, msg) {
			return true
		}
	}
	return false
}

// TestKongFieldsRefused: every Kong-only field of every kind, set to a
// value Outrigger cannot honour, is an error at the value naming the
// field and saying why; at its default (or null, or []) it loads.
func TestKongFieldsRefused(t *testing.T) {
	entity := map[string]string{
		KindUpstream: "upstreams:\n  - name: u\n    %s\n",
		KindTarget:   "upstreams:\n  - name: u\n    targets:\n      - target: 127.0.0.1:1\n        %s\n",
		KindService:  "services:\n  - name: s\n    host: h\n    %s\n",
		KindRoute:    "routes:\n  - name: r\n    paths: [/]\n    %s\n",
		KindPlugin:   "plugins:\n  - name: cors\n    %s\n",
		KindKeyAuth:  "consumers:\n  - username: a\n    keyauth_credentials:\n      - key: k\n        %s\n",
	}
	line := map[string]int{KindUpstream: 3, KindTarget: 5, KindService: 4, KindRoute: 4, KindPlugin: 3, KindKeyAuth: 5}
	col := map[string]int{KindUpstream: 5, KindTarget: 9, KindService: 5, KindRoute: 5, KindPlugin: 5, KindKeyAuth: 9}
	n := 0
	for kind, tmpl := range entity {
		for _, kf := range KongFields(kind) {
			n++
			bad := "bogus-value"
			if kf.Default == "true" || kf.Default == "false" {
				bad = map[string]string{"true": "false", "false": "true"}[kf.Default]
			} else if kf.Default == "426" {
				bad = "301"
			}
			src := fmt.Sprintf(tmpl, kf.Name+": "+bad)
			_, err := Parse("k.yaml", []byte(src), nil)
			msg := kf.Name + ": " + kf.Refusal()
			if !errAt(err, line[kind], col[kind]+len(kf.Name)+2, msg) {
				t.Errorf("%s.%s = %s: got %v, want %d:%d: %s", kind, kf.Name, bad, err, line[kind], col[kind]+len(kf.Name)+2, msg)
			}
			for _, ok := range []string{"null", "[]", kf.Default} {
				if ok == "" {
					continue
				}
				if _, err := Parse("k.yaml", []byte(fmt.Sprintf(tmpl, kf.Name+": "+ok)), nil); err != nil {
					t.Errorf("%s.%s = %s refused: %v", kind, kf.Name, ok, err)
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d Kong fields covered", n)
	}
}

// TestDeclarativeErrors: the meta keys, ids and references are checked,
// each error at its FILE:LINE:COL.
func TestDeclarativeErrors(t *testing.T) {
	for _, tc := range []struct {
		desc, src string
		line, col int
		msg       string
	}{
		{"format version", `_format_version: "4.0"`, 1, 18, `_format_version: unsupported version "4.0"; expected one of: 1.1, 2.1, 3.0`},
		{"format version not a string", `_format_version: 3.0`, 1, 18, `_format_version: expected a string`},
		{"transform", `_transform: maybe`, 1, 13, `_transform: expected a boolean`},
		{"workspace", `_workspace: other`, 1, 13, `_workspace: only the default workspace exists in outrigger`},
		{"info defaults", "_info:\n  defaults: {services: {retries: 1}}", 2, 13, `_info.defaults: not supported by outrigger`},
		{"info select_tags", "_info:\n  select_tags: [\"a b\"]", 2, 17, `tags: invalid tag "a b"`},
		{"info unknown", "_info:\n  nope: 1", 2, 3, `unknown field "nope" in _info`},
		{"bad id", "services:\n  - {name: s, host: h, id: not-a-uuid}", 2, 28, `id: expected a UUID, got "not-a-uuid"`},
		{"bad consumer id", "consumers:\n  - {username: u, id: not-a-uuid}", 2, 23, `id: expected a UUID, got "not-a-uuid"`},
		{"bad credential id", "consumers:\n  - username: u\n    keyauth_credentials:\n      - {key: k, id: x1}", 4, 22, `id: expected a UUID, got "x1"`},
		{"bad ws_id", "services:\n  - {name: s, host: h, ws_id: x}", 2, 31, `ws_id: expected a UUID`},
		{"bad created_at", "services:\n  - {name: s, host: h, created_at: yesterday}", 2, 36, `created_at: expected an integer`},
		{"duplicate id", "services:\n  - {name: a, host: h, id: 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01}\n  - {name: b, host: h, id: 0D3C8F1E-52F3-4C9B-9A43-8F1E2A7C6B01}", 3, 5,
			`id: duplicate service id 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01 (first at line 2)`},
		{"unknown service id", "routes:\n  - {name: r, paths: [/], service: {id: 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01}}", 2, 36, `service: unknown service id 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01`},
		{"service ref without key", "routes:\n  - {name: r, paths: [/], service: {}}", 2, 36, `service: expected {name: ...} or {id: ...}`},
		{"service id and name disagree", "services:\n  - {name: s, host: h, id: 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01}\n  - {name: t, host: h}\nroutes:\n  - {name: r, paths: [/], service: {name: t, id: 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01}}", 5, 36,
			`service: id 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01 is service "s", not "t"`},
		{"target of an unknown upstream", "targets:\n  - {target: 127.0.0.1:1, upstream: nope}", 2, 37, `upstream: unknown upstream "nope"`},
		{"target without upstream", "targets:\n  - {target: 127.0.0.1:1}", 2, 5, `target: upstream is required for a top-level target`},
		{"target twice", "upstreams:\n  - name: u\n    targets: [{target: 127.0.0.1:1}]\ntargets:\n  - {target: 127.0.0.1:1, upstream: u}", 5, 14,
			`target: duplicate target 127.0.0.1:1 in upstream "u"`},
		{"canaries in the file", "canaries: []", 1, 11, "canaries: only in a declarative document posted to /config"},
		{"overrides in the file", "overrides:\n  - {upstream: u}", 2, 3, "overrides: only in a declarative document posted to /config"},
		{"https redirect code", "routes:\n  - {name: r, paths: [/], https_redirect_status_code: 303}", 2, 55, "https_redirect_status_code: expected one of 426, 301, 302, 307, 308, got 303"},
		{"unnamed service without id", "services:\n  - {host: h}", 2, 5, `service: name (or id) is required`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Parse("d.yaml", []byte(tc.src+"\n"), nil)
			if !errAt(err, tc.line, tc.col, tc.msg) {
				t.Fatalf("got:\n%v\nwant d.yaml:%d:%d: %s", err, tc.line, tc.col, tc.msg)
			}
		})
	}
}

// TestParseDeclarativeRefusesSections: a declarative document holds
// entities only; the process's sections are errors at their value.
func TestParseDeclarativeRefusesSections(t *testing.T) {
	src := "_format_version: \"3.0\"\nproxy:\n  listen: 127.0.0.1:1\nlog: {level: debug}\nservices: []\n"
	_, err := ParseDeclarative("config", []byte(src))
	if !errAt(err, 3, 3, "proxy: not allowed in a declarative configuration") || !errAt(err, 4, 6, "log: not allowed") {
		t.Fatalf("got %v", err)
	}
	if _, err := ParseDeclarative("config", []byte("services:\n  - {name: s, host: \"${HOST}\"}\n")); !errAt(err, 2, 21, "host: environment variable HOST is not set") {
		t.Fatalf("a variable: %v", err)
	}
}

// TestExportRoundTrip: exporting a file and parsing the export gives the
// same export again, byte for byte, with every setting kept.
func TestExportRoundTrip(t *testing.T) {
	src := deckDump + `certificates: []
`
	f, err := Parse("kong.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	rich := `upstreams:
  - name: rich
    algorithm: consistent-hashing
    hash_on: header
    hash_on_header: X-User
    sticky_sessions_cookie_ttl: 5m
    slow_start: {window: 30s, aggression: 2}
    panic: {min_healthy_percent: 50, mode: fail-closed}
    circuit_breakers: {max_requests: 10, max_pending_requests: 4}
    retry_budget: {retry_ratio: 0.5, ttl: 30s}
    retry_policy: {retry_on: [connect-failure, "503"], per_try_timeout: 2s, retry_backoff: {base_interval: 10ms}}
    healthchecks:
      threshold: 25
      active: {type: grpc, grpc_service: svc, headers: {x-a: [b]}, healthy: {interval: 2, successes: 3}}
      passive: {unhealthy: {http_failures: 3}, base_ejection_time: 10s, success_rate: {minimum_hosts: 3}}
    discovery:
      dns_srv: {name: _http._tcp.example.test}
      empty_grace: 5s
    targets:
      - {target: 10.0.0.1:80, weight: 0, priority: 2, backup: true, zone: z1, tags: [a]}
services:
  - name: s
    host: rich
    path: /p
    protocol: https
    tls_verify: false
    tls_verify_depth: 3
    grpc_idempotent_methods: [/a.B/*]
    routes:
      - {name: r, hosts: [example.test], headers: {x-v: [1]}, methods: [get], strip_path: false, regex_priority: -2, path_handling: v1, protocols: [https]}
`
	g, err := Parse("rich.yaml", []byte(rich), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []*File{f, g} {
		first, err := Export(file)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseDeclarative("config", first)
		if err != nil {
			t.Fatalf("the export does not parse: %v\n%s", err, first)
		}
		second, err := Export(back)
		if err != nil {
			t.Fatal(err)
		}
		if string(first) != string(second) {
			t.Fatalf("export not stable:\n--- first\n%s\n--- second\n%s", first, second)
		}
		for i := range file.Upstreams {
			a, b := file.Upstreams[i], back.Upstreams[i]
			a.Pos, b.Pos = Pos{}, Pos{}
			for j := range a.Targets {
				a.Targets[j].Pos, b.Targets[j].Pos = Pos{}, Pos{}
			}
			a.Discovery, b.Discovery = nil, nil
			if !reflect.DeepEqual(a, b) {
				t.Errorf("upstream changed:\n%+v\n%+v", a, b)
			}
		}
	}
}

// TestKongCACertificateIDs: Kong's ca_certificates ids are refused with
// what to write instead.
func TestKongCACertificateIDs(t *testing.T) {
	src := "services:\n  - name: s\n    url: https://h:443\n    ca_certificates: [0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01]\n"
	_, err := Parse("k.yaml", []byte(src), nil)
	if !errAt(err, 4, 5, "ca_certificates: 0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01 is a Kong ca_certificates entity id; outrigger takes PEM file paths or inline PEM") {
		t.Fatalf("got %v", err)
	}
}

// TestLayerKeysPlain: a declarative document's layer keys are kept as
// plain values with their positions; a variable that does not expand is
// an error, not a null.
func TestLayerKeysPlain(t *testing.T) {
	f, err := ParseDeclarative("config", []byte("canaries:\n  - {service: s, upstream: c, percent: 5}\noverrides:\n  - {upstream: u, tags: [a], share: 2.5}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Layer.Canaries[0]
	if c.Pos != (Pos{Line: 2, Col: 5}) || c.Value["percent"] != 5 || c.Value["service"] != "s" {
		t.Fatalf("canary %+v", c)
	}
	if o := f.Layer.Overrides[0]; o.Value["share"] != 2.5 || len(o.Value["tags"].([]any)) != 1 {
		t.Fatalf("override %+v", o)
	}
	_, err = ParseDeclarative("config", []byte("canaries:\n  - {service: s, upstream: \"${UP}\"}\n"))
	if !errAt(err, 2, 28, "upstream: environment variable UP is not set") {
		t.Fatalf("got %v", err)
	}
}

// TestExportPlugins: plugins (nested ones exported at the top level with
// their scope) and consumers with their credentials round-trip too.
func TestExportPlugins(t *testing.T) {
	src := `services:
  - name: s
    url: http://127.0.0.1:1
    plugins:
      - name: cors
    routes:
      - name: r
        paths: [/]
        plugins:
          - name: key-auth
            protocols: [https]
consumers:
  - username: alice
    keyauth_credentials:
      - key: k1
      - key: k2
  - custom_id: c-9
    plugins:
      - name: request-transformer
plugins:
  - name: rate-limiting
    consumer: alice
    route: r
    config: {second: 1}
  - id: 0A1B2C3D-1111-4222-8333-444455556666
    name: correlation-id
    enabled: false
`
	f, err := Parse("p.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := Export(f)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseDeclarative("config", first)
	if err != nil {
		t.Fatalf("the export does not parse: %v\n%s", err, first)
	}
	second, _ := Export(back)
	if string(first) != string(second) {
		t.Fatalf("export not stable:\n%s\n---\n%s", first, second)
	}
	if len(back.Plugins) != len(f.Plugins) || len(back.Consumers) != 2 || len(back.KeyAuths) != 2 {
		t.Fatalf("plugins %d/%d consumers %d keys %d", len(back.Plugins), len(f.Plugins), len(back.Consumers), len(back.KeyAuths))
	}
	for i := range f.Plugins {
		if a, b := f.Plugins[i], back.Plugins[i]; a.ID != b.ID || a.Service != b.Service || a.Route != b.Route || a.Consumer != b.Consumer {
			t.Errorf("plugin %d: %+v, back %+v", i, a, b)
		}
	}
}
