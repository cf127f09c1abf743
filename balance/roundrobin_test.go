package balance

import (
	"math"
	"slices"
	"testing"
)

func rrCycle(t *testing.T, p Picker) int {
	t.Helper()
	switch q := p.(type) {
	case *rrPicker[uint16]:
		return int(q.n)
	case *rrPicker[uint32]:
		return int(q.n)
	}
	t.Fatalf("not a round-robin picker: %T", p)
	return 0
}

func TestRoundRobinSequence(t *testing.T) {
	tests := []struct {
		desc    string
		weights []uint32
		want    []int // one cycle, starting at slot 0
	}{
		{desc: "single endpoint", weights: []uint32{7}, want: []int{0}},
		{desc: "equal weights", weights: []uint32{1, 1, 1}, want: []int{0, 1, 2}},
		{desc: "equal large weights reduce to 1", weights: []uint32{100, 100, 100, 100}, want: []int{0, 1, 2, 3}},
		{desc: "5,1,1 interleaves the light ones", weights: []uint32{5, 1, 1}, want: []int{0, 0, 1, 0, 0, 2, 0}},
		{desc: "3,1", weights: []uint32{3, 1}, want: []int{0, 0, 1, 0}},
		{desc: "300,100 reduces to 3,1", weights: []uint32{300, 100}, want: []int{0, 0, 1, 0}},
		{desc: "2,3", weights: []uint32{2, 3}, want: []int{1, 0, 1, 0, 1}},
		{desc: "7,1 puts the light one mid-cycle", weights: []uint32{7, 1}, want: []int{0, 0, 0, 0, 1, 0, 0, 0}},
		{desc: "4,3,2,1", weights: []uint32{4, 3, 2, 1}, want: []int{0, 1, 2, 0, 1, 0, 3, 2, 1, 0}},
		{desc: "1,2,4", weights: []uint32{1, 2, 4}, want: []int{2, 1, 2, 2, 0, 1, 2}},
		{desc: "6,2,1", weights: []uint32{6, 2, 1}, want: []int{0, 0, 1, 0, 0, 2, 0, 1, 0}},
		{desc: "one heavy, ten light: no run of the light ones",
			weights: []uint32{10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
			want:    []int{0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0, 9, 10, 0}},
		{desc: "weight 0 is treated as 1", weights: []uint32{0, 1}, want: []int{0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := (&RoundRobin{Rand: zeroRand}).Build(endpoints(tc.weights...), nil)
			if got := rrCycle(t, p); got != len(tc.want) {
				t.Fatalf("cycle length %d, want %d", got, len(tc.want))
			}
			var got []int
			for range 3 * len(tc.want) {
				got = append(got, p.Pick(&Request{}))
			}
			want := slices.Concat(tc.want, tc.want, tc.want)
			if !slices.Equal(got, want) {
				t.Errorf("picks %v, want %v", got, want)
			}
		})
	}
}

func TestRoundRobinEmpty(t *testing.T) {
	p := NewRoundRobin().Build(nil, nil)
	if got := p.Pick(&Request{}); got != -1 {
		t.Fatalf("Pick on empty = %d, want -1", got)
	}
}

func TestRoundRobinExactRatios(t *testing.T) {
	tests := []struct {
		desc    string
		weights []uint32
		start   uint64 // raw Rand value choosing the starting slot
	}{
		{desc: "300:100 from slot 0", weights: []uint32{300, 100}},
		{desc: "300:100 from mid-cycle", weights: []uint32{300, 100}, start: 1 << 63},
		{desc: "5,3,1,1", weights: []uint32{5, 3, 1, 1}, start: 12345678901234567},
		{desc: "coprime weights", weights: []uint32{97, 89, 83, 1}, start: 1 << 62},
		{desc: "ten thousand targets", weights: equalWeights(10000, 100), start: 99},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			eps := endpoints(tc.weights...)
			p := (&RoundRobin{Rand: func() uint64 { return tc.start }}).Build(eps, nil)
			var sum, g uint64
			for _, w := range tc.weights {
				sum += uint64(w)
				g = gcd(g, uint64(w))
			}
			cycle := sum / g
			if got := rrCycle(t, p); uint64(got) != cycle {
				t.Fatalf("cycle %d, want %d", got, cycle)
			}
			// Any cycle-long window of consecutive picks holds exactly
			// the reduced weights; picking sum holds the weights.
			got := make([]uint64, len(eps))
			for range sum {
				got[p.Pick(&Request{})]++
			}
			for i, w := range tc.weights {
				if got[i] != uint64(w) {
					t.Fatalf("endpoint %d: %d picks of %d, want %d", i, got[i], sum, w)
				}
			}
		})
	}
}

// TestRoundRobinSmoothness checks, over seeded random weight sets, that
// every prefix of the cycle is within 1-1/(2(n-1)) (< 1) of the ideal count
// for every endpoint, that every window (cyclic, any start) is within 2,
// and that the sequence needed no forced slot.
func TestRoundRobinSmoothness(t *testing.T) {
	rnd := seeded(1)
	maxW := []uint64{2, 5, 10, 100, 1000, 65535}
	for iter := range 240 {
		n := 2 + int(bounded(rnd(), 14))
		w := make([]uint64, n)
		for i := range w {
			w[i] = 1 + bounded(rnd(), maxW[iter%len(maxW)])
		}
		total := cycleWeights(w, DefaultMaxCycle)
		seq := make([]uint32, total)
		if forced := smoothSequence(seq, w, total); forced != 0 {
			t.Fatalf("weights %v: %d forced slots", w, forced)
		}
		bound := 1 - 1/(2*float64(n-1)) + 1e-9
		cnt := make([]uint64, n)
		// prefix deviation d_i(t) = cnt_i(t) - t·w_i/W; the deviation of a
		// window (s, e] is d_i(e) - d_i(s), cyclically.
		lo, hi := make([]float64, n), make([]float64, n)
		for k, x := range seq {
			cnt[x]++
			for i := range cnt {
				d := float64(cnt[i]) - float64(k+1)*float64(w[i])/float64(total)
				if math.Abs(d) > bound {
					t.Fatalf("weights %v: after %d picks endpoint %d deviates by %.3f > %.3f", w, k+1, i, d, bound)
				}
				lo[i], hi[i] = min(lo[i], d), max(hi[i], d)
			}
		}
		for i := range cnt {
			if cnt[i] != w[i] {
				t.Fatalf("weights %v: endpoint %d has %d of %d slots", w, i, cnt[i], w[i])
			}
			if hi[i]-lo[i] >= 2 {
				t.Fatalf("weights %v: endpoint %d: a window deviates by %.3f >= 2", w, i, hi[i]-lo[i])
			}
		}
	}
}

func TestRoundRobinCap(t *testing.T) {
	tests := []struct {
		desc     string
		weights  []uint32
		maxCycle int
	}{
		{desc: "coprime heavy weights", weights: []uint32{65535, 65534, 65533, 1}, maxCycle: 1000},
		{desc: "many distinct weights", weights: func() []uint32 {
			ws := make([]uint32, 300)
			for i := range ws {
				ws[i] = uint32(1000 + 7*i)
			}
			return ws
		}(), maxCycle: 5000},
		{desc: "default cap, 10000 distinct weights", weights: func() []uint32 {
			ws := make([]uint32, 10000)
			for i := range ws {
				ws[i] = uint32(1 + (i*7919)%65535)
			}
			return ws
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			eps := endpoints(tc.weights...)
			p := (&RoundRobin{MaxCycle: tc.maxCycle, Rand: zeroRand}).Build(eps, nil)
			limit := tc.maxCycle
			if limit == 0 {
				limit = DefaultMaxCycle
			}
			cycle := rrCycle(t, p)
			if cycle > limit+len(eps) {
				t.Fatalf("cycle %d above cap %d", cycle, limit)
			}
			var total float64
			for _, w := range tc.weights {
				total += float64(w)
			}
			got := make([]int, len(eps))
			for range cycle {
				got[p.Pick(&Request{})]++
			}
			raised := 0
			for _, w := range tc.weights {
				if float64(w)/total*float64(limit) < 1 {
					raised++
				}
			}
			tol := float64(1+raised)/float64(limit) + 1e-12
			for i, w := range tc.weights {
				if got[i] == 0 {
					t.Fatalf("endpoint %d never picked", i)
				}
				if d := math.Abs(float64(got[i])/float64(cycle) - float64(w)/total); d > tol {
					t.Fatalf("endpoint %d: share off by %g > %g", i, d, tol)
				}
			}
		})
	}
}

// TestRoundRobinCarryOver rebuilds after every k picks and checks that the
// long-run shares still match the weights: exactly when the endpoints do
// not change, within 1% when they alternate between two sets. It also
// checks that restarting each rebuild at slot 0 would fail the same test.
func TestRoundRobinCarryOver(t *testing.T) {
	setA := []Endpoint{
		{Addr: "a", Weight: 5, Stats: new(Stats)},
		{Addr: "b", Weight: 3, Stats: new(Stats)},
		{Addr: "c", Weight: 1, Stats: new(Stats)},
		{Addr: "d", Weight: 1, Stats: new(Stats)},
	}
	// setB: one target gone, one added, one reweighted, order changed.
	setB := []Endpoint{
		{Addr: "e", Weight: 2, Stats: new(Stats)},
		{Addr: "d", Weight: 1, Stats: new(Stats)},
		{Addr: "b", Weight: 4, Stats: new(Stats)},
		{Addr: "a", Weight: 5, Stats: new(Stats)},
	}
	const picks = 240000
	tests := []struct {
		desc    string
		k       int
		changed bool
	}{
		{desc: "unchanged, k=1", k: 1},
		{desc: "unchanged, k=3", k: 3},
		{desc: "unchanged, k=7", k: 7},
		{desc: "unchanged, k=1000", k: 1000},
		{desc: "alternating sets, k=1", k: 1, changed: true},
		{desc: "alternating sets, k=2", k: 2, changed: true},
		{desc: "alternating sets, k=5", k: 5, changed: true},
		{desc: "alternating sets, k=13", k: 13, changed: true},
		{desc: "alternating sets, k=100", k: 100, changed: true},
	}
	share := func(eps []Endpoint) map[string]float64 {
		var total float64
		for _, e := range eps {
			total += float64(e.Weight)
		}
		m := make(map[string]float64)
		for _, e := range eps {
			m[e.Addr] = float64(e.Weight) / total
		}
		return m
	}
	shareA, shareB := share(setA), share(setB)
	// carry: 0 = none (restart), 1 = normal, 2 = phase without its sub-slot
	// remainder.
	run := func(b *RoundRobin, k int, changed bool, carry int) (got map[string]int, want map[string]float64) {
		got, want = make(map[string]int), make(map[string]float64)
		var p Picker
		for n := 0; n < picks; n += k {
			eps, sh := setA, shareA
			if changed && (n/k)%2 == 1 {
				eps, sh = setB, shareB
			}
			prev := p
			switch {
			case carry == 0:
				prev = nil
			case carry == 2 && p != nil:
				prev = dropFraction{p.(rrPhaser)}
			}
			p = b.Build(eps, prev)
			for range k {
				got[eps[p.Pick(&Request{})].Addr]++
				for a, s := range sh {
					want[a] += s
				}
			}
		}
		return got, want
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, want := run(&RoundRobin{Rand: zeroRand}, tc.k, tc.changed, 1)
			for a, w := range want {
				if tc.changed {
					if d := math.Abs(float64(got[a])-w) / w; d > 0.01 {
						t.Errorf("%s: %d picks, want %.0f (off by %.2f%%)", a, got[a], w, 100*d)
					}
				} else if math.Abs(float64(got[a])-w) >= 1 {
					// Unchanged endpoints: the rebuilt pickers continue one
					// cycle, so the counts are those of a single picker.
					t.Errorf("%s: %d picks, want %.2f ± <1", a, got[a], w)
				}
			}
		})
	}
	t.Run("control: restarting at slot 0 is biased", func(t *testing.T) {
		got, want := run(&RoundRobin{Rand: zeroRand}, 3, false, 0)
		if d := math.Abs(float64(got["a"])-want["a"]) / want["a"]; d < 0.05 {
			t.Errorf("restarting at 0 gave a share within %.2f%% of its weight; the carry-over test would not detect bias", 100*d)
		}
	})
	t.Run("control: dropping the sub-slot remainder is biased", func(t *testing.T) {
		got, want := run(&RoundRobin{Rand: zeroRand}, 1, true, 2)
		if d := math.Abs(float64(got["e"])-want["e"]) / want["e"]; d < 0.05 {
			t.Errorf("floor-only phase scaling gave a share within %.2f%% of its weight; the carry-over test would not detect bias", 100*d)
		}
	})
}

// dropFraction passes a round-robin phase on without its sub-slot
// remainder, to show that the remainder matters.
type dropFraction struct{ p rrPhaser }

func (dropFraction) Pick(*Request) int { return -1 }

func (d dropFraction) rrPhase() (uint64, uint64, uint64) {
	pos, _, n := d.p.rrPhase()
	return pos, 0, n
}

func TestRoundRobinCarryOverEmpty(t *testing.T) {
	b := &RoundRobin{Rand: zeroRand}
	eps := endpoints(1, 1, 1, 1)
	p := b.Build(eps, nil)
	p.Pick(&Request{})
	p.Pick(&Request{}) // phase 2/4
	p = b.Build(nil, p)
	if got := p.Pick(&Request{}); got != -1 {
		t.Fatalf("empty Pick = %d", got)
	}
	p = b.Build(eps, p)
	if got := p.Pick(&Request{}); got != 2 {
		t.Fatalf("after an empty set the phase restarted: Pick = %d, want 2", got)
	}
}

func TestScalePhase(t *testing.T) {
	tests := []struct {
		desc                string
		pos, frac, from, to uint64
		wantPos, wantFrac   uint64
	}{
		{desc: "same length", pos: 3, frac: 5, from: 10, to: 10, wantPos: 3, wantFrac: 5},
		{desc: "double", pos: 3, from: 4, to: 8, wantPos: 6},
		{desc: "half keeps the remainder", pos: 3, from: 4, to: 2, wantPos: 1, wantFrac: 1 << 63},
		{desc: "fraction carried", pos: 1, frac: 1 << 63, from: 3, to: 6, wantPos: 3},
		{desc: "to cycle of one", pos: 1, from: 4, to: 1, wantPos: 0, wantFrac: 1 << 62},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p, f := scalePhase(tc.pos, tc.frac, tc.from, tc.to)
			if p != tc.wantPos || f != tc.wantFrac {
				t.Errorf("scalePhase = (%d, %#x), want (%d, %#x)", p, f, tc.wantPos, tc.wantFrac)
			}
		})
	}
}

func TestRoundRobinUint32Indices(t *testing.T) {
	eps := endpoints(equalWeights(70000, 1)...)
	p := (&RoundRobin{Rand: zeroRand}).Build(eps, nil)
	if _, ok := p.(*rrPicker[uint32]); !ok {
		t.Fatalf("70000 endpoints built %T", p)
	}
	for want := range 70000 {
		if got := p.Pick(&Request{}); got != want {
			t.Fatalf("pick %d = %d", want, got)
		}
	}
}
