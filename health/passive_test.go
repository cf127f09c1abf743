package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func passiveConfig() PassiveConfig {
	return PassiveConfig{
		Enabled: true, HTTPFailures: 3, UnhealthyStatuses: []int{500},
		HealthyStatuses:  []int{200},
		BaseEjectionTime: 10 * time.Second, MaxEjectionTime: 25 * time.Second,
	}
}

// now reads clk, or the real clock when clk is nil.
func now(clk Clock) time.Time {
	if clk == nil {
		return time.Now()
	}
	return clk.Now()
}

func fail(c *Checker, addr string, n int) {
	for range n {
		c.Observe(addr, Result{Status: 500})
	}
}

// clocks runs f on the fake clock, and on the real clock (Options.Clock
// nil) in a bubble, where time.Sleep moves the bubble's clock and
// synctest.Wait lets the timers that came due finish. clk is nil in the
// bubble; advance moves either clock.
func clocks(t *testing.T, f func(t *testing.T, clk Clock, advance func(time.Duration))) {
	t.Run("fake clock", func(t *testing.T) {
		clk := newFakeClock()
		f(t, clk, clk.Advance)
	})
	t.Run("real clock in a bubble", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f(t, nil, func(d time.Duration) {
				time.Sleep(d)
				synctest.Wait()
			})
		})
	})
}

// TestTimedEjection ejects a target repeatedly without active checks: the
// ejection lasts base × ejections, capped at max, and ends by itself.
func TestTimedEjection(t *testing.T) {
	clocks(t, testTimedEjection)
}

func testTimedEjection(t *testing.T, clk Clock, advance func(time.Duration)) {
	var rec recorder
	c := New(Config{Passive: passiveConfig()}, rec.options(clk))
	const a = "10.0.0.1:80"
	c.SetTargets([]string{a, "10.0.0.2:80"})

	steps := []struct {
		desc string
		want time.Duration
	}{
		{"first ejection: base", 10 * time.Second},
		{"second ejection: 2 × base", 20 * time.Second},
		{"third ejection: 3 × base capped at max", 25 * time.Second},
		{"fourth ejection: still capped", 25 * time.Second},
	}
	events := 0
	for i, s := range steps {
		start := now(clk)
		fail(c, a, 2)
		if !c.Healthy(a) {
			t.Fatalf("%s: ejected before the threshold", s.desc)
		}
		fail(c, a, 1)
		st := state(t, c, a)
		if st.Healthy || !st.Ejected || st.Cause != CausePassive || st.Ejections != i+1 {
			t.Fatalf("%s: state %+v, want ejected #%d", s.desc, st, i+1)
		}
		if got := st.EjectedUntil.Sub(start); got != s.want {
			t.Fatalf("%s: ejected for %v, want %v", s.desc, got, s.want)
		}
		// Failures during the ejection change nothing.
		fail(c, a, 5)
		advance(s.want - time.Millisecond)
		if c.Healthy(a) {
			t.Fatalf("%s: back before the ejection ended", s.desc)
		}
		advance(time.Millisecond)
		st = state(t, c, a)
		if !st.Healthy || st.Ejected || st.Cause != CauseEjectionExpired || st.Passive != (Counters{}) || !st.EjectedUntil.IsZero() {
			t.Fatalf("%s: after the ejection: %+v", s.desc, st)
		}
		events += 2
		evs := rec.waitEvents(t, events)
		if e := evs[events-2]; e.Cause != CausePassive || !e.Old || e.New {
			t.Errorf("%s: ejection event %+v", s.desc, e)
		}
		if e := evs[events-1]; e.Cause != CauseEjectionExpired || e.Old || !e.New {
			t.Errorf("%s: return event %+v", s.desc, e)
		}
	}
	waitFor(t, "OnChange per change", func() bool { _, n := rec.snapshot(); return n == events })
}

// TestEjectionDecay checks that the ejection count decays by one per base
// ejection time spent healthy.
func TestEjectionDecay(t *testing.T) {
	clocks(t, testEjectionDecay)
}

func testEjectionDecay(t *testing.T, clk Clock, advance func(time.Duration)) {
	c := New(Config{Passive: passiveConfig()}, Options{Clock: clk})
	const a = "10.0.0.1:80"
	c.SetTargets([]string{a})
	eject := func() TargetState {
		fail(c, a, 3)
		return state(t, c, a)
	}
	if st := eject(); st.Ejections != 1 {
		t.Fatalf("ejections = %d, want 1", st.Ejections)
	}
	advance(10 * time.Second) // back
	if st := eject(); st.Ejections != 2 {
		t.Fatalf("ejections = %d, want 2", st.Ejections)
	}
	advance(20 * time.Second) // back
	advance(9 * time.Second)  // healthy, but less than base
	if st := state(t, c, a); st.Ejections != 2 {
		t.Fatalf("after 9s healthy: ejections = %d, want 2", st.Ejections)
	}
	advance(time.Second) // 10s healthy: one decay
	if st := state(t, c, a); st.Ejections != 1 {
		t.Fatalf("after 10s healthy: ejections = %d, want 1", st.Ejections)
	}
	start := now(clk)
	st := eject()
	if st.Ejections != 2 || st.EjectedUntil.Sub(start) != 20*time.Second {
		t.Fatalf("after decay: ejections %d for %v, want 2 for 20s", st.Ejections, st.EjectedUntil.Sub(start))
	}
	advance(20 * time.Second)
	advance(time.Hour) // long healthy period forgets everything
	if st := state(t, c, a); st.Ejections != 0 {
		t.Fatalf("after an hour: ejections = %d, want 0", st.Ejections)
	}
}

// TestEarlyReturnOnPassiveSuccesses: traffic that still reaches a timed
// ejected target (panic mode, manual mark) can end the ejection.
func TestEarlyReturnOnPassiveSuccesses(t *testing.T) {
	clk := newFakeClock()
	p := passiveConfig()
	p.Successes = 2
	c := New(Config{Passive: p}, Options{Clock: clk})
	const a = "10.0.0.1:80"
	c.SetTargets([]string{a})
	fail(c, a, 3)
	c.Observe(a, Result{Status: 200})
	if c.Healthy(a) {
		t.Fatal("one success must not end the ejection")
	}
	c.Observe(a, Result{Status: 200})
	st := state(t, c, a)
	if !st.Healthy || st.Cause != CausePassive || st.Ejected {
		t.Fatalf("state %+v, want healthy by passive successes", st)
	}
	if p := clk.pending(); len(p) != 0 {
		t.Errorf("ejection timer still armed: %v", p)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		desc      string
		pct       float64
		targets   int
		ejectable int
	}{
		{desc: "50% of 4", pct: 50, targets: 4, ejectable: 2},
		{desc: "34% of 3 allows one", pct: 34, targets: 3, ejectable: 1},
		// Small pools: at least one ejection whatever the rounding, never
		// all with a cap.
		{desc: "10% of 3 allows one", pct: 10, targets: 3, ejectable: 1},
		{desc: "50% of 2 allows one", pct: 50, targets: 2, ejectable: 1},
		{desc: "99% of 2 keeps one", pct: 99, targets: 2, ejectable: 1},
		{desc: "67% of 3 allows two", pct: 67, targets: 3, ejectable: 2},
		{desc: "10% of 1 allows none", pct: 10, targets: 1, ejectable: 0},
		{desc: "0 means no cap", pct: 0, targets: 3, ejectable: 3},
		{desc: "100% of 2", pct: 100, targets: 2, ejectable: 2},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			clk := newFakeClock()
			var rec recorder
			p := passiveConfig()
			p.MaxEjectionPercent = tc.pct
			c := New(Config{Passive: p}, rec.options(clk))
			var addrs []string
			for i := range tc.targets {
				addrs = append(addrs, "10.0.0."+string(rune('1'+i))+":80")
			}
			c.SetTargets(addrs)
			for i, a := range addrs {
				fail(c, a, 3)
				st := state(t, c, a)
				wantEjected := i < tc.ejectable
				if st.Ejected != wantEjected || st.Healthy == wantEjected {
					t.Fatalf("target %d: state %+v, want ejected %v", i, st, wantEjected)
				}
				if !wantEjected && st.Passive != (Counters{}) {
					t.Errorf("target %d: refused ejection kept counters %+v", i, st.Passive)
				}
			}
			evs := rec.waitEvents(t, tc.targets)
			for i, e := range evs {
				want := CausePassive
				if i >= tc.ejectable {
					want = CauseEjectionRefused
				}
				if e.Cause != want || e.Addr != addrs[i] {
					t.Errorf("event %d: %+v, want cause %v for %s", i, e, want, addrs[i])
				}
				if want == CauseEjectionRefused && (!e.Old || !e.New) {
					t.Errorf("refusal event %+v must keep the target healthy", e)
				}
			}
			if tc.ejectable < tc.targets && tc.ejectable > 0 {
				// Once an ejection ends, the refused target can be ejected.
				clk.Advance(10 * time.Second)
				last := addrs[len(addrs)-1]
				fail(c, last, 3)
				if c.Healthy(last) {
					t.Error("ejection refused although a slot was freed")
				}
			}
		})
	}
}

// TestMaxEjectionPercentConcurrent ejects from many goroutines at once; the
// cap must hold.
func TestMaxEjectionPercentConcurrent(t *testing.T) {
	p := passiveConfig()
	p.MaxEjectionPercent = 30
	c := New(Config{Passive: p}, Options{Clock: newFakeClock()})
	var addrs []string
	for i := range 20 {
		addrs = append(addrs, "10.0.1."+string(rune('a'+i))+":80")
	}
	c.SetTargets(addrs)
	var wg sync.WaitGroup
	for _, a := range addrs {
		wg.Go(func() { fail(c, a, 3) })
	}
	wg.Wait()
	n := 0
	for _, st := range c.States() {
		if st.Ejected {
			n++
		}
	}
	if n != 6 {
		t.Errorf("%d targets ejected, want 6 (30%% of 20)", n)
	}
}

// TestPassiveEjectionWithActiveRecovery: with active checks able to heal,
// a passively ejected target has no timer and comes back only through
// probe successes; probing unhealthy targets only works (healthy interval
// 0).
func TestPassiveEjectionWithActiveRecovery(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	clk := newFakeClock()
	var rec recorder
	c := New(Config{
		Active: ActiveConfig{
			Enabled: true, Type: TypeHTTP, Timeout: 10 * time.Second,
			HealthyInterval: 0, UnhealthyInterval: 2 * time.Second,
			Successes: 2, HealthyStatuses: []int{200},
		},
		Passive: passiveConfig(),
	}, rec.options(clk))
	c.SetTargets([]string{addr})
	c.Start(context.Background())
	defer c.Stop()
	if p := clk.pending(); len(p) != 0 {
		t.Fatalf("healthy targets must not be probed: %v", p)
	}
	fail(c, addr, 3)
	st := state(t, c, addr)
	if st.Healthy || !st.Ejected || !st.EjectedUntil.IsZero() {
		t.Fatalf("state %+v, want ejected without a deadline", st)
	}
	if p := clk.pending(); len(p) != 1 || p[0] != 2*time.Second {
		t.Fatalf("pending %v, want one probe in 2s", p)
	}
	// Passive successes do not heal when active checks can.
	for range 10 {
		c.Observe(addr, Result{Status: 200})
	}
	clk.Advance(time.Hour) // no ejection timer; the probe fires once
	clk.waitPending(t, 1)
	if c.Healthy(addr) {
		t.Fatal("healed by time or passive successes")
	}
	d, _ := clk.next()
	clk.Advance(d) // second probe success heals; healthy interval 0 parks it
	waitFor(t, "active recovery", func() bool { return c.Healthy(addr) })
	st = state(t, c, addr)
	if st.Cause != CauseActive || st.Ejected {
		t.Errorf("state %+v, want healed by active", st)
	}
	clk.waitPending(t, 0)
}

// A target healthy for longer than base_ejection_time before its first
// ejection keeps that ejection in its count: the next one, right after it
// returns, lasts twice as long.
func TestEjectionCountAfterLongHealthyPeriod(t *testing.T) {
	clk := newFakeClock()
	var rec recorder
	c := New(Config{Passive: passiveConfig()}, rec.options(clk))
	c.SetTargets([]string{"a:1"})
	clk.Advance(15 * time.Second)
	fail(c, "a:1", 3)
	if st := state(t, c, "a:1"); st.Ejections != 1 || st.EjectedUntil.Sub(clk.Now()) != 10*time.Second {
		t.Fatalf("first ejection %+v, want 1 ejection of 10s", st)
	}
	clk.Advance(10 * time.Second)
	fail(c, "a:1", 3)
	if st := state(t, c, "a:1"); st.Ejections != 2 || st.EjectedUntil.Sub(clk.Now()) != 20*time.Second {
		t.Fatalf("second ejection %+v, want 2 ejections, 20s", st)
	}
}
