package upstream

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/health"
)

// genSpec is one of two generations: gen 0 overrides x (weight 3) and marks
// y down; gen 1 the other way round, with the other balancer. A snapshot
// of either has exactly one endpoint, overridden to weight 3; any mix of
// the two shows otherwise.
func genSpec(gen int, bs [2]balance.Builder) Spec {
	three := 3
	on, off := "x:1", "y:1"
	if gen == 1 {
		on, off = off, on
	}
	return Spec{
		Balancer:  bs[gen],
		Targets:   []Target{{Addr: "x:1", Weight: 1}, {Addr: "y:1", Weight: 1}},
		Overrides: []Override{{ID: "o", Target: on, Weight: &three}},
		Marks:     map[string]health.Mark{off: health.MarkUnhealthy},
	}
}

// TestApplySwapsOnce: Apply changes balancer, targets, overrides and marks
// with one snapshot swap, and none when nothing changed; readers running
// meanwhile never see two generations mixed.
func TestApplySwapsOnce(t *testing.T) {
	var swaps atomic.Int64
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(),
		OnSnapshot: func(*Snapshot) { swaps.Add(1) }})
	bs := [2]balance.Builder{balance.NewRoundRobin(), balance.NewRoundRobin()}
	if !u.Apply(genSpec(0, bs)) {
		t.Fatal("the first Apply did not rebuild")
	}

	stop := make(chan struct{})
	var bad atomic.Pointer[string]
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
				s := u.Snapshot()
				if len(s.Endpoints) != 1 || s.Endpoints[0].Weight != 3 || s.Endpoints[0].Member == nil {
					msg := "mixed snapshot"
					for _, ts := range s.Targets {
						msg += " " + ts.Addr
						if !ts.Healthy {
							msg += "(down)"
						}
						if ts.Override != "" {
							msg += "(overridden)"
						}
					}
					bad.Store(&msg)
				}
			}
		}()
	}
	for i := range 400 {
		before := swaps.Load()
		if !u.Apply(genSpec((i+1)%2, bs)) {
			t.Fatalf("Apply %d changed generation but did not rebuild", i)
		}
		if n := swaps.Load() - before; n != 1 {
			t.Fatalf("Apply %d swapped %d snapshots, want 1", i, n)
		}
	}
	close(stop)
	wg.Wait()
	if m := bad.Load(); m != nil {
		t.Fatal(*m)
	}

	before, gen := swaps.Load(), u.Snapshot().Generation
	if u.Apply(genSpec(0, bs)) {
		t.Fatal("Apply of the spec in force rebuilt")
	}
	if swaps.Load() != before || u.Snapshot().Generation != gen {
		t.Fatal("Apply of the spec in force swapped the snapshot")
	}
}

// TestApplyKeepsState: per-address state (balancer stats, member, health
// verdict) survives an Apply that changes other inputs, and a mark an
// Apply drops goes back to the checks.
func TestApplyKeepsState(t *testing.T) {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	a, b := Target{Addr: "a:1", Weight: 1}, Target{Addr: "b:1", Weight: 1}
	u.Apply(Spec{Targets: []Target{a, b}, Marks: map[string]health.Mark{"b:1": health.MarkUnhealthy}})
	s0 := u.Snapshot()
	if len(s0.Endpoints) != 1 || s0.Endpoints[0].Addr != "a:1" {
		t.Fatalf("endpoints %v, want a:1 alone (b:1 marked down)", s0.Endpoints)
	}
	st, m := s0.Endpoints[0].Stats, s0.Endpoints[0].Member
	five := 5
	u.Apply(Spec{Targets: []Target{a, b}, Overrides: []Override{{ID: "o", Target: "a:1", Weight: &five}}})
	s1 := u.Snapshot()
	if len(s1.Endpoints) != 2 {
		t.Fatalf("endpoints %v, want both (b:1's mark dropped)", s1.Endpoints)
	}
	for _, ep := range s1.Endpoints {
		if ep.Addr == "a:1" && (ep.Stats != st || ep.Member != m || ep.Weight != 5) {
			t.Fatalf("a:1 after Apply: stats kept %v, member kept %v, weight %d (want 5)", ep.Stats == st, ep.Member == m, ep.Weight)
		}
	}
}

// addrsOf lists a snapshot's endpoint addresses, in order.
func addrsOf(s *Snapshot) []string {
	out := make([]string, 0, len(s.Endpoints))
	for _, ep := range s.Endpoints {
		out = append(out, ep.Addr)
	}
	return out
}

// TestSnapshotAtKeepsOneGenerationBack: an Apply of a new configuration
// generation keeps the last snapshot of the one before for requests of
// that generation, and rebuilds between Applies (a discovered target
// set) update the current snapshot without touching it: a request of the
// new generation sees the discovered targets, one of the old generation
// the snapshot it had. One step back only: a request two generations old
// gets the current snapshot. An Apply that changes nothing keeps the
// snapshot and its generation; an unversioned one (generation 0) serves
// every generation the current snapshot.
func TestSnapshotAtKeepsOneGenerationBack(t *testing.T) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	x, y := Target{Addr: "x:1", Weight: 1}, Target{Addr: "y:1", Weight: 1}
	check := func(gen uint64, want *Snapshot) {
		t.Helper()
		if got := u.SnapshotAt(gen); got != want {
			t.Fatalf("SnapshotAt(%d) has generation %d, endpoints %v; want generation %d, endpoints %v",
				gen, got.ConfigGeneration, addrsOf(got), want.ConfigGeneration, addrsOf(want))
		}
	}
	u.Apply(Spec{Generation: 1, Targets: []Target{x}})
	s1 := u.Snapshot()
	u.Apply(Spec{Generation: 2, Targets: []Target{y}})
	s2 := u.Snapshot()
	if s1.ConfigGeneration != 1 || s2.ConfigGeneration != 2 {
		t.Fatalf("config generations %d and %d, want 1 and 2", s1.ConfigGeneration, s2.ConfigGeneration)
	}
	check(1, s1)
	check(2, s2)
	check(3, s2)

	u.SetTargets("consul:web", []Target{{Addr: "z:1", Weight: 1}})
	s2z := u.Snapshot()
	if s2z.ConfigGeneration != 2 || !slices.Equal(addrsOf(s2z), []string{"y:1", "z:1"}) {
		t.Fatalf("after discovery: generation %d, endpoints %v; want 2, [y:1 z:1]", s2z.ConfigGeneration, addrsOf(s2z))
	}
	check(1, s1)
	check(2, s2z)

	u.Apply(Spec{Generation: 3, Targets: []Target{x}})
	s3 := u.Snapshot()
	if !slices.Equal(addrsOf(s3), []string{"x:1", "z:1"}) {
		t.Fatalf("generation 3 endpoints %v, want [x:1 z:1] (the discovered target kept)", addrsOf(s3))
	}
	check(2, s2z)
	check(3, s3)
	check(1, s3)

	if u.Apply(Spec{Generation: 4, Targets: []Target{x}}) {
		t.Fatal("an Apply that changes nothing rebuilt")
	}
	check(4, s3)
	check(2, s2z)

	u.Apply(Spec{Targets: []Target{y}})
	s0 := u.Snapshot()
	for _, gen := range []uint64{0, 1, 3, 9} {
		check(gen, s0)
	}
}
