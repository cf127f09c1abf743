package balance

import (
	"math"
	"math/big"
	"testing"
)

// aliasShares computes each endpoint's exact probability from an alias
// table: column c contributes prob[c]/2^64 to c and the rest to alias[c].
func aliasShares[T index](p *aliasPicker[T]) []*big.Rat {
	n := len(p.prob)
	out := make([]*big.Rat, n)
	for i := range out {
		out[i] = new(big.Rat)
	}
	two64 := new(big.Int).Lsh(big.NewInt(1), 64)
	col := new(big.Rat).SetFrac64(1, int64(n))
	for c := range n {
		own := new(big.Rat).SetFrac(new(big.Int).SetUint64(p.prob[c]), two64)
		if p.prob[c] == math.MaxUint64 {
			own.SetInt64(1)
		}
		rest := new(big.Rat).Sub(big.NewRat(1, 1), own)
		out[c].Add(out[c], new(big.Rat).Mul(own, col))
		a := int(p.alias[c])
		out[a].Add(out[a], new(big.Rat).Mul(rest, col))
	}
	return out
}

func TestRandomAliasTable(t *testing.T) {
	tests := []struct {
		desc    string
		weights []uint32
	}{
		{desc: "single", weights: []uint32{5}},
		{desc: "equal", weights: []uint32{3, 3, 3}},
		{desc: "3:1", weights: []uint32{3, 1}},
		{desc: "mixed", weights: []uint32{1, 2, 3, 4, 5, 6, 7, 100, 65535}},
		{desc: "zero counts as one", weights: []uint32{0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := NewRandom().Build(endpoints(tc.weights...), nil).(*aliasPicker[uint16])
			var total int64
			for _, w := range tc.weights {
				total += int64(max(w, 1))
			}
			for i, got := range aliasShares(p) {
				want := big.NewRat(int64(max(tc.weights[i], 1)), total)
				diff, _ := new(big.Rat).Sub(got, want).Float64()
				if math.Abs(diff) > 1e-15 {
					t.Errorf("endpoint %d: probability %s, want %s", i, got.FloatString(18), want.FloatString(18))
				}
			}
		})
	}
}

func TestRandomDistribution(t *testing.T) {
	tests := []struct {
		desc    string
		weights []uint32
	}{
		{desc: "equal", weights: []uint32{1, 1, 1, 1}},
		{desc: "3:1", weights: []uint32{300, 100}},
		{desc: "1..5", weights: []uint32{1, 2, 3, 4, 5}},
	}
	const picks = 200000
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			eps := endpoints(tc.weights...)
			p := (&Random{Rand: seeded(7)}).Build(eps, nil)
			got := countPicks(p, eps, &Request{}, picks)
			var total float64
			for _, w := range tc.weights {
				total += float64(w)
			}
			for i, e := range eps {
				want := float64(tc.weights[i]) / total * picks
				// 4 standard deviations of a binomial count.
				if d := math.Abs(float64(got[e.Addr]) - want); d > 4*math.Sqrt(want) {
					t.Errorf("%s: %d picks, want %.0f ± %.0f", e.Addr, got[e.Addr], want, 4*math.Sqrt(want))
				}
			}
		})
	}
}

func TestRandomEmpty(t *testing.T) {
	if got := NewRandom().Build(nil, nil).Pick(&Request{}); got != -1 {
		t.Fatalf("empty Pick = %d", got)
	}
}
