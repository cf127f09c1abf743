package admin

import (
	"net/http"
	"testing"

	"github.com/outrigger-gw/outrigger/config"
)

// TestKongTutorial replays the curl commands of Kong's load-balancing
// tutorial (seed 003) as form posts, against a file that defines
// example_service.
func TestKongTutorial(t *testing.T) {
	e := newEnv(t, fileTutorial)
	steps := []struct {
		desc   string
		method string
		path   string
		body   form
		want   int
		check  func(t *testing.T, r *resp)
	}{
		{desc: "create an upstream", method: http.MethodPost, path: "/upstreams", body: form{"name", "example_upstream"}, want: http.StatusCreated,
			check: func(t *testing.T, r *resp) {
				eq(t, "name", r.str("name"), "example_upstream")
				eq(t, "algorithm", r.str("algorithm"), "round-robin")
				eq(t, "slots", r.body["slots"], 10000)
				if !config.IsUUID(r.str("id")) {
					t.Fatalf("id %q is not a UUID", r.str("id"))
				}
				eq(t, "created_at", r.body["created_at"], 1700000000)
			}},
		{desc: "first target", method: http.MethodPost, path: "/upstreams/example_upstream/targets", body: form{"target", "httpbun.com:80"}, want: http.StatusCreated,
			check: func(t *testing.T, r *resp) {
				eq(t, "target", r.str("target"), "httpbun.com:80")
				eq(t, "weight", r.body["weight"], 100)
				eq(t, "source", r.str("source"), "admin")
				eq(t, "effective_weight", r.body["effective_weight"], 100)
				eq(t, "healthy", r.body["healthy"], true)
			}},
		{desc: "second target", method: http.MethodPost, path: "/upstreams/example_upstream/targets", body: form{"target", "httpbin.konghq.com:80"}, want: http.StatusCreated},
		{desc: "point the service at the upstream", method: http.MethodPatch, path: "/services/example_service", body: form{"host", "example_upstream"}, want: http.StatusOK,
			check: func(t *testing.T, r *resp) {
				eq(t, "host", r.str("host"), "example_upstream")
				eq(t, "protocol", r.str("protocol"), "http")
				eq(t, "port", r.body["port"], 80)
				eq(t, "id", r.str("id"), stableID(kindService, "example_service"))
			}},
	}
	for _, s := range steps {
		t.Run(s.desc, func(t *testing.T) {
			r := e.must(s.want, s.method, s.path, s.body)
			if s.check != nil {
				s.check(t, r)
			}
		})
	}
	// The effective configuration is what the tutorial describes.
	w := e.hView()
	svc, _ := w.eff.Service("example_service")
	if svc.Host != "example_upstream" {
		t.Fatalf("service host %q", svc.Host)
	}
	u, ok := w.eff.Upstream("example_upstream")
	if !ok || len(u.Targets) != 2 || u.Targets[0].Target != "httpbun.com:80" || u.Targets[1].Target != "httpbin.konghq.com:80" {
		t.Fatalf("upstream targets: %+v", u)
	}
	list := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/targets", nil)
	if len(list.data()) != 2 || list.body["next"] != nil {
		t.Fatalf("targets: %s", list.raw)
	}
	// The route of the file still reaches the service.
	rt := e.must(http.StatusOK, http.MethodGet, "/routes/example_route", nil)
	eq(t, "route service", rt.body["service"].(map[string]any)["id"], stableID(kindService, "example_service"))
}

// hView is the world as the fake holds it.
func (e *env) hView() *world { return newWorld(e.fk.File(), e.fk.Doc(), 0) }

// TestPortalWalkthrough replays the IAM portal steps of seed 000: an
// upstream, two targets with weights, a service on the upstream with a
// path, a nameless route by service.id with protocols, and the Mark
// Healthy / Mark Unhealthy buttons.
func TestPortalWalkthrough(t *testing.T) {
	e := newEnv(t, "")
	var svcID, t1 string
	steps := []struct {
		desc   string
		method string
		path   func() string
		body   func() any
		want   int
		check  func(t *testing.T, r *resp)
	}{
		{desc: "new upstream with slots", method: http.MethodPost, path: lit("/upstreams"), body: val(form{"name", "myupstream", "slots", "1000"}), want: http.StatusCreated,
			check: func(t *testing.T, r *resp) { eq(t, "slots", r.body["slots"], 1000) }},
		{desc: "first target, weight 100", method: http.MethodPost, path: lit("/upstreams/myupstream/targets"), body: val(form{"target", "178.140.33.27:57773", "weight", "100"}), want: http.StatusCreated,
			check: func(t *testing.T, r *resp) { t1 = r.str("id"); eq(t, "weight", r.body["weight"], 100) }},
		{desc: "second target, weight 100", method: http.MethodPost, path: lit("/upstreams/myupstream/targets"), body: val(form{"target", "178.140.33.27:52776", "weight", "100"}), want: http.StatusCreated},
		{desc: "service on the upstream", method: http.MethodPost, path: lit("/services"),
			body: val(form{"name", "myservice", "host", "myupstream", "path", "/api/atelier", "protocol", "http"}), want: http.StatusCreated,
			check: func(t *testing.T, r *resp) {
				svcID = r.str("id")
				eq(t, "port", r.body["port"], 80)
				eq(t, "path", r.str("path"), "/api/atelier")
				eq(t, "retries", r.body["retries"], 5)
				eq(t, "connect_timeout", r.body["connect_timeout"], 60000)
			}},
		{desc: "route by service.id", method: http.MethodPost, path: lit("/routes"),
			body: func() any { return form{"paths[]", "/api/atelier", "protocols[]", "http", "service.id", svcID} }, want: http.StatusCreated,
			check: func(t *testing.T, r *resp) {
				eq(t, "name", r.body["name"], nil)
				eq(t, "paths", r.body["paths"], []any{"/api/atelier"})
				eq(t, "strip_path", r.body["strip_path"], true)
				eq(t, "service.id", r.body["service"].(map[string]any)["id"], svcID)
			}},
		{desc: "mark the first target unhealthy (by id)", method: http.MethodPut, path: func() string { return "/upstreams/myupstream/targets/" + t1 + "/unhealthy" }, want: http.StatusNoContent},
		{desc: "health shows it", method: http.MethodGet, path: lit("/upstreams/myupstream/health"), want: http.StatusOK,
			check: func(t *testing.T, r *resp) {
				got := map[string]string{}
				for _, d := range r.data() {
					got[d["target"].(string)] = d["health"].(string)
				}
				eq(t, "health", got, map[string]string{"178.140.33.27:57773": "UNHEALTHY", "178.140.33.27:52776": "HEALTHCHECKS_OFF"})
			}},
		{desc: "mark it healthy (by address)", method: http.MethodPut, path: lit("/upstreams/myupstream/targets/178.140.33.27:57773/healthy"), want: http.StatusNoContent},
		{desc: "mark the other unhealthy, Kong 1.x verb", method: http.MethodPost, path: lit("/upstreams/myupstream/targets/178.140.33.27:52776/unhealthy"), want: http.StatusNoContent},
	}
	for _, s := range steps {
		t.Run(s.desc, func(t *testing.T) {
			var body any
			if s.body != nil {
				body = s.body()
			}
			r := e.must(s.want, s.method, s.path(), body)
			if s.check != nil {
				s.check(t, r)
			}
		})
	}
	marks := e.fk.Doc().Marks["myupstream"]
	eq(t, "marks", marks, map[string]string{"178.140.33.27:57773": "healthy", "178.140.33.27:52776": "unhealthy"})
	// The checker got them (the gateway applies Doc.Marks).
	for _, s := range e.fk.Upstream("myupstream").Health().States() {
		if want := marks[s.Addr] == "healthy"; s.Healthy != want {
			t.Fatalf("%s healthy = %v, want %v", s.Addr, s.Healthy, want)
		}
	}
	// Clearing a mark: DELETE .../healthy or .../unhealthy.
	e.must(http.StatusNoContent, http.MethodDelete, "/upstreams/myupstream/targets/178.140.33.27:52776/unhealthy", nil)
	e.must(http.StatusNoContent, http.MethodDelete, "/upstreams/myupstream/targets/178.140.33.27:57773/unhealthy", nil)
	if m := e.fk.Doc().Marks; len(m) != 0 {
		t.Fatalf("marks after clearing: %v", m)
	}
}

func lit(s string) func() string { return func() string { return s } }

func val(v any) func() any { return func() any { return v } }
