package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSetTargetsKeepsState: a refresh that re-lists targets keeps their
// verdict, counters, marks and ejections; removal forgets a target.
func TestSetTargetsKeepsState(t *testing.T) {
	clk := newFakeClock()
	var rec recorder
	c := New(Config{Passive: passiveConfig()}, rec.options(clk))
	const a, b, cc, d = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"
	c.SetTargets([]string{a, b, cc})
	fail(c, a, 3)
	fail(c, b, 1)
	c.Mark(cc, MarkUnhealthy)
	before := state(t, c, a)

	c.SetTargets([]string{cc, b, a, d, a}) // reordered, a new one, a duplicate
	if st := state(t, c, a); st.Healthy || !st.Ejected || st.EjectedUntil != before.EjectedUntil || st.Ejections != 1 {
		t.Errorf("ejected target after refresh: %+v, want %+v", st, before)
	}
	if st := state(t, c, b); st.Passive.HTTPFailures != 1 {
		t.Errorf("counters after refresh: %+v, want one http failure", st.Passive)
	}
	if st := state(t, c, cc); st.Mark != MarkUnhealthy || st.Healthy {
		t.Errorf("mark after refresh: %+v", st)
	}
	if st := state(t, c, d); !st.Healthy || st.Cause != CauseInitial {
		t.Errorf("new target: %+v, want healthy", st)
	}
	if n := len(c.States()); n != 4 {
		t.Errorf("%d targets, want 4", n)
	}
	fail(c, b, 2) // the kept counter goes on
	if c.Healthy(b) {
		t.Error("kept counter did not reach the threshold")
	}
	rec.waitEvents(t, 3)

	// The kept ejection timer still fires.
	clk.Advance(10 * time.Second)
	if !c.Healthy(a) || !c.Healthy(b) {
		t.Error("ejections did not end after a refresh")
	}

	// Removing an ejected target frees its slot and its timer.
	fail(c, a, 3)
	c.SetTargets([]string{b, cc, d})
	if !c.Healthy(a) {
		t.Error("a removed address must read as healthy (unknown)")
	}
	if n := c.ejected.Load(); n != 0 {
		t.Errorf("%d ejection slots held, want 0", n)
	}
	if p := clk.pending(); len(p) != 0 {
		t.Errorf("timers of removed target still pending: %v", p)
	}
	c.SetTargets([]string{a, b, cc, d})
	if st := state(t, c, a); !st.Healthy || st.Ejections != 0 {
		t.Errorf("re-added target must start fresh: %+v", st)
	}
	rec.waitEvents(t, 6) // 3 ejections, 2 returns, 1 mark; none from SetTargets
}

// TestSetTargetsWhileRunning: refreshes do not disturb probing of kept
// targets (an unhealthy one stays unhealthy and keeps its schedule),
// removed targets stop being probed and added ones start.
func TestSetTargetsWhileRunning(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	live, dead := srv.Listener.Addr().String(), closedAddr(t)
	clk := newFakeClock()
	var rec recorder
	c := New(Config{Active: ActiveConfig{
		Enabled: true, Type: TypeHTTP, Timeout: 10 * time.Second,
		HealthyInterval: time.Second, UnhealthyInterval: 3 * time.Second,
		HealthyStatuses: []int{200}, Successes: 2, TCPFailures: 1,
	}}, rec.options(clk))
	c.SetTargets([]string{live, dead})
	c.Start(context.Background())
	defer c.Stop()

	clk.waitPending(t, 2)
	clk.Advance(0)
	if p := clk.waitPending(t, 2); p[0] != time.Second || p[1] != 3*time.Second {
		t.Fatalf("pending %v, want [1s 3s]", p)
	}
	if c.Healthy(dead) || !c.Healthy(live) {
		t.Fatal("dead target must be unhealthy, live one healthy")
	}

	c.SetTargets([]string{dead, live}) // refresh re-listing both
	if p := clk.pending(); len(p) != 2 || p[0] != time.Second || p[1] != 3*time.Second {
		t.Fatalf("refresh changed the schedule: %v", p)
	}
	if c.Healthy(dead) {
		t.Fatal("refresh brought an unhealthy target back")
	}

	c.SetTargets([]string{live}) // remove the dead one
	clk.waitPending(t, 1)
	for range 3 {
		clk.Advance(time.Second)
		clk.waitPending(t, 1)
	}
	if n := hits.Load(); n != 4 {
		t.Errorf("live target probed %d times, want 4", n)
	}

	c.SetTargets([]string{live, dead}) // re-added: fresh, probed after jitter
	if !c.Healthy(dead) {
		t.Error("re-added target must start healthy")
	}
	if p := clk.waitPending(t, 2); p[0] != 0 {
		t.Errorf("pending %v, want the new target's first probe at jitter 0", p)
	}
	clk.Advance(0)
	waitFor(t, "re-added target probed", func() bool { return !c.Healthy(dead) })
	evs := rec.waitEvents(t, 2)
	for _, e := range evs {
		if e.Addr != dead || e.Cause != CauseActive || e.New {
			t.Errorf("unexpected event %+v", e)
		}
	}
}

// TestConcurrentUse exercises every method at once under the race
// detector, with real probes running.
func TestConcurrentUse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	live := srv.Listener.Addr().String()
	var changes atomic.Int32
	var c *Checker
	c = New(Config{
		Active: ActiveConfig{
			Enabled: true, Type: TypeHTTP, Timeout: 5 * time.Second,
			HealthyInterval: time.Millisecond, UnhealthyInterval: time.Millisecond,
			HealthyStatuses: []int{200}, Successes: 1, TCPFailures: 1,
		},
		Passive: PassiveConfig{
			Enabled: true, HTTPFailures: 2, UnhealthyStatuses: []int{500}, HealthyStatuses: []int{200},
			MaxEjectionPercent: 50, BaseEjectionTime: time.Millisecond, MaxEjectionTime: 5 * time.Millisecond,
		},
	}, Options{
		OnChange: func() {
			changes.Add(1)
			c.States() // callbacks may call back in
		},
		OnEvent: func(Event) {},
	})
	targets := []string{live, closedAddr(t), "127.0.0.1:1", live + "0"}
	c.SetTargets(targets)
	c.Start(context.Background())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				a := targets[(i+n)%len(targets)]
				switch i % 4 {
				case 0, 1:
					c.Observe(a, Result{Status: []int{200, 500, 500}[n%3]})
					c.Healthy(a)
				case 2:
					c.Mark(a, Mark(n%3))
					c.States()
				case 3:
					c.SetTargets(targets[:1+n%len(targets)])
				}
			}
		})
	}
	waitFor(t, "some changes", func() bool { return changes.Load() > 10 })
	close(stop)
	wg.Wait()
	c.Stop()
	c.Stop()
}
