package admin

import (
	"net/http"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/state"
)

// TestCanary: PUT/GET/PATCH/DELETE /services/{s}/canary, form and JSON.
func TestCanary(t *testing.T) {
	e := newEnv(t, fileRich)
	e.must(http.StatusNotFound, http.MethodGet, "/services/example_service/canary", nil)
	e.must(http.StatusNotFound, http.MethodPatch, "/services/example_service/canary", form{"percent", "1"})
	r := e.must(http.StatusCreated, http.MethodPut, "/services/example_service/canary",
		form{"upstream", "canary_upstream", "percent", "0.5", "force", "header:X-Canary:1", "force", "cookie:beta:yes:please", "sticky_by", "cookie:session"})
	eq(t, "percent", r.body["percent"], 0.5)
	eq(t, "primary", r.str("primary"), "example_upstream")
	eq(t, "force", r.body["force"], []any{
		map[string]any{"kind": "header", "name": "X-Canary", "value": "1"},
		map[string]any{"kind": "cookie", "name": "beta", "value": "yes:please"},
	})
	eq(t, "sticky_by", r.str("sticky_by"), "cookie:session")
	c := e.fk.Doc().Canaries["example_service"]
	if c == nil || c.Upstream != "canary_upstream" || c.Percent != 0.5 || len(c.Force) != 2 || c.StickyBy != "cookie:session" {
		t.Fatalf("Doc canary: %+v", c)
	}
	r = e.must(http.StatusOK, http.MethodPatch, "/services/"+stableID(kindService, "example_service")+"/canary", map[string]any{"percent": 25, "sticky_by": nil})
	eq(t, "patched percent", r.body["percent"], 25)
	eq(t, "sticky_by cleared", r.body["sticky_by"], nil)
	eq(t, "force kept", len(r.body["force"].([]any)), 2)
	r = e.must(http.StatusOK, http.MethodPut, "/services/example_service/canary", map[string]any{"upstream": "blue_upstream", "force": []any{"query:canary:1"}})
	eq(t, "replaced percent", r.body["percent"], 0)
	eq(t, "replaced force", r.body["force"], []any{map[string]any{"kind": "query", "name": "canary", "value": "1"}})
	e.must(http.StatusOK, http.MethodGet, "/services/example_service/canary", nil)
	e.must(http.StatusNoContent, http.MethodDelete, "/services/example_service/canary", nil)
	e.must(http.StatusNotFound, http.MethodGet, "/services/example_service/canary", nil)
}

// TestBlueGreen: PATCH host switches the service's upstream in one
// Mutate.
func TestBlueGreen(t *testing.T) {
	e := newEnv(t, fileRich)
	n := e.fk.mutates
	r := e.must(http.StatusOK, http.MethodPatch, "/services/example_service", form{"host", "blue_upstream"})
	eq(t, "host", r.str("host"), "blue_upstream")
	eq(t, "one Mutate", e.fk.mutates, n+1)
	eq(t, "path kept", r.str("path"), "/")
}

// TestRollout: start, measurements, pause, resume, abort.
func TestRollout(t *testing.T) {
	e := newEnv(t, fileRich)
	r := e.must(http.StatusBadRequest, http.MethodPost, "/services/example_service/rollout", map[string]any{"steps": []any{1, 100}, "interval": "30s"})
	eq(t, "no canary", r.fields(), map[string]any{"canary": "service 'example_service' has no canary: PUT /services/example_service/canary first"})
	e.must(http.StatusNotFound, http.MethodGet, "/services/example_service/rollout", nil)
	e.must(http.StatusCreated, http.MethodPut, "/services/example_service/canary", form{"upstream", "canary_upstream"})

	r = e.must(http.StatusCreated, http.MethodPost, "/services/example_service/rollout", form{"steps", "1,5,25,50,100", "interval", "45"})
	eq(t, "state", r.str("state"), "running")
	eq(t, "step", r.body["step"], 0)
	eq(t, "percent", r.body["percent"], 1)
	eq(t, "canary percent", r.body["canary_percent"], 1)
	eq(t, "interval", r.str("interval"), "45s")
	eq(t, "defaults", []any{r.body["max_error_rate_increase"], r.body["max_p99_ratio"], r.body["min_requests"]}, []any{0.01, 1.5, float64(100)})
	ro := e.fk.Doc().Rollouts["example_service"]
	if ro == nil || ro.State != state.RolloutRunning || time.Duration(ro.Interval) != 45*time.Second || len(ro.Steps) != 5 || ro.StepSince != e.now.Unix() {
		t.Fatalf("Doc rollout: %+v", ro)
	}
	eq(t, "Doc canary percent", e.fk.Doc().Canaries["example_service"].Percent, 1.0)
	e.must(http.StatusConflict, http.MethodPost, "/services/example_service/rollout", map[string]any{"steps": []any{10}, "interval": 5})

	e.fk.mu.Lock()
	e.fk.rollout["example_service"] = RolloutStatus{PrimaryRequestsStep: 1000, CanaryRequestsStep: 12, CanaryP99MsStep: 80, CanaryRequestsTotal: 40}
	e.fk.mu.Unlock()
	r = e.must(http.StatusOK, http.MethodGet, "/services/example_service/rollout", nil)
	eq(t, "status", r.body["status"].(map[string]any)["canary_requests_step"], 12)
	eq(t, "status", r.body["status"].(map[string]any)["canary_requests_total"], 40)

	steps := []struct {
		desc, action string
		status       int
		state        string
	}{
		{"pause", "pause", 200, "paused"},
		{"pause twice", "pause", 409, ""},
		{"resume", "resume", 200, "running"},
		{"resume twice", "resume", 409, ""},
		{"abort", "abort", 200, "aborted"},
		{"abort twice", "abort", 409, ""},
	}
	for _, s := range steps {
		t.Run(s.desc, func(t *testing.T) {
			e.now = e.now.Add(time.Minute)
			r := e.must(s.status, http.MethodPost, "/services/example_service/rollout/"+s.action, nil)
			if s.state != "" {
				eq(t, "state", r.str("state"), s.state)
				eq(t, "Doc state", e.fk.Doc().Rollouts["example_service"].State, s.state)
			}
		})
	}
	eq(t, "aborted canary percent", e.fk.Doc().Canaries["example_service"].Percent, 0.0)
	// A finished rollout does not block a new one, nor deleting the canary.
	e.must(http.StatusCreated, http.MethodPost, "/services/example_service/rollout", map[string]any{"steps": []any{10, 100}, "interval": "1m", "min_requests": 10})
	e.must(http.StatusConflict, http.MethodDelete, "/services/example_service/canary", nil)
	e.must(http.StatusOK, http.MethodPost, "/services/example_service/rollout/abort", nil)
	e.must(http.StatusNoContent, http.MethodDelete, "/services/example_service/canary", nil)
	if _, ok := e.fk.Doc().Rollouts["example_service"]; ok {
		t.Fatal("rollout kept without its canary")
	}
}
