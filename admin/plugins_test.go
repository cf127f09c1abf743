package admin

import (
	"net/http"
	"strings"
	"testing"
)

const filePlugins = fileRich + `consumers:
  - username: file_consumer
    keyauth_credentials:
      - key: file-key
plugins:
  - name: correlation-id
    tags: [edge]
  - name: rate-limiting
    service: example_service
    config: {minute: 10}
`

func TestPluginShapesAndDefaults(t *testing.T) {
	e := newEnv(t, filePlugins)
	l := e.must(http.StatusOK, http.MethodGet, "/plugins", nil).data()
	if len(l) != 2 {
		t.Fatalf("%d plugins", len(l))
	}
	byName := map[string]map[string]any{}
	for _, p := range l {
		byName[p["name"].(string)] = p
	}
	ci := byName["correlation-id"]
	eq(t, "global service", ci["service"], nil)
	eq(t, "config defaults", ci["config"].(map[string]any)["header_name"], "Kong-Request-ID")
	eq(t, "generator", ci["config"].(map[string]any)["generator"], "uuid#counter")
	eq(t, "enabled", ci["enabled"], true)
	eq(t, "protocols", len(ci["protocols"].([]any)), 4)
	svcID := e.must(http.StatusOK, http.MethodGet, "/services/example_service", nil).str("id")
	rl := byName["rate-limiting"]
	eq(t, "service ref", rl["service"].(map[string]any)["id"], svcID)
	eq(t, "policy", rl["config"].(map[string]any)["policy"], "local")
	eq(t, "limit_by", rl["config"].(map[string]any)["limit_by"], "consumer")
	// The nested lists and the tag filter.
	eq(t, "service plugins", len(e.must(http.StatusOK, http.MethodGet, "/services/example_service/plugins", nil).data()), 1)
	eq(t, "route plugins", len(e.must(http.StatusOK, http.MethodGet, "/routes/example_route/plugins", nil).data()), 0)
	eq(t, "tagged", len(e.must(http.StatusOK, http.MethodGet, "/plugins?tags=edge", nil).data()), 1)
	e.must(http.StatusNotFound, http.MethodGet, "/services/nope/plugins", nil)
	// The file's consumer and credential.
	c := e.must(http.StatusOK, http.MethodGet, "/consumers/file_consumer", nil)
	eq(t, "custom_id", c.body["custom_id"], nil)
	ka := e.must(http.StatusOK, http.MethodGet, "/consumers/file_consumer/key-auth", nil).data()
	if len(ka) != 1 || ka[0]["key"] != "file-key" || ka[0]["consumer"].(map[string]any)["id"] != c.str("id") {
		t.Fatalf("credentials %v", ka)
	}
	e.must(http.StatusOK, http.MethodGet, "/key-auths/file-key", nil)
	// The schema, in Kong's shape.
	var config []any
	for _, f := range e.must(http.StatusOK, http.MethodGet, "/schemas/plugins/rate-limiting", nil).body["fields"].([]any) {
		if c, ok := f.(map[string]any)["config"]; ok {
			config = c.(map[string]any)["fields"].([]any)
		}
	}
	got := map[string]map[string]any{}
	for _, f := range config {
		for k, v := range f.(map[string]any) {
			got[k] = v.(map[string]any)
		}
	}
	eq(t, "minute type", got["minute"]["type"], "number")
	eq(t, "minute gt", got["minute"]["gt"], 0)
	eq(t, "policy default", got["policy"]["default"], "local")
	eq(t, "limit_by one_of", len(got["limit_by"]["one_of"].([]any)), 6)
	eq(t, "redis", got["redis"]["type"], "record")
	e.must(http.StatusNotFound, http.MethodGet, "/schemas/plugins/acl", nil)
}

func TestPluginRefusals(t *testing.T) {
	e := newEnv(t, filePlugins)
	for _, c := range []struct {
		desc  string
		path  string
		body  any
		field string
		want  string
	}{
		{"unknown name", "/plugins", map[string]any{"name": "acl"}, "name", "the supported plugins are: correlation-id, cors, key-auth, rate-limiting, request-transformer, response-transformer"},
		{"no name", "/plugins", map[string]any{"config": map[string]any{}}, "name", "required field missing"},
		{"bad type", "/plugins", map[string]any{"name": "cors", "config": map[string]any{"max_age": "long"}}, "config.max_age", "expected a number"},
		{"bad element", "/plugins", map[string]any{"name": "cors", "config": map[string]any{"methods": []any{"GET", "FETCH"}}}, "config.methods.2", "expected one of"},
		{"nested unknown", "/plugins", map[string]any{"name": "request-transformer", "config": map[string]any{"add": map[string]any{"cookies": []any{}}}}, "config.add.cookies", "unknown field"},
		{"template", "/plugins", map[string]any{"name": "request-transformer", "config": map[string]any{"add": map[string]any{"headers": []any{"x:$(uri)"}}}}, "config.add.headers.1", "templates are not supported"},
		{"body", "/plugins", map[string]any{"name": "request-transformer", "config": map[string]any{"add": map[string]any{"body": []any{"a:b"}}}}, "config.add.body", "not supported"},
		{"cluster policy", "/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 1, "policy": "cluster"}}, "config.policy", `only "local"`},
		{"periods", "/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"second": 10, "minute": 5}}, "config", "The limit for minute(5.0) cannot be lower than the limit for second(10.0)"},
		{"header", "/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 1, "limit_by": "header"}}, "config.header_name", "required field missing"},
		{"no consumer", "/consumers/file_consumer/plugins", map[string]any{"name": "key-auth"}, "consumer", "value must be null"},
		{"unknown service", "/plugins", map[string]any{"name": "cors", "service": map[string]any{"name": "nope"}}, "service", "does not reference an existing 'services' entity"},
		{"form", "/plugins", form{"name", "rate-limiting", "config.minute", "x"}, "config.minute", "expected a number"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			r := e.must(http.StatusBadRequest, http.MethodPost, c.path, c.body)
			got, _ := r.fields()[c.field].(string)
			if !strings.Contains(got, c.want) {
				t.Fatalf("fields %v, want %s: %q", r.fields(), c.field, c.want)
			}
		})
	}
	// One of a name per scope.
	r := e.must(http.StatusConflict, http.MethodPost, "/plugins", map[string]any{"name": "correlation-id"})
	eq(t, "409", r.str("message"), `UNIQUE violation detected on '{consumer=null,name="correlation-id",route=null,service=null}'`)
	e.must(http.StatusCreated, http.MethodPost, "/routes/example_route/plugins", map[string]any{"name": "correlation-id"})
	// A form's numbers are converted by the schema.
	r = e.must(http.StatusCreated, http.MethodPost, "/routes/example_route/plugins", form{"name", "rate-limiting", "config.minute", "5", "config.hide_client_headers", "true"})
	eq(t, "minute", r.body["config"].(map[string]any)["minute"], 5)
	eq(t, "hide", r.body["config"].(map[string]any)["hide_client_headers"], true)
}

func TestPluginPatchPutDelete(t *testing.T) {
	e := newEnv(t, filePlugins)
	p := e.must(http.StatusCreated, http.MethodPost, "/services/example_service/plugins",
		map[string]any{"name": "cors", "config": map[string]any{"origins": []any{"http://a"}, "max_age": 60}})
	id := p.str("id")
	// PATCH merges config field by field.
	r := e.must(http.StatusOK, http.MethodPatch, "/plugins/"+id, map[string]any{"config": map[string]any{"credentials": true}})
	cfg := r.body["config"].(map[string]any)
	eq(t, "kept", cfg["max_age"], 60)
	eq(t, "set", cfg["credentials"], true)
	eq(t, "scope kept", r.body["service"] != nil, true)
	// PUT replaces it whole (here: global).
	r = e.must(http.StatusOK, http.MethodPut, "/plugins/"+id, map[string]any{"name": "cors"})
	eq(t, "global", r.body["service"], nil)
	eq(t, "defaults", r.body["config"].(map[string]any)["max_age"], nil)
	// A file plugin is edited in the admin layer.
	var fileRL string
	for _, x := range e.must(http.StatusOK, http.MethodGet, "/plugins", nil).data() {
		if x["name"] == "rate-limiting" {
			fileRL = x["id"].(string)
		}
	}
	e.must(http.StatusOK, http.MethodPatch, "/plugins/"+fileRL, map[string]any{"config": map[string]any{"minute": 20}})
	eq(t, "file plugin patched", e.must(http.StatusOK, http.MethodGet, "/plugins/"+fileRL, nil).body["config"].(map[string]any)["minute"], 20)
	e.must(http.StatusNoContent, http.MethodDelete, "/plugins/"+fileRL, nil)
	e.must(http.StatusNotFound, http.MethodGet, "/plugins/"+fileRL, nil)
}

// TestPluginScopesFollowTheirEntities: a rename is followed, a deletion
// takes the entity's plugins and credentials with it (Kong's cascades).
func TestPluginScopesFollowTheirEntities(t *testing.T) {
	e := newEnv(t, filePlugins)
	e.must(http.StatusCreated, http.MethodPost, "/consumers", map[string]any{"username": "carol", "custom_id": "c1"})
	e.must(http.StatusConflict, http.MethodPost, "/consumers", map[string]any{"username": "carol2", "custom_id": "c1"})
	e.must(http.StatusBadRequest, http.MethodPost, "/consumers", map[string]any{"tags": []any{"x"}})
	e.must(http.StatusCreated, http.MethodPost, "/consumers/carol/key-auth", map[string]any{"key": "carol-key"})
	e.must(http.StatusConflict, http.MethodPost, "/consumers/carol/key-auth", map[string]any{"key": "file-key"})
	cp := e.must(http.StatusCreated, http.MethodPost, "/consumers/carol/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"hour": 5}})
	e.must(http.StatusCreated, http.MethodPost, "/routes/example_route/plugins", map[string]any{"name": "key-auth"})

	// Renames.
	e.must(http.StatusOK, http.MethodPatch, "/consumers/carol", map[string]any{"username": "caroline"})
	eq(t, "plugin follows the consumer", len(e.must(http.StatusOK, http.MethodGet, "/consumers/caroline/plugins", nil).data()), 1)
	eq(t, "credential follows the consumer", len(e.must(http.StatusOK, http.MethodGet, "/consumers/caroline/key-auth", nil).data()), 1)
	e.must(http.StatusOK, http.MethodPatch, "/routes/example_route", map[string]any{"name": "renamed_route"})
	eq(t, "plugin follows the route", len(e.must(http.StatusOK, http.MethodGet, "/routes/renamed_route/plugins", nil).data()), 1)

	// Deletions cascade.
	e.must(http.StatusNoContent, http.MethodDelete, "/consumers/caroline", nil)
	e.must(http.StatusNotFound, http.MethodGet, "/plugins/"+cp.str("id"), nil)
	e.must(http.StatusNotFound, http.MethodGet, "/key-auths/carol-key", nil)
	e.must(http.StatusNoContent, http.MethodDelete, "/routes/renamed_route", nil)
	eq(t, "route plugin deleted", len(e.must(http.StatusOK, http.MethodGet, "/plugins", nil).data()), 2)
}

// TestNestedByID: an entity read, changed or deleted under a parent must
// belong to it.
func TestNestedByID(t *testing.T) {
	e := newEnv(t, filePlugins)
	p := e.must(http.StatusCreated, http.MethodPost, "/routes/example_route/plugins", map[string]any{"name": "cors"})
	id := p.str("id")
	e.must(http.StatusOK, http.MethodGet, "/routes/example_route/plugins/"+id, nil)
	e.must(http.StatusNotFound, http.MethodGet, "/services/example_service/plugins/"+id, nil)
	e.must(http.StatusNotFound, http.MethodDelete, "/services/example_service/plugins/"+id, nil)
	e.must(http.StatusOK, http.MethodPatch, "/routes/example_route/plugins/"+id, map[string]any{"enabled": false})
	e.must(http.StatusCreated, http.MethodPost, "/consumers", map[string]any{"username": "dave"})
	e.must(http.StatusNotFound, http.MethodGet, "/consumers/dave/key-auth/file-key", nil)
	e.must(http.StatusOK, http.MethodGet, "/consumers/file_consumer/key-auth/file-key", nil)
	e.must(http.StatusNoContent, http.MethodDelete, "/routes/example_route/plugins/"+id, nil)
	e.must(http.StatusNotFound, http.MethodGet, "/plugins/"+id, nil)
	// PUT of a credential by id: created under the URL's consumer, then
	// replaced.
	kid := "6b8f1f0e-2d3c-4b5a-9e8f-0a1b2c3d4e5f"
	r := e.must(http.StatusCreated, http.MethodPut, "/consumers/dave/key-auth/"+kid, map[string]any{"key": "dave-1"})
	eq(t, "id kept", r.str("id"), kid)
	r = e.must(http.StatusOK, http.MethodPut, "/consumers/dave/key-auth/"+kid, map[string]any{"key": "dave-2"})
	eq(t, "replaced", r.str("key"), "dave-2")
	e.must(http.StatusNotFound, http.MethodPut, "/consumers/file_consumer/key-auth/"+kid, map[string]any{"key": "x"})
}
