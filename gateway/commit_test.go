package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/state"
	"github.com/outrigger-gw/outrigger/upstream"
)

// twoTargets is a gateway whose upstream u1 has targets x and y, with a
// route to it and one to a direct host (no store: changes live in memory).
const twoTargets = `upstreams:
  - name: u1
    targets: [{target: "127.0.0.1:7001"}, {target: "127.0.0.1:7002"}]
  - name: u2
    targets: [{target: "127.0.0.1:7005"}]
services:
  - {name: s1, host: u1}
  - {name: direct, host: 127.0.0.1, port: 7003}
routes:
  - {name: r1, paths: [/a], service: s1}
  - {name: r2, paths: [/b], service: direct}
`

// generation is one of two admin layers: gen 0 overrides x to weight 3 and
// marks y down, gen 1 the other way round. Either leaves u1 one endpoint
// of weight 3; any mix of the two shows otherwise.
func generation(gen int) func(*state.Doc) error {
	return func(d *state.Doc) error {
		on, off := "127.0.0.1:7001", "127.0.0.1:7002"
		if gen == 1 {
			on, off = off, on
		}
		three := 3
		d.Overrides = []state.Override{{ID: "o" + strconv.Itoa(gen), Upstream: "u1", Target: on, Weight: &three}}
		d.Marks = map[string]map[string]string{"u1": {off: "unhealthy"}}
		return nil
	}
}

// TestCommitNeverMixesGenerations: each admin change swaps u1's snapshot
// exactly once, and readers running meanwhile only ever see one layer's
// overrides with the same layer's marks.
func TestCommitNeverMixesGenerations(t *testing.T) {
	ctx := context.Background()
	g, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Mutate(ctx, generation(0)); err != nil {
		t.Fatal(err)
	}
	u := g.Upstream("u1")
	stop := make(chan struct{})
	var mixed atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s := u.Snapshot(); len(s.Endpoints) != 1 || s.Endpoints[0].Weight != 3 {
					mixed.Add(1)
				}
			}
		}()
	}
	const changes = 200
	var swaps []uint64
	for i := range changes {
		before := u.Snapshot().Generation
		if err := g.Mutate(ctx, generation((i+1)%2)); err != nil {
			t.Fatal(err)
		}
		if d := u.Snapshot().Generation - before; d != 1 && len(swaps) < 5 {
			swaps = append(swaps, d)
		}
	}
	close(stop)
	wg.Wait()
	if len(swaps) > 0 {
		t.Errorf("admin changes swapped u1's snapshot %v times (first cases), want once each", swaps)
	}
	if n := mixed.Load(); n > 0 {
		t.Errorf("readers saw %d snapshots mixing two admin layers", n)
	}
	if g.Upstream("u1") != u {
		t.Error("u1 was rebuilt by admin changes to its overrides and marks")
	}
}

// TestCommitKeepsRouterAndDirectHosts: an admin change that touches no
// service or route keeps the router and the direct host's upstream (its
// stats) and leaves the snapshot of an upstream it does not touch alone;
// one that adds a route rebuilds the router and still keeps the direct
// host's upstream.
func TestCommitKeepsRouterAndDirectHosts(t *testing.T) {
	ctx := context.Background()
	g, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	// directOf is the upstream the route to the direct host uses now.
	directOf := func() *upstream.Upstream {
		m, ok := g.proxy.Table().Router.Match(http.MethodGet, "example.test", "/b", nil)
		if !ok {
			t.Fatal("route r2 does not match /b")
		}
		return m.Route.Value.(*proxy.Route).Service.Upstream
	}
	router, direct := g.proxy.Table().Router, directOf()
	u2 := g.Upstream("u2")
	gen2 := u2.Snapshot().Generation
	if err := g.Mutate(ctx, generation(1)); err != nil {
		t.Fatal(err)
	}
	if g.Upstream("u2") != u2 || u2.Snapshot().Generation != gen2 {
		t.Errorf("an admin change of u1 rebuilt u2 or swapped its snapshot (generation %d, was %d)", u2.Snapshot().Generation, gen2)
	}
	if g.proxy.Table().Router != router {
		t.Error("an override change rebuilt the router")
	}
	if directOf() != direct {
		t.Error("an override change replaced the direct host's upstream")
	}
	if err := g.Mutate(ctx, func(d *state.Doc) error {
		d.Routes = map[string]*state.Route{"r3": {Name: "r3", Paths: []string{"/c"}, Service: "direct"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if g.proxy.Table().Router == router {
		t.Error("a new route did not rebuild the router")
	}
	if directOf() != direct {
		t.Error("a new route replaced the direct host's upstream")
	}
}

// TestCommitRebuildsOnlyTheChangedUpstream: a change of u1's balancer
// swaps u1's snapshot alone; u2, whose spec did not change, keeps its
// upstream and snapshot, and the direct host keeps its upstream and its
// target's stats.
func TestCommitRebuildsOnlyTheChangedUpstream(t *testing.T) {
	g, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	directOf := func() *upstream.Upstream {
		m, ok := g.proxy.Table().Router.Match(http.MethodGet, "example.test", "/b", nil)
		if !ok {
			t.Fatal("route r2 does not match /b")
		}
		return m.Route.Value.(*proxy.Route).Service.Upstream
	}
	u1, u2, direct := g.Upstream("u1"), g.Upstream("u2"), directOf()
	gen1, gen2, stats := u1.Snapshot().Generation, u2.Snapshot().Generation, direct.Snapshot().Targets[0].Stats
	runtimeOf := func(name string) *upstreamRT {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.upstreams[name]
	}
	rt2 := runtimeOf("u2")
	req := httptest.NewRequest(http.MethodPatch, "/upstreams/u1", strings.NewReader(`{"algorithm": "least-connections"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	g.AdminHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("PATCH /upstreams/u1 = %d %s", rec.Code, rec.Body)
	}
	if s := g.Upstream("u1").Snapshot(); s.Generation == gen1 {
		t.Error("u1's new algorithm did not swap its snapshot")
	}
	if runtimeOf("u2") != rt2 {
		t.Error("a change of u1 rebuilt u2's runtime (balancer, checker, watchers)")
	}
	if g.Upstream("u2") != u2 || u2.Snapshot().Generation != gen2 {
		t.Errorf("a change of u1 rebuilt u2 or swapped its snapshot (generation %d, was %d)", u2.Snapshot().Generation, gen2)
	}
	if d := directOf(); d != direct || d.Snapshot().Targets[0].Stats != stats {
		t.Error("a change of u1 replaced the direct host's upstream or its target's stats")
	}
}

// TestCommitPercentKeepsRouter: a change of a canary's percent alone is a
// new table of a new generation over the same router, carrying the new
// percent; the upstreams' snapshots are left alone.
func TestCommitPercentKeepsRouter(t *testing.T) {
	ctx := context.Background()
	g, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	percent := func(p float64) func(*state.Doc) error {
		return func(d *state.Doc) error {
			d.Canaries = map[string]*state.Canary{"s1": {Upstream: "u2", Percent: p}}
			return nil
		}
	}
	if err := g.Mutate(ctx, percent(10)); err != nil {
		t.Fatal(err)
	}
	before := g.proxy.Table()
	u1, u2 := g.Upstream("u1").Snapshot(), g.Upstream("u2").Snapshot()
	if err := g.Mutate(ctx, percent(25.5)); err != nil {
		t.Fatal(err)
	}
	after := g.proxy.Table()
	if after.Router != before.Router {
		t.Error("a percent change rebuilt the router")
	}
	if after.Generation != before.Generation+1 {
		t.Errorf("table generation %d after %d, want one more", after.Generation, before.Generation)
	}
	if want := []uint64{proxy.ScalePercent(25.5)}; !slices.Equal(after.Percents, want) || slices.Equal(before.Percents, want) {
		t.Errorf("percents %v then %v, want %v after", before.Percents, after.Percents, want)
	}
	if g.Upstream("u1").Snapshot() != u1 || g.Upstream("u2").Snapshot() != u2 {
		t.Error("a percent change swapped an upstream's snapshot")
	}
}
