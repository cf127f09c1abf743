package upstream

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/health"
)

// newWithHealth returns an upstream whose health checker has no probes:
// tests steer it with manual marks.
func newWithHealth(o Options) *Upstream {
	var u *Upstream
	o.Health = health.New(health.Config{}, health.Options{OnChange: func() { u.Rebuild() }})
	u = New(o)
	return u
}

func mark(t *testing.T, u *Upstream, addr string, m health.Mark) {
	t.Helper()
	if !u.Health().Mark(addr, m) {
		t.Fatalf("mark %s: unknown target", addr)
	}
}

func pickN(t *testing.T, u *Upstream, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	var r balance.Request
	for i := 0; i < n; i++ {
		ep, err := u.Pick(&r)
		if err != nil {
			t.Fatal(err)
		}
		got[ep.Addr]++
	}
	return got
}

func TestExactRatiosAndDrain(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		targets []Target
		n       int
		want    map[string]int
	}{
		{desc: "300:100", targets: []Target{{Addr: "a:1", Weight: 300}, {Addr: "b:1", Weight: 100}}, n: 400,
			want: map[string]int{"a:1": 300, "b:1": 100}},
		{desc: "weight 0 drains", targets: []Target{{Addr: "a:1", Weight: 5}, {Addr: "b:1", Weight: 0}, {Addr: "c:1", Weight: 5}}, n: 100,
			want: map[string]int{"a:1": 50, "c:1": 50}},
		{desc: "three-way", targets: []Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 2}, {Addr: "c:1", Weight: 3}}, n: 600,
			want: map[string]int{"a:1": 100, "b:1": 200, "c:1": 300}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
			u.SetTargets("static", tc.targets)
			got := pickN(t, u, tc.n)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestNoTargets(t *testing.T) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	if _, err := u.Pick(&balance.Request{}); err != ErrNoTargets {
		t.Fatalf("empty upstream: %v", err)
	}
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 0}})
	if _, err := u.Pick(&balance.Request{}); err != ErrNoTargets {
		t.Fatalf("only draining targets: %v", err)
	}
}

// Stats of an address survive target-set updates; removed addresses lose
// theirs.
func TestStatsSurviveUpdates(t *testing.T) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}})
	ep, _ := u.Pick(&balance.Request{})
	ep.Stats.InFlight.Add(1)
	addr, st := ep.Addr, ep.Stats
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 2}, {Addr: "b:1", Weight: 1}, {Addr: "c:1", Weight: 1}})
	for _, e := range u.Snapshot().Endpoints {
		if e.Addr == addr && (e.Stats != st || e.Stats.InFlight.Load() != 1) {
			t.Fatal("stats of an unchanged address were reset by an update")
		}
	}
	u.SetTargets("static", []Target{{Addr: "c:1", Weight: 1}})
	u.SetTargets("static", []Target{{Addr: addr, Weight: 1}})
	if u.Snapshot().Endpoints[0].Stats == st {
		t.Fatal("a removed address kept its stats")
	}
}

func TestHealthFilterAndSources(t *testing.T) {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}})
	mark(t, u, "b:1", health.MarkUnhealthy)
	u.SetTargets("consul:web", []Target{{Addr: "c:1", Weight: 1}, {Addr: "a:1", Weight: 9}})
	got := pickN(t, u, 20)
	if got["b:1"] != 0 || got["a:1"] != 10 || got["c:1"] != 10 {
		t.Fatalf("got %v: want the unhealthy target skipped and the duplicate address counted once", got)
	}
	var states = map[string]TargetState{}
	for _, ts := range u.Snapshot().Targets {
		states[ts.Addr] = ts
	}
	if states["b:1"].Healthy || states["b:1"].EffectiveWeight != 0 || states["a:1"].Source != StaticSource || states["a:1"].Weight != 1 {
		t.Fatalf("target states: %+v", states)
	}
	u.SetTargets("consul:web", nil)
	got = pickN(t, u, 10)
	if got["a:1"] != 10 {
		t.Fatalf("after the source emptied: %v", got)
	}
}

func TestConcurrentPickAndUpdate(t *testing.T) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 1}})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
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
				if _, err := u.Pick(&r); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 500; i++ {
		u.SetTargets("static", []Target{{Addr: "a:1", Weight: 1 + i%5}, {Addr: "b:1", Weight: i % 3}})
	}
	close(stop)
	wg.Wait()
}

func TestPickAllocs(t *testing.T) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 3}, {Addr: "b:1", Weight: 1}})
	var r balance.Request
	if n := testing.AllocsPerRun(1000, func() { _, _ = u.Pick(&r) }); n != 0 {
		t.Fatalf("Pick allocates %v times", n)
	}
}

func BenchmarkUpstreamPick(b *testing.B) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 3}, {Addr: "b:1", Weight: 1}, {Addr: "c:1", Weight: 2}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var r balance.Request
		for pb.Next() {
			_, _ = u.Pick(&r)
		}
	})
}

// An unhealthy target stays unhealthy across a target-set refresh that
// lists it again (APISIX resets it; we must not).
func TestHealthSurvivesRefresh(t *testing.T) {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	ts := []Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}}
	u.SetTargets("consul:web", ts)
	mark(t, u, "b:1", health.MarkUnhealthy)
	u.SetTargets("consul:web", append(ts, Target{Addr: "c:1", Weight: 1}))
	if got := pickN(t, u, 30); got["b:1"] != 0 || got["a:1"] != 15 {
		t.Fatalf("after a refresh: %v", got)
	}
}

func TestPanicMode(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		panic     Panic
		unhealthy []string
		wantPanic bool
		want      map[string]int // of 40 picks; nil: ErrNoTargets
	}{
		{desc: "above threshold", panic: Panic{MinHealthyPercent: 50}, unhealthy: []string{"d:1"},
			want: map[string]int{"a:1": 10, "b:1": 20, "c:1": 10}},
		{desc: "fail-open balances over all", panic: Panic{MinHealthyPercent: 50}, unhealthy: []string{"a:1", "b:1", "c:1"}, wantPanic: true,
			want: map[string]int{"a:1": 8, "b:1": 16, "c:1": 8, "d:1": 8}},
		{desc: "fail-closed answers no target", panic: Panic{MinHealthyPercent: 50, FailClosed: true}, unhealthy: []string{"b:1", "c:1"}, wantPanic: true},
		{desc: "fail-closed counts weight", panic: Panic{MinHealthyPercent: 50, FailClosed: true}, unhealthy: []string{"c:1", "d:1"},
			want: map[string]int{"a:1": 40 / 3, "b:1": 40 - 40/3}},
		{desc: "disabled", panic: Panic{}, unhealthy: []string{"a:1", "b:1", "c:1"},
			want: map[string]int{"d:1": 40}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var events []bool
			u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(), Panic: tc.panic,
				OnPanic: func(on bool, _ float64) { events = append(events, on) }})
			u.SetTargets("static", []Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 2}, {Addr: "c:1", Weight: 1}, {Addr: "d:1", Weight: 1}})
			for _, a := range tc.unhealthy {
				mark(t, u, a, health.MarkUnhealthy)
			}
			if got := u.Snapshot().Panic; got != tc.wantPanic {
				t.Fatalf("panic = %v, want %v", got, tc.wantPanic)
			}
			if tc.wantPanic && (len(events) != 1 || !events[0]) {
				t.Fatalf("OnPanic events %v, want one engage", events)
			}
			if tc.want == nil {
				if _, err := u.Pick(&balance.Request{}); err != ErrNoTargets {
					t.Fatalf("want ErrNoTargets, got %v", err)
				}
				return
			}
			got := pickN(t, u, 40)
			for k, v := range tc.want {
				if d := got[k] - v; d < -1 || d > 1 {
					t.Fatalf("got %v, want about %v", got, tc.want)
				}
			}
		})
	}
}

func TestSlowStart(t *testing.T) {
	now := time.Unix(1000, 0)
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(), Now: func() time.Time { return now },
		SlowStart: &SlowStart{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10}})
	defer u.Close()
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 100}})
	weight := func(addr string) int {
		for _, ts := range u.Snapshot().Targets {
			if ts.Addr == addr {
				return ts.EffectiveWeight
			}
		}
		return -1
	}
	if w := weight("a:1"); w != 100 {
		t.Fatalf("targets of the first set do not ramp: weight %d", w)
	}
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 100}, {Addr: "b:1", Weight: 100}})
	for _, step := range []struct {
		at   time.Duration
		want int
	}{{0, 10}, {500 * time.Millisecond, 10}, {5 * time.Second, 50}, {9 * time.Second, 90}, {10 * time.Second, 100}, {20 * time.Second, 100}} {
		now = time.Unix(1000, 0).Add(step.at)
		u.Rebuild()
		if w := weight("b:1"); w != step.want {
			t.Fatalf("at %s: weight %d, want %d", step.at, w, step.want)
		}
	}
	// A recovered target ramps again.
	mark(t, u, "b:1", health.MarkUnhealthy)
	now = now.Add(time.Minute)
	mark(t, u, "b:1", health.MarkNone)
	if w := weight("b:1"); w != 10 {
		t.Fatalf("recovered target: weight %d, want 10", w)
	}
}

// TestSlowStartRampsOnItsOwn runs in a bubble on the real clock (no Now
// injected, nobody calls Rebuild): the upstream's own ramp timer rebuilds
// every window/40 while a target ramps, each rebuild weighing the target at
// that instant, and stops once the ramp is over.
func TestSlowStartRampsOnItsOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = 10 * time.Second // rebuilt every 250ms
		u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(),
			SlowStart: &SlowStart{Window: window, Aggression: 1, MinWeightPercent: 10}})
		defer u.Close()
		u.SetTargets("static", []Target{{Addr: "a:1", Weight: 100}})
		u.SetTargets("static", []Target{{Addr: "a:1", Weight: 100}, {Addr: "b:1", Weight: 100}})
		start := time.Now()
		state := func(addr string) TargetState {
			for _, ts := range u.Snapshot().Targets {
				if ts.Addr == addr {
					return ts
				}
			}
			t.Fatalf("no target %s", addr)
			return TargetState{}
		}
		for _, step := range []struct {
			at      time.Duration
			want    int
			ramping bool
		}{
			{0, 10, true},
			{time.Second, 10, true},             // 10 % floor
			{4900 * time.Millisecond, 48, true}, // rebuilt at 4.75s: 47.5 rounds to 48
			{5 * time.Second, 50, true},         // rebuilt at 5s
			{9999 * time.Millisecond, 98, true}, // rebuilt at 9.75s
			{window, 100, false},                // the rebuild at 10s ends the ramp
			{window + time.Minute, 100, false},
		} {
			time.Sleep(time.Until(start.Add(step.at)))
			synctest.Wait() // the rebuild due now, if any, is done
			ts := state("b:1")
			if ts.EffectiveWeight != step.want || !ts.RampingSince.IsZero() != step.ramping {
				t.Fatalf("at %s: weight %d ramping since %v, want weight %d ramping %v",
					step.at, ts.EffectiveWeight, ts.RampingSince, step.want, step.ramping)
			}
			if step.ramping && !ts.RampingSince.Equal(start) {
				t.Fatalf("at %s: ramping since %v, want %v", step.at, ts.RampingSince, start)
			}
			if w := state("a:1").EffectiveWeight; w != 100 {
				t.Fatalf("at %s: the first set's target weighs %d, want 100", step.at, w)
			}
			u.mu.Lock()
			armed := u.rampTimer != nil
			u.mu.Unlock()
			if armed != step.ramping {
				t.Fatalf("at %s: ramp timer armed %v, want %v", step.at, armed, step.ramping)
			}
		}
	})
}

func TestOverrides(t *testing.T) {
	intp := func(v int) *int { return &v }
	fp := func(v float64) *float64 { return &v }
	base := []Target{
		{Addr: "a:1", Weight: 100, Meta: map[string]string{"version": "v1"}},
		{Addr: "b:1", Weight: 100, Meta: map[string]string{"version": "v1"}},
		{Addr: "c:1", Weight: 100, Meta: map[string]string{"version": "v2"}, Tags: []string{"canary"}},
	}
	for _, tc := range []struct {
		desc string
		os   []Override
		n    int
		want map[string]int
	}{
		{desc: "weight by address", os: []Override{{ID: "o1", Target: "a:1", Weight: intp(300)}}, n: 500,
			want: map[string]int{"a:1": 300, "b:1": 100, "c:1": 100}},
		{desc: "weight 0 by meta drains", os: []Override{{ID: "o1", Meta: map[string]string{"version": "v2"}, Weight: intp(0)}}, n: 100,
			want: map[string]int{"a:1": 50, "b:1": 50}},
		{desc: "later wins", os: []Override{{ID: "o1", Target: "a:1", Weight: intp(300)}, {ID: "o2", Meta: map[string]string{"version": "v1"}, Weight: intp(100)}}, n: 300,
			want: map[string]int{"a:1": 100, "b:1": 100, "c:1": 100}},
		{desc: "share of 5% by tag", os: []Override{{ID: "o1", Tags: []string{"canary"}, Share: fp(5)}}, n: 60000,
			want: map[string]int{"a:1": 28500, "b:1": 28500, "c:1": 3000}},
		{desc: "share 0 drains", os: []Override{{ID: "o1", Tags: []string{"canary"}, Share: fp(0)}}, n: 100,
			want: map[string]int{"a:1": 50, "b:1": 50}},
		{desc: "share selecting nothing reserves nothing", os: []Override{{ID: "o1", Tags: []string{"nope"}, Share: fp(50)}}, n: 300,
			want: map[string]int{"a:1": 100, "b:1": 100, "c:1": 100}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
			u.SetTargets("consul:web", base)
			u.SetOverrides(tc.os)
			got := pickN(t, u, tc.n)
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			// A discovery refresh keeps the override.
			u.SetTargets("consul:web", append(slices.Clone(base), Target{Addr: "d:1", Weight: 100, Tags: []string{"canary"}}))
			w := map[string]int{}
			for _, ts := range u.Snapshot().Targets {
				w[ts.Addr] = ts.EffectiveWeight
			}
			if slices.Equal(tc.os[0].Tags, []string{"canary"}) && w["d:1"] != w["c:1"] {
				t.Fatalf("a target discovered later did not inherit the tag override: %v", w)
			}
		})
	}
}
