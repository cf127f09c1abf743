package health

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// rateChecker is a running Checker with success-rate ejection only (no
// consecutive-failure thresholds) over n targets.
func rateChecker(t *testing.T, n int, sr SuccessRateConfig, pct float64) (*Checker, *fakeClock, *recorder, []string) {
	t.Helper()
	clk := newFakeClock()
	rec := &recorder{}
	p := passiveConfig()
	p.HTTPFailures = 0
	p.MaxEjectionPercent = pct
	p.SuccessRate = &sr
	c := New(Config{Passive: p}, rec.options(clk))
	var addrs []string
	for i := range n {
		addrs = append(addrs, fmt.Sprintf("10.0.0.%d:80", i+1))
	}
	c.SetTargets(addrs)
	ctx, cancel := context.WithCancel(context.Background())
	c.Start(ctx)
	t.Cleanup(func() { cancel(); c.Stop() })
	return c, clk, rec, addrs
}

// traffic reports n outcomes to addr, every failEvery-th a 500 (0: none).
func traffic(c *Checker, addr string, n, failEvery int) {
	for i := range n {
		st := 200
		if failEvery > 0 && i%failEvery == 0 {
			st = 500
		}
		c.Observe(addr, Result{Status: st})
	}
}

var envoySR = SuccessRateConfig{MinimumHosts: 5, RequestVolume: 100, StdevFactor: 1900, Interval: 10 * time.Second}

// One target answering 50 % 500s among 5 healthy ones is ejected at the
// end of the interval, with cause success-rate, for base_ejection_time;
// then it comes back.
func TestSuccessRateEjectsOutlier(t *testing.T) {
	c, clk, rec, addrs := rateChecker(t, 6, envoySR, 0)
	bad := addrs[5]
	for _, a := range addrs[:5] {
		traffic(c, a, 200, 0)
	}
	traffic(c, bad, 200, 2)
	clk.Advance(envoySR.Interval)
	st := state(t, c, bad)
	if st.Healthy || !st.Ejected || st.Cause != CauseSuccessRate || st.Ejections != 1 {
		t.Fatalf("outlier state %+v, want ejected by success-rate", st)
	}
	if sr := st.SuccessRate; sr == nil || sr.Rate != 50 || sr.Requests != 200 || !(sr.Threshold > 50 && sr.Threshold < 100) {
		t.Fatalf("outlier sample %+v", st.SuccessRate)
	}
	for _, a := range addrs[:5] {
		if !c.Healthy(a) {
			t.Fatalf("%s ejected too", a)
		}
	}
	if evs := rec.waitEvents(t, 1); evs[0].Cause != CauseSuccessRate || evs[0].Addr != bad || evs[0].New {
		t.Fatalf("event %+v", evs[0])
	}
	// base_ejection_time (10 s) × 1 ejection.
	if got := st.EjectedUntil.Sub(clk.Now()); got != 10*time.Second {
		t.Fatalf("ejected for %v, want 10s", got)
	}
	clk.Advance(10 * time.Second)
	if !c.Healthy(bad) {
		t.Fatal("outlier not back after base_ejection_time")
	}
}

// Below the minimum hosts or the request volume nothing is judged; equal
// rates eject nobody.
func TestSuccessRateNeedsVolumeAndHosts(t *testing.T) {
	for _, tc := range []struct {
		desc          string
		hosts, volume int
	}{
		{"4 hosts with volume of 5 needed", 4, 200},
		{"volume under request_volume", 6, 99},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c, clk, _, addrs := rateChecker(t, tc.hosts, envoySR, 0)
			for _, a := range addrs[1:] {
				traffic(c, a, tc.volume, 0)
			}
			traffic(c, addrs[0], tc.volume, 2)
			clk.Advance(envoySR.Interval)
			if !c.Healthy(addrs[0]) {
				t.Fatalf("ejected: %+v", state(t, c, addrs[0]))
			}
		})
	}
	c, clk, _, addrs := rateChecker(t, 5, envoySR, 0)
	for _, a := range addrs {
		traffic(c, a, 100, 4) // all 75 %: stdev 0
	}
	clk.Advance(envoySR.Interval)
	for _, a := range addrs {
		if !c.Healthy(a) {
			t.Fatalf("%s ejected among equal rates", a)
		}
	}
}

// The counts are per interval: an interval of good traffic after a bad
// one judges the good one only.
func TestSuccessRateWindowResets(t *testing.T) {
	sr := envoySR
	c, clk, _, addrs := rateChecker(t, 6, sr, 0)
	for _, a := range addrs[:5] {
		traffic(c, a, 200, 0)
	}
	traffic(c, addrs[5], 50, 2) // under the volume in this interval
	clk.Advance(sr.Interval)
	for _, a := range addrs {
		traffic(c, a, 200, 0)
	}
	traffic(c, addrs[5], 50, 2) // 250 requests, 25 failures: 90 %
	clk.Advance(sr.Interval)
	st := state(t, c, addrs[5])
	if st.SuccessRate == nil || st.SuccessRate.Requests != 250 || st.SuccessRate.Rate != 90 {
		t.Fatalf("second interval sample %+v", st.SuccessRate)
	}
}

// A pool where every other target is out keeps its last one, whatever
// the rates (and however low minimum_hosts is set).
func TestSuccessRateKeepsLastTarget(t *testing.T) {
	sr := SuccessRateConfig{MinimumHosts: 2, RequestVolume: 10, StdevFactor: 100, Interval: time.Second}
	c, clk, _, addrs := rateChecker(t, 2, sr, 0)
	traffic(c, addrs[0], 100, 2)
	traffic(c, addrs[1], 100, 0)
	clk.Advance(sr.Interval)
	if c.Healthy(addrs[0]) {
		t.Fatal("outlier of a pool of 2 not ejected (50 % vs 100 %, factor 0.1)")
	}
	// Now the remaining target does worse than the ejected one did; it is
	// the last healthy one and stays.
	traffic(c, addrs[1], 100, 1)
	clk.Advance(sr.Interval)
	if !c.Healthy(addrs[1]) {
		t.Fatal("last healthy target ejected")
	}
}

func TestEjectionLimit(t *testing.T) {
	for _, tc := range []struct {
		pct     float64
		total   int
		keepOne bool
		want    int
	}{
		{10, 1, false, 0}, {10, 2, false, 1}, {10, 3, false, 1}, {50, 2, false, 1},
		{50, 4, false, 2}, {99, 3, false, 2}, {10, 20, false, 2}, {0, 3, false, 3},
		{0, 3, true, 2}, {0, 1, true, 0}, {0, 0, false, 0},
	} {
		if got := ejectionLimit(tc.pct, tc.total, tc.keepOne); got != tc.want {
			t.Errorf("ejectionLimit(%v, %d, %v) = %d, want %d", tc.pct, tc.total, tc.keepOne, got, tc.want)
		}
	}
}
