package upstream

import (
	"fmt"
	"testing"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/health"
)

// zoneTargets returns n targets in each zone, addressed "<zone>-<i>:1".
func zoneTargets(n int, zones ...string) []Target {
	var ts []Target
	for _, z := range zones {
		for i := range n {
			ts = append(ts, Target{Addr: fmt.Sprintf("%s-%d:1", z, i), Weight: 1, Meta: map[string]string{MetaZone: z}})
		}
	}
	return ts
}

func zoneCounts(t *testing.T, u *Upstream, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for a, c := range pickN(t, u, n) {
		got[a[:1]] += c
	}
	return got
}

func TestZoneAwareRouting(t *testing.T) {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(), Zone: "a"})
	u.Apply(Spec{Targets: zoneTargets(4, "a", "b", "c")})
	check := func(what string, a, b, c int) {
		t.Helper()
		if got := zoneCounts(t, u, a+b+c); got["a"] != a || got["b"] != b || got["c"] != c {
			t.Fatalf("%s: %v, want a %d b %d c %d", what, got, a, b, c)
		}
	}
	check("all healthy: local only", 1000, 0, 0)
	mark(t, u, "a-0:1", health.MarkUnhealthy)
	// 3 of 11 healthy (27.3 %) against 4 of 12 (33.3 %): the local zone
	// takes 81 % (and the rounding residue), the others share the rest
	// by their surplus.
	check("local zone at 3/4", 820, 90, 90)
	mark(t, u, "a-1:1", health.MarkUnhealthy)
	// 2 of 10 (20 %) against 33.3 %: 60 % local.
	check("local zone at 2/4", 600, 200, 200)
	mark(t, u, "b-0:1", health.MarkUnhealthy)
	// 2 of 9 healthy against 4 of 12: 66 % local; surplus b 3·12−4·9=0,
	// c 4·12−4·9=12: c takes the rest.
	check("local at 2/4, b at 3/4", 660, 0, 340)
	mark(t, u, "a-2:1", health.MarkUnhealthy)
	mark(t, u, "a-3:1", health.MarkUnhealthy)
	// No healthy local target: zones are ignored.
	check("local zone down", 0, 300, 400)
	for _, a := range []string{"a-0:1", "a-1:1", "a-2:1", "a-3:1", "b-0:1"} {
		mark(t, u, a, health.MarkNone)
	}
	check("recovered", 1000, 0, 0)
	if ls := u.Snapshot().Levels; len(ls) != 1 || ls[0].Zones["a"] != 100 {
		t.Fatalf("levels: %+v", ls)
	}
}

func TestZoneAwareMinClusterSize(t *testing.T) {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(), Zone: "a"})
	// 5 healthy targets: below Envoy's minimum of 6, zones are ignored.
	u.Apply(Spec{Targets: append(zoneTargets(2, "a", "b"), zoneTargets(1, "c")...)})
	if got := zoneCounts(t, u, 500); got["a"] != 200 || got["b"] != 200 || got["c"] != 100 {
		t.Fatalf("below the minimum: %v", got)
	}
	u = newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(), Zone: "a", MinClusterSize: 3})
	u.Apply(Spec{Targets: append(zoneTargets(2, "a", "b"), zoneTargets(1, "c")...)})
	if got := zoneCounts(t, u, 500); got["a"] != 500 {
		t.Fatalf("a lower minimum: %v", got)
	}
	// No local zone: plain balancing.
	u = newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.Apply(Spec{Targets: zoneTargets(2, "a", "b", "c")})
	if got := zoneCounts(t, u, 600); got["a"] != 200 || got["b"] != 200 || got["c"] != 200 {
		t.Fatalf("no local zone: %v", got)
	}
}

func TestZoneAwareWithPriorities(t *testing.T) {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(), Zone: "a"})
	ts := zoneTargets(4, "a", "b", "c")
	for _, z := range []string{"x", "y"} {
		ts = append(ts, Target{Addr: z + "-0:1", Weight: 1, Priority: 1, Meta: map[string]string{MetaZone: z}})
	}
	u.Apply(Spec{Targets: ts})
	for _, a := range []string{"a-0:1", "a-1:1", "b-0:1", "b-1:1", "c-0:1", "c-1:1"} {
		mark(t, u, a, health.MarkUnhealthy)
	}
	// Level 0 at 50 %: 70 % of the traffic, spread by zone (each zone
	// equally healthy: all local); level 1 (2 targets, below the
	// minimum) takes 30 %.
	if got := zoneCounts(t, u, 1000); got["a"] != 700 || got["x"] != 150 || got["y"] != 150 {
		t.Fatalf("%v", got)
	}
}
