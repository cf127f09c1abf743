package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// strip removes the keys that legitimately differ between two entities.
func strip(m map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for _, k := range append(keys, "id", "name", "created_at", "updated_at") {
		delete(out, k)
	}
	return out
}

// TestJSONAndFormBodies: a JSON body and the equivalent form (urlencoded
// and multipart) make the same entity.
func TestJSONAndFormBodies(t *testing.T) {
	cases := []struct {
		desc   string
		path   string // POST here
		json   func(n int) any
		form   func(n int) form
		ignore []string
	}{
		{desc: "upstream with nested healthchecks", path: "/upstreams",
			json: func(n int) any {
				return map[string]any{"name": fmt.Sprint("u", n), "algorithm": "consistent-hashing", "hash_on": "header", "hash_on_header": "X-User", "hash_fallback": "ip", "slots": 100,
					"healthchecks": map[string]any{"threshold": 25, "active": map[string]any{"http_path": "/health", "type": "tcp", "headers": map[string]any{"X-Probe": []any{"1"}},
						"healthy": map[string]any{"interval": 5, "successes": 3, "http_statuses": []any{200, 204}}, "unhealthy": map[string]any{"interval": 2, "tcp_failures": 4}},
						"passive": map[string]any{"unhealthy": map[string]any{"http_failures": 7}}}}
			},
			form: func(n int) form {
				return form{"name", fmt.Sprint("u", n), "algorithm", "consistent-hashing", "hash_on", "header", "hash_on_header", "X-User", "hash_fallback", "ip", "slots", "100",
					"healthchecks.threshold", "25", "healthchecks.active.http_path", "/health", "healthchecks.active.type", "tcp", "healthchecks.active.headers.X-Probe", "1",
					"healthchecks.active.healthy.interval", "5", "healthchecks.active.healthy.successes", "3",
					"healthchecks.active.healthy.http_statuses[]", "200", "healthchecks.active.healthy.http_statuses[]", "204",
					"healthchecks.active.unhealthy.interval", "2", "healthchecks.active.unhealthy.tcp_failures", "4",
					"healthchecks.passive.unhealthy.http_failures", "7"}
			}},
		{desc: "service by url", path: "/services",
			json: func(n int) any {
				return map[string]any{"name": fmt.Sprint("s", n), "url": "https://example_upstream:8443/api", "retries": 2, "read_timeout": 1500}
			},
			form: func(n int) form {
				return form{"name", fmt.Sprint("s", n), "url", "https://example_upstream:8443/api", "retries", "2", "read_timeout", "1500"}
			}},
		{desc: "route with every matcher", path: "/routes",
			json: func(n int) any {
				return map[string]any{"name": fmt.Sprint("r", n), "paths": []any{fmt.Sprint("/a", n), "~/b/\\d+$"}, "hosts": []any{"API.example.com", "*.example.org"},
					"methods": []any{"get", "POST"}, "headers": map[string]any{"X-Version": []any{"v2", "v3"}}, "strip_path": false, "preserve_host": true,
					"regex_priority": 5, "path_handling": "v1", "service": map[string]any{"name": "example_service"}}
			},
			form: func(n int) form {
				return form{"name", fmt.Sprint("r", n), "paths", fmt.Sprint("/a", n), "paths", "~/b/\\d+$", "hosts[]", "API.example.com", "hosts[]", "*.example.org",
					"methods[1]", "get", "methods[2]", "POST", "headers.X-Version", "v2", "headers.X-Version", "v3", "strip_path", "false", "preserve_host", "true",
					"regex_priority", "5", "path_handling", "v1", "service.name", "example_service"}
			}, ignore: []string{"paths"}},
		{desc: "target with tags", path: "/upstreams/blue_upstream/targets",
			json: func(n int) any {
				return map[string]any{"target": fmt.Sprint("10.1.0.", n, ":80"), "weight": 7, "tags": []any{"a", "b"}}
			},
			form: func(n int) form {
				return form{"target", fmt.Sprint("10.1.0.", n, ":80"), "weight", "7", "tags[]", "a", "tags[]", "b"}
			},
			ignore: []string{"target"}},
		{desc: "override by meta", path: "/upstreams/blue_upstream/overrides",
			json: func(n int) any {
				return map[string]any{"meta": map[string]any{"version": fmt.Sprint("v", n)}, "tags": []any{"x"}, "share": 12.5}
			},
			form:   func(n int) form { return form{"meta.version", fmt.Sprint("v", n), "tags", "x", "share", "12.5"} },
			ignore: []string{"meta"}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			e := newEnv(t, fileRich)
			a := e.must(http.StatusCreated, http.MethodPost, c.path, c.json(1))
			b := e.must(http.StatusCreated, http.MethodPost, c.path, c.form(2))
			eq(t, "form vs JSON", strip(b.body, c.ignore...), strip(a.body, c.ignore...))
			// Multipart carries the same form.
			mp := multipartBody(c.form(3))
			m := e.must(http.StatusCreated, http.MethodPost, c.path, mp)
			eq(t, "multipart vs JSON", strip(m.body, c.ignore...), strip(a.body, c.ignore...))
		})
	}
	t.Run("route values are normalised", func(t *testing.T) {
		e := newEnv(t, fileRich)
		r := e.must(http.StatusCreated, http.MethodPost, "/routes", form{"paths", "/x", "hosts", "API.example.com", "methods", "get", "headers.X-Version", "v2", "service", "example_service"})
		eq(t, "hosts", r.body["hosts"], []any{"api.example.com"})
		eq(t, "methods", r.body["methods"], []any{"GET"})
		eq(t, "headers", r.body["headers"], map[string]any{"x-version": []any{"v2"}})
		eq(t, "protocols", r.body["protocols"], []any{"http", "https"})
	})
}

// TestRoutePathHandling: path_handling defaults to v0, takes v1, and null
// puts the default back; the value reaches the effective configuration.
func TestRoutePathHandling(t *testing.T) {
	e := newEnv(t, fileRich)
	r := e.must(http.StatusCreated, http.MethodPost, "/services/example_service/routes", form{"name", "ph", "paths", "/ph"})
	eq(t, "default", r.body["path_handling"], "v0")
	r = e.must(http.StatusOK, http.MethodPatch, "/routes/ph", map[string]any{"path_handling": "v1"})
	eq(t, "patched", r.body["path_handling"], "v1")
	r = e.must(http.StatusOK, http.MethodGet, "/routes/ph", nil)
	eq(t, "read back", r.body["path_handling"], "v1")
	eff := state.Merge(e.fk.File(), e.fk.Doc())
	if i := slices.IndexFunc(eff.Routes, func(r config.Route) bool { return r.Name == "ph" }); i < 0 || eff.Routes[i].PathHandling != "v1" {
		t.Fatalf("effective routes = %+v", eff.Routes)
	}
	r = e.must(http.StatusOK, http.MethodPatch, "/routes/ph", map[string]any{"path_handling": nil})
	eq(t, "null is the default", r.body["path_handling"], "v0")
	r = e.must(http.StatusOK, http.MethodGet, "/routes/example_route", nil)
	eq(t, "file route", r.body["path_handling"], "v0")
}

func multipartBody(f form) raw {
	const boundary = "xYzZy"
	var s string
	for i := 0; i+1 < len(f); i += 2 {
		s += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + f[i] + "\"\r\n\r\n" + f[i+1] + "\r\n"
	}
	s += "--" + boundary + "--\r\n"
	return raw{ctype: "multipart/form-data; boundary=" + boundary, data: s}
}

// TestIDAndNameAddressing: every entity answers to its id and its name.
func TestIDAndNameAddressing(t *testing.T) {
	e := newEnv(t, fileRich)
	e.fk.discover("example_upstream", "consul:web", upstreamTarget("10.0.0.9:8080", 10))
	up := e.must(http.StatusCreated, http.MethodPost, "/upstreams", form{"name", "api_upstream"})
	tg := e.must(http.StatusCreated, http.MethodPost, "/upstreams/api_upstream/targets", form{"target", "10.5.0.1"})
	eq(t, "default port 8000", tg.str("target"), "10.5.0.1:8000")
	sv := e.must(http.StatusCreated, http.MethodPost, "/services", form{"name", "api", "host", "api_upstream"})
	rt := e.must(http.StatusCreated, http.MethodPost, "/services/"+sv.str("id")+"/routes", form{"name", "api_route", "paths[]", "/api"})
	cases := []struct {
		desc, byName, byID, wantID string
	}{
		{"API upstream", "/upstreams/api_upstream", "/upstreams/" + up.str("id"), up.str("id")},
		{"file upstream", "/upstreams/example_upstream", "/upstreams/" + stableID(kindUpstream, "example_upstream"), stableID(kindUpstream, "example_upstream")},
		{"API target", "/upstreams/api_upstream/targets/10.5.0.1:8000", "/upstreams/" + up.str("id") + "/targets/" + tg.str("id"), tg.str("id")},
		{"API target without port", "/upstreams/api_upstream/targets/10.5.0.1", "/upstreams/api_upstream/targets/" + tg.str("id"), tg.str("id")},
		{"file target", "/upstreams/example_upstream/targets/10.0.0.1:8080", "/upstreams/example_upstream/targets/" + targetID("example_upstream", "10.0.0.1:8080"), targetID("example_upstream", "10.0.0.1:8080")},
		{"discovered target", "/upstreams/example_upstream/targets/10.0.0.9:8080", "/upstreams/example_upstream/targets/" + targetID("example_upstream", "10.0.0.9:8080"), targetID("example_upstream", "10.0.0.9:8080")},
		{"API service", "/services/api", "/services/" + sv.str("id"), sv.str("id")},
		{"file service", "/services/example_service", "/services/" + stableID(kindService, "example_service"), stableID(kindService, "example_service")},
		{"API route", "/routes/api_route", "/routes/" + rt.str("id"), rt.str("id")},
		{"file route", "/routes/example_route", "/routes/" + stableID(kindRoute, "example_route"), stableID(kindRoute, "example_route")},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			a := e.must(http.StatusOK, http.MethodGet, c.byName, nil)
			b := e.must(http.StatusOK, http.MethodGet, c.byID, nil)
			eq(t, "id", a.str("id"), c.wantID)
			eq(t, "same entity", b.body, a.body)
		})
	}
	// PATCH by id, and the route's service reference by id.
	e.must(http.StatusOK, http.MethodPatch, "/upstreams/"+up.str("id"), form{"slots", "20"})
	eq(t, "route service", rt.body["service"].(map[string]any)["id"], sv.str("id"))
	// File ids are stable: another process derives the same ones.
	other := newEnv(t, fileRich)
	r := other.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream", nil)
	eq(t, "stable id", r.str("id"), stableID(kindUpstream, "example_upstream"))
}

// TestPaging walks lists with size and offset.
func TestPaging(t *testing.T) {
	e := newEnv(t, "")
	var want []any
	for i := range 7 {
		name := fmt.Sprintf("u%02d", i)
		e.must(http.StatusCreated, http.MethodPost, "/upstreams", form{"name", name})
		want = append(want, name)
	}
	all := e.must(http.StatusOK, http.MethodGet, "/upstreams", nil)
	if len(all.data()) != 7 || all.body["next"] != nil {
		t.Fatalf("default page: %d items, next %v", len(all.data()), all.body["next"])
	}
	var got []any
	path, pages := "/upstreams?size=3", 0
	for path != "" {
		r := e.must(http.StatusOK, http.MethodGet, path, nil)
		pages++
		for _, d := range r.data() {
			got = append(got, d["name"])
		}
		path = ""
		if next, ok := r.body["next"].(string); ok {
			u, _ := url.Parse(next)
			eq(t, "next keeps size", u.Query().Get("size"), "3")
			eq(t, "offset", r.str("offset"), u.Query().Get("offset"))
			path = next
		}
	}
	eq(t, "pages", pages, 3)
	eq(t, "every item once, in order", got, want)
	e.must(http.StatusBadRequest, http.MethodGet, "/upstreams?size=1001", nil)
	e.must(http.StatusOK, http.MethodGet, "/upstreams?size=1000", nil)
	empty := e.must(http.StatusOK, http.MethodGet, "/routes", nil)
	if d, ok := empty.body["data"].([]any); !ok || len(d) != 0 || empty.body["next"] != nil {
		t.Fatalf("empty list: %s", empty.raw)
	}
}

// TestFileEntities: the file's entities are listed, patched (copied into
// the Doc whole) and deleted (tombstones).
func TestFileEntities(t *testing.T) {
	e := newEnv(t, fileRich)
	list := e.must(http.StatusOK, http.MethodGet, "/upstreams", nil)
	names := []any{}
	for _, d := range list.data() {
		names = append(names, d["name"])
	}
	eq(t, "file upstreams listed", names, []any{"blue_upstream", "canary_upstream", "example_upstream"})
	u := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream", nil)
	hc := u.body["healthchecks"].(map[string]any)["active"].(map[string]any)
	eq(t, "file http_path", hc["http_path"], "/health")
	eq(t, "file interval", hc["healthy"].(map[string]any)["interval"], 5)

	t.Run("PATCH copies the entity whole", func(t *testing.T) {
		p := e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream", form{"algorithm", "least-connections"})
		eq(t, "algorithm", p.str("algorithm"), "least-connections")
		eq(t, "id kept", p.str("id"), stableID(kindUpstream, "example_upstream"))
		eq(t, "healthchecks kept", p.body["healthchecks"], u.body["healthchecks"])
		d := e.fk.Doc().Upstreams["example_upstream"]
		if d == nil || len(d.Targets) != 2 || d.Targets[0].ID != targetID("example_upstream", "10.0.0.1:8080") || d.Slots != 10000 || d.HashOn != "none" {
			t.Fatalf("Doc entity: %+v", d)
		}
		if d.Healthchecks != nil {
			t.Fatalf("healthchecks copied although not patched: %+v", d.Healthchecks)
		}
		// A nested PATCH merges into the file's healthchecks.
		p = e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream", form{"healthchecks.active.unhealthy.interval", "3"})
		a := p.body["healthchecks"].(map[string]any)["active"].(map[string]any)
		eq(t, "merged http_path", a["http_path"], "/health")
		eq(t, "merged healthy.interval", a["healthy"].(map[string]any)["interval"], 5)
		eq(t, "patched unhealthy.interval", a["unhealthy"].(map[string]any)["interval"], 3)
	})
	t.Run("DELETE leaves a tombstone", func(t *testing.T) {
		e.must(http.StatusNoContent, http.MethodDelete, "/upstreams/blue_upstream", nil)
		e.must(http.StatusNotFound, http.MethodGet, "/upstreams/blue_upstream", nil)
		if d := e.fk.Doc().Upstreams["blue_upstream"]; d == nil || !d.Deleted || d.ID != stableID(kindUpstream, "blue_upstream") {
			t.Fatalf("tombstone: %+v", d)
		}
		if _, ok := e.hView().eff.Upstream("blue_upstream"); ok {
			t.Fatal("still effective")
		}
		// The name can be used again.
		r := e.must(http.StatusCreated, http.MethodPost, "/upstreams", form{"name", "blue_upstream"})
		if r.str("id") == stableID(kindUpstream, "blue_upstream") {
			t.Fatal("a new entity reuses the file's id")
		}
		e.must(http.StatusOK, http.MethodGet, "/upstreams/blue_upstream", nil)
	})
	t.Run("file route and service", func(t *testing.T) {
		e.must(http.StatusOK, http.MethodPatch, "/routes/example_route", form{"strip_path", "false"})
		e.must(http.StatusNoContent, http.MethodDelete, "/routes/example_route", nil)
		if d := e.fk.Doc().Routes["example_route"]; d == nil || !d.Deleted {
			t.Fatalf("route tombstone: %+v", d)
		}
		e.must(http.StatusNoContent, http.MethodDelete, "/services/example_service", nil)
		e.must(http.StatusNotFound, http.MethodGet, "/services/example_service", nil)
	})
}

// TestPutUpserts: PUT creates (201) then replaces (200); targets survive.
func TestPutUpserts(t *testing.T) {
	e := newEnv(t, fileRich)
	r := e.must(http.StatusCreated, http.MethodPut, "/upstreams/new_upstream", form{"algorithm", "random"})
	id := r.str("id")
	e.must(http.StatusCreated, http.MethodPost, "/upstreams/new_upstream/targets", form{"target", "10.9.0.1:80"})
	r = e.must(http.StatusOK, http.MethodPut, "/upstreams/new_upstream", map[string]any{"slots": 50})
	eq(t, "id kept", r.str("id"), id)
	eq(t, "algorithm back to default", r.str("algorithm"), "round-robin")
	e.must(http.StatusOK, http.MethodGet, "/upstreams/new_upstream/targets/10.9.0.1:80", nil)
	// PUT by an unknown id creates with that id.
	nid := newID()
	r = e.must(http.StatusCreated, http.MethodPut, "/services/"+nid, form{"name", "svc", "host", "new_upstream"})
	eq(t, "id from the URL", r.str("id"), nid)
	e.must(http.StatusBadRequest, http.MethodPut, "/services/other", form{"name", "svc", "host", "x"})
	// PUT replacing a file service.
	r = e.must(http.StatusOK, http.MethodPut, "/services/example_service", form{"host", "blue_upstream"})
	eq(t, "retries back to default", r.body["retries"], 5)
	eq(t, "path reset", r.body["path"], nil)
	r = e.must(http.StatusCreated, http.MethodPut, "/routes/r9", map[string]any{"paths": []any{"/r9"}, "service": map[string]any{"id": nid}})
	eq(t, "route service", r.body["service"].(map[string]any)["name"], "svc")
	e.must(http.StatusOK, http.MethodPut, "/routes/r9", form{"hosts", "a.example", "service", "svc"})
}

// TestServiceRename carries routes and the canary along.
func TestServiceRename(t *testing.T) {
	e := newEnv(t, fileRich)
	e.must(http.StatusCreated, http.MethodPut, "/services/example_service/canary", form{"upstream", "canary_upstream", "percent", "5"})
	r := e.must(http.StatusOK, http.MethodPatch, "/services/example_service", form{"name", "renamed"})
	eq(t, "id kept", r.str("id"), stableID(kindService, "example_service"))
	rt := e.must(http.StatusOK, http.MethodGet, "/routes/example_route", nil)
	eq(t, "route follows", rt.body["service"].(map[string]any)["name"], "renamed")
	e.must(http.StatusOK, http.MethodGet, "/services/renamed/canary", nil)
	e.must(http.StatusNotFound, http.MethodGet, "/services/example_service", nil)
	// A nameless service shows name null and answers to its id.
	n := e.must(http.StatusCreated, http.MethodPost, "/services", form{"host", "10.0.0.5", "port", "9000"})
	eq(t, "name", n.body["name"], nil)
	e.must(http.StatusOK, http.MethodGet, "/services/"+n.str("id"), nil)
}

// TestWholeKongEntities: bodies shaped like Kong Manager's or decK's,
// with Kong's fields Outrigger lacks at their defaults, are accepted.
func TestWholeKongEntities(t *testing.T) {
	e := newEnv(t, fileRich)
	e.must(http.StatusCreated, http.MethodPost, "/routes", map[string]any{
		"name": nil, "paths": []any{"/api/atelier"}, "protocols": []any{"http"}, "methods": nil, "hosts": nil, "headers": nil,
		"https_redirect_status_code": 426, "path_handling": "v0", "request_buffering": true, "response_buffering": true,
		"snis": nil, "sources": nil, "destinations": nil, "tags": []any{}, "regex_priority": 0, "strip_path": true, "preserve_host": false,
		"service": map[string]any{"id": stableID(kindService, "example_service")},
	})
	e.must(http.StatusCreated, http.MethodPost, "/upstreams", map[string]any{
		"name": "deck_upstream", "tags": nil, "host_header": nil, "client_certificate": nil, "use_srv_name": false, "hash_fallback_header": nil,
	})
	e.must(http.StatusCreated, http.MethodPost, "/services", form{"name", "mgr", "host", "deck_upstream", "enabled", "true", "tls_verify", ""})
	// A GET answer can be PUT back as is.
	for _, path := range []string{"/upstreams/example_upstream", "/services/example_service", "/routes/example_route"} {
		r := e.must(http.StatusOK, http.MethodGet, path, nil)
		back := e.must(http.StatusOK, http.MethodPut, path, r.body)
		eq(t, path+" round trip", strip(back.body), strip(r.body))
	}
}

// TestGRPCHealthchecks: an upstream's active check can be a gRPC health
// check with a service name; the API shows it, a PATCH keeps it, and
// null clears the name.
func TestGRPCHealthchecks(t *testing.T) {
	e := newEnv(t, fileRich)
	c := e.must(http.StatusCreated, http.MethodPost, "/upstreams", map[string]any{"name": "g", "healthchecks": map[string]any{
		"active": map[string]any{"type": "grpcs", "grpc_service": "pkg.Echo", "https_sni": "api.example.com",
			"healthy": map[string]any{"interval": 2, "successes": 2}, "unhealthy": map[string]any{"interval": 1, "http_failures": 3}}}})
	a := c.body["healthchecks"].(map[string]any)["active"].(map[string]any)
	eq(t, "type", a["type"], "grpcs")
	eq(t, "grpc_service", a["grpc_service"], "pkg.Echo")
	eq(t, "https_sni", a["https_sni"], "api.example.com")
	eff, _ := e.hView().eff.Upstream("g")
	if x := eff.Healthchecks.Active; !x.Enabled || x.Type != "grpcs" || x.GRPCService != "pkg.Echo" || x.Unhealthy.HTTPFailures != 3 {
		t.Fatalf("effective active check: %+v", x)
	}
	p := e.must(http.StatusOK, http.MethodPatch, "/upstreams/g", form{"healthchecks.active.timeout", "2"})
	a = p.body["healthchecks"].(map[string]any)["active"].(map[string]any)
	eq(t, "grpc_service kept", a["grpc_service"], "pkg.Echo")
	p = e.must(http.StatusOK, http.MethodPatch, "/upstreams/g", map[string]any{"healthchecks": map[string]any{"active": map[string]any{"grpc_service": nil, "type": "grpc"}}})
	a = p.body["healthchecks"].(map[string]any)["active"].(map[string]any)
	eq(t, "grpc_service cleared", a["grpc_service"], nil)
	eq(t, "type", a["type"], "grpc")
	// Switching back to http needs the name gone: it is.
	e.must(http.StatusOK, http.MethodPatch, "/upstreams/g", map[string]any{"healthchecks": map[string]any{"active": map[string]any{"type": "http"}}})
}
