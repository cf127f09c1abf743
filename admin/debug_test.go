package admin

import (
	"net/http"
	"testing"
)

// TestUpstreamDebug: the debug view lists the running upstream's targets,
// discovered ones with their source, and the discovery generations; an
// unknown upstream is 404.
func TestUpstreamDebug(t *testing.T) {
	e := newEnv(t, fileRich)
	e.fk.discover(exUpstream, "consul:web", upstreamTarget("10.0.0.9:8080", 10))
	r := e.must(http.StatusOK, http.MethodGet, "/upstreams/"+exUpstream+"/debug", nil)
	eq(t, "upstream", r.body["upstream"], exUpstream)
	if g := r.body["discovery_generations"].(map[string]any)["consul:web"]; g != float64(1) {
		t.Fatalf("discovery generation %v: %s", g, r.raw)
	}
	found := false
	for _, x := range r.body["targets"].([]any) {
		tg := x.(map[string]any)
		if tg["target"] == "10.0.0.9:8080" {
			found = true
			eq(t, "source", tg["source"], "consul:web")
			eq(t, "weight", tg["weight"], float64(10))
			eq(t, "reason", tg["health"].(map[string]any)["reason"], "initial")
		}
	}
	if !found {
		t.Fatalf("discovered target missing: %s", r.raw)
	}
	e.must(http.StatusNotFound, http.MethodGet, "/upstreams/nope/debug", nil)
}
