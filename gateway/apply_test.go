package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/state"
)

// fleetFile is a configuration sharing the admin layer at key of the agent
// at addr, with upstream u1 and, when extra, upstream extra too.
func fleetFile(t *testing.T, addr, key string, extra bool) *config.File {
	t.Helper()
	y := fmt.Sprintf("admin:\n  store: consul\n  consul: {address: %s, key: %s}\nupstreams:\n  - {name: u1, targets: [{target: 127.0.0.1:7001}]}\n", addr, key)
	if extra {
		y += "  - {name: extra, targets: [{target: 127.0.0.1:7002}]}\n"
	}
	f, err := config.Parse("fleet.yaml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestMutateOverALayerThatDoesNotBuild: G2 learns of G1's layer through
// Mutate's check-and-set conflict (no watch runs here). A layer that does
// not build with G2's file is not adopted and G2's change is refused with
// 409, so the key keeps G1's acknowledged write; once G2's file is
// reloaded with the missing upstream the layer applies and G2's change
// goes on top of it.
func TestMutateOverALayerThatDoesNotBuild(t *testing.T) {
	ctx := context.Background()
	ag := consultest.Start(t)
	key := fmt.Sprintf("outrigger/test-%016x", rand.Uint64())
	opts := Options{Log: zerolog.Nop(), LoadState: true}
	g1, err := New(fleetFile(t, ag.HTTPAddr, key, true), opts)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := New(fleetFile(t, ag.HTTPAddr, key, false), opts)
	if err != nil {
		t.Fatal(err)
	}
	weight := 5
	if err := g1.Mutate(ctx, func(d *state.Doc) error {
		d.Overrides = append(d.Overrides, state.Override{ID: "o1", Upstream: "extra", Target: "127.0.0.1:7002", Weight: &weight})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	addMark := func(d *state.Doc) error {
		d.Marks = map[string]map[string]string{"u1": {"127.0.0.1:7001": "unhealthy"}}
		return nil
	}

	for i := range 2 { // the second time without a conflict: G2 knows the version now
		err = g2.Mutate(ctx, addMark)
		var ae *admin.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
			t.Fatalf("attempt %d: G2's Mutate over a layer it cannot build = %v, want a 409", i, err)
		}
		t.Logf("attempt %d: %s", i, ae.Message)
		doc, _, err := g2.store.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(doc.Overrides) != 1 || doc.Marks != nil {
			t.Fatalf("attempt %d: the key holds %+v, want G1's override alone", i, doc)
		}
	}
	st := g2.Status().AdminLayer
	if st.State != admin.LayerNotApplied || st.Version != 0 || st.StoreVersion == 0 || st.Error == "" {
		t.Errorf("G2's admin layer status %+v, want not_applied at version 0", st)
	}
	if len(g2.Doc().Overrides) != 0 {
		t.Errorf("G2 runs the layer it cannot build")
	}

	// A reload whose file has upstream extra applies the pending layer.
	if err := g2.Apply(fleetFile(t, ag.HTTPAddr, key, true)); err != nil {
		t.Fatal(err)
	}
	if st := g2.Status().AdminLayer; st.State != admin.LayerInSync || st.Version != st.StoreVersion || len(g2.Doc().Overrides) != 1 {
		t.Fatalf("after the reload G2's admin layer is %+v with %d overrides, want in sync with G1's override", st, len(g2.Doc().Overrides))
	}
	if err := g2.Mutate(ctx, addMark); err != nil {
		t.Fatal(err)
	}
	doc, _, err := g1.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Overrides) != 1 || doc.Marks["u1"]["127.0.0.1:7001"] != "unhealthy" {
		t.Fatalf("the key holds %+v, want G1's override and G2's mark", doc)
	}
}

// TestMutateAfterTheKeyVanished: a change made while the store lost the
// layer (no watch runs here: Mutate learns of it through its conflict)
// recreates the key create-only with the last known layer plus the change,
// never over an empty one.
func TestMutateAfterTheKeyVanished(t *testing.T) {
	ctx := context.Background()
	ag := consultest.Start(t)
	key := fmt.Sprintf("outrigger/test-%016x", rand.Uint64())
	g, err := New(fleetFile(t, ag.HTTPAddr, key, true), Options{Log: zerolog.Nop(), LoadState: true})
	if err != nil {
		t.Fatal(err)
	}
	mark := func(addr string) func(*state.Doc) error {
		return func(d *state.Doc) error {
			if d.Marks == nil {
				d.Marks = map[string]map[string]string{}
			}
			if d.Marks["u1"] == nil {
				d.Marks["u1"] = map[string]string{}
			}
			d.Marks["u1"][addr] = "unhealthy"
			return nil
		}
	}
	if err := g.Mutate(ctx, mark("127.0.0.1:7001")); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Client.KV().Delete(key, nil); err != nil {
		t.Fatal(err)
	}
	if err := g.Mutate(ctx, mark("127.0.0.1:7009")); err != nil {
		t.Fatal(err)
	}
	doc, v, err := g.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Marks["u1"]) != 2 {
		t.Fatalf("the recreated key (version %d) holds marks %v, want the old one and the new one", v, doc.Marks)
	}
	if st := g.Status().AdminLayer; st.State != admin.LayerInSync || st.Version != v {
		t.Fatalf("admin layer %+v, want in sync at version %d", st, v)
	}
}
