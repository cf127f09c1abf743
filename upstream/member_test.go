package upstream

import (
	"slices"
	"sync"
	"testing"

	"github.com/outrigger-gw/outrigger/balance"
)

// memberOf picks until it gets addr's endpoint and returns its member.
func memberOf(t *testing.T, s *Snapshot, addr string) *Member {
	t.Helper()
	for i := range s.Endpoints {
		if s.Endpoints[i].Addr == addr {
			return s.Endpoints[i].Member
		}
	}
	t.Fatalf("%s is not an endpoint", addr)
	return nil
}

// A target's Member: it ends when the target has left and its last
// request is done, with exactly one OnTargetGone call at that moment; a
// Hold on an ended member fails; the address coming back while a request
// holds the old member keeps it, and coming back after the end gets a new
// one.
func TestMemberLife(t *testing.T) {
	var mu sync.Mutex
	var gone []string
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin(), OnTargetGone: func(a string) {
		mu.Lock()
		gone = append(gone, a)
		mu.Unlock()
	}})
	goneList := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(gone) }
	a, b := Target{Addr: "a:1", Weight: 1}, Target{Addr: "b:1", Weight: 1}

	u.SetTargets(StaticSource, []Target{a, b})
	old := u.Snapshot()
	ma := memberOf(t, old, "a:1")
	if !ma.Hold() {
		t.Fatal("Hold on a listed member failed")
	}
	u.SetTargets(StaticSource, []Target{b})
	if g := goneList(); len(g) != 0 {
		t.Fatalf("gone %v while a request holds a:1", g)
	}
	if memberOf(t, u.Snapshot(), "b:1") != memberOf(t, old, "b:1") {
		t.Fatal("b:1 stayed but got a new member")
	}
	ma.Done()
	if g := goneList(); !slices.Equal(g, []string{"a:1"}) {
		t.Fatalf("gone %v after the last request, want [a:1]", g)
	}
	if ma.Hold() {
		t.Fatal("Hold on an ended member (a stale snapshot's endpoint) succeeded")
	}

	u.SetTargets(StaticSource, []Target{a, b})
	ma2 := memberOf(t, u.Snapshot(), "a:1")
	if ma2 == ma {
		t.Fatal("a target back after its end reuses the ended member")
	}
	ma2.Attach("series")
	if !ma2.Hold() {
		t.Fatal("Hold failed")
	}
	u.SetTargets(StaticSource, []Target{b})
	u.SetTargets(StaticSource, []Target{a, b}) // back while held
	if m := memberOf(t, u.Snapshot(), "a:1"); m != ma2 || m.Value() != "series" {
		t.Fatal("a target back while a request holds it got a new member")
	}
	ma2.Done()
	if g := goneList(); len(g) != 1 {
		t.Fatalf("gone %v: a target that came back must not go", g)
	}
	u.SetTargets(StaticSource, nil)
	if g := goneList(); !slices.Equal(g, []string{"a:1", "a:1", "b:1"}) && !slices.Equal(g, []string{"a:1", "b:1", "a:1"}) {
		t.Fatalf("gone %v after the set emptied", g)
	}
}

// Holds and removals racing: every member ends exactly once, and only
// after its last request (run with -race).
func TestMemberChurnConcurrent(t *testing.T) {
	var mu sync.Mutex
	gone := map[string]int{}
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin(), OnTargetGone: func(a string) {
		mu.Lock()
		gone[a]++
		mu.Unlock()
	}})
	stay := Target{Addr: "stay:1", Weight: 1}
	u.SetTargets(StaticSource, []Target{stay})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r balance.Request
			for {
				select {
				case <-stop:
					return
				default:
				}
				ep, err := u.Pick(&r)
				if err != nil {
					continue
				}
				if ep.Member.Hold() {
					ep.Member.Done()
				}
			}
		}()
	}
	const cycles = 500
	for i := range cycles {
		addr := "t:" + string(rune('a'+i%26)) + string(rune('a'+i/26%26))
		u.SetTargets(StaticSource, []Target{stay, {Addr: addr, Weight: 1}})
		u.SetTargets(StaticSource, []Target{stay})
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for a, n := range gone {
		if a == "stay:1" {
			t.Fatalf("a listed target went")
		}
		total += n
	}
	if total != cycles {
		t.Fatalf("%d ends for %d departures", total, cycles)
	}
	u.memMu.Lock()
	defer u.memMu.Unlock()
	if len(u.members) != 1 {
		t.Fatalf("%d members left, want 1", len(u.members))
	}
}
