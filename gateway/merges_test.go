package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// declared is a declarative document for POST /config.
const declared = `{"_format_version": "3.0",
  "upstreams": [{"name": "d1", "targets": [{"target": "127.0.0.1:7011"}]}],
  "services": [{"name": "ds", "host": "d1", "routes": [{"name": "dr", "paths": ["/d"]}]}]}`

// TestAdminChangeMergesOnce: each admin write, from the handler through
// the build to the commit, merges the file and the admin layer once (the
// build's merge, which the admin API then shows), and the answer and a
// later GET show the change.
func TestAdminChangeMergesOnce(t *testing.T) {
	g, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	h := g.AdminHandler()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	type change struct {
		method, path, body string
		want               int
		shows              string // in the answer
	}
	changes := func(cs ...change) {
		t.Helper()
		for _, c := range cs {
			before := g.merges.Load()
			code, body := do(c.method, c.path, c.body)
			if code != c.want {
				t.Fatalf("%s %s = %d %s, want %d", c.method, c.path, code, body, c.want)
			}
			if n := g.merges.Load() - before; n > 1 {
				t.Errorf("%s %s merged the configuration %d times, want once", c.method, c.path, n)
			}
			if !strings.Contains(strings.ReplaceAll(body, " ", ""), c.shows) {
				t.Errorf("%s %s answered %s, want it to show %s", c.method, c.path, body, c.shows)
			}
		}
	}
	changes(
		change{http.MethodPatch, "/upstreams/u1/targets/127.0.0.1:7001", `{"weight": 7}`, http.StatusOK, `"weight":7`},
		change{http.MethodPost, "/upstreams/u1/targets", `{"target": "127.0.0.1:7009", "weight": 4}`, http.StatusCreated, `"127.0.0.1:7009"`},
		change{http.MethodPatch, "/upstreams/u2", `{"slots": 200}`, http.StatusOK, `"slots":200`},
		change{http.MethodPost, "/services", `{"name": "s9", "host": "u2"}`, http.StatusCreated, `"name":"s9"`},
		change{http.MethodPost, "/services/s9/routes", `{"name": "r9", "paths": ["/nine"]}`, http.StatusCreated, `"/nine"`},
		change{http.MethodDelete, "/routes/r9", "", http.StatusNoContent, ""},
	)
	if code, body := do(http.MethodGet, "/upstreams/u1/targets", ""); code != http.StatusOK || !strings.Contains(strings.ReplaceAll(body, " ", ""), `"weight":7`) {
		t.Errorf("GET targets after the PATCH = %d %s, want weight 7", code, body)
	}
	if rt := g.Upstream("u1"); rt == nil || len(rt.Snapshot().Targets) != 3 {
		t.Errorf("u1 runs %v, want three targets", rt)
	}
	// A posted declarative document, and a change over it.
	changes(
		change{http.MethodPost, "/config", declared, http.StatusCreated, `"name":"d1"`},
		change{http.MethodPatch, "/upstreams/d1/targets/127.0.0.1:7011", `{"weight": 9}`, http.StatusOK, `"weight":9`},
	)
	if rt := g.Upstream("d1"); rt == nil || len(rt.Snapshot().Targets) != 1 || rt.Snapshot().Targets[0].Weight != 9 {
		t.Errorf("d1 runs %v, want its one target at weight 9", rt)
	}
}
