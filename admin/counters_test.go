package admin

import (
	"net/http"
	"testing"
)

// TestHealthBlocksAsTheAPIReadsThem pins where the API reads the
// checkers' tables otherwise than the file: a bare counters block keeps
// zeros (no FileBare), a null active timeout and passive type are the
// zero values (APIZeroNull), and the passive ejection settings, the
// file's only, are refused.
func TestHealthBlocksAsTheAPIReadsThem(t *testing.T) {
	type m = map[string]any
	e := newEnv(t, fileRich)
	e.must(http.StatusCreated, http.MethodPost, "/upstreams", m{"name": "hb", "healthchecks": m{
		"active":  m{"timeout": nil, "healthy": m{}, "unhealthy": m{}},
		"passive": m{"type": nil, "healthy": m{}, "unhealthy": m{}}}})
	h := e.fk.doc.Upstreams["hb"].Healthchecks
	if a := h.Active; a.Timeout != 0 || a.Healthy.Interval != 0 || a.Healthy.Successes != 0 || a.Unhealthy.Interval != 0 || a.Unhealthy.HTTPFailures != 0 {
		t.Errorf("active: %+v", a)
	}
	if p := h.Passive; p.Type != "" || p.Healthy.Successes != 0 || p.Unhealthy.HTTPFailures != 0 || p.Unhealthy.Timeouts != 0 {
		t.Errorf("passive: %+v", p)
	}
	r := e.do(http.MethodPatch, "/upstreams/hb", m{"healthchecks": m{"passive": m{"max_ejection_percent": 5, "base_ejection_time": "1s"}}})
	if want := "2 schema violations (healthchecks.passive.base_ejection_time: unknown field; healthchecks.passive.max_ejection_percent: unknown field)"; r.status != http.StatusBadRequest || r.str("message") != want {
		t.Errorf("%d %q, want 400 %q", r.status, r.str("message"), want)
	}
}
