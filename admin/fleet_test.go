package admin

import (
	"context"
	"net/http"
	"testing"

	"github.com/outrigger-gw/outrigger/state"
)

// fleetRecorder is a Fleet that records what it was asked.
type fleetRecorder struct {
	publish  []FleetPublish
	rollback []FleetRollback
	refuse   error
}

func (f *fleetRecorder) FleetStatus(context.Context, string) (FleetStatus, error) {
	return FleetStatus{Group: "A", Sidecars: []FleetSidecar{}}, nil
}
func (f *fleetRecorder) FleetVersions(context.Context) ([]state.Version, error) { return nil, nil }
func (f *fleetRecorder) FleetVersion(_ context.Context, n uint64) (*state.Version, error) {
	if n != 1 {
		return nil, &state.RefusedError{Reason: "no such version"}
	}
	return &state.Version{Number: 1}, nil
}
func (f *fleetRecorder) FleetDraft(context.Context) (*state.Doc, uint64, error) {
	return &state.Doc{}, 0, nil
}
func (f *fleetRecorder) FleetPublish(_ context.Context, p FleetPublish) (state.Version, error) {
	if f.refuse != nil {
		return state.Version{}, f.refuse
	}
	f.publish = append(f.publish, p)
	return state.Version{Number: 2, Author: p.Author, Message: p.Message}, nil
}
func (f *fleetRecorder) FleetRollback(_ context.Context, p FleetRollback) (*state.Head, *state.Version, error) {
	f.rollback = append(f.rollback, p)
	if p.Version == 0 {
		return &state.Head{}, nil, nil
	}
	return nil, &state.Version{Number: 3}, nil
}
func (f *fleetRecorder) FleetPromote(context.Context, FleetPromote) (state.Version, error) {
	return state.Version{Number: 1}, nil
}
func (f *fleetRecorder) FleetStage(context.Context, FleetStageChange) (*state.Head, error) {
	return &state.Head{}, nil
}

func TestFleetEndpointsInput(t *testing.T) {
	f := &fleetRecorder{}
	e := newEnv(t, fileRich, func(o *Options) { o.Fleet = f })

	r := e.do(http.MethodPost, "/fleet/publish", map[string]any{"message": "m",
		"stage": map[string]any{"percent": 10, "steps": []any{50, 100}, "interval": "5s", "min_requests": 0}}, "Outrigger-Author", "bo")
	if r.status != http.StatusCreated || len(f.publish) != 1 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	p := f.publish[0]
	if p.Author != "bo" || p.Message != "m" || p.Stage == nil || p.Stage.Percent != 10 || len(p.Stage.Steps) != 2 ||
		p.Stage.MinRequests != 0 || p.Stage.MaxErrorRateIncrease != defaultStageMaxErrorRate {
		t.Fatalf("%+v %+v", p, p.Stage)
	}
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"stage": map[string]any{"steps": []any{50}}}, "stage.percent"},
		{map[string]any{"stage": map[string]any{"percent": 50, "steps": []any{40}}}, "stage.steps"},
		{map[string]any{"stage": map[string]any{"sidecars": []any{"a/b"}}}, "stage.sidecars"},
		{map[string]any{"stage": map[string]any{"percent": 5, "sizes": 1}}, "stage.sizes"},
		{map[string]any{"mesage": "typo"}, "mesage"},
	} {
		if r := e.do(http.MethodPost, "/fleet/publish", c.body); r.status != http.StatusBadRequest || r.fields()[c.field] == nil {
			t.Errorf("%v: %d %s, want 400 naming %s", c.body, r.status, r.raw, c.field)
		}
	}
	f.refuse = &state.RefusedError{Reason: "a staged publish of version 4 is running"}
	if r := e.do(http.MethodPost, "/fleet/publish", map[string]any{}); r.status != http.StatusConflict || r.str("message") != f.refuse.Error() {
		t.Fatalf("refusal: %d %s", r.status, r.raw)
	}
	if r := e.do(http.MethodPost, "/fleet/rollback", map[string]any{}); r.status != http.StatusOK {
		t.Fatalf("stage rollback: %d %s", r.status, r.raw)
	}
	if r := e.do(http.MethodPost, "/fleet/rollback", map[string]any{"version": 1}); r.status != http.StatusCreated {
		t.Fatalf("rollback: %d %s", r.status, r.raw)
	}
	if r := e.do(http.MethodPost, "/fleet/promote", map[string]any{"version": 1}); r.status != http.StatusBadRequest || r.fields()["to_group"] == nil {
		t.Fatalf("promote without to_group: %d %s", r.status, r.raw)
	}
	if r := e.do(http.MethodGet, "/fleet/versions/9", nil); r.status != http.StatusNotFound {
		t.Fatalf("missing version: %d %s", r.status, r.raw)
	}
	if r := e.do(http.MethodPost, "/fleet/stage", map[string]any{}); r.status != http.StatusBadRequest {
		t.Fatalf("empty widen: %d %s", r.status, r.raw)
	}
	// The OpenAPI document lists them.
	paths, _ := e.do(http.MethodGet, "/openapi.json", nil).body["paths"].(map[string]any)
	for _, p := range []string{"/fleet", "/fleet/versions", "/fleet/versions/{version}", "/fleet/draft", "/fleet/publish", "/fleet/stage", "/fleet/rollback", "/fleet/promote"} {
		if paths[p] == nil {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
	// Without a Fleet, nothing is served under /fleet.
	if r := newEnv(t, fileRich).do(http.MethodGet, "/fleet", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET /fleet without a group: %d", r.status)
	}
}
