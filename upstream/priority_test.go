package upstream

import (
	"fmt"
	"testing"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/health"
)

// levelCounts picks n times and counts picks per priority level (by the
// address prefix "p0-", "p1-", "bk-").
func levelCounts(t *testing.T, u *Upstream, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for a, c := range pickN(t, u, n) {
		got[a[:2]] += c
	}
	return got
}

func TestPriorityLoadSplit(t *testing.T) {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	var ts []Target
	for i := range 4 {
		ts = append(ts, Target{Addr: fmt.Sprintf("p0-%d:1", i), Weight: 1})
	}
	for i := range 2 {
		ts = append(ts, Target{Addr: fmt.Sprintf("p1-%d:1", i), Weight: 1, Priority: 1})
	}
	u.Apply(Spec{Targets: ts})
	check := func(what string, p0, p1 int) {
		t.Helper()
		if got := levelCounts(t, u, 1000); got["p0"] != p0 || got["p1"] != p1 {
			t.Fatalf("%s: %v, want p0 %d p1 %d", what, got, p0, p1)
		}
		ls := u.Snapshot().Levels
		if len(ls) != 2 || ls[0].Load*10 != p0 || ls[1].Load*10 != p1 {
			t.Fatalf("%s: levels %+v", what, ls)
		}
	}
	check("level 0 fully healthy", 1000, 0)
	mark(t, u, "p0-0:1", health.MarkUnhealthy)
	// 75 % × 1.4 = 105 %, capped: level 0 still takes everything.
	check("level 0 at 75 %", 1000, 0)
	mark(t, u, "p0-1:1", health.MarkUnhealthy)
	// 50 % × 1.4 = 70 %: the rest overflows to level 1.
	check("level 0 at 50 %", 700, 300)
	mark(t, u, "p0-2:1", health.MarkUnhealthy)
	check("level 0 at 25 %", 350, 650)
	mark(t, u, "p0-3:1", health.MarkUnhealthy)
	check("level 0 at 0 %", 0, 1000)
	for i := range 4 {
		mark(t, u, fmt.Sprintf("p0-%d:1", i), health.MarkNone)
	}
	check("level 0 recovered", 1000, 0)
	// Within a level the balancer's own ratios hold.
	mark(t, u, "p0-0:1", health.MarkUnhealthy)
	mark(t, u, "p0-1:1", health.MarkUnhealthy)
	if got := pickN(t, u, 1000); got["p0-2:1"] != 350 || got["p0-3:1"] != 350 || got["p1-0:1"] != 150 || got["p1-1:1"] != 150 {
		t.Fatalf("per target: %v", got)
	}
}

func TestPriorityBackup(t *testing.T) {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.Apply(Spec{Targets: []Target{
		{Addr: "p0-a:1", Weight: 1}, {Addr: "p0-b:1", Weight: 1},
		{Addr: "bk-a:1", Weight: 1, Backup: true},
	}})
	if got := levelCounts(t, u, 100); got["p0"] != 100 {
		t.Fatalf("all primaries healthy: %v", got)
	}
	mark(t, u, "p0-a:1", health.MarkUnhealthy)
	// Half the primaries would overflow to a next priority level; a
	// backup takes nothing while any primary is healthy.
	if got := levelCounts(t, u, 100); got["p0"] != 100 {
		t.Fatalf("one primary healthy: %v", got)
	}
	mark(t, u, "p0-b:1", health.MarkUnhealthy)
	if got := levelCounts(t, u, 100); got["bk"] != 100 {
		t.Fatalf("every primary down: %v", got)
	}
	mark(t, u, "p0-b:1", health.MarkNone)
	if got := levelCounts(t, u, 100); got["p0"] != 100 {
		t.Fatalf("a primary recovered: %v", got)
	}
	// Nothing healthy at all: no endpoint (not in panic mode).
	mark(t, u, "p0-b:1", health.MarkUnhealthy)
	mark(t, u, "bk-a:1", health.MarkUnhealthy)
	if _, err := u.Pick(&balance.Request{}); err != ErrNoTargets {
		t.Fatalf("nothing healthy: %v", err)
	}
}

func TestPriorityPanicUsesLowestLevel(t *testing.T) {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(), Panic: Panic{MinHealthyPercent: 50}})
	u.Apply(Spec{Targets: []Target{
		{Addr: "p0-a:1", Weight: 1}, {Addr: "p0-b:1", Weight: 1},
		{Addr: "p1-a:1", Weight: 1, Priority: 1}, {Addr: "p1-b:1", Weight: 1, Priority: 1},
	}})
	mark(t, u, "p0-a:1", health.MarkUnhealthy)
	mark(t, u, "p0-b:1", health.MarkUnhealthy)
	mark(t, u, "p1-a:1", health.MarkUnhealthy)
	// 25 % healthy: panic; the lowest level with a healthy target takes
	// all traffic, healthy or not.
	if got := pickN(t, u, 100); got["p1-a:1"] != 50 || got["p1-b:1"] != 50 {
		t.Fatalf("panic: %v", got)
	}
}

// levelTargets is n targets over two priority levels (half each) and, when
// zoned, three zones; every other level-0 target is marked unhealthy, so
// both levels take traffic, each split by zone (in groups).
func levelTargets(t testing.TB, n int) *Upstream {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(), Zone: "z0"})
	ts := make([]Target, n)
	for i := range ts {
		ts[i] = Target{Addr: fmt.Sprintf("10.%d.%d.%d:80", i>>16&255, i>>8&255, i&255), Weight: 1, Priority: i % 2,
			Meta: map[string]string{MetaZone: fmt.Sprintf("z%d", i%3)}}
	}
	u.Apply(Spec{Targets: ts})
	for i := 0; i < n; i += 2 {
		if i%4 == 0 {
			u.Health().Mark(ts[i].Addr, health.MarkUnhealthy)
		}
	}
	return u
}

func TestPriorityPickAllocatesNothing(t *testing.T) {
	u := levelTargets(t, 600)
	s := u.Snapshot()
	if len(s.Levels) != 2 || s.Levels[0].Load != 70 || s.Levels[0].Zones["z0"] != 100 {
		t.Fatalf("levels: %+v", s.Levels)
	}
	var r balance.Request
	if n := testing.AllocsPerRun(1000, func() { _, _ = u.Pick(&r) }); n != 0 {
		t.Fatalf("Pick allocates %v times", n)
	}
}

func BenchmarkUpstreamPickLevels10k(b *testing.B) {
	u := levelTargets(b, 10000)
	var r balance.Request
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, _ = u.Pick(&r)
	}
}
