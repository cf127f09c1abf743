package balance

import (
	"math"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

func TestExpNeg(t *testing.T) {
	for x := 0.0; x < 750; x += 0.013 {
		got, want := expNeg(x), math.Exp(-x)
		if want == 0 || x > 700 {
			if got > 1e-300 {
				t.Fatalf("expNeg(%g) = %g, want ~0", x, got)
			}
			continue
		}
		if d := math.Abs(got-want) / want; d > 3e-6 {
			t.Fatalf("expNeg(%g) = %g, want %g (rel. error %g)", x, got, want, d)
		}
	}
	if expNeg(-1) != 1 || expNeg(math.NaN()) != 1 {
		t.Fatal("expNeg of non-positive input should be 1")
	}
}

func TestObserve(t *testing.T) {
	type obs struct {
		at      int64 // ms since start
		latency time.Duration
		failed  bool
	}
	decay := func(ms float64) float64 { return math.Exp(-ms / 10000) }
	tests := []struct {
		desc string
		obs  []obs
		want float64 // ms
	}{
		{desc: "first sample is the average", obs: []obs{{0, 10 * time.Millisecond, false}}, want: 10},
		{desc: "a peak replaces the average", obs: []obs{{0, 10 * time.Millisecond, false}, {1, 100 * time.Millisecond, false}}, want: 100},
		{desc: "a lower sample is blended by elapsed time",
			obs:  []obs{{0, 100 * time.Millisecond, false}, {1000, 10 * time.Millisecond, false}},
			want: 100*decay(1000) + 10*(1-decay(1000))},
		{desc: "a lower sample right away barely counts",
			obs:  []obs{{0, 100 * time.Millisecond, false}, {0, 10 * time.Millisecond, false}},
			want: 100},
		{desc: "after a long time the sample dominates",
			obs:  []obs{{0, 100 * time.Millisecond, false}, {100000, 10 * time.Millisecond, false}},
			want: 100*decay(100000) + 10*(1-decay(100000))},
		{desc: "out of order: an earlier-stamped sample counts as simultaneous",
			obs:  []obs{{1000, 100 * time.Millisecond, false}, {0, 10 * time.Millisecond, false}},
			want: 100},
		{desc: "a fast failure is penalised",
			obs:  []obs{{0, 10 * time.Millisecond, false}, {5, time.Millisecond, true}},
			want: 10 + 1000},
		{desc: "a slow failure adds the penalty to its latency",
			obs:  []obs{{0, 10 * time.Millisecond, false}, {5, 3 * time.Second, true}},
			want: 3000 + 1000},
		{desc: "repeated failures keep pushing",
			obs:  []obs{{0, 10 * time.Millisecond, false}, {1, time.Millisecond, true}, {2, time.Millisecond, true}},
			want: 10 + 2000},
	}
	start := newFakeClock().Now()
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var s Stats
			if _, ok := s.LatencyEWMA(); ok {
				t.Fatal("fresh Stats reports an EWMA")
			}
			for _, o := range tc.obs {
				s.Observe(o.latency, o.failed, start+o.at*ms)
			}
			got, ok := s.LatencyEWMA()
			if !ok {
				t.Fatal("no EWMA after Observe")
			}
			if d := math.Abs(float64(got)/1e6-tc.want) / tc.want; d > 1e-6 {
				t.Errorf("EWMA %v, want %.4fms", got, tc.want)
			}
		})
	}
}

// latencySim runs picks against endpoints whose latency is given by
// lat(index, pick number); each request completes at once and is observed,
// the clock advancing by step per request. It returns pick counts.
func latencySim(p Picker, eps []Endpoint, clock *fakeClock, picks int, step time.Duration, lat func(i, n int) time.Duration) []int {
	got := make([]int, len(eps))
	for n := range picks {
		clock.Advance(int64(step))
		i := p.Pick(&Request{})
		got[i]++
		eps[i].Stats.Observe(lat(i, n), false, clock.Now())
	}
	return got
}

func TestLatencySlowTargetGetsLess(t *testing.T) {
	eps := endpoints(1, 1, 1, 1)
	clock := newFakeClock()
	p := (&Latency{Rand: seeded(1), Now: clock.Now}).Build(eps, nil)
	got := latencySim(p, eps, clock, 20000, time.Millisecond, func(i, _ int) time.Duration {
		if i == 2 {
			return 200 * time.Millisecond
		}
		return 10 * time.Millisecond
	})
	if share := float64(got[2]) / 20000; share > 0.03 {
		t.Errorf("slow target got %.1f%% of picks (%v), want < 3%%", 100*share, got)
	}
	for i, n := range got {
		if i != 2 && n < 6000 {
			t.Errorf("fast target %d got only %d picks: %v", i, n, got)
		}
	}
}

func TestLatencyRecoveredTargetGetsTrafficAgain(t *testing.T) {
	eps := endpoints(1, 1, 1)
	clock := newFakeClock()
	p := (&Latency{Rand: seeded(2), Now: clock.Now}).Build(eps, nil)
	slow := func(i, _ int) time.Duration {
		if i == 0 {
			return time.Second
		}
		return 10 * time.Millisecond
	}
	// Phase 1: target 0 is slow and is avoided.
	got := latencySim(p, eps, clock, 5000, 2*time.Millisecond, slow)
	if got[0] > 100 {
		t.Fatalf("slow phase: target 0 got %d of 5000 picks", got[0])
	}
	// Phase 2: it is fast again. Idle, its EWMA decays until it is tried,
	// and its fast samples bring it back to its share.
	fast := func(int, int) time.Duration { return 10 * time.Millisecond }
	latencySim(p, eps, clock, 60000, 2*time.Millisecond, fast) // two simulated minutes
	got = latencySim(p, eps, clock, 30000, 2*time.Millisecond, fast)
	if share := float64(got[0]) / 30000; share < 0.25 {
		t.Errorf("after recovery target 0 got %.1f%% of picks (%v), want about a third", 100*share, got)
	}
}

func TestLatencyCost(t *testing.T) {
	clock := newFakeClock()
	now := unixMillis32(clock.Now())
	tests := []struct {
		desc     string
		observe  time.Duration // 0: never observed
		ago      int64         // ms since the observation
		inflight int64
		want     float64 // ns
	}{
		{desc: "never observed, idle: try it", want: 0},
		{desc: "never observed, busy: one probe at a time", inflight: 2, want: unknownCost + 2},
		{desc: "load multiplies", observe: 10 * time.Millisecond, inflight: 3, want: 4 * 10e6},
		{desc: "idle cost decays", observe: 10 * time.Millisecond, ago: 10000, want: 10e6 / math.E},
		{desc: "observed after the request time: no decay", observe: 10 * time.Millisecond, ago: -5, want: 10e6},
		{desc: "no decay while requests are in flight", observe: 10 * time.Millisecond, ago: 10000, inflight: 1, want: 2 * 10e6},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var s Stats
			if tc.observe > 0 {
				s.Observe(tc.observe, false, clock.Now()-tc.ago*ms)
			}
			s.InFlight.Store(tc.inflight)
			got := latencyCost(&s, now)
			if d := math.Abs(got - tc.want); d > 1e-4*tc.want {
				t.Errorf("cost %g, want %g", got, tc.want)
			}
		})
	}
}

func TestLatencyUsesRequestTime(t *testing.T) {
	eps := endpoints(1, 1)
	clock := newFakeClock()
	eps[0].Stats.Observe(time.Second, false, clock.Now())
	eps[1].Stats.Observe(100*time.Millisecond, false, clock.Now())
	eps[1].Stats.InFlight.Store(1) // no decay for 1: cost 200ms
	p := (&Latency{Rand: seeded(3), Now: func() int64 { panic("clock read although Request.Now was set") }}).Build(eps, nil)
	r := &Request{Now: clock.Now()}
	if got := p.Pick(r); got != 1 {
		t.Fatalf("Pick = %d, want 1", got)
	}
	// 30 s later target 0's idle cost has decayed to 1s·e^-3 ≈ 50ms < 200ms.
	r.Now += 30 * int64(time.Second)
	if got := p.Pick(r); got != 0 {
		t.Fatalf("Pick after 30s = %d, want 0", got)
	}
}

func TestLatencyEmptyAndSingle(t *testing.T) {
	if got := NewLatency().Build(nil, nil).Pick(&Request{}); got != -1 {
		t.Fatalf("empty Pick = %d", got)
	}
	if got := NewLatency().Build(endpoints(1), nil).Pick(&Request{}); got != 0 {
		t.Fatalf("single Pick = %d", got)
	}
}

func TestLatencyWeight(t *testing.T) {
	eps := endpoints(1, 4)
	clock := newFakeClock()
	eps[0].Stats.Observe(10*time.Millisecond, false, clock.Now())
	eps[1].Stats.Observe(30*time.Millisecond, false, clock.Now())
	p := (&Latency{Rand: seeded(4), Now: clock.Now}).Build(eps, nil)
	if got := p.Pick(&Request{}); got != 1 {
		t.Fatalf("Pick = %d, want 1 (30ms/4 < 10ms/1)", got)
	}
}

func TestObserveLateReportKeepsTime(t *testing.T) {
	start := newFakeClock().Now()
	var s Stats
	s.Observe(10*time.Millisecond, false, start+1000*ms)
	s.Observe(10*time.Millisecond, false, start) // reported late
	got := latencyCost(&s, unixMillis32(start+11000*ms))
	if want := 10e6 / math.E; math.Abs(got-want) > 1e-4*want {
		t.Errorf("cost %g, want %g: the late report moved the stamp back", got, want)
	}
}
