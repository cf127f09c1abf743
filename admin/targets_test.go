package admin

import (
	"net/http"
	"testing"
	"time"
)

// TestDiscoveredTargets: discovered targets are listed with their source
// and steered by overrides that survive discovery updates.
func TestDiscoveredTargets(t *testing.T) {
	e := newEnv(t, fileRich)
	e.fk.discover("example_upstream", "consul:web", upstreamTarget("10.0.0.9:8080", 10), upstreamTarget("10.0.0.1:8080", 1))
	list := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/targets", nil)
	got := map[string]string{}
	for _, d := range list.data() {
		got[d["target"].(string)] = d["source"].(string)
	}
	// 10.0.0.1 is static and discovered: the file's entity wins.
	eq(t, "sources", got, map[string]string{"10.0.0.1:8080": "static", "10.0.0.2:8080": "static", "10.0.0.9:8080": "consul:web"})
	d := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/targets/10.0.0.9:8080", nil)
	eq(t, "weight", d.body["weight"], 10)
	eq(t, "effective_weight", d.body["effective_weight"], 10)
	eq(t, "healthy", d.body["healthy"], true)
	eq(t, "meta", d.body["meta"], map[string]any{"version": "v2"})

	t.Run("PATCH weight creates an override", func(t *testing.T) {
		r := e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream/targets/10.0.0.9:8080", form{"weight", "0"})
		eq(t, "weight", r.body["weight"], 0)
		eq(t, "source", r.str("source"), "consul:web")
		doc := e.fk.Doc()
		if len(doc.Overrides) != 1 || doc.Overrides[0].Target != "10.0.0.9:8080" || *doc.Overrides[0].Weight != 0 || doc.Overrides[0].Upstream != "example_upstream" {
			t.Fatalf("overrides: %+v", doc.Overrides)
		}
		if _, ok := doc.Upstreams["example_upstream"]; ok {
			t.Fatal("a discovered target's weight must not copy the upstream into the Doc")
		}
		id := doc.Overrides[0].ID
		e.now = e.now.Add(10 * time.Second)
		e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream/targets/"+targetID("example_upstream", "10.0.0.9:8080"), map[string]any{"weight": 40})
		doc = e.fk.Doc()
		if len(doc.Overrides) != 1 || doc.Overrides[0].ID != id || *doc.Overrides[0].Weight != 40 || doc.Overrides[0].CreatedAt != e.now.Unix() {
			t.Fatalf("override not updated in place: %+v", doc.Overrides)
		}
		ov := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/overrides/"+id, nil)
		eq(t, "override weight", ov.body["weight"], 40)
	})
	t.Run("the override survives the next discovery update", func(t *testing.T) {
		e.fk.discover("example_upstream", "consul:web", upstreamTarget("10.0.0.9:8080", 25), upstreamTarget("10.0.0.8:8080", 10))
		r := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/targets/10.0.0.9:8080", nil)
		eq(t, "weight", r.body["weight"], 40)
		if n := len(e.fk.Doc().Overrides); n != 1 {
			t.Fatalf("%d overrides", n)
		}
	})
	t.Run("only weight can change on a discovered target", func(t *testing.T) {
		r := e.must(http.StatusBadRequest, http.MethodPatch, "/upstreams/example_upstream/targets/10.0.0.9:8080", form{"weight", "1", "tags", "x"})
		eq(t, "fields", r.fields(), map[string]any{"tags": "cannot be changed on a target discovered by consul:web (only weight can)"})
		e.must(http.StatusBadRequest, http.MethodDelete, "/upstreams/example_upstream/targets/10.0.0.9:8080", nil)
	})
	t.Run("PATCH weight on a file target edits the entity", func(t *testing.T) {
		r := e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream/targets/10.0.0.2:8080", form{"weight", "300"})
		eq(t, "weight", r.body["weight"], 300)
		eq(t, "effective_weight", r.body["effective_weight"], 300)
		u := e.fk.Doc().Upstreams["example_upstream"]
		if u == nil || len(u.Targets) != 2 || u.Targets[1].Weight != 300 || u.Targets[0].Weight != 100 {
			t.Fatalf("Doc upstream: %+v", u)
		}
		if n := len(e.fk.Doc().Overrides); n != 1 {
			t.Fatalf("%d overrides", n)
		}
	})
	t.Run("DELETE an owned target", func(t *testing.T) {
		e.must(http.StatusNoContent, http.MethodDelete, "/upstreams/example_upstream/targets/10.0.0.2:8080", nil)
		e.must(http.StatusNotFound, http.MethodGet, "/upstreams/example_upstream/targets/10.0.0.2:8080", nil)
		e.must(http.StatusCreated, http.MethodPost, "/upstreams/example_upstream/targets", form{"target", "10.0.0.2:8080", "weight", "5"})
	})
}

// TestOverrides: CRUD, selectors and the share budget.
func TestOverrides(t *testing.T) {
	e := newEnv(t, fileRich)
	e.fk.discover("example_upstream", "consul:web", upstreamTarget("10.0.0.9:8080", 10))
	a := e.must(http.StatusCreated, http.MethodPost, "/upstreams/example_upstream/overrides", form{"meta.version", "v2", "share", "60"})
	eq(t, "meta", a.body["meta"], map[string]any{"version": "v2"})
	eq(t, "share", a.body["share"], 60)
	eq(t, "weight", a.body["weight"], nil)
	b := e.must(http.StatusCreated, http.MethodPost, "/upstreams/example_upstream/overrides", map[string]any{"target": "10.0.0.1:8080", "share": 40})
	cases := []struct {
		desc   string
		method string
		path   string
		body   any
		status int
		field  string
	}{
		{"a third share over budget", http.MethodPost, "/upstreams/example_upstream/overrides", form{"tags[]", "v3", "share", "0.5"}, 400, "share"},
		{"raising a share over budget", http.MethodPatch, "/upstreams/example_upstream/overrides/" + b.str("id"), form{"share", "41"}, 400, "share"},
		{"shares of another upstream are separate", http.MethodPost, "/upstreams/canary_upstream/overrides", form{"target", "10.0.1.1:8080", "share", "100"}, 201, ""},
		{"switching a share to a weight", http.MethodPatch, "/upstreams/example_upstream/overrides/" + b.str("id"), form{"weight", "7"}, 200, ""},
		{"now a share fits", http.MethodPost, "/upstreams/example_upstream/overrides", form{"tags[]", "v3", "share", "40"}, 201, ""},
		{"switching the selector to tags", http.MethodPatch, "/upstreams/example_upstream/overrides/" + b.str("id"), map[string]any{"tags": []any{"canary"}}, 200, ""},
		{"override of an unknown upstream", http.MethodPost, "/upstreams/nope/overrides", form{"target", "a:1", "weight", "1"}, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			before := e.fk.docJSON()
			r := e.must(c.status, c.method, c.path, c.body)
			if c.field != "" {
				if _, ok := r.fields()[c.field]; !ok {
					t.Fatalf("fields %v lack %q", r.fields(), c.field)
				}
			}
			if c.status >= 400 && e.fk.docJSON() != before {
				t.Fatal("the Doc changed")
			}
		})
	}
	r := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/overrides/"+b.str("id"), nil)
	eq(t, "target cleared", r.body["target"], nil)
	eq(t, "tags", r.body["tags"], []any{"canary"})
	eq(t, "weight", r.body["weight"], 7)
	eq(t, "share cleared", r.body["share"], nil)
	list := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/overrides", nil)
	eq(t, "overrides", len(list.data()), 3)
	e.must(http.StatusNoContent, http.MethodDelete, "/upstreams/example_upstream/overrides/"+a.str("id"), nil)
	e.must(http.StatusNotFound, http.MethodGet, "/upstreams/example_upstream/overrides/"+a.str("id"), nil)
	// An override belongs to its upstream.
	e.must(http.StatusNotFound, http.MethodGet, "/upstreams/canary_upstream/overrides/"+b.str("id"), nil)
}

// TestHealth: GET health, marks on file, API and discovered targets, an
// upstream without checks.
func TestHealth(t *testing.T) {
	e := newEnv(t, fileRich)
	e.fk.discover("example_upstream", "consul:web", upstreamTarget("10.0.0.9:8080", 10))
	health := func(u string) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, d := range e.must(http.StatusOK, http.MethodGet, "/upstreams/"+u+"/health", nil).data() {
			out[d["target"].(string)] = d
		}
		return out
	}
	h := health("example_upstream")
	eq(t, "targets", len(h), 3)
	for addr, d := range h {
		if d["health"] != "HEALTHY" {
			t.Fatalf("%s: %v", addr, d["health"])
		}
	}
	eq(t, "discovered source", h["10.0.0.9:8080"]["data"].(map[string]any)["source"], "consul:web")

	e.must(http.StatusNoContent, http.MethodPut, "/upstreams/example_upstream/targets/10.0.0.9:8080/unhealthy", nil)
	h = health("example_upstream")
	eq(t, "health", h["10.0.0.9:8080"]["health"], "UNHEALTHY")
	data := h["10.0.0.9:8080"]["data"].(map[string]any)
	eq(t, "mark", data["mark"], "unhealthy")
	eq(t, "checks", data["checks_healthy"], true)
	eq(t, "effective_weight", data["effective_weight"], 0)
	// The mark survives discovery updates (it is in the Doc).
	e.fk.discover("example_upstream", "consul:web", upstreamTarget("10.0.0.9:8080", 20))
	eq(t, "after update", health("example_upstream")["10.0.0.9:8080"]["health"], "UNHEALTHY")
	eq(t, "persisted", e.fk.Doc().Marks["example_upstream"]["10.0.0.9:8080"], "unhealthy")
	e.must(http.StatusNoContent, http.MethodDelete, "/upstreams/example_upstream/targets/10.0.0.9:8080/healthy", nil)
	eq(t, "cleared", health("example_upstream")["10.0.0.9:8080"]["health"], "HEALTHY")

	// canary_upstream has no checks: HEALTHCHECKS_OFF until marked.
	eq(t, "off", health("canary_upstream")["10.0.1.1:8080"]["health"], "HEALTHCHECKS_OFF")
	e.must(http.StatusNoContent, http.MethodPut, "/upstreams/canary_upstream/targets/10.0.1.1:8080/unhealthy", nil)
	eq(t, "marked", health("canary_upstream")["10.0.1.1:8080"]["health"], "UNHEALTHY")
	e.must(http.StatusNoContent, http.MethodPost, "/upstreams/canary_upstream/targets/10.0.1.1:8080/healthy", nil)
	eq(t, "marked healthy", health("canary_upstream")["10.0.1.1:8080"]["health"], "HEALTHY")
	// Mark endpoints take no body.
	e.must(http.StatusBadRequest, http.MethodPut, "/upstreams/canary_upstream/targets/10.0.1.1:8080/healthy", form{"x", "1"})
	// Deleting the upstream drops its marks and overrides.
	e.must(http.StatusCreated, http.MethodPost, "/upstreams", form{"name", "temp"})
	e.must(http.StatusCreated, http.MethodPost, "/upstreams/temp/targets", form{"target", "10.7.0.1:80"})
	e.must(http.StatusNoContent, http.MethodPut, "/upstreams/temp/targets/10.7.0.1:80/unhealthy", nil)
	e.must(http.StatusCreated, http.MethodPost, "/upstreams/temp/overrides", form{"target", "10.7.0.1:80", "weight", "3"})
	e.must(http.StatusNoContent, http.MethodDelete, "/upstreams/temp", nil)
	doc := e.fk.Doc()
	if _, ok := doc.Marks["temp"]; ok {
		t.Fatal("marks of a deleted upstream kept")
	}
	for _, o := range doc.Overrides {
		if o.Upstream == "temp" {
			t.Fatal("overrides of a deleted upstream kept")
		}
	}
}

// TestTargetPriority: priority and backup are stored, shown and checked.
func TestTargetPriority(t *testing.T) {
	e := newEnv(t, fileRich)
	r := e.must(http.StatusCreated, http.MethodPost, "/upstreams/example_upstream/targets", map[string]any{"target": "10.0.0.7:8080", "priority": 2, "backup": true, "zone": "z1"})
	eq(t, "zone", r.body["zone"], "z1")
	eq(t, "priority", r.body["priority"], 2)
	eq(t, "backup", r.body["backup"], true)
	u := e.fk.Doc().Upstreams["example_upstream"]
	if u == nil || len(u.Targets) != 3 || u.Targets[2].Priority != 2 || !u.Targets[2].Backup || u.Targets[2].Zone != "z1" {
		t.Fatalf("Doc upstream: %+v", u)
	}
	// A PATCH without them keeps them.
	r = e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream/targets/10.0.0.7:8080", map[string]any{"weight": 5})
	eq(t, "priority after PATCH", r.body["priority"], 2)
	eq(t, "backup after PATCH", r.body["backup"], true)
	r = e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/targets/10.0.0.1:8080", nil)
	eq(t, "default priority", r.body["priority"], 0)
	eq(t, "default backup", r.body["backup"], false)
	bad := e.must(http.StatusBadRequest, http.MethodPost, "/upstreams/example_upstream/targets", map[string]any{"target": "10.0.0.6:8080", "priority": 70000, "backup": "maybe", "zone": "a/b"})
	if f := bad.fields(); f["priority"] == nil || f["backup"] == nil || f["zone"] == nil {
		t.Fatalf("fields: %v", f)
	}
}

// TestWritesCopyTheLayerOnce: an admin change copies the admin layer once
// (the copy it edits); checking the body and resolving an upstream's
// running state take no copy of their own.
func TestWritesCopyTheLayerOnce(t *testing.T) {
	e := newEnv(t, fileRich)
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{http.MethodPatch, "/upstreams/example_upstream/targets/10.0.0.1:8080", map[string]any{"weight": 7}, http.StatusOK},
		{http.MethodPut, "/upstreams/example_upstream/targets/10.0.0.3:8080", map[string]any{"weight": 3}, http.StatusCreated},
		{http.MethodDelete, "/upstreams/example_upstream/targets/10.0.0.3:8080", nil, http.StatusNoContent},
		{http.MethodPatch, "/upstreams/example_upstream", map[string]any{"slots": 200}, http.StatusOK},
		{http.MethodPatch, "/services/example_service", map[string]any{"retries": 2}, http.StatusOK},
		{http.MethodPost, "/services/example_service/routes", map[string]any{"name": "r2", "paths": []string{"/two"}}, http.StatusCreated},
		{http.MethodPut, "/routes/r2", map[string]any{"paths": []string{"/2"}, "service": map[string]any{"name": "example_service"}}, http.StatusOK},
		{http.MethodDelete, "/routes/r2", nil, http.StatusNoContent},
	} {
		before := e.fk.copies
		e.must(c.want, c.method, c.path, c.body)
		if n := e.fk.copies - before; n != 1 {
			t.Errorf("%s %s copied the admin layer %d times, want once", c.method, c.path, n)
		}
	}
}
