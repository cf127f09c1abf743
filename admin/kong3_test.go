package admin

import (
	"net/http"
	"testing"
)

// kongCase is one request and what Kong 3 answers it with: the status,
// and for a JSON object the fields checked (a nil want means no body).
type kongCase struct {
	desc         string
	method, path string
	body         any
	status       int
	want         map[string]any
	// count, when >= 0 on a list, is the number of items.
	count int
}

func runKongCases(t *testing.T, e *env, cases []kongCase) {
	t.Helper()
	for _, tc := range cases {
		r := e.do(tc.method, tc.path, tc.body)
		if r.status != tc.status {
			t.Fatalf("%s: %s %s: status %d, want %d\n%s", tc.desc, tc.method, tc.path, r.status, tc.status, r.raw)
		}
		if tc.status == http.StatusNoContent && len(r.raw) != 0 {
			t.Fatalf("%s: a 204 with a body: %s", tc.desc, r.raw)
		}
		for k, v := range tc.want {
			eq(t, tc.desc+": "+k, r.body[k], v)
		}
		if tc.count >= 0 {
			eq(t, tc.desc+": items", len(r.data()), tc.count)
		}
	}
}

// TestKong3Targets: targets/all lists every target, weight 0 included;
// PUT on a target upserts it (201 creating, 200 replacing, omitted fields
// back to their defaults); a POST of an existing target is still Kong 3's
// 409 (Kong 3.0 stopped POST from updating targets).
func TestKong3Targets(t *testing.T) {
	e := newEnv(t, fileRich)
	e.fk.discover("example_upstream", "consul:web", upstreamTarget("10.0.0.9:8080", 10))
	const ts = "/upstreams/example_upstream/targets"
	id := newID()
	runKongCases(t, e, []kongCase{
		{desc: "drain one", method: http.MethodPatch, path: ts + "/10.0.0.2:8080", body: map[string]any{"weight": 0}, status: 200, want: map[string]any{"weight": 0}, count: -1},
		{desc: "all keeps weight 0", method: http.MethodGet, path: ts + "/all", status: 200, count: 3},
		{desc: "all is paged", method: http.MethodGet, path: ts + "/all?size=1", status: 200, count: 1},
		{desc: "all of a missing upstream", method: http.MethodGet, path: "/upstreams/nope/targets/all", status: 404, count: -1},
		{desc: "PUT creates by address", method: http.MethodPut, path: ts + "/10.0.0.5:8080", body: map[string]any{"weight": 7, "tags": []any{"a"}}, status: 201,
			want: map[string]any{"target": "10.0.0.5:8080", "weight": 7, "tags": []any{"a"}, "source": "admin"}, count: -1},
		{desc: "PUT replaces: weight back to the default, tags cleared", method: http.MethodPut, path: ts + "/10.0.0.5:8080", body: map[string]any{}, status: 200,
			want: map[string]any{"target": "10.0.0.5:8080", "weight": 100, "tags": nil}, count: -1},
		{desc: "PUT creates by a new id", method: http.MethodPut, path: ts + "/" + id, body: map[string]any{"target": "10.0.0.6:8080"}, status: 201,
			want: map[string]any{"id": id, "target": "10.0.0.6:8080"}, count: -1},
		{desc: "PUT by id replaces", method: http.MethodPut, path: ts + "/" + id, body: map[string]any{"target": "10.0.0.6:8080", "weight": 3}, status: 200,
			want: map[string]any{"id": id, "weight": 3}, count: -1},
		{desc: "PUT by a new id without target", method: http.MethodPut, path: ts + "/" + newID(), body: map[string]any{"weight": 3}, status: 400, count: -1},
		{desc: "PUT renaming onto another target", method: http.MethodPut, path: ts + "/" + id, body: map[string]any{"target": "10.0.0.5:8080"}, status: 409, count: -1},
		{desc: "PUT a file target copies it", method: http.MethodPut, path: ts + "/10.0.0.1:8080", body: map[string]any{"weight": 9}, status: 200,
			want: map[string]any{"weight": 9, "source": "static"}, count: -1},
		{desc: "PUT a discovered target sets its weight", method: http.MethodPut, path: ts + "/10.0.0.9:8080", body: map[string]any{"weight": 4}, status: 200,
			want: map[string]any{"weight": 4, "source": "consul:web"}, count: -1},
		{desc: "PUT under a missing upstream", method: http.MethodPut, path: "/upstreams/nope/targets/10.0.0.5:8080", body: map[string]any{}, status: 404, count: -1},
		{desc: "POST of an existing target (Kong 3 refuses)", method: http.MethodPost, path: ts, body: map[string]any{"target": "10.0.0.5:8080"}, status: 409,
			want: map[string]any{"code": 5}, count: -1},
		{desc: "all after", method: http.MethodGet, path: ts + "/all", status: 200, count: 5},
	})
}

// TestKong3Nested: Kong's reads of a related entity.
func TestKong3Nested(t *testing.T) {
	e := newEnv(t, fileRich)
	e.must(http.StatusCreated, http.MethodPost, "/services", map[string]any{"name": "other", "host": "blue_upstream"})
	tid := targetID("example_upstream", "10.0.0.1:8080")
	created := e.must(http.StatusCreated, http.MethodPost, "/upstreams/blue_upstream/targets", map[string]any{"target": "10.0.2.9:8080"})
	runKongCases(t, e, []kongCase{
		{desc: "route's service", method: http.MethodGet, path: "/routes/example_route/service", status: 200, want: map[string]any{"name": "example_service"}, count: -1},
		{desc: "missing route's service", method: http.MethodGet, path: "/routes/nope/service", status: 404, count: -1},
		{desc: "service's route", method: http.MethodGet, path: "/services/example_service/routes/example_route", status: 200, want: map[string]any{"name": "example_route"}, count: -1},
		{desc: "service's route by id", method: http.MethodGet, path: "/services/example_service/routes/" + stableID(kindRoute, "example_route"), status: 200, want: map[string]any{"name": "example_route"}, count: -1},
		{desc: "another service's route", method: http.MethodGet, path: "/services/other/routes/example_route", status: 404, count: -1},
		{desc: "missing service's route", method: http.MethodGet, path: "/services/nope/routes/example_route", status: 404, count: -1},
		{desc: "file target's upstream", method: http.MethodGet, path: "/targets/" + tid + "/upstream", status: 200, want: map[string]any{"name": "example_upstream"}, count: -1},
		{desc: "API target's upstream", method: http.MethodGet, path: "/targets/" + created.str("id") + "/upstream", status: 200, want: map[string]any{"name": "blue_upstream"}, count: -1},
		{desc: "unknown target id", method: http.MethodGet, path: "/targets/" + newID() + "/upstream", status: 404, count: -1},
		{desc: "not an id", method: http.MethodGet, path: "/targets/10.0.0.1:8080/upstream", status: 404, count: -1},
	})
}

// TestKong3DeleteMissing: deleting what is not there is Kong's 204 (and
// changes nothing); a missing parent is still 404.
func TestKong3DeleteMissing(t *testing.T) {
	e := newEnv(t, fileRich)
	runKongCases(t, e, []kongCase{
		{desc: "upstream", method: http.MethodDelete, path: "/upstreams/nope", status: 204, count: -1},
		{desc: "service", method: http.MethodDelete, path: "/services/nope", status: 204, count: -1},
		{desc: "route", method: http.MethodDelete, path: "/routes/" + newID(), status: 204, count: -1},
		{desc: "certificate", method: http.MethodDelete, path: "/certificates/" + newID(), status: 204, count: -1},
		{desc: "target", method: http.MethodDelete, path: "/upstreams/example_upstream/targets/10.9.9.9:1", status: 204, count: -1},
		{desc: "override", method: http.MethodDelete, path: "/upstreams/example_upstream/overrides/" + newID(), status: 204, count: -1},
		{desc: "target of a missing upstream", method: http.MethodDelete, path: "/upstreams/nope/targets/10.9.9.9:1", status: 404, count: -1},
	})
	if d := e.fk.Doc(); len(d.Upstreams) != 0 || len(d.Services) != 0 || len(d.Routes) != 0 || len(d.Overrides) != 0 {
		t.Fatalf("a DELETE of nothing changed the admin layer: %s", e.fk.docJSON())
	}
}

// TestKong3InvalidOffset: an offset that is no token of ours is Kong's 400
// code 7 "invalid offset", on every list, not an empty page.
func TestKong3InvalidOffset(t *testing.T) {
	e := newEnv(t, fileRich)
	bad := map[string]any{"code": codeInvalidOffset, "name": "invalid offset"}
	var cases []kongCase
	for _, p := range []string{"/upstreams", "/services", "/routes", "/certificates", "/upstreams/example_upstream/targets", "/upstreams/example_upstream/targets/all", "/upstreams/example_upstream/health", "/tags"} {
		for _, off := range []string{"garbage", "@@@", "AAAA"} {
			cases = append(cases, kongCase{desc: p + " " + off, method: http.MethodGet, path: p + "?offset=" + off, status: 400, want: bad, count: -1})
		}
	}
	// Real tokens still page, those of keys with parts (tags) too.
	e.must(http.StatusOK, http.MethodPatch, "/upstreams/example_upstream", map[string]any{"tags": []any{"a", "b"}})
	for _, p := range []string{"/upstreams", "/tags"} {
		next := e.must(http.StatusOK, http.MethodGet, p+"?size=1", nil).str("offset")
		cases = append(cases, kongCase{desc: "a real token of " + p, method: http.MethodGet, path: p + "?size=1&offset=" + next, status: 200, count: 1})
	}
	runKongCases(t, e, cases)
}

// TestKong3Health: GET /upstreams/{u}/health is Kong's per-node list
// (total over every page, node_id, each target's addresses), and a target
// can be marked through Kong's per-address form, its address being the
// target itself (discovered and SRV targets included).
func TestKong3Health(t *testing.T) {
	e := newEnv(t, fileRich, func(o *Options) { o.NodeID = "6f1c0c2e-8a3b-4f7d-9e21-3c5a7b9d1e42" })
	e.fk.discover("example_upstream", "dns_srv:web", upstreamTarget("10.0.0.9:8080", 10))
	const h = "/upstreams/example_upstream/health"
	const ts = "/upstreams/example_upstream/targets"
	runKongCases(t, e, []kongCase{
		{desc: "health", method: http.MethodGet, path: h, status: 200, want: map[string]any{"total": 3, "node_id": "6f1c0c2e-8a3b-4f7d-9e21-3c5a7b9d1e42", "next": nil}, count: 3},
		{desc: "health paged: total counts every page", method: http.MethodGet, path: h + "?size=1", status: 200, want: map[string]any{"total": 3}, count: 1},
		{desc: "root has the node id", method: http.MethodGet, path: "/", status: 200, want: map[string]any{"node_id": "6f1c0c2e-8a3b-4f7d-9e21-3c5a7b9d1e42"}, count: -1},
		{desc: "mark a discovered address", method: http.MethodPut, path: ts + "/10.0.0.9:8080/10.0.0.9:8080/unhealthy", status: 204, count: -1},
		{desc: "mark by target id", method: http.MethodPost, path: ts + "/" + targetID("example_upstream", "10.0.0.1:8080") + "/10.0.0.1:8080/unhealthy", status: 204, count: -1},
		{desc: "mark a file address healthy again", method: http.MethodPut, path: ts + "/10.0.0.1:8080/10.0.0.1:8080/healthy", status: 204, count: -1},
		{desc: "an address not the target's", method: http.MethodPut, path: ts + "/10.0.0.1:8080/10.0.0.2:8080/healthy", status: 404, count: -1},
		{desc: "an unknown target", method: http.MethodPut, path: ts + "/10.9.9.9:1/10.9.9.9:1/healthy", status: 404, count: -1},
		{desc: "a body is refused", method: http.MethodPut, path: ts + "/10.0.0.1:8080/10.0.0.1:8080/healthy", body: map[string]any{"x": 1}, status: 400, count: -1},
	})
	eq(t, "marks", e.fk.Doc().Marks["example_upstream"], map[string]string{"10.0.0.9:8080": "unhealthy", "10.0.0.1:8080": "healthy"})
	r := e.must(http.StatusOK, http.MethodGet, h, nil)
	byTarget := map[string]map[string]any{}
	for _, d := range r.data() {
		byTarget[d["target"].(string)] = d
	}
	disc := byTarget["10.0.0.9:8080"]
	eq(t, "discovered health", disc["health"], "UNHEALTHY")
	data := disc["data"].(map[string]any)
	eq(t, "mark", data["mark"], "unhealthy")
	eq(t, "addresses", data["addresses"], []any{map[string]any{"ip": "10.0.0.9", "port": 8080.0, "health": "UNHEALTHY", "weight": 10.0}})
}
