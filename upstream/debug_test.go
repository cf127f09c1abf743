package upstream

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/health"
)

func debugTarget(t *testing.T, d Debug, addr string) DebugTarget {
	t.Helper()
	for _, dt := range d.Targets {
		if dt.Target == addr {
			return dt
		}
	}
	t.Fatalf("debug view has no %s: %+v", addr, d.Targets)
	return DebugTarget{}
}

// TestDebugView: the debug view shows each target's source, configured and
// effective weight (override), health with reason and since-when,
// slow-start factor, balancer counters and locality, and the discovery
// generations, all from the current snapshot.
func TestDebugView(t *testing.T) {
	now := time.Unix(1000, 0)
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin(), Now: func() time.Time { return now },
		SlowStart: &SlowStart{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10}})
	defer u.Close()
	w := 30
	u.Apply(Spec{Targets: []Target{{Addr: "a:1", Weight: 100}, {Addr: "b:1", Weight: 100}},
		Overrides: []Override{{ID: "ov1", Target: "b:1", Weight: &w}}})
	d := u.Debug()
	if len(d.Sources) != 0 {
		t.Fatalf("static targets count as a discovery generation: %v", d.Sources)
	}
	if len(d.Levels) != 1 || d.Levels[0].Load != 100 || d.Levels[0].Targets != 2 || d.Levels[0].Healthy != 2 {
		t.Fatalf("levels: %+v", d.Levels)
	}
	b := debugTarget(t, d, "b:1")
	if b.Source != StaticSource || b.Weight != 100 || b.EffectiveWeight != 30 || b.Override != "ov1" || !b.Eligible {
		t.Fatalf("overridden target: %+v", b)
	}

	// Traffic: the counters come from the balancer statistics.
	var r balance.Request
	for range 4 {
		ep, err := u.Pick(&r)
		if err != nil {
			t.Fatal(err)
		}
		ep.Stats.Requests.Add(1)
		ep.Stats.InFlight.Add(1)
		u.Report(ep, Outcome{Status: 200, Duration: 20 * time.Millisecond, At: now})
	}
	d = u.Debug()
	var reqs uint64
	var inflight int64
	for _, dt := range d.Targets {
		reqs += dt.Requests
		inflight += dt.InFlight
		if dt.Requests > 0 && (dt.LatencyEWMAMs == nil || *dt.LatencyEWMAMs != 20) {
			t.Fatalf("%s: latency EWMA %v, want 20 ms", dt.Target, dt.LatencyEWMAMs)
		}
	}
	if reqs != 4 || inflight != 4 {
		t.Fatalf("requests %d in flight %d, want 4 and 4", reqs, inflight)
	}

	// A manual mark: reason and since.
	now = now.Add(time.Second)
	joined := time.Unix(1001, 0) // when c:1 joins, below
	// The checker has its own clock (real time): since is when it marked.
	before := time.Now()
	mark(t, u, "a:1", health.MarkUnhealthy)
	a := debugTarget(t, u.Debug(), "a:1")
	if a.Health.Healthy || a.Health.Reason != "manual" || a.Health.Mark != "unhealthy" || a.Health.Since == nil ||
		a.Health.Since.Before(before) || a.Eligible || a.EffectiveWeight != 0 {
		t.Fatalf("marked target: %+v", a)
	}

	// A discovered target ramps (slow start) and carries its locality.
	gen := u.Snapshot().Generation
	u.SetTargets("kubernetes:web", []Target{{Addr: "c:1", Weight: 100, Meta: map[string]string{"zone": "z1", "nodeName": "n1", "pod": "p"}}})
	now = joined.Add(5 * time.Second)
	u.Rebuild()
	d = u.Debug()
	if d.Generation <= gen || d.Sources["kubernetes:web"] != 1 {
		t.Fatalf("generations: snapshot %d (was %d), sources %v", d.Generation, gen, d.Sources)
	}
	c := debugTarget(t, d, "c:1")
	if c.Source != "kubernetes:web" || c.SlowStart == nil || c.SlowStart.Factor != 0.5 || !c.SlowStart.Since.Equal(joined) ||
		c.EffectiveWeight != 50 || c.Locality["zone"] != "z1" || c.Locality["nodeName"] != "n1" || len(c.Locality) != 2 {
		t.Fatalf("discovered ramping target: %+v slow start %+v", c, c.SlowStart)
	}
	// The same set again is no new generation; a changed one is.
	u.SetTargets("kubernetes:web", []Target{{Addr: "c:1", Weight: 100, Meta: map[string]string{"zone": "z1", "nodeName": "n1", "pod": "p"}}})
	if g := u.Debug().Sources["kubernetes:web"]; g != 1 {
		t.Fatalf("unchanged set: generation %d", g)
	}
	u.SetTargets("kubernetes:web", nil)
	if g := u.Debug().Sources["kubernetes:web"]; g != 2 {
		t.Fatalf("changed set: generation %d", g)
	}
	if _, err := json.Marshal(u.Debug()); err != nil {
		t.Fatal(err)
	}
}

// TestDebugViewEjection: a passive ejection shows in the debug view with
// its reason, since-when and end, and the target leaves the picker.
func TestDebugViewEjection(t *testing.T) {
	var u *Upstream
	hc := health.New(health.Config{Passive: health.PassiveConfig{Enabled: true, HTTPFailures: 2, UnhealthyStatuses: []int{500},
		HealthyStatuses: []int{200}, BaseEjectionTime: time.Minute, MaxEjectionTime: time.Minute}},
		health.Options{OnChange: func() { u.Rebuild() }})
	u = New(Options{Name: "u", Balancer: balance.NewRoundRobin(), Health: hc})
	defer u.Close()
	u.SetTargets(StaticSource, []Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}})
	var ep *Endpoint
	for _, e := range u.Snapshot().Endpoints {
		if e.Addr == "b:1" {
			ep = &e
		}
	}
	before := time.Now()
	for range 2 {
		u.Report(ep, Outcome{Status: 500, At: before})
	}
	b := debugTarget(t, u.Debug(), "b:1")
	h := b.Health
	if h.Healthy || !h.Ejected || h.Reason != "passive" || h.Since == nil || h.Since.Before(before) || h.Ejections != 1 ||
		h.EjectedUntil == nil || !h.EjectedUntil.After(*h.Since) || b.Eligible || b.EffectiveWeight != 0 {
		t.Fatalf("ejected target: %+v health %+v", b, h)
	}
	if a := debugTarget(t, u.Debug(), "a:1"); !a.Health.Healthy || a.Health.Ejected || a.Health.EjectedUntil != nil {
		t.Fatalf("healthy target: %+v", a.Health)
	}
}
