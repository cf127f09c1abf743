package gateway

import (
	"context"
	"testing"

	"github.com/outrigger-gw/outrigger/admin"
)

// TestLayerGenerations: the file's generation advances on a reload, the
// admin layer's on a change made here, adopted from the store, or a reset;
// an upstream's own generations are those of the last commit that changed
// its spec.
func TestLayerGenerations(t *testing.T) {
	ctx := context.Background()
	st := &memStore{}
	g := storeGateway(t, st)
	layers := func(name string) (built, now admin.LayerGenerations) {
		t.Helper()
		built, now, ok := g.UpstreamLayers(name)
		if !ok {
			t.Fatalf("no layers for %s", name)
		}
		if now.Config != g.Status().ConfigGeneration {
			t.Fatalf("config generation %d, /status says %d", now.Config, g.Status().ConfigGeneration)
		}
		return built, now
	}
	if _, _, ok := g.UpstreamLayers("nope"); ok {
		t.Fatal("layers of an unknown upstream")
	}
	start := admin.LayerGenerations{File: 1, Admin: 0, Config: 1}
	if b, n := layers("u1"); b != start || n != start {
		t.Fatalf("at start: built %+v now %+v, want %+v", b, n, start)
	}

	if err := g.Mutate(ctx, markDown("127.0.0.1:7002")); err != nil {
		t.Fatal(err)
	}
	marked := admin.LayerGenerations{File: 1, Admin: 1, Config: 2}
	if b, n := layers("u1"); b != marked || n != marked {
		t.Fatalf("after a mark on u1: built %+v now %+v, want %+v", b, n, marked)
	}
	if b, _ := layers("u2"); b != start {
		t.Fatalf("u2, unchanged by the mark, built by %+v, want %+v", b, start)
	}

	if err := g.Apply(parse(t, twoTargets)); err != nil {
		t.Fatal(err)
	}
	if b, n := layers("u1"); b != marked || n != (admin.LayerGenerations{File: 2, Admin: 1, Config: 3}) {
		t.Fatalf("after a reload of the same file: built %+v now %+v", b, n)
	}

	g.remoteChange(ctx, overrideOn("u2"), st.put(overrideOn("u2")))
	adopted := admin.LayerGenerations{File: 2, Admin: 2, Config: 4}
	if b, n := layers("u2"); b != adopted || n != adopted {
		t.Fatalf("after adopting the store's layer: built %+v now %+v, want %+v", b, n, adopted)
	}

	if err := g.ResetState(ctx); err != nil {
		t.Fatal(err)
	}
	reset := admin.LayerGenerations{File: 2, Admin: 3, Config: 5}
	if b, n := layers("u2"); b != reset || n != reset {
		t.Fatalf("after a reset: built %+v now %+v, want %+v", b, n, reset)
	}
}
