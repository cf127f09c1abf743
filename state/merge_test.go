package state_test

import (
	"testing"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// TestMergeRoutePathHandling: a stored route's path_handling reaches the
// effective configuration, and a route stored without one (written before
// the field existed) gets the default.
func TestMergeRoutePathHandling(t *testing.T) {
	d := &state.Doc{Routes: map[string]*state.Route{
		"old": {Name: "old", Service: "s", Paths: []string{"/o"}},
		"v1":  {Name: "v1", Service: "s", Paths: []string{"/v"}, PathHandling: "v1"},
	}}
	eff := state.Merge(&config.File{}, d)
	got := map[string]string{}
	for _, r := range eff.Routes {
		got[r.Name] = r.PathHandling
	}
	if got["old"] != "v0" || got["v1"] != "v1" || len(got) != 2 {
		t.Fatalf("path_handling by route = %v, want old:v0 v1:v1", got)
	}
}
