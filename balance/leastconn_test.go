package balance

import (
	"math"
	"testing"
)

func setInFlight(eps []Endpoint, inflight ...int64) {
	for i, n := range inflight {
		eps[i].Stats.InFlight.Store(n)
	}
}

func TestLeastConnectionsPicksMinimum(t *testing.T) {
	tests := []struct {
		desc     string
		weights  []uint32
		inflight []int64
		want     int
	}{
		{desc: "fewest in flight", weights: []uint32{1, 1, 1}, inflight: []int64{3, 1, 2}, want: 1},
		{desc: "last is least", weights: []uint32{1, 1, 1}, inflight: []int64{3, 2, 0}, want: 2},
		{desc: "weight scales the cost", weights: []uint32{1, 4}, inflight: []int64{1, 5}, want: 1},          // 2/1 vs 6/4
		{desc: "heavy but busy loses", weights: []uint32{1, 4}, inflight: []int64{0, 4}, want: 0},            // 1/1 vs 5/4
		{desc: "negative in-flight counts as 0", weights: []uint32{1, 1}, inflight: []int64{-5, 1}, want: 0}, // transient
		{desc: "single endpoint", weights: []uint32{1}, inflight: []int64{100}, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			eps := endpoints(tc.weights...)
			setInFlight(eps, tc.inflight...)
			p := (&LeastConnections{Rand: seeded(1)}).Build(eps, nil)
			for range 50 {
				if got := p.Pick(&Request{}); got != tc.want {
					t.Fatalf("Pick = %d, want %d", got, tc.want)
				}
			}
		})
	}
}

func TestLeastConnectionsEmpty(t *testing.T) {
	if got := NewLeastConnections().Build(nil, nil).Pick(&Request{}); got != -1 {
		t.Fatalf("empty Pick = %d", got)
	}
}

// TestLeastConnectionsTies checks that tied endpoints share the picks
// evenly instead of the first one taking them all.
func TestLeastConnectionsTies(t *testing.T) {
	tests := []struct {
		desc     string
		weights  []uint32
		inflight []int64
		tied     []int
	}{
		{desc: "idle pool", weights: []uint32{1, 1, 1, 1}, inflight: []int64{0, 0, 0, 0}, tied: []int{0, 1, 2, 3}},
		{desc: "two tied minima", weights: []uint32{1, 1, 1, 1, 1}, inflight: []int64{2, 0, 3, 0, 1}, tied: []int{1, 3}},
		{desc: "tied by cross-multiplication", weights: []uint32{1, 2, 3}, inflight: []int64{1, 3, 8}, tied: []int{0, 1}}, // 2/1 = 4/2 < 9/3
		{desc: "sixteen idle", weights: equalWeights(16, 5), inflight: make([]int64, 16), tied: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
	}
	const picks = 64000
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			eps := endpoints(tc.weights...)
			setInFlight(eps, tc.inflight...)
			p := (&LeastConnections{Rand: seeded(2)}).Build(eps, nil)
			got := make([]int, len(eps))
			for range picks {
				got[p.Pick(&Request{})]++
			}
			want := float64(picks) / float64(len(tc.tied))
			sum := 0
			for _, i := range tc.tied {
				sum += got[i]
				if d := (float64(got[i]) - want) / want; math.Abs(d) > 0.05 {
					t.Errorf("tied endpoint %d: %d picks, want %.0f ± 5%%", i, got[i], want)
				}
			}
			if sum != picks {
				t.Errorf("untied endpoints were picked: %v", got)
			}
		})
	}
}

// TestLeastConnectionsBalancesLoad holds every picked request open: the
// in-flight counts must track the weights, in full-scan and in
// two-choices mode.
func TestLeastConnectionsBalancesLoad(t *testing.T) {
	tests := []struct {
		desc      string
		weights   []uint32
		scanLimit int
		picks     int
		maxSpread float64 // max - min of InFlight/Weight at the end
	}{
		{desc: "scan, equal", weights: equalWeights(8, 1), picks: 8000, maxSpread: 1},
		{desc: "scan, weighted", weights: []uint32{1, 2, 3, 4}, picks: 10000, maxSpread: 1},
		{desc: "two choices, 1000 equal", weights: equalWeights(1000, 1), scanLimit: -1, picks: 100000, maxSpread: 8},
		{desc: "two choices, weighted", weights: []uint32{1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4}, scanLimit: -1, picks: 50000, maxSpread: 15},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			eps := endpoints(tc.weights...)
			p := (&LeastConnections{Rand: seeded(3), ScanLimit: tc.scanLimit}).Build(eps, nil)
			for range tc.picks {
				eps[p.Pick(&Request{})].Stats.InFlight.Add(1)
			}
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, e := range eps {
				x := float64(e.Stats.InFlight.Load()) / float64(e.Weight)
				lo, hi = min(lo, x), max(hi, x)
			}
			if hi-lo > tc.maxSpread {
				t.Errorf("in-flight per weight ranges over [%.1f, %.1f], spread > %v", lo, hi, tc.maxSpread)
			}
		})
	}
}

func TestLeastConnectionsTwoChoicesAvoidsBusy(t *testing.T) {
	eps := endpoints(equalWeights(100, 1)...)
	for i := range eps {
		eps[i].Stats.InFlight.Store(10)
	}
	eps[7].Stats.InFlight.Store(1000)
	p := (&LeastConnections{Rand: seeded(4)}).Build(eps, nil) // 100 > DefaultScanLimit
	if _, ok := p.(*lcPicker); !ok || p.(*lcPicker).scan {
		t.Fatalf("100 endpoints should use two choices")
	}
	for range 10000 {
		if p.Pick(&Request{}) == 7 {
			t.Fatal("the busiest endpoint was picked")
		}
	}
}
