package upstream

import (
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
