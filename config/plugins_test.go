package config

import (
	"strings"
	"testing"
)

func TestPluginDefaults(t *testing.T) {
	for name, want := range map[string]map[string]any{
		"key-auth":       {"hide_credentials": false, "key_in_header": true, "key_in_query": true, "key_in_body": false, "run_on_preflight": true, "anonymous": nil},
		"correlation-id": {"header_name": "Kong-Request-ID", "generator": "uuid#counter", "echo_downstream": false},
		"cors":           {"credentials": false, "preflight_continue": false, "allow_origin_absent": true, "max_age": nil, "origins": nil},
	} {
		s, _ := PluginSchemaOf(name)
		cfg, errs := CheckPluginConfig(s, nil)
		if errs != nil {
			t.Fatalf("%s: %v", name, errs)
		}
		for k, v := range want {
			if cfg[k] != v {
				t.Errorf("%s.%s = %v, want %v", name, k, cfg[k], v)
			}
		}
	}
	s, _ := PluginSchemaOf("rate-limiting")
	cfg, _ := CheckPluginConfig(s, map[string]any{"minute": Loose("5")})
	if cfg["minute"] != 5.0 || cfg["policy"] != "local" || cfg["limit_by"] != "consumer" || cfg["error_code"] != 429.0 ||
		cfg["error_message"] != "API rate limit exceeded" || cfg["redis"].(map[string]any)["port"] != 6379.0 {
		t.Fatalf("%v", cfg)
	}
	if _, errs := CheckPluginConfig(s, map[string]any{"minute": 0.0}); len(errs) != 1 || errs[0].Path != "minute" || errs[0].Msg != "value must be greater than 0" {
		t.Fatalf("%v", errs)
	}
	s, _ = PluginSchemaOf("request-transformer")
	cfg, _ = CheckPluginConfig(s, nil)
	if l := cfg["add"].(map[string]any)["headers"].([]any); len(l) != 0 {
		t.Fatalf("%v", cfg)
	}
}

func TestPluginsInTheFile(t *testing.T) {
	f := mustParse(t, `
services:
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
`, nil)
	if len(f.Plugins) != 5 || len(f.Consumers) != 2 || len(f.KeyAuths) != 2 {
		t.Fatalf("%d plugins, %d consumers, %d credentials", len(f.Plugins), len(f.Consumers), len(f.KeyAuths))
	}
	by := map[string]Plugin{}
	for _, p := range f.Plugins {
		by[p.Name] = p
	}
	if p := by["cors"]; p.Service != "s" || p.Route != "" || len(p.Protocols) != 4 || p.Config["allow_origin_absent"] != true {
		t.Errorf("cors %+v", p)
	}
	if p := by["key-auth"]; p.Route != "r" || p.Service != "" || len(p.Protocols) != 1 {
		t.Errorf("key-auth %+v", p)
	}
	if p := by["rate-limiting"]; p.Consumer != "alice" || p.Route != "r" || p.ID != PluginScopeID("rate-limiting", "", "r", "alice") {
		t.Errorf("rate-limiting %+v", p)
	}
	if p := by["correlation-id"]; p.Enabled || p.ID != "0a1b2c3d-1111-4222-8333-444455556666" {
		t.Errorf("correlation-id %+v", p)
	}
	if c := f.Consumers[1]; c.Key() != c.ID || c.ID != StableID("consumer", "custom_id:c-9") || by["request-transformer"].Consumer != c.ID {
		t.Errorf("consumer %+v, its plugin %+v", c, by["request-transformer"])
	}
	if k := f.KeyAuths[1]; k.Consumer != "alice" || k.Key != "k2" || k.ID == f.KeyAuths[0].ID {
		t.Errorf("credential %+v", k)
	}
}

func TestPluginFileErrors(t *testing.T) {
	for _, c := range []struct{ desc, src, want string }{
		{"unknown service", "plugins:\n  - name: cors\n    service: nope\n", "f.yaml:3:14: service: unknown service \"nope\""},
		{"unknown route", "plugins:\n  - name: cors\n    route: nope\n", "f.yaml:3:12: route: unknown route \"nope\""},
		{"unknown consumer", "plugins:\n  - name: rate-limiting\n    consumer: bob\n    config: {hour: 1}\n", "f.yaml:3:15: consumer: unknown consumer \"bob\""},
		{"same scope", "plugins:\n  - name: cors\n  - name: cors\n", "f.yaml:3:5: plugin: a cors plugin is already configured for this scope (at line 2)"},
		{"no name", "plugins:\n  - config: {}\n", "f.yaml:2:5: plugin: name is required"},
		{"nested scope", "services:\n  - name: s\n    url: http://127.0.0.1:1\n    plugins:\n      - name: cors\n        service: s\n", "f.yaml:6:9: service: not allowed in a plugin nested in a service, a route or a consumer"},
		{"nested in a consumer", "consumers:\n  - username: a\n    plugins:\n      - name: key-auth\n", "f.yaml:4:9: plugin: the key-auth plugin cannot be scoped to a consumer"},
		{"array element", "plugins:\n  - name: cors\n    config:\n      methods: [GET, BREW]\n", "f.yaml:4:22: config.methods.2: expected one of"},
		{"entity check", "plugins:\n  - name: rate-limiting\n    config: {}\n", "f.yaml:3:13: config: at least one of these fields must be non-empty"},
		{"bad protocol", "plugins:\n  - name: cors\n    protocols: [tcp]\n", "f.yaml:3:17: protocols: \"tcp\" is not one of grpc, grpcs, http, https"},
		{"duplicate key", "consumers:\n  - username: a\n    keyauth_credentials: [{key: k}]\n  - username: b\n    keyauth_credentials: [{key: k}]\n", "f.yaml:5:27: keyauth_credential: duplicate key (first at line 3)"},
		{"no username", "consumers:\n  - tags: [x]\n", "f.yaml:2:5: consumer: at least one of username or custom_id is required"},
		{"key_in_body", "plugins:\n  - name: key-auth\n    config: {key_in_body: true}\n", "f.yaml:3:27: config.key_in_body: reading the key from the request body is not supported"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(c.src), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant %s", err, c.want)
			}
		})
	}
}
